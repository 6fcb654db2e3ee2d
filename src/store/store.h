/* store.h - the storage interface every backend implements (sqlite:,
 * postgresql:, influxdb:, null:).
 *
 * The store layer knows records, not connections: a record's `origin` is an
 * opaque token of the pipeline (src/pipeline/batch.h); a backend neither
 * reads nor stores it.
 *
 * Threads: write_batch(), update_drones() and put_command() are called only
 * from the store writer thread (src/pipeline/writer.c), one call at a time.
 * query(), latest(), get_command(), open_commands(), last_seq() and ping()
 * may be called from any thread, concurrently with the writer and with each
 * other; a backend serialises internally where it needs to (a
 * mutex-protected pool of read connections). Threads a backend starts block
 * every signal.
 *
 * Durability: write_batch() returns 0 only when every record is durable
 * (committed), including records that were already stored before (a
 * redelivery - the same (drone_id, seq) with the same timestamp - is stored
 * once, not an error), except the records it flags DG_REC_REJECTED_REUSED.
 * Only then does the gateway acknowledge them.
 *
 * Reused seqs (contract): a record whose (drone_id, seq) is already stored,
 * or comes earlier in the same batch, with a *different* timestamp is not
 * stored; write_batch() sets DG_REC_REJECTED_REUSED in its flags (and clears
 * it on every other record, so a retried batch is judged afresh) and still
 * returns 0 when the rest is durable. The ack path skips such records and
 * tells the drone `seq_reused`. A record without a drone timestamp
 * (DG_REC_HAS_TS clear: the receive time, which differs between deliveries)
 * whose (drone_id, seq) is stored is a redelivery, whatever the timestamps.
 * Every backend behaves the same.
 */
#ifndef DG_STORE_H
#define DG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/record.h"

typedef struct dg_store dg_store_t;   /* backend-specific */
struct dg_command;                    /* core/commands.h */

typedef struct dg_store_config {
    bool fsync;            /* ack only after fsync (survives power loss) */
} dg_store_config_t;

typedef struct dg_query {
    const char *drone_id;  /* NUL-terminated, validated */
    int64_t from_ms;       /* inclusive; INT64_MIN when open */
    int64_t to_ms;         /* inclusive; INT64_MAX when open */
    size_t  limit;         /* max rows, > 0 */
} dg_query_t;

/* Row callback: return 0 to continue, non-zero to stop early. */
typedef int (*dg_record_cb)(void *ud, const dg_record_t *rec);

typedef struct dg_store_ops {
    const char *scheme;    /* "sqlite", "null", ... */
    bool durable;          /* false for null: says so at start */
    /* uri is the full --store value. 0 or negative errno; err gets one
     * clear sentence on failure. */
    int  (*open)(const char *uri, const dg_store_config_t *cfg, dg_store_t **out,
                 char *err, size_t errlen);
    /* Store n records in one transaction. 0 when durable (records flagged
     * DG_REC_REJECTED_REUSED excepted, see above), <0 on failure (nothing of
     * the batch may be considered stored; the writer retries). */
    int  (*write_batch)(dg_store_t *s, dg_record_t *recs, size_t n,
                        char *err, size_t errlen);
    /* Upsert the `drones` registry rows (last state per drone). */
    int  (*update_drones)(dg_store_t *s, const dg_record_t *last, size_t n,
                          char *err, size_t errlen);
    /* History of one drone, oldest first, at most q->limit rows. */
    int  (*query)(dg_store_t *s, const dg_query_t *q, dg_record_cb cb, void *ud,
                  char *err, size_t errlen);
    /* The latest stored record of every drone (used at start to restore the
     * in-memory registry). */
    int  (*latest)(dg_store_t *s, dg_record_cb cb, void *ud, char *err, size_t errlen);
    /* The same for one drone (cb at most once): the REST state of a drone
     * the registry no longer holds in memory. May be NULL (404 then). */
    int  (*latest_of)(dg_store_t *s, const char *drone_id, dg_record_cb cb, void *ud,
                      char *err, size_t errlen);
    /* Insert or update one row of the `commands` table (may be NULL for
     * stores without commands). Writer thread only. */
    int  (*put_command)(dg_store_t *s, const struct dg_command *c, char *err, size_t errlen);
    /* Read one command row back (commands older than the process). 0 and
     * *out filled, 1 when there is no such row, <0 on error. May be NULL
     * (store without a commands table: null:). Any thread. */
    int  (*get_command)(dg_store_t *s, const char *id, struct dg_command *out, char *err, size_t errlen);
    /* The commands created at or after since_ms that are not final
     * (pending, sent, accepted), oldest first, to cb (commands of an earlier
     * run, taken back at start). 0, or <0 with err. May be NULL. */
    int  (*open_commands)(dg_store_t *s, int64_t since_ms,
                          int (*cb)(void *ud, const struct dg_command *c), void *ud,
                          char *err, size_t errlen);
    /* The highest seq stored for drone_id (compared as uint64), for the
     * session message a drone gets first: 0 and *seq, 1 when the drone has
     * no stored seq, <0 with err. */
    int (*last_seq)(dg_store_t *s, const char *drone_id, uint64_t *seq, char *err, size_t errlen); /* 0 found, 1 none, <0 error; any thread */
    /* 0 when the store is reachable. */
    int  (*ping)(dg_store_t *s);
    void (*close)(dg_store_t *s);
} dg_store_ops_t;

/* The --store default (contract). */
#define DG_STORE_DEFAULT_URI "sqlite:./data/dronegate.db"

/* Backends: write a one-sentence error into err (may be NULL); a truncated
 * message is still useful. */
void dg__store_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Backends' get_command: fill *out from the text columns of a commands row
 * (id, drone_id, name, args, status, message; NULL = SQL NULL, n[i] bytes
 * each) and its times. Empty args read as {}, an unknown status as pending. */
void dg__command_from_row(struct dg_command *out, const char *const col[6], const size_t n[6],
                          int64_t created_ms, int64_t updated_ms);

/* Pick the backend for a URI by its scheme ("sqlite:", "null:", ...; the
 * scheme is matched case-insensitively). NULL when unknown. */
const dg_store_ops_t *dg_store_lookup(const char *uri);

/* dg_store_lookup() + open() in one call. On success *ops and *out are set
 * (close with (*ops)->close(*out)). An unknown scheme gives -EINVAL and an
 * err sentence listing the known schemes. cfg may be NULL (defaults). */
int dg_store_open(const char *uri, const dg_store_config_t *cfg,
                  const dg_store_ops_t **ops, dg_store_t **out, char *err, size_t errlen);

/* postgresql:// store URI without dronegate's own options, for libpq
 * (*conninfo malloc'ed). 0, or <0 with err. */
int dg_pg_conninfo(const char *uri, char **conninfo, char *err, size_t errlen);

extern const dg_store_ops_t dg_store_sqlite_ops;
extern const dg_store_ops_t dg_store_null_ops;
extern const dg_store_ops_t dg_store_postgresql_ops, dg_store_influxdb_ops;

#endif
