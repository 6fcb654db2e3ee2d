/* writer.h - the store writer thread and the batches that travel to it.
 *
 *   worker thread                       writer thread
 *   ------------                        -------------
 *   decode -> append to its open batch
 *   submit batch  ------ queue ------>  take every queued batch, write them
 *                                       in one store transaction (retrying
 *                                       with backoff while the store fails)
 *   on_done(batch): ack, reuse  <-----  hand each batch back to its owner
 *
 * Batches are owned by one worker (a fixed pool per worker, so memory is
 * bounded) and travel by pointer: no copy, no allocation per message. The
 * writer is the only thread that calls the backend's write functions.
 */
#ifndef DG_WRITER_H
#define DG_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

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
    int         status;    /* set by the writer: 0 durable, <0 not stored, DG_BATCH_SPOOLED */
    int         foreign;   /* allocated by the writer (acks of replayed records): free after use */
    size_t      n, cap;
    dg_record_t *recs;     /* cap records */
} dg_batch_t;

#define DG_BATCH_SPOOLED 1   /* written to the spool: buffer reusable, records not durable yet */

dg_batch_t *dg_batch_new(int worker, size_t cap);
void        dg_batch_free(dg_batch_t *b);

typedef struct dg_writer dg_writer_t;

/* on_done is called on the writer thread for every batch once it is durable
 * (status 0) or abandoned at shutdown (status < 0). */
dg_writer_t *dg_writer_new(const dg_store_ops_t *ops, dg_store_t *store,
                           void (*on_done)(dg_batch_t *b, void *ud), void *ud);
/* Enable the on-disk spool in `dir` (created if missing) of at most
 * max_bytes, used once more than spill_batches batches wait in memory while
 * the store fails. A spool left by an earlier run is replayed. 0 or -errno. */
int  dg_writer_set_spool(dg_writer_t *w, const char *dir, uint64_t max_bytes, size_t spill_batches);
/* Minimum time between the starts of two transactions while little is
 * queued (bigger transactions, fewer index page writes per row). */
void dg_writer_set_commit_interval(dg_writer_t *w, long ms);
int  dg_writer_start(dg_writer_t *w);
/* Any thread. Queue a batch for writing. */
void dg_writer_submit(dg_writer_t *w, dg_batch_t *b);
/* Write what is queued, then stop the thread. Batches still failing after
 * deadline_ms (monotonic) are handed back with status < 0. */
void dg_writer_stop(dg_writer_t *w, int64_t deadline_ms);
void dg_writer_free(dg_writer_t *w);
/* Any thread: persist a command row (asynchronously, in order). */
struct dg_command;
void dg_writer_put_command(dg_writer_t *w, const struct dg_command *c);
/* True while the store fails and no more can be spooled (no spool, or the
 * spool is at --spool-max-mb): drones must be told, not stalled. */
int  dg_writer_backlog_full(dg_writer_t *w);
/* True while the last store operation failed (for /readyz). */
int  dg_writer_failing(dg_writer_t *w);

#endif
