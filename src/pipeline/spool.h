/* spool.h - the on-disk backlog of records the store could not take yet.
 *
 * An append-only file of checksummed record blocks (format: spool.c header
 * comment), written at its end and replayed from its start, in order. Used by
 * the writer thread only (one thread at a time; no locking inside).
 *
 * Runs: the file header names the run (a random 64-bit id) that created the
 * file. Records found in the file at open belong to an earlier run: their
 * origin tokens name connections of a process that is gone, so they must be
 * stored but never acked (the drones resend; the store deduplicates).
 * dg_spool_read() says how many of the records it returns are of an earlier
 * run. Once everything is replayed the file starts over with this run's id.
 *
 * Damage: a torn or corrupt block (a crash in the middle of an append, a bad
 * sector) ends the valid part of the file. At open the valid prefix is kept
 * for replay and the rest is cut off and reported once (in `note`). A file of
 * another format or version is an error (never overwritten).
 */
#ifndef DG_PIPELINE_SPOOL_H
#define DG_PIPELINE_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "../core/record.h"

typedef struct dg_spool dg_spool_t;

#define DG_SPOOL_VERSION 1

/* Open or create the spool file `path` (at most max_bytes of records) for
 * the run `run_id`. 0 and *out set, or a negative errno with one sentence in
 * err: -EPROTO for a file that is not a spool of this version (wrong magic,
 * version or header checksum). When part of an existing file was cut off
 * (torn or corrupt tail), `note` gets one sentence saying so (else ""). */
int  dg_spool_open(const char *path, uint64_t max_bytes, uint64_t run_id, dg_spool_t **out,
                   char *err, size_t errlen, char *note, size_t notelen);
void dg_spool_close(dg_spool_t *s);

/* Append n records at the end. 0, -ENOSPC when they would pass max_bytes
 * (nothing written), or -errno (nothing counted as written). */
int  dg_spool_append(dg_spool_t *s, const dg_record_t *recs, size_t n);

/* Copy up to max records from the read position into out, without
 * consuming them; *earlier gets how many of them (a prefix) were written by
 * an earlier run. Returns the count (0 when nothing is pending) or -errno.
 * A block found damaged now ends the file there (reported on err). */
long dg_spool_read(dg_spool_t *s, dg_record_t *out, size_t max, size_t *earlier,
                   char *err, size_t errlen);
/* Mark the records of the last dg_spool_read() as replayed. When nothing is
 * left, the file is cut back to its header, which now names this run. */
int  dg_spool_consume(dg_spool_t *s);

uint64_t dg_spool_pending_records(const dg_spool_t *s);
uint64_t dg_spool_pending_bytes(const dg_spool_t *s);   /* block bytes not yet replayed */
uint64_t dg_spool_earlier_records(const dg_spool_t *s); /* of an earlier run, not yet replayed */
uint64_t dg_spool_file_run(const dg_spool_t *s);        /* run id in the file header */
const char *dg_spool_path(const dg_spool_t *s);

#endif
