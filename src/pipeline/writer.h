/* writer.h - the store writer thread: the first implementation of the
 * pipeline's output interface (sink.h), writing batches to a store backend.
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
 * bounded) and travel by pointer: no copy, no allocation per message (see
 * batch.h). The writer is the only thread that calls the backend's write
 * functions. It keeps the contract of sink.h (on_done once per batch, status
 * 0 only once durable, in order); dg_writer_sink_ops is the same writer
 * behind that interface.
 */
#ifndef DG_WRITER_H
#define DG_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "sink.h"
#include "../store/store.h"

typedef struct dg_writer dg_writer_t;

/* on_done is called on the writer thread for every batch once it is durable
 * (status 0), spooled (DG_BATCH_SPOOLED: buffer free, no ack yet) or
 * abandoned at shutdown (status < 0); see sink.h. */
dg_writer_t *dg_writer_new(const dg_store_ops_t *ops, dg_store_t *store,
                           void (*on_done)(dg_batch_t *b, void *ud), void *ud);
/* Enable the on-disk spool `dir`/backlog.spool (dir created if missing) of
 * at most max_bytes (--spool-max-mb), used once more than spill_batches
 * batches wait in memory while the store fails. A spool left by an earlier
 * run is replayed first, without acks (spool.h). 0, or -errno (-EPROTO: the
 * file is not a spool this version reads); the reason is logged as one
 * sentence. */
int  dg_writer_set_spool(dg_writer_t *w, const char *dir, uint64_t max_bytes, size_t spill_batches);
/* This process's run id (random, 64 bits; written in the spool header). */
uint64_t dg_writer_run_id(const dg_writer_t *w);
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
