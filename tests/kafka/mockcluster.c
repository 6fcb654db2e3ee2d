/* mockcluster.c - librdkafka's mock Kafka cluster (rdkafka_mock.h) for the
 * integration tests: Debian packages no Kafka broker. Test tooling only; the
 * producer and consumer under test are dronegate's production code.
 *
 *   kafka-mockcluster [TOPIC [PARTITIONS]]
 *
 * Starts 3 brokers on loopback (ephemeral ports), creates TOPIC (default
 * dronegate.telemetry, 3 partitions, replication 3), prints the bootstrap
 * servers on one line and then serves commands from stdin, one per line,
 * answering "ok" (or "error ...") to each so the caller can synchronise:
 *   down ID | up ID          broker ID (1-3) down / up
 *   alldown | allup          every broker
 *   err APIKEY COUNT CODE    the next COUNT requests of APIKEY (0 = Produce,
 *                            8 = OffsetCommit) fail with error CODE
 * It exits when stdin closes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define NBROKERS 3

int main(int argc, char **argv)
{
    const char *topic = argc > 1 ? argv[1] : "dronegate.telemetry";
    int parts = argc > 2 ? atoi(argv[2]) : 3;
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!rk) { fprintf(stderr, "mockcluster: %s\n", e); return 1; }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, NBROKERS);
    if (!mc) { fprintf(stderr, "mockcluster: cannot create the mock cluster\n"); return 1; }
    if (rd_kafka_mock_topic_create(mc, topic, parts, NBROKERS)) { fprintf(stderr, "mockcluster: cannot create %s\n", topic); return 1; }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        int id = 0, key = 0, cnt = 0, code = 0;
        rd_kafka_resp_err_t rc = 0;
        if (sscanf(line, "down %d", &id) == 1) rc = rd_kafka_mock_broker_set_down(mc, id);
        else if (sscanf(line, "up %d", &id) == 1) rc = rd_kafka_mock_broker_set_up(mc, id);
        else if (!strncmp(line, "alldown", 7)) for (id = 1; id <= NBROKERS; id++) rc |= rd_kafka_mock_broker_set_down(mc, id);
        else if (!strncmp(line, "allup", 5)) for (id = 1; id <= NBROKERS; id++) rc |= rd_kafka_mock_broker_set_up(mc, id);
        else if (sscanf(line, "err %d %d %d", &key, &cnt, &code) == 3) {
            rd_kafka_resp_err_t *errs = calloc((size_t)cnt, sizeof *errs);
            for (int i = 0; i < cnt; i++) errs[i] = (rd_kafka_resp_err_t)code;
            rd_kafka_mock_push_request_errors_array(mc, (int16_t)key, (size_t)cnt, errs);
            free(errs);
        } else { printf("error unknown command\n"); fflush(stdout); continue; }
        if (rc) printf("error %s\n", rd_kafka_err2str(rc)); else printf("ok\n");
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
