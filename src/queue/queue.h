/* queue.h - a message broker between gateways and stores (Kafka, AMQP).
 *
 * Two sides, one header, so that every broker plugs in the same way:
 *
 *   gateway:  worker --batch--> publisher (a dg_sink_ops_t, sink.h) --> broker
 *             the publisher hands the batch back with status 0 only when the
 *             broker confirmed every record of it (Kafka delivery reports with
 *             acks=all, AMQP publisher confirms): the drone's ack follows.
 *   sink:     broker --> consumer (dg_queue_consumer_ops_t) --> records -->
 *             the store writer (pipeline/writer.h) --> commit --> consumer
 *             commit(token): Kafka offsets / AMQP delivery acks only after the
 *             store committed, so a crash redelivers and (drone_id, seq)
 *             uniqueness in the store makes it exactly once.
 *
 * Wire format of one message (CONTRACT.md "Queue"): one JSON object per
 * record, the fields of a REST telemetry row plus "drone_id", "timestamp"
 * (epoch ms) and "received_at" (epoch ms); key / routing key = drone id.
 * dg_queue_encode_json / dg_queue_decode_json are the one implementation both
 * brokers use (queue/record_json.c).
 *
 * Each broker implements:
 *   void *dg_<broker>_publisher_new(const char *uri, dg_sink_done_fn done,
 *                                   void *ud, char *err, size_t errlen);
 *        -> a sink for dg_<broker>_publisher_ops (NULL + err on a bad URI)
 *   const dg_queue_consumer_ops_t dg_<broker>_consumer_ops;
 * and dg_queue_publisher_new / dg_queue_consumer_ops pick one by URI scheme.
 */
#ifndef DG_QUEUE_H
#define DG_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"
#include "../core/record.h"
#include "../pipeline/sink.h"

/* ---- wire format (record_json.c) ---- */

/* Append the contract's JSON value for r (no trailing newline). */
void dg_queue_encode_json(const dg_record_t *r, dg_buf_t *out);
/* Parse one message value into r (origin 0). 0, or -1 with a reason in err
 * (the consumer counts and skips what it cannot parse: a poison message must
 * not stop the sink). Validation is the one the WebSocket path uses. */
int  dg_queue_decode_json(const char *p, size_t n, dg_record_t *r, char *err, size_t errlen);

/* ---- gateway side: publishers are sinks (pipeline/sink.h) ---- */

/* By URI scheme (kafka://, amqp://). NULL and a sentence in err when the
 * URI is bad or the scheme unknown. *ops receives the table. */
void *dg_queue_publisher_new(const char *uri, dg_sink_done_fn done, void *ud,
                             const dg_sink_ops_t **ops, char *err, size_t errlen);

/* ---- sink side: consumers ---- */

/* One received message, valid until the next poll on the same consumer. */
typedef struct dg_queue_msg {
    const char *value;
    size_t      len;
    uint64_t    token;      /* opaque: pass to commit() once stored */
} dg_queue_msg_t;

typedef struct dg_queue_consumer_ops {
    const char *name;
    /* Connect and subscribe (Kafka: consumer group `group`; AMQP: basic.consume
     * with prefetch). NULL + err on failure. */
    void *(*open)(const char *uri, const char *group, int prefetch, char *err, size_t errlen);
    /* Up to max messages into out, waiting at most timeout_ms for the first.
     * Returns the count (0 on timeout), or -1 when the broker is unreachable
     * (the caller retries; /readyz says 503 meanwhile). */
    int  (*poll)(void *c, dg_queue_msg_t *out, int max, int timeout_ms);
    /* Everything polled up to and including `token` is stored: commit it
     * (Kafka: offsets, AMQP: basic.ack multiple). 0 or -1. */
    int  (*commit)(void *c, uint64_t token);
    /* Messages waiting in the broker for this consumer (lag), -1 unknown. */
    int64_t (*lag)(void *c);
    void (*close)(void *c);
} dg_queue_consumer_ops_t;

/* By URI scheme; NULL (and err) when the scheme is unknown. */
const dg_queue_consumer_ops_t *dg_queue_consumer_ops(const char *uri, char *err, size_t errlen);

/* ---- the brokers (kafka.c, amqp.c), picked by the two functions above ---- */

void *dg_amqp_publisher_new(const char *uri, dg_sink_done_fn done, void *ud, char *err, size_t errlen);
extern const dg_sink_ops_t dg_amqp_publisher_ops;
extern const dg_queue_consumer_ops_t dg_amqp_consumer_ops;

void *dg_kafka_publisher_new(const char *uri, dg_sink_done_fn done, void *ud, char *err, size_t errlen);
extern const dg_sink_ops_t dg_kafka_publisher_ops;
extern const dg_queue_consumer_ops_t dg_kafka_consumer_ops;

#endif
