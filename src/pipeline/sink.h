/* sink.h - the pipeline's output: where batches of records go to become
 * durable, and how they come back to be acked.
 *
 *   worker --submit(batch)--> sink --(store commit / broker confirm)-->
 *   worker <--done(batch, status)-- sink
 *
 * The store writer (writer.h, dg_writer_sink_ops) is the first
 * implementation; a broker publisher (Kafka, AMQP) satisfies the same
 * contract with its delivery reports. The contract, for every sink:
 *
 *  1. submit(sink, b) may be called from any thread and does not block on
 *     I/O. The sink holds b until it hands it back.
 *  2. done(b, ud) is called exactly once for every submitted batch, from the
 *     sink's own thread, with b->status:
 *       0                 every record of b is durable (committed, or
 *                         confirmed by the broker): the worker acks them;
 *       DG_BATCH_SPOOLED  the records are in the sink's local backlog (on
 *                         disk), not durable yet: the buffer may be reused,
 *                         nothing is acked;
 *       < 0               given up (shutdown while failing): nothing is
 *                         acked, the drones resend.
 *     Status 0 is never reported before the records are durable, and
 *     batches of one worker are made durable in submission order.
 *  3. done may also deliver batches the worker never submitted (b->foreign
 *     set, b->worker naming a worker that submitted in this run, status 0):
 *     acks for records of this run that were made durable later from the
 *     local backlog. The receiver acks and frees them (dg_batch_free).
 *     Records left from an earlier run (a crash) are never acked: their
 *     origin tokens name connections of another process.
 *  4. backlog_full(sink) is true while the sink can take no more (failing,
 *     and its local backlog is full): workers must tell drones (1008), not
 *     stall. failing(sink) is true while the last delivery attempt failed
 *     (/readyz). Both may be called from any thread.
 *  5. stop(sink, deadline_ms) delivers what is queued, retrying until the
 *     monotonic deadline, hands every batch back (3.) and joins the sink's
 *     thread; free() releases it afterwards.
 */
#ifndef DG_PIPELINE_SINK_H
#define DG_PIPELINE_SINK_H

#include <stdint.h>

#include "batch.h"

typedef void (*dg_sink_done_fn)(dg_batch_t *b, void *ud);

typedef struct dg_sink_ops {
    const char *name;                                  /* "store", "kafka", ... */
    int  (*start)(void *sink);                         /* 0 or -errno */
    void (*submit)(void *sink, dg_batch_t *b);
    int  (*backlog_full)(void *sink);
    int  (*failing)(void *sink);
    void (*stop)(void *sink, int64_t deadline_ms);
    void (*free)(void *sink);
} dg_sink_ops_t;

/* The store writer (writer.h) behind this interface: sink = dg_writer_t *. */
extern const dg_sink_ops_t dg_writer_sink_ops;

#endif
