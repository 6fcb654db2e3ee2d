/* drive.c - the AMQP publisher and consumer ops (queue/amqp.c) against a
 * real broker, without the gateway (tests/integration/test_queue_amqp.py).
 *
 *   amqp-drive publish URI
 *       reads commands on stdin, one a line:
 *         pub N [DRONE]   submit a batch of N records of DRONE (default d1),
 *                         seqs continuing from the last one of that run
 *                         -> "submitted ID FIRST LAST"
 *         state           -> "state failing=0|1 backlog_full=0|1"
 *         stop MS         stop(deadline now + MS) -> "stopped"
 *       and prints, when the publisher hands a batch back:
 *         done ID STATUS FIRST LAST
 *   amqp-drive consume URI N [commit|nocommit] [PREFETCH] [IDLE_MS]
 *       polls until N messages came (or IDLE_MS, default 3000, without any after
 *       the first; up to 10 s for the first), prints
 *       "msg DELIVERY_TAG BODY" for each, commits after each poll (not with
 *       nocommit), then "lag X" and "count N".
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/core/timefmt.h"
#include "../../src/pipeline/batch.h"
#include "../../src/queue/queue.h"

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

#define say(...) do { pthread_mutex_lock(&out_mu); printf(__VA_ARGS__); fflush(stdout); \
                      pthread_mutex_unlock(&out_mu); } while (0)

static void on_done(dg_batch_t *b, void *ud)
{
    (void)ud;
    say("done %d %d %" PRIu64 " %" PRIu64 "\n", b->worker, b->status,
        b->n ? b->recs[0].seq : 0, b->n ? b->recs[b->n - 1].seq : 0);
    dg_batch_free(b);
}

static int publish(const char *uri)
{
    const dg_sink_ops_t *ops;
    char err[512];
    void *s = dg_queue_publisher_new(uri, on_done, NULL, &ops, err, sizeof err);
    if (!s) { fprintf(stderr, "amqp-drive: %s\n", err); return 2; }
    if (ops->start(s) != 0) { fprintf(stderr, "amqp-drive: start failed\n"); return 2; }
    char line[256];
    uint64_t seq = 0;
    int id = 0;
    while (fgets(line, sizeof line, stdin)) {
        char drone[65] = "d1";
        int n, ms;
        if (sscanf(line, "pub %d %64s", &n, drone) >= 1 && n >= 0) {
            dg_batch_t *b = dg_batch_new(++id, (size_t)(n ? n : 1));
            if (!b) return 2;
            uint64_t first = seq + 1;
            for (int i = 0; i < n; i++) {
                dg_record_t *r = &b->recs[i];
                dg_record_init(r);
                r->drone_id_len = (uint8_t)strlen(drone);
                memcpy(r->drone_id, drone, r->drone_id_len + 1);
                r->seq = ++seq;
                r->flags = DG_REC_HAS_SEQ | DG_REC_HAS_TS | DG_REC_HAS_BATTERY;
                r->ts_ms = 1795000000000LL + (int64_t)r->seq;
                r->recv_us = 1795000000500000LL + (int64_t)r->seq * 1000;
                r->lat = 47.0 + (double)r->seq * 1e-6;
                r->lon = 8.5;
                r->alt = 400.25;
                r->battery = 0.5;
            }
            b->n = (size_t)n;
            say("submitted %d %" PRIu64 " %" PRIu64 "\n", id, first, seq);
            ops->submit(s, b);
        } else if (!strncmp(line, "state", 5)) {
            say("state failing=%d backlog_full=%d\n", ops->failing(s), ops->backlog_full(s));
        } else if (sscanf(line, "stop %d", &ms) == 1) {
            ops->stop(s, dg_mono_ms() + ms);
            say("stopped\n");
            break;
        }
    }
    ops->free(s);
    return 0;
}

static int consume(const char *uri, int want, int commit, int prefetch, int idle_ms)
{
    char err[512];
    const dg_queue_consumer_ops_t *ops = dg_queue_consumer_ops(uri, err, sizeof err);
    if (!ops) { fprintf(stderr, "amqp-drive: %s\n", err); return 2; }
    void *c = ops->open(uri, "drive", prefetch, err, sizeof err);
    if (!c) { fprintf(stderr, "amqp-drive: %s\n", err); return 2; }
    dg_queue_msg_t m[64];
    int got = 0;
    int64_t idle_since = dg_mono_ms();
    while (got < want && dg_mono_ms() - idle_since < (got ? idle_ms : idle_ms > 10000 ? idle_ms : 10000)) {
        int max = want - got < 64 ? want - got : 64;
        int n = ops->poll(c, m, max, 200);
        if (n <= 0) continue;
        idle_since = dg_mono_ms();
        for (int i = 0; i < n; i++)
            say("msg %" PRIu64 " %.*s\n", m[i].token & ((UINT64_C(1) << 48) - 1), (int)m[i].len, m[i].value);
        got += n;
        if (commit && ops->commit(c, m[n - 1].token) != 0) say("commit failed\n");
    }
    say("lag %" PRId64 "\n", ops->lag(c));
    say("count %d\n", got);
    ops->close(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "publish")) return publish(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "consume"))
        return consume(argv[2], atoi(argv[3]), !(argc >= 5 && !strcmp(argv[4], "nocommit")),
                       argc >= 6 ? atoi(argv[5]) : 100, argc >= 7 ? atoi(argv[6]) : 3000);
    fprintf(stderr, "usage: amqp-drive publish URI | consume URI N [nocommit|commit] [PREFETCH] [IDLE_MS]\n");
    return 2;
}
