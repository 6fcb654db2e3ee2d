/* queue.c - pick a broker by URI scheme (queue.h).
 *
 * Each broker's symbols are declared weak so that a build without that
 * broker's file (or library) links and says so in a sentence instead of
 * failing: amqp.c comes from the AMQP branch, kafka.c from the Kafka branch.
 */
#include "queue.h"

#include <stdio.h>
#include <string.h>

void *dg_amqp_publisher_new(const char *uri, dg_sink_done_fn done, void *ud,
                            char *err, size_t errlen) __attribute__((weak));
extern const dg_sink_ops_t dg_amqp_publisher_ops __attribute__((weak));
extern const dg_queue_consumer_ops_t dg_amqp_consumer_ops __attribute__((weak));

/* mk/kafka.mk defines DG_HAVE_KAFKA: strong references, so that the linker
 * takes kafka.o out of the core library (a weak reference alone does not). */
#ifdef DG_HAVE_KAFKA
#define DG_KAFKA_WEAK
#else
#define DG_KAFKA_WEAK __attribute__((weak))
#endif
void *dg_kafka_publisher_new(const char *uri, dg_sink_done_fn done, void *ud,
                             char *err, size_t errlen) DG_KAFKA_WEAK;
extern const dg_sink_ops_t dg_kafka_publisher_ops DG_KAFKA_WEAK;
extern const dg_queue_consumer_ops_t dg_kafka_consumer_ops DG_KAFKA_WEAK;

static int scheme(const char *uri, const char *s)
{
    size_t n = strlen(s);
    return uri && strncmp(uri, s, n) == 0;
}

void *dg_queue_publisher_new(const char *uri, dg_sink_done_fn done, void *ud,
                             const dg_sink_ops_t **ops, char *err, size_t errlen)
{
    if (scheme(uri, "kafka://")) {
#ifndef DG_HAVE_KAFKA
        if (!dg_kafka_publisher_new || !&dg_kafka_publisher_ops) {
            snprintf(err, errlen, "kafka:// is not available in this build");
            return NULL;
        }
#endif
        *ops = &dg_kafka_publisher_ops;
        return dg_kafka_publisher_new(uri, done, ud, err, errlen);
    }
    if (scheme(uri, "amqp://")) {
        if (!dg_amqp_publisher_new || !&dg_amqp_publisher_ops) {
            snprintf(err, errlen, "amqp:// is not available in this build");
            return NULL;
        }
        *ops = &dg_amqp_publisher_ops;
        return dg_amqp_publisher_new(uri, done, ud, err, errlen);
    }
    snprintf(err, errlen, "unknown queue URI scheme (want kafka:// or amqp://)");
    return NULL;
}

const dg_queue_consumer_ops_t *dg_queue_consumer_ops(const char *uri, char *err, size_t errlen)
{
    if (scheme(uri, "kafka://")) {
#ifndef DG_HAVE_KAFKA
        if (!&dg_kafka_consumer_ops) {
            snprintf(err, errlen, "kafka:// is not available in this build");
            return NULL;
        }
#endif
        return &dg_kafka_consumer_ops;
    }
    if (scheme(uri, "amqp://")) {
        if (!&dg_amqp_consumer_ops) {
            snprintf(err, errlen, "amqp:// is not available in this build");
            return NULL;
        }
        return &dg_amqp_consumer_ops;
    }
    snprintf(err, errlen, "unknown queue URI scheme (want kafka:// or amqp://)");
    return NULL;
}
