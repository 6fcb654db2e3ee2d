/* kafka_uri.h - parse kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?name=value&...]
 * (CONTRACT.md "Queue"). Pure string work, no librdkafka: unit-tested and
 * fuzzed (fuzz/fuzz_kafka_uri.c).
 *
 * Query parameters are librdkafka properties (percent-decoded), except the
 * ones dronegate reads itself:
 *   group=NAME      consumer group of `dronegate sink` (--group wins)
 *   format=json     the only value this build accepts (format=protobuf is
 *                   refused with a sentence)
 */
#ifndef DG_QUEUE_KAFKA_URI_H
#define DG_QUEUE_KAFKA_URI_H

#include <stddef.h>

#define DG_KAFKA_DEFAULT_TOPIC "dronegate.telemetry"
#define DG_KAFKA_MAX_PROPS 32

typedef struct dg_kafka_uri {
    char   brokers[1024];   /* bootstrap.servers: "h1:p1,h2:p2" */
    char   topic[250];      /* Kafka's limit is 249 */
    char   group[256];      /* "" when not given */
    size_t nprops;
    struct { char name[128]; char value[512]; } props[DG_KAFKA_MAX_PROPS];
} dg_kafka_uri_t;

/* 0, or -1 with one sentence in err. */
int dg_kafka_uri_parse(const char *uri, dg_kafka_uri_t *u, char *err, size_t errlen);

#endif
