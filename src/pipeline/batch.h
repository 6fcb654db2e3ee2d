/* batch.h - what travels between the workers and the pipeline: the inbox
 * message header, batches of records, and the origin token of a record.
 *
 * A batch is owned by one worker (a fixed pool per worker, so memory is
 * bounded), filled on that worker's thread, handed to a sink (sink.h) by
 * pointer and handed back through the worker's inbox: no copy and no
 * allocation per message.
 *
 * Origin: every record carries `origin`, a 64-bit token saying which
 * connection to ack once the record is durable. Below the pipeline (the
 * store layer) it is opaque; only the pipeline and net/ pack and unpack it:
 *
 *   bits 63..56  worker index (0..255)
 *   bits 55..32  connection slot in that worker (< 2^24; --max-connections
 *                is at most 10,000,000)
 *   bits 31..0   slot generation (a late ack finds no reused slot)
 *
 * A token is only meaningful in the run that made it: slots and generations
 * restart at 1 after a restart (see spool.h for what that means for records
 * that outlive a run).
 */
#ifndef DG_PIPELINE_BATCH_H
#define DG_PIPELINE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/record.h"

/* Header of anything that travels through a worker's inbox (see worker.h). */
struct dg_worker;
typedef struct dg_msg {
    struct dg_msg *next;
    int            type;   /* DG_MSG_* in worker.h */
    /* The receiving worker runs this (NULL: a store batch coming back);
     * deliver false: the worker is going away, just free it. */
    void         (*handle)(struct dg_worker *w, struct dg_msg *m, bool deliver);
} dg_msg_t;

typedef struct dg_batch {
    dg_msg_t    msg;       /* must be first: batches return through the inbox */
    int         worker;    /* owner */
    int         status;    /* set by the sink: 0 durable, <0 not stored, DG_BATCH_SPOOLED */
    int         foreign;   /* allocated by the sink (acks of replayed records): free after use */
    size_t      n, cap;
    dg_record_t *recs;     /* cap records */
} dg_batch_t;

#define DG_BATCH_SPOOLED 1   /* written to the spool: buffer reusable, records not durable yet */

dg_batch_t *dg_batch_new(int worker, size_t cap);
void        dg_batch_free(dg_batch_t *b);

/* A worker's pool of batches (owner thread only). `budget` batches are
 * allocated up front; when all of them are out, get() allocates one more
 * (bounded by what one read can carry) and says the pool is over budget:
 * the worker stops reading drones until put() says it is back within
 * budget with a free batch. Batches over budget are freed when they return. */
typedef struct dg_batch_pool {
    dg_batch_t *free;          /* linked through msg.next */
    int         worker;
    int         msg_type;      /* inbox type of a batch (DG_MSG_BATCH) */
    size_t      batch_records;
    long        budget;        /* --batch-pool */
    long        nbatches;      /* allocated, free or out */
} dg_batch_pool_t;

/* 0, or -ENOMEM (nothing left allocated). */
int  dg_batch_pool_init(dg_batch_pool_t *p, int worker, int msg_type, size_t batch_records, long budget);
/* An empty batch, or NULL without memory. *over is set when this get took
 * the pool over its budget. */
dg_batch_t *dg_batch_pool_get(dg_batch_pool_t *p, bool *over);
/* Take back a batch the sink returned. True when the pool is within budget
 * and has a free batch (a paused worker may read again). */
bool dg_batch_pool_put(dg_batch_pool_t *p, dg_batch_t *b);
/* Free the batches in the pool (not those still out). */
void dg_batch_pool_free(dg_batch_pool_t *p);

#define DG_ORIGIN_SLOT_MAX 0xffffffu

static inline uint64_t dg_origin_pack(unsigned worker, uint32_t slot, uint32_t gen)
{
    return (uint64_t)(worker & 0xffu) << 56 | (uint64_t)(slot & DG_ORIGIN_SLOT_MAX) << 32 | gen;
}
static inline unsigned dg_origin_worker(uint64_t o) { return (unsigned)(o >> 56); }
static inline uint32_t dg_origin_slot(uint64_t o)   { return (uint32_t)(o >> 32) & DG_ORIGIN_SLOT_MAX; }
static inline uint32_t dg_origin_gen(uint64_t o)    { return (uint32_t)o; }

#endif
