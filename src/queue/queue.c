/* queue.c - pick a broker by URI scheme (queue.h).
 *
 * Both brokers are part of every build (librdkafka and rabbitmq-c are
 * required dependencies: scripts/deps.d/{kafka,amqp}.list); the linker takes
 * kafka.o and amqp.o out of the core library because this file names their
 * entry points (queue.h).
 */
#include "queue.h"

#include <stdio.h>
#include <string.h>

static int scheme(const char *uri, const char *s)
{
    size_t n = strlen(s);
    return uri && strncmp(uri, s, n) == 0;
}

void *dg_queue_publisher_new(const char *uri, dg_sink_done_fn done, void *ud,
                             const dg_sink_ops_t **ops, char *err, size_t errlen)
{
    if (scheme(uri, "kafka://")) {
        *ops = &dg_kafka_publisher_ops;
        return dg_kafka_publisher_new(uri, done, ud, err, errlen);
    }
    if (scheme(uri, "amqp://")) {
        *ops = &dg_amqp_publisher_ops;
        return dg_amqp_publisher_new(uri, done, ud, err, errlen);
    }
    snprintf(err, errlen, "unknown queue URI scheme (want kafka:// or amqp://)");
    return NULL;
}

const dg_queue_consumer_ops_t *dg_queue_consumer_ops(const char *uri, char *err, size_t errlen)
{
    if (scheme(uri, "kafka://")) return &dg_kafka_consumer_ops;
    if (scheme(uri, "amqp://")) return &dg_amqp_consumer_ops;
    snprintf(err, errlen, "unknown queue URI scheme (want kafka:// or amqp://)");
    return NULL;
}
