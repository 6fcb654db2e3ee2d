/* postgres.c - the PostgreSQL backend: `--store postgresql://...` (or
 * postgres://...), libpq URI syntax passed through to PQconnectdb() after
 * dronegate's own query parameters are taken out.
 *
 * Connections and threads
 * -----------------------
 *
 *   +--------------------+     writer thread only: write_batch(),
 *   | writer connection 1| <-- update_drones(), put_command(), partition
 *   |  temp dg_stage,    |     maintenance. Session-local temp tables and
 *   |  dg_drone_stage    |     prepared statements, re-created after every
 *   +--------------------+     reconnect.
 *   +--------------------+
 *   | writer conns 2..N  | <-- one helper thread each (writers=N, default
 *   |  temp dg_stage     |     2): a batch of >= 2 * PART_MIN_ROWS rows is
 *   +--------------------+     split by drone; each part is COPYed and
 *                              committed on its own connection in parallel,
 *                              write_batch() returns when all committed. A
 *                              failed part fails the batch; the writer's
 *                              retry of the whole batch finds the committed
 *                              parts as redeliveries (staging path below).
 *   +--------------------+
 *   | reader pool        | <-- any worker thread: query(), latest(), ping().
 *   |  readers=N (4)     |     Taken under rd_mu, used without a lock, given
 *   +--------------------+     back (same rules as sqlite.c's pool).
 *
 * Reconnection: a connection found CONNECTION_BAD is PQreset() before its
 * next use (readers: at most once a second, so a worker thread never spins on
 * a dead server; a reader whose statement failed because the connection was
 * gone is reset and the statement retried once). Every failure is returned
 * as a negative errno with a sentence; nothing here exits or asserts on a
 * server problem. The writer thread retries write_batch() with backoff and
 * acks only after COMMIT, so a server restart loses nothing acked.
 *
 * Write path (measured: docs/store-postgres.md)
 * ---------------------------------------------
 *
 *   batch --> BEGIN; COPY telemetry_seq (drone_id, seq, timestamp) of the
 *             rows with a seq; COPY telemetry (every row); COMMIT   "fast"
 *               | unique violation (23505): a (drone_id, seq) seen before
 *               v (a redelivery, or a reused seq), nothing written
 *             BEGIN; COPY dg_stage (temp table); INSERT INTO telemetry_seq
 *             ... ON CONFLICT DO NOTHING; INSERT INTO telemetry SELECT the
 *             rows that match telemetry_seq ... ON CONFLICT DO NOTHING;
 *             SELECT the reused rows; COMMIT                      "staging"
 *
 * The fast path is two binary COPYs; a batch holding a seq seen before fails
 * it with a unique violation (nothing is written), and the batch is written
 * again through the staging table. Redeliveries and reused seqs are rare
 * (after a reconnect, after a drone reboot), so almost every batch takes the
 * fast path. `write=staging` sends every batch through the staging path.
 *
 * Dedup and reused seqs on (drone_id, seq) across partitions
 * ----------------------------------------------------------
 * A partitioned table can only enforce unique keys that contain the
 * partition key, so telemetry's unique index is (drone_id, "timestamp",
 * seq): it would let a reused seq (same (drone_id, seq), another timestamp)
 * in. So every (drone_id, seq) also goes into `telemetry_seq`
 * (unpartitioned, primary key (drone_id, seq), with the stored row's
 * timestamp): it is the exact check. In the staging path a row is stored
 * only when its timestamp is the one telemetry_seq holds (the first
 * delivery; within a batch, the first row of that seq), and the rows with a
 * drone timestamp that differs from it are reused seqs: flagged
 * DG_REC_REJECTED_REUSED (store.h), not stored, not acked. A row without a
 * drone timestamp whose (drone_id, seq) is there is a redelivery (its
 * receive time differs between deliveries). Rows without seq are never
 * deduplicated (as in SQLite). The same unique index serves per-drone
 * time-range queries, so there is exactly one index on telemetry.
 * Cost: one more unique-index insert per row on the fast path (measured in
 * docs/stores-notes.md). `dedup=strict|ts` is accepted for compatibility
 * and changes nothing (every row is checked exactly now).
 *
 * Schema (dronegate_schema holds the applied versions; each migration runs
 * in one transaction under an advisory lock, written idempotently)
 * -------------------------------------------------------------------------
 *
 *   telemetry   drone_id text | timestamp timestamptz | seq bigint (uint64
 *               bit pattern, as sqlite.c) | latitude, longitude, altitude
 *               float8 NOT NULL | speed, heading, climb, battery float8 |
 *               status text | received_at timestamptz
 *     partitioned by range of timestamp (default: 1 day, UTC), or a
 *     TimescaleDB hypertable when the extension is available
 *     telemetry_drone_time_seq  UNIQUE (drone_id, timestamp, seq NULLS FIRST)
 *     telemetry_default         DEFAULT partition: rows outside every
 *                               premade partition (clock far off, backfill)
 *   telemetry_seq  drone_id, seq PRIMARY KEY, timestamp (see dedup above;
 *               version 2 filled it from telemetry: it had only the rows
 *               without a drone timestamp before)
 *   drones      drone_id PRIMARY KEY | first_seen, last_seen timestamptz |
 *               last position and state | last_seq | version 3: timestamp
 *               (the drone's, of that state), instance (the gateway that
 *               wrote it), fleet_txid xid8 (its transaction; indexed)
 *   commands    id PRIMARY KEY | drone_id, name, args (JSON text), status,
 *               message, created_at, updated_at timestamptz
 *
 * Doubles are float8 everywhere (not real): the REST history must return the
 * same numbers as SQLite. Timestamps are stored with ms precision.
 *
 * Partitions (native mode): at open and then every 10 minutes from within
 * write_batch() (the writer thread), partitions for the previous, current and
 * next `premake` intervals are created if missing (a new partition first
 * takes over the rows of its range that sit in telemetry_default); with
 * `retention` set, partitions entirely older than now - retention are
 * dropped, and old rows deleted from telemetry_default and telemetry_seq.
 * An idle gateway does no maintenance until its next write.
 *
 * Options (URI query parameters; each also as env DRONEGATE_PG_<NAME>; the
 * URI wins; every other parameter goes to libpq unchanged):
 *   partition=1d   partition / chunk interval (s m h d w units, >= 1h)
 *   premake=7      intervals created ahead of now
 *   retention=0    drop data older than this (0 = keep forever)
 *   compress_after=0  TimescaleDB only: compression policy age (0 = off)
 *   timescaledb=auto  auto | on | off: use TimescaleDB when available
 *   write=auto     auto (optimistic COPY) | staging (always staging table)
 *   dedup=ts       ts | strict: no effect any more (see above)
 *   readers=4      reader connections
 *   writers=2      writer connections (parallel COPY of big batches)
 *   query_timeout=30s  statement_timeout of reader connections
 * Added unless given: application_name=dronegate, connect_timeout=5.
 *
 * Durability: COMMIT waits for the WAL flush as configured on the server
 * (synchronous_commit, default on). With --fsync the writer sets
 * synchronous_commit = on for its session in case the server default is off.
 *
 * Known limits: TimescaleDB is not packaged in Debian 12, so its code path
 * is untested here; partition maintenance needs writes to happen.
 */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <postgresql/libpq-fe.h>   /* Debian: libpq-dev; no -I needed */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../core/buf.h"
#include "../core/commands.h"
#include "../core/hash.h"
#include "../core/strutil.h"
#include "../core/log.h"
#include "../core/timefmt.h"

#define RD_MAX          16
#define WR_MAX          8
#define PART_MIN_ROWS   4096    /* a batch is split only into parts at least this big (measured: docs/benchmarks-stores.md) */
#define SCHEMA_VERSION  3
#define MAINT_EVERY_MS  (10 * 60 * 1000)
#define RD_RETRY_MS     1000
#define ADVISORY_KEY    "7215043861962917000"   /* pg_advisory_xact_lock key: "dronegate" */

/* PostgreSQL epoch (2000-01-01) in Unix ms; binary timestamps are int64 us. */
#define PG_EPOCH_MS     INT64_C(946684800000)
#define PG_TS_NOBEGIN   INT64_MIN               /* -infinity */
#define PG_TS_NOEND     INT64_MAX               /* infinity */
#define PG_TS_MIN_US    INT64_C(-211813488000000000)   /* 4714-11-24 BC */
#define PG_TS_MAX_US    INT64_C(9223371331200000000)   /* 294277-01-01 */

/* type OIDs (pg_type.h, stable) */
#define OID_INT8        20
#define OID_TEXT        25
#define OID_TIMESTAMPTZ 1184

enum kind { KIND_NATIVE, KIND_TIMESCALE, KIND_PLAIN };

typedef struct pg_opts {
    int64_t partition_ms;
    int     premake;
    int64_t retention_ms;       /* 0 = keep */
    int64_t compress_after_ms;  /* 0 = off (TimescaleDB only) */
    int     timescale;          /* -1 auto, 0 off, 1 on */
    int     staging_only;       /* write=staging */
    int     strict;             /* dedup=strict */
    int     readers;
    int     writers;
    int64_t query_timeout_ms;
} pg_opts_t;

typedef struct rd_conn {
    PGconn  *c;
    int      ready;             /* session set up, statements prepared */
    int      busy;              /* under rd_mu */
    int64_t  next_try_ms;       /* no reconnect attempt before (mono) */
} rd_conn_t;

/* One writer connection. wc[0] is used by the writer thread itself; each
 * other one by its own helper thread, which waits for a part of a batch. */
typedef struct w_conn {
    PGconn         *c;
    int             ready;      /* session set up, statements prepared */
    dg_buf_t        enc;        /* COPY data */
    int             idx;
    struct dg_store *s;
    /* helper threads only: one job at a time, under mu */
    pthread_t       th;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int             state;      /* W_IDLE, W_JOB, W_DONE, W_QUIT */
    dg_record_t    *recs;
    size_t          n;
    int             nparts;
    int             rc;
    char            err[512];
} w_conn_t;

enum { W_IDLE, W_JOB, W_DONE, W_QUIT };

typedef struct part {           /* one partition: [lo, hi) in ms, its name */
    int64_t lo, hi;
    char    name[72];
} part_t;

struct dg_store {
    char           *conninfo;   /* URI for libpq */
    char            where[160]; /* "PostgreSQL at host:port/db" for messages */
    pg_opts_t       o;
    bool            fsync;
    enum kind       kind;
    /* writer connections: wc[0] belongs to the writer thread (and does
     * everything but telemetry parts too); wc[1..] to their helper threads */
    w_conn_t        wc[WR_MAX];
    int             nhelpers;   /* helper threads started */
    uint8_t        *sel;        /* per row of the current batch: its part */
    size_t          sel_cap;
    int64_t         next_maint_ms;  /* mono */
    part_t         *parts;
    size_t          nparts, parts_cap;
    /* readers */
    pthread_mutex_t rd_mu;
    pthread_cond_t  rd_cv;
    rd_conn_t       rd[RD_MAX];
};

/* ---- helpers ------------------------------------------------------------ */

#define set_err dg__store_err   /* store.h */

/* libpq messages end with a newline (and may span lines): first line only. */
static const char *one_line(const char *msg, char *buf, size_t cap)
{
    if (!msg || !*msg) return "no error message";
    size_t n = strcspn(msg, "\n");
    if (n >= cap) n = cap - 1;
    memcpy(buf, msg, n);
    buf[n] = '\0';
    return buf;
}

/* Error text of a failed result (or of the connection when res is NULL). */
static const char *pg_msg(PGconn *c, const PGresult *res, char *buf, size_t cap)
{
    const char *m = res ? PQresultErrorMessage(res) : NULL;
    if (!m || !*m) m = c ? PQerrorMessage(c) : NULL;
    return one_line(m, buf, cap);
}

static bool sqlstate_is(const PGresult *res, const char *state)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s && strcmp(s, state) == 0;
}

/* Negative errno for a failure on connection c. */
static int pg_errno(PGconn *c, const PGresult *res)
{
    if (!c || PQstatus(c) == CONNECTION_BAD) return -ENOTCONN;
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!s) return -EIO;
    if (!strncmp(s, "08", 2) || !strncmp(s, "57P", 3)) return -ENOTCONN; /* connection, shutdown */
    if (!strncmp(s, "53", 2)) return -ENOSPC;     /* insufficient resources */
    if (!strncmp(s, "28", 2) || !strcmp(s, "42501")) return -EACCES;
    if (!strcmp(s, "57014")) return -ETIMEDOUT;   /* statement timeout */
    if (!strncmp(s, "40", 2) || !strcmp(s, "55P03")) return -EAGAIN; /* serialization, lock */
    return -EIO;
}

/* Run sql (no parameters, any number of statements); 0 or -errno with err. */
static int exec_ok(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) { PQclear(r); return 0; }
    char m[256];
    int e = pg_errno(c, r);
    pg_msg(c, r, m, sizeof m);
    if (what) set_err(err, errlen, "%s: %s", what, m);
    else set_err(err, errlen, "%s", m);
    PQclear(r);
    return e;
}

/* Roll back whatever transaction a failure left open (best effort). */
static void abort_txn(PGconn *c)
{
    if (c && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
        PGresult *r = PQexec(c, "ROLLBACK");
        PQclear(r);
    }
}

/* big-endian writers for the binary COPY format */
static inline char *put16(char *p, uint16_t v) { p[0] = (char)(v >> 8); p[1] = (char)v; return p + 2; }
static inline char *put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24); p[1] = (char)(v >> 16); p[2] = (char)(v >> 8); p[3] = (char)v;
    return p + 4;
}
static inline char *put64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) { p[i] = (char)v; v >>= 8; }
    return p + 8;
}
static inline uint64_t get64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | (unsigned char)p[i];
    return v;
}

/* Unix ms -> PostgreSQL binary timestamptz (us since 2000), clamped. */
static int64_t ms_to_pg(int64_t ms)
{
    if (ms == INT64_MIN) return PG_TS_NOBEGIN;
    if (ms == INT64_MAX) return PG_TS_NOEND;
    if (ms < PG_TS_MIN_US / 1000 + PG_EPOCH_MS) return PG_TS_NOBEGIN;
    if (ms > PG_TS_MAX_US / 1000 + PG_EPOCH_MS - 1) return PG_TS_NOEND;
    return (ms - PG_EPOCH_MS) * 1000;
}

/* PostgreSQL binary timestamptz -> Unix ms (floor), saturating. */
static int64_t pg_to_ms(int64_t us)
{
    if (us == PG_TS_NOBEGIN) return INT64_MIN;
    if (us == PG_TS_NOEND) return INT64_MAX;
    int64_t q = us / 1000;
    if (us % 1000 < 0) q--;
    return q + PG_EPOCH_MS;
}

/* ---- options ------------------------------------------------------------ */

/* "<n><unit>" with unit s m h d w (or ms); "0" alone is 0. */
static int parse_interval(const char *s, size_t n, int64_t *out)
{
    return dg_parse_duration_ms(s, n, 0, out);
}

static int parse_int(const char *s, size_t n, int lo, int hi, int *out)
{
    long v = 0;
    if (n == 0 || n > 9) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int pick(const char *s, size_t n, const char *const *names, int *out)
{
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == n && !strncmp(s, names[i], n)) { *out = i; return 0; }
    return -1;
}

/* One dronegate option. 1 when it is ours (applied or err set: then -1),
 * 0 when unknown (for libpq). */
static int apply_opt(pg_opts_t *o, const char *k, size_t kl, const char *v, size_t vl,
                     const char *src, char *err, size_t errlen)
{
#define KEY(name) (kl == sizeof(name) - 1 && !strncmp(k, name, kl))
    static const char *const autoonoff[] = { "auto", "on", "off", NULL };
    static const char *const writes[] = { "auto", "staging", NULL };
    static const char *const dedups[] = { "ts", "strict", NULL };
    int i;
    if (KEY("partition")) {
        if (parse_interval(v, vl, &o->partition_ms) || o->partition_ms < 3600000) goto bad;
    } else if (KEY("premake")) {
        if (parse_int(v, vl, 0, 1000, &o->premake)) goto bad;
    } else if (KEY("retention")) {
        if (parse_interval(v, vl, &o->retention_ms)) goto bad;
    } else if (KEY("compress_after")) {
        if (parse_interval(v, vl, &o->compress_after_ms)) goto bad;
    } else if (KEY("timescaledb")) {
        if (pick(v, vl, autoonoff, &i)) goto bad;
        o->timescale = i == 0 ? -1 : i == 1 ? 1 : 0;
    } else if (KEY("write")) {
        if (pick(v, vl, writes, &i)) goto bad;
        o->staging_only = i;
    } else if (KEY("dedup")) {
        if (pick(v, vl, dedups, &i)) goto bad;
        o->strict = i;
    } else if (KEY("readers")) {
        if (parse_int(v, vl, 1, RD_MAX, &o->readers)) goto bad;
    } else if (KEY("writers")) {
        if (parse_int(v, vl, 1, WR_MAX, &o->writers)) goto bad;
    } else if (KEY("query_timeout")) {
        if (parse_interval(v, vl, &o->query_timeout_ms)) goto bad;
    } else {
        return 0;
    }
    return 1;
bad:
    set_err(err, errlen, "PostgreSQL store option %s%.*s=%.*s is not valid (partition: "
            "an interval >= 1h like 1d or 6h; premake: 0-1000; retention, compress_after, "
            "query_timeout: an interval like 30d or 0; timescaledb: auto|on|off; write: "
            "auto|staging; dedup: ts|strict; readers: 1-%d; writers: 1-%d)",
            src, (int)kl, k, (int)vl, v, RD_MAX, WR_MAX);
    return -1;
#undef KEY
}

static const char *const env_opts[] = {
    "partition", "premake", "retention", "compress_after", "timescaledb", "write",
    "dedup", "readers", "writers", "query_timeout", NULL,
};

/* Split uri into our options and the libpq URI (*conninfo, malloc'ed). */
static int parse_uri(const char *uri, pg_opts_t *o, char **conninfo, char *err, size_t errlen)
{
    *o = (pg_opts_t){ .partition_ms = 86400000, .premake = 7, .timescale = -1,
                      .readers = 4, .writers = 2, .query_timeout_ms = 30000 };
    /* environment first, the URI overrides */
    for (int i = 0; env_opts[i]; i++) {
        char name[64], up[32];
        size_t n = strlen(env_opts[i]);
        for (size_t j = 0; j <= n; j++)
            up[j] = (char)(env_opts[i][j] >= 'a' && env_opts[i][j] <= 'z' ? env_opts[i][j] - 32 : env_opts[i][j]);
        snprintf(name, sizeof name, "DRONEGATE_PG_%s", up);
        const char *v = getenv(name);
        if (v && apply_opt(o, env_opts[i], n, v, strlen(v), "(env) ", err, errlen) < 0) return -EINVAL;
    }
    dg_buf_t b = { 0 };
    const char *q = strchr(uri, '?');
    size_t baselen = q ? (size_t)(q - uri) : strlen(uri);
    int have_app = 0, have_ct = 0, nkept = 0, rc = 0;
    if (dg_buf_append(&b, uri, baselen)) goto nomem;
    if (q) {
        const char *p = q + 1;
        while (*p) {
            size_t len = strcspn(p, "&");
            const char *eq = memchr(p, '=', len);
            size_t kl = eq ? (size_t)(eq - p) : len;
            const char *v = eq ? eq + 1 : p + len;
            size_t vl = eq ? len - kl - 1 : 0;
            int r = len ? apply_opt(o, p, kl, v, vl, "", err, errlen) : 1;
            if (r < 0) { rc = -EINVAL; goto out; }
            if (r == 0) {
                if (kl == 16 && !strncmp(p, "application_name", 16)) have_app = 1;
                if (kl == 15 && !strncmp(p, "connect_timeout", 15)) have_ct = 1;
                if (dg_buf_append(&b, nkept++ ? "&" : "?", 1) || dg_buf_append(&b, p, len)) goto nomem;
            }
            p += len;
            if (*p == '&') p++;
        }
    }
    if (!have_app && !getenv("PGAPPNAME")) {
        if (dg_buf_puts(&b, nkept++ ? "&" : "?") || dg_buf_puts(&b, "application_name=dronegate")) goto nomem;
    }
    if (!have_ct && !getenv("PGCONNECT_TIMEOUT")) {
        if (dg_buf_puts(&b, nkept++ ? "&" : "?") || dg_buf_puts(&b, "connect_timeout=5")) goto nomem;
    }
    if (dg_buf_append(&b, "", 1)) goto nomem;
    *conninfo = b.data;
    return 0;
nomem:
    set_err(err, errlen, "out of memory parsing the PostgreSQL store URI");
    rc = -ENOMEM;
out:
    dg_buf_free(&b);
    return rc;
}

/* ---- SQL ---------------------------------------------------------------- */

#define TEL_COLS "drone_id, \"timestamp\", seq, latitude, longitude, altitude," \
                 " speed, heading, climb, battery, status, received_at"
#define TEL_NCOLS 12

#define TEL_DDL(extra) \
    "CREATE TABLE IF NOT EXISTS telemetry (" \
    "  drone_id    text             NOT NULL," \
    "  \"timestamp\" timestamptz    NOT NULL," \
    "  seq         bigint," \
    "  latitude    double precision NOT NULL," \
    "  longitude   double precision NOT NULL," \
    "  altitude    double precision NOT NULL," \
    "  speed       double precision," \
    "  heading     double precision," \
    "  climb       double precision," \
    "  battery     double precision," \
    "  status      text," \
    "  received_at timestamptz      NOT NULL)" extra ";"

#define TEL_INDEX \
    "CREATE UNIQUE INDEX IF NOT EXISTS telemetry_drone_time_seq" \
    "  ON telemetry (drone_id, \"timestamp\", seq NULLS FIRST);"

/* Tables every kind has (version 1). */
static const char sql_common_v1[] =
    "CREATE TABLE IF NOT EXISTS telemetry_seq ("
    "  drone_id    text        NOT NULL,"
    "  seq         bigint      NOT NULL,"
    "  \"timestamp\" timestamptz NOT NULL,"
    "  PRIMARY KEY (drone_id, seq));"
    "CREATE TABLE IF NOT EXISTS drones ("
    "  drone_id   text PRIMARY KEY,"
    "  first_seen timestamptz,"
    "  last_seen  timestamptz,"
    "  latitude   double precision,"
    "  longitude  double precision,"
    "  altitude   double precision,"
    "  speed      double precision,"
    "  heading    double precision,"
    "  climb      double precision,"
    "  battery    double precision,"
    "  status     text,"
    "  last_seq   bigint);"
    "CREATE TABLE IF NOT EXISTS commands ("
    "  id         text PRIMARY KEY,"
    "  drone_id   text        NOT NULL,"
    "  name       text        NOT NULL,"
    "  args       text,"
    "  status     text        NOT NULL,"
    "  message    text,"
    "  created_at timestamptz NOT NULL,"
    "  updated_at timestamptz NOT NULL);"
    "CREATE INDEX IF NOT EXISTS commands_drone_created ON commands (drone_id, created_at);";

static const char sql_native_v1[] =
    TEL_DDL(" PARTITION BY RANGE (\"timestamp\")")
    TEL_INDEX
    "CREATE TABLE IF NOT EXISTS telemetry_default PARTITION OF telemetry DEFAULT;";

static const char sql_timescale_v1[] =
    "CREATE EXTENSION IF NOT EXISTS timescaledb;"
    TEL_DDL("")
    TEL_INDEX;

/* Staging tables of the writer session (dropped with the session). */
static const char sql_stage[] =
    "CREATE TEMP TABLE IF NOT EXISTS dg_stage ("
    "  drone_id text NOT NULL, \"timestamp\" timestamptz NOT NULL, seq bigint,"
    "  latitude float8 NOT NULL, longitude float8 NOT NULL, altitude float8 NOT NULL,"
    "  speed float8, heading float8, climb float8, battery float8, status text,"
    "  received_at timestamptz NOT NULL, drone_ts boolean NOT NULL, n int NOT NULL) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS dg_drone_stage ("
    "  n int NOT NULL, drone_id text NOT NULL, seen timestamptz NOT NULL,"
    "  latitude float8, longitude float8, altitude float8, speed float8, heading float8,"
    "  climb float8, battery float8, status text, last_seq bigint, ts timestamptz) ON COMMIT DELETE ROWS;";

/* Staging -> telemetry_seq -> telemetry (see "Reused seqs" above). First
 * the (drone_id, seq) of the batch not stored yet go into telemetry_seq with
 * the timestamp of their first row in the batch (DISTINCT ON ... n); then a
 * row is stored when it has no seq, or when its timestamp is the one in
 * telemetry_seq (the original; ON CONFLICT drops a redelivery), or when it is
 * a redelivery without a drone timestamp (dropped the same way: its
 * (drone_id, seq) already has a row). Then reused: the batch rows (n) with
 * a drone timestamp that differs from telemetry_seq's. */
static const char sql_stage_seq[] =
    "INSERT INTO telemetry_seq (drone_id, seq, \"timestamp\")"
    " SELECT DISTINCT ON (drone_id, seq) drone_id, seq, \"timestamp\" FROM dg_stage"
    " WHERE seq IS NOT NULL ORDER BY drone_id, seq, n"
    " ON CONFLICT DO NOTHING";

static const char sql_from_stage[] =
    "INSERT INTO telemetry (" TEL_COLS ")"
    " SELECT " TEL_COLS " FROM dg_stage s"
    " WHERE s.seq IS NULL OR EXISTS (SELECT 1 FROM telemetry_seq t"
    "  WHERE t.drone_id = s.drone_id AND t.seq = s.seq AND t.\"timestamp\" = s.\"timestamp\")"
    " ON CONFLICT DO NOTHING";

static const char sql_stage_reused[] =
    "SELECT s.n FROM dg_stage s JOIN telemetry_seq t ON t.drone_id = s.drone_id AND t.seq = s.seq"
    " WHERE s.drone_ts AND t.\"timestamp\" <> s.\"timestamp\"";

/* Version 2: every (drone_id, seq) goes into telemetry_seq (version 1 had
 * only the rows without a drone timestamp there): fill it from telemetry. */
static const char sql_v2[] =
    "INSERT INTO telemetry_seq (drone_id, seq, \"timestamp\")"
    " SELECT DISTINCT ON (drone_id, seq) drone_id, seq, \"timestamp\" FROM telemetry"
    " WHERE seq IS NOT NULL ORDER BY drone_id, seq, \"timestamp\""
    " ON CONFLICT DO NOTHING";

/* $1: this gateway's --instance. fleet_txid (xid8, version 3) lets the
 * other gateways of a fleet read what changed since their last look
 * exactly (fleet.c: rows of transactions at or after their snapshot's xmin). */
static const char sql_drones_upsert[] =
    "INSERT INTO drones (drone_id, first_seen, last_seen, latitude, longitude, altitude,"
    " speed, heading, climb, battery, status, last_seq, \"timestamp\", instance, fleet_txid)"
    " SELECT DISTINCT ON (drone_id) drone_id, seen, seen, latitude, longitude, altitude,"
    " speed, heading, climb, battery, status, last_seq, ts, $1, pg_current_xact_id() FROM dg_drone_stage"
    " ORDER BY drone_id, n DESC"
    " ON CONFLICT (drone_id) DO UPDATE SET"
    "  last_seen = excluded.last_seen, latitude = excluded.latitude,"
    "  longitude = excluded.longitude, altitude = excluded.altitude,"
    "  speed = excluded.speed, heading = excluded.heading, climb = excluded.climb,"
    "  battery = excluded.battery, status = excluded.status, last_seq = excluded.last_seq,"
    "  \"timestamp\" = excluded.\"timestamp\", instance = excluded.instance, fleet_txid = excluded.fleet_txid";

/* Version 3: the drones row says which gateway wrote it, the drone's own
 * timestamp of the state, and the writing transaction (fleet view). */
static const char sql_v3[] =
    "ALTER TABLE drones ADD COLUMN IF NOT EXISTS \"timestamp\" timestamptz,"
    " ADD COLUMN IF NOT EXISTS instance text, ADD COLUMN IF NOT EXISTS fleet_txid xid8;"
    "CREATE INDEX IF NOT EXISTS drones_fleet_txid ON drones (fleet_txid)";

static const char sql_put_command[] =
    "INSERT INTO commands (id, drone_id, name, args, status, message, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (id) DO UPDATE SET drone_id = excluded.drone_id, name = excluded.name,"
    "  args = excluded.args, status = excluded.status, message = excluded.message,"
    "  updated_at = excluded.updated_at";

static const char sql_get_command[] =
    "SELECT id, drone_id, name, args, status, message, created_at, updated_at FROM commands WHERE id = $1";

/* seq NULLS FIRST ascending / NULLS LAST descending: the order SQLite gives,
 * and the order of the unique index (no sort step). */
static const char sql_hist[] =
    "SELECT " TEL_COLS " FROM telemetry"
    " WHERE drone_id = $1 AND \"timestamp\" >= $2 AND \"timestamp\" <= $3"
    " ORDER BY \"timestamp\", seq NULLS FIRST LIMIT $4";

/* Loose index scan over drone ids, then the latest row of each by the
 * registry's rule (registry.h: what the drone sent last, never the newest
 * claimed timestamp), as sqlite.c: the highest seq in uint64 order (found in
 * telemetry_seq's primary key: two seeks, the negative ones are seqs >=
 * 2^63), its row by the unique (drone_id, timestamp, seq) index; a drone
 * without seqs gives its last received row (a scan of that drone's rows,
 * skipped by a one-time filter for drones with seqs). Reads telemetry, so
 * it is right after a kill -9. */
static const char sql_latest[] =
    "WITH RECURSIVE ids(id) AS ("
    "  SELECT min(drone_id) FROM telemetry"
    "  UNION ALL"
    "  SELECT (SELECT min(t.drone_id) FROM telemetry t WHERE t.drone_id > ids.id)"
    "  FROM ids WHERE ids.id IS NOT NULL)"
    " SELECT r.* FROM ids CROSS JOIN LATERAL ("
    "  (SELECT " TEL_COLS " FROM telemetry t WHERE t.drone_id = ids.id"
    "    AND (t.\"timestamp\", t.seq) = (SELECT s.\"timestamp\", s.seq FROM telemetry_seq s"
    "      WHERE s.drone_id = ids.id AND s.seq = COALESCE("
    "        (SELECT max(seq) FROM telemetry_seq WHERE drone_id = ids.id AND seq < 0),"
    "        (SELECT max(seq) FROM telemetry_seq WHERE drone_id = ids.id AND seq >= 0))))"
    "  UNION ALL"
    "  (SELECT " TEL_COLS " FROM telemetry t WHERE t.drone_id = ids.id"
    "    AND NOT EXISTS (SELECT 1 FROM telemetry_seq s WHERE s.drone_id = ids.id)"
    "    ORDER BY received_at DESC LIMIT 1)"
    "  LIMIT 1) r"
    " WHERE ids.id IS NOT NULL";

/* sql_latest's rule for one drone ($1). */
static const char sql_latest_of[] =
    "(SELECT " TEL_COLS " FROM telemetry t WHERE t.drone_id = $1"
    "  AND (t.\"timestamp\", t.seq) = (SELECT s.\"timestamp\", s.seq FROM telemetry_seq s"
    "    WHERE s.drone_id = $1 AND s.seq = COALESCE("
    "      (SELECT max(seq) FROM telemetry_seq WHERE drone_id = $1 AND seq < 0),"
    "      (SELECT max(seq) FROM telemetry_seq WHERE drone_id = $1 AND seq >= 0))))"
    " UNION ALL"
    " (SELECT " TEL_COLS " FROM telemetry t WHERE t.drone_id = $1"
    "  AND NOT EXISTS (SELECT 1 FROM telemetry_seq s WHERE s.drone_id = $1)"
    "  ORDER BY received_at DESC LIMIT 1)"
    " LIMIT 1";

/* The highest seq of one drone as uint64 (seqs >= 2^63 are stored
 * negative: the largest negative one wins when there is any); two seeks on
 * telemetry_seq's primary key, which holds every (drone_id, seq). */
static const char sql_last_seq[] =
    "SELECT (SELECT max(seq) FROM telemetry_seq WHERE drone_id = $1 AND seq < 0),"
    "       (SELECT max(seq) FROM telemetry_seq WHERE drone_id = $1 AND seq >= 0)";

/* Partitions of telemetry and their bounds, in Unix ms (TimeZone is UTC in
 * every session, so pg_get_expr prints bounds that cast back exactly). */
static const char sql_parts[] =
    "SELECT (extract(epoch FROM lo) * 1000)::int8, (extract(epoch FROM hi) * 1000)::int8, name"
    " FROM (SELECT m[1]::timestamptz AS lo, m[2]::timestamptz AS hi, name FROM ("
    "  SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),"
    "   'FROM \\(''([^'']*)''\\) TO \\(''([^'']*)''\\)') AS m, c.oid::regclass::text AS name"
    "  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    "  WHERE i.inhparent = 'telemetry'::regclass) x WHERE m IS NOT NULL) y ORDER BY 1";

/* ---- connections -------------------------------------------------------- */

/* Settings every session gets. */
static int session_setup(PGconn *c, const char *extra, char *err, size_t errlen)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO'; %s", extra ? extra : "");
    return exec_ok(c, sql, "session setup", err, errlen);
}

/* NOTICEs ("relation ... already exists, skipping") are not for the log. */
static void on_notice(void *ud, const char *msg)
{
    (void)ud;
    char m[256];
    dg_debug("postgres: %s", one_line(msg, m, sizeof m));
}

/* Connect (or reset) *cp. 0, or -errno with err. Does not set anything up. */
static int pg_connect(dg_store_t *s, PGconn **cp, char *err, size_t errlen)
{
    if (*cp && PQstatus(*cp) == CONNECTION_OK) return 0;
    if (*cp) PQreset(*cp);
    else if ((*cp = PQconnectdb(s->conninfo)) != NULL) PQsetNoticeProcessor(*cp, on_notice, NULL);
    if (!*cp) {
        set_err(err, errlen, "cannot connect to %s: out of memory", s->where);
        return -ENOMEM;
    }
    if (PQstatus(*cp) == CONNECTION_OK) return 0;
    char m[256];
    set_err(err, errlen, "cannot connect to %s: %s", s->where, pg_msg(*cp, NULL, m, sizeof m));
    return -ECONNREFUSED;
}

static void describe(dg_store_t *s, PGconn *c)
{
    const char *h = PQhost(c), *p = PQport(c), *d = PQdb(c);
    snprintf(s->where, sizeof s->where, "PostgreSQL at %s%s%s/%s",
             h && *h ? h : "localhost", p && *p ? ":" : "", p && *p ? p : "", d ? d : "?");
}

static int prepare(PGconn *c, const char *name, const char *sql, int n, const Oid *types,
                   char *err, size_t errlen)
{
    PGresult *r = PQprepare(c, name, sql, n, types);
    int e = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char m[256];
        e = pg_errno(c, r);
        set_err(err, errlen, "cannot prepare %s: %s", name, pg_msg(c, r, m, sizeof m));
    }
    PQclear(r);
    return e;
}

/* ---- reader pool -------------------------------------------------------- */

static int rd_setup(dg_store_t *s, rd_conn_t *rc, char *err, size_t errlen)
{
    static const Oid hist_types[4] = { OID_TEXT, OID_TIMESTAMPTZ, OID_TIMESTAMPTZ, OID_INT8 };
    char extra[96];
    snprintf(extra, sizeof extra, "SET statement_timeout = %" PRId64 ";", s->o.query_timeout_ms);
    int e = session_setup(rc->c, extra, err, errlen);
    if (!e) e = prepare(rc->c, "hist", sql_hist, 4, hist_types, err, errlen);
    if (!e) e = prepare(rc->c, "latest", sql_latest, 0, NULL, err, errlen);
    if (!e) e = prepare(rc->c, "latest_of", sql_latest_of, 1, NULL, err, errlen);
    if (!e) e = prepare(rc->c, "last_seq", sql_last_seq, 1, hist_types, err, errlen);
    if (!e) rc->ready = 1;
    return e;
}

/* Connected and set up, or -errno (rate-limited reconnects). */
static int rd_ensure(dg_store_t *s, rd_conn_t *rc, int force, char *err, size_t errlen)
{
    if (rc->c && PQstatus(rc->c) == CONNECTION_OK && rc->ready) return 0;
    int64_t now = dg_mono_ms();
    if (!force && rc->c && now < rc->next_try_ms) {
        set_err(err, errlen, "%s is unreachable (reconnecting)", s->where);
        return -ENOTCONN;
    }
    rc->ready = 0;
    int e = pg_connect(s, &rc->c, err, errlen);
    if (!e) e = rd_setup(s, rc, err, errlen);
    if (e) rc->next_try_ms = now + RD_RETRY_MS;
    return e;
}

static rd_conn_t *rd_acquire(dg_store_t *s)
{
    rd_conn_t *c = NULL;
    pthread_mutex_lock(&s->rd_mu);
    for (;;) {
        rd_conn_t *closed = NULL;
        for (int i = 0; i < s->o.readers; i++) {
            if (s->rd[i].busy) continue;
            if (s->rd[i].c) { c = &s->rd[i]; break; }
            if (!closed) closed = &s->rd[i];
        }
        if (!c) c = closed;
        if (c) break;
        pthread_cond_wait(&s->rd_cv, &s->rd_mu);
    }
    c->busy = 1;
    pthread_mutex_unlock(&s->rd_mu);
    return c;
}

static void rd_release(dg_store_t *s, rd_conn_t *c)
{
    pthread_mutex_lock(&s->rd_mu);
    c->busy = 0;
    pthread_cond_signal(&s->rd_cv);
    pthread_mutex_unlock(&s->rd_mu);
}

/* Run a prepared read on a pooled connection; retried once on a fresh
 * connection when the old one turned out to be dead (server restarted). */
static PGresult *rd_exec(dg_store_t *s, rd_conn_t *rc, const char *stmt, int n,
                         const char *const *vals, const int *lens, const int *fmts,
                         int *e, char *err, size_t errlen)
{
    for (int attempt = 0; ; attempt++) {
        *e = rd_ensure(s, rc, attempt > 0, err, errlen);
        if (*e) return NULL;
        PGresult *r = PQexecPrepared(rc->c, stmt, n, vals, lens, fmts, 1);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) return r;
        char m[256];
        *e = pg_errno(rc->c, r);
        set_err(err, errlen, "%s: %s failed: %s", s->where, stmt, pg_msg(rc->c, r, m, sizeof m));
        /* 26000: the prepared statement vanished (a pooler's DISCARD ALL): set up again */
        int gone = sqlstate_is(r, "26000");
        PQclear(r);
        if (PQstatus(rc->c) != CONNECTION_BAD) {
            abort_txn(rc->c);
            if (!gone || attempt > 0) return NULL;
        }
        rc->ready = 0;
        if (attempt > 0) return NULL;
    }
}

/* ---- binary rows -> records --------------------------------------------- */

static int col_f8(const PGresult *r, int row, int col, double *v)
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8) return 0;
    uint64_t u = get64(PQgetvalue(r, row, col));
    memcpy(v, &u, 8);
    return 1;
}

static int col_i8(const PGresult *r, int row, int col, int64_t *v)
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8) return 0;
    *v = (int64_t)get64(PQgetvalue(r, row, col));
    return 1;
}

static void row_to_record(const PGresult *r, int row, dg_record_t *rec)
{
    dg_record_init(rec);
    int n = PQgetlength(r, row, 0);
    if (n > DG_DRONE_ID_MAX) n = DG_DRONE_ID_MAX;
    memcpy(rec->drone_id, PQgetvalue(r, row, 0), (size_t)n);
    rec->drone_id[n] = '\0';
    rec->drone_id_len = (uint8_t)n;
    int64_t v;
    if (col_i8(r, row, 1, &v)) rec->ts_ms = pg_to_ms(v);
    rec->flags |= DG_REC_HAS_TS;
    if (col_i8(r, row, 2, &v)) { rec->seq = (uint64_t)v; rec->flags |= DG_REC_HAS_SEQ; }
    col_f8(r, row, 3, &rec->lat);
    col_f8(r, row, 4, &rec->lon);
    col_f8(r, row, 5, &rec->alt);
    if (col_f8(r, row, 6, &rec->speed)) rec->flags |= DG_REC_HAS_SPEED;
    if (col_f8(r, row, 7, &rec->heading)) rec->flags |= DG_REC_HAS_HEADING;
    if (col_f8(r, row, 8, &rec->climb)) rec->flags |= DG_REC_HAS_CLIMB;
    if (col_f8(r, row, 9, &rec->battery)) rec->flags |= DG_REC_HAS_BATTERY;
    if (!PQgetisnull(r, row, 10)) {
        n = PQgetlength(r, row, 10);
        if (n > DG_STATUS_MAX) n = DG_STATUS_MAX;
        memcpy(rec->status, PQgetvalue(r, row, 10), (size_t)n);
        rec->status[n] = '\0';
        rec->status_len = (uint8_t)n;
        rec->flags |= DG_REC_HAS_STATUS;
    }
    if (col_i8(r, row, 11, &v)) {
        int64_t ms = pg_to_ms(v);
        rec->recv_us = ms > INT64_MAX / 1000 ? INT64_MAX : ms < INT64_MIN / 1000 ? INT64_MIN : ms * 1000;
    }
}

static int each_row(const PGresult *r, dg_record_cb cb, void *ud)
{
    dg_record_t rec;
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        row_to_record(r, i, &rec);
        if (cb(ud, &rec)) break;
    }
    return 0;
}

static int pg_query(dg_store_t *s, const dg_query_t *q, dg_record_cb cb, void *ud,
                    char *err, size_t errlen)
{
    if (!q || !q->drone_id || !cb || q->limit == 0) {
        set_err(err, errlen, "history query needs a drone id, a callback and a limit > 0");
        return -EINVAL;
    }
    char from[8], to[8], lim[8];
    put64(from, (uint64_t)ms_to_pg(q->from_ms));
    put64(to, (uint64_t)ms_to_pg(q->to_ms));
    put64(lim, q->limit > (size_t)INT64_MAX ? (uint64_t)INT64_MAX : (uint64_t)q->limit);
    const char *vals[4] = { q->drone_id, from, to, lim };
    int lens[4] = { (int)strnlen(q->drone_id, DG_DRONE_ID_MAX), 8, 8, 8 };
    int fmts[4] = { 1, 1, 1, 1 };
    int e;
    rd_conn_t *rc = rd_acquire(s);
    PGresult *r = rd_exec(s, rc, "hist", 4, vals, lens, fmts, &e, err, errlen);
    rd_release(s, rc);
    if (!r) return e ? e : -EIO;
    each_row(r, cb, ud);   /* rows are in r: the callback runs without a connection held */
    PQclear(r);
    return 0;
}

static int pg_latest(dg_store_t *s, dg_record_cb cb, void *ud, char *err, size_t errlen)
{
    int e;
    rd_conn_t *rc = rd_acquire(s);
    PGresult *r = rd_exec(s, rc, "latest", 0, NULL, NULL, NULL, &e, err, errlen);
    rd_release(s, rc);
    if (!r) return e ? e : -EIO;
    each_row(r, cb, ud);
    PQclear(r);
    return 0;
}

static int pg_latest_of(dg_store_t *s, const char *drone_id, dg_record_cb cb, void *ud, char *err, size_t errlen)
{
    const char *vals[1] = { drone_id };
    int lens[1] = { (int)strnlen(drone_id, DG_DRONE_ID_MAX) }, fmts[1] = { 1 };
    int e;
    rd_conn_t *rc = rd_acquire(s);
    PGresult *r = rd_exec(s, rc, "latest_of", 1, vals, lens, fmts, &e, err, errlen);
    rd_release(s, rc);
    if (!r) return e ? e : -EIO;
    each_row(r, cb, ud);
    PQclear(r);
    return 0;
}

static int pg_last_seq(dg_store_t *s, const char *drone_id, uint64_t *seq, char *err, size_t errlen)
{
    const char *vals[1] = { drone_id };
    int lens[1] = { (int)strnlen(drone_id, DG_DRONE_ID_MAX) }, fmts[1] = { 1 };
    int e;
    rd_conn_t *rc = rd_acquire(s);
    PGresult *r = rd_exec(s, rc, "last_seq", 1, vals, lens, fmts, &e, err, errlen);
    rd_release(s, rc);
    if (!r) return e ? e : -EIO;
    int64_t v;
    e = 1;
    if (PQntuples(r) == 1 && (col_i8(r, 0, 0, &v) || col_i8(r, 0, 1, &v))) {
        *seq = (uint64_t)v;
        e = 0;
    }
    PQclear(r);
    return e;
}

/* Row `row` of a commands SELECT (sql_get_command's columns, binary). */
static void cmd_row(const PGresult *r, int row, dg_command_t *out)
{
    const char *col[6];
    size_t n[6];
    for (int i = 0; i < 6; i++) {
        col[i] = PQgetisnull(r, row, i) ? NULL : PQgetvalue(r, row, i);
        n[i] = col[i] ? (size_t)PQgetlength(r, row, i) : 0;
    }
    int64_t cr = 0, up = 0;
    if (col_i8(r, row, 6, &cr)) cr = pg_to_ms(cr);
    if (col_i8(r, row, 7, &up)) up = pg_to_ms(up);
    dg__command_from_row(out, col, n, cr, up);
}

static int pg_open_commands(dg_store_t *s, int64_t since_ms, int (*cb)(void *ud, const dg_command_t *c),
                            void *ud, char *err, size_t errlen)
{
    static const Oid types[1] = { OID_TIMESTAMPTZ };
    char since[8];
    put64(since, (uint64_t)ms_to_pg(since_ms));
    const char *vals[1] = { since };
    int lens[1] = { 8 }, fmts[1] = { 1 };
    rd_conn_t *rc = rd_acquire(s);
    int e = rd_ensure(s, rc, 1, err, errlen);
    PGresult *r = NULL;
    if (!e) {
        r = PQexecParams(rc->c, "SELECT id, drone_id, name, args, status, message, created_at, updated_at"
                         " FROM commands WHERE status IN ('pending', 'sent', 'accepted') AND created_at >= $1"
                         " ORDER BY created_at, id", 1, types, vals, lens, fmts, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            char m[256];
            e = pg_errno(rc->c, r);
            if (!e) e = -EIO;
            set_err(err, errlen, "%s: reading the open commands failed: %s", s->where, pg_msg(rc->c, r, m, sizeof m));
            abort_txn(rc->c);
        }
    }
    rd_release(s, rc);
    dg_command_t *cmd = e ? NULL : malloc(sizeof *cmd);
    if (!e && !cmd) { set_err(err, errlen, "out of memory"); e = -ENOMEM; }
    for (int i = 0; !e && i < PQntuples(r); i++) {
        cmd_row(r, i, cmd);
        if (cb(ud, cmd)) break;
    }
    free(cmd);
    PQclear(r);
    return e;
}

/* A command by id (after a restart the in-memory table no longer has it):
 * 0 and *out, 1 when there is none, or -errno. */
static int pg_get_command(dg_store_t *s, const char *id, dg_command_t *out, char *err, size_t errlen)
{
    /* not a prepared statement: preparing it with the others at connection
     * set-up would make every new reader wait while `commands` is locked */
    static const Oid types[1] = { OID_TEXT };
    const char *vals[1] = { id };
    rd_conn_t *rc = rd_acquire(s);
    PGresult *r = NULL;
    int e = 0;
    for (int attempt = 0; attempt < 2 && !r; attempt++) {
        if ((e = rd_ensure(s, rc, attempt > 0, err, errlen))) break;
        r = PQexecParams(rc->c, sql_get_command, 1, types, vals, NULL, NULL, 1);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) break;
        char m[256];
        e = pg_errno(rc->c, r);
        set_err(err, errlen, "%s: reading command %.32s failed: %s", s->where, id, pg_msg(rc->c, r, m, sizeof m));
        PQclear(r);
        r = NULL;
        if (PQstatus(rc->c) != CONNECTION_BAD) { abort_txn(rc->c); break; }
        rc->ready = 0;   /* the server went away: reconnect once and retry */
    }
    rd_release(s, rc);
    if (!r) return e ? e : -EIO;
    if (PQntuples(r) == 0) { PQclear(r); return 1; }
    cmd_row(r, 0, out);
    PQclear(r);
    return 0;
}

static int pg_ping(dg_store_t *s)
{
    char err[256];
    int e;
    rd_conn_t *rc = rd_acquire(s);
    e = rd_ensure(s, rc, 0, err, sizeof err);
    for (int attempt = 0; !e; attempt++) {
        PGresult *r = PQexec(rc->c, "SELECT 1");
        int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        if (ok) break;
        if (PQstatus(rc->c) != CONNECTION_BAD || attempt > 0) { e = -ENOTCONN; break; }
        rc->ready = 0;
        e = rd_ensure(s, rc, 1, err, sizeof err);
    }
    rd_release(s, rc);
    return e;
}

/* ---- COPY encoding ------------------------------------------------------ */

#define COPY_HDR "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0"   /* signature, flags, ext len */
#define COPY_HDR_LEN 19

static inline char *f_null(char *p) { return put32(p, UINT32_MAX); }
static inline char *f_i8(char *p, int64_t v) { p = put32(p, 8); return put64(p, (uint64_t)v); }
static inline char *f_f8(char *p, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    p = put32(p, 8);
    return put64(p, u);
}
static inline char *f_opt(char *p, const dg_record_t *r, uint32_t flag, double v)
{
    return (r->flags & flag) && !isnan(v) ? f_f8(p, v) : f_null(p);
}
static inline char *f_text(char *p, const char *s, size_t n)
{
    p = put32(p, (uint32_t)n);
    memcpy(p, s, n);
    return p + n;
}

/* Worst case bytes of one binary row: field count, 14 length words, 10
 * eight-byte values (timestamp, seq, 7 doubles, received_at), the drone_ts
 * bool, n, the longest id and status. */
#define ROW_MAX (2 + 14 * 4 + 10 * 8 + 1 + 4 + DG_DRONE_ID_MAX + DG_STATUS_MAX)

/* One record as a binary COPY tuple of telemetry (stage: + drone_ts, n). */
static char *enc_bin(char *p, const dg_record_t *r, int stage, size_t n)
{
    p = put16(p, stage ? 14 : 12);
    p = f_text(p, r->drone_id, strnlen(r->drone_id, DG_DRONE_ID_MAX));
    p = f_i8(p, ms_to_pg(r->ts_ms));
    p = (r->flags & DG_REC_HAS_SEQ) ? f_i8(p, (int64_t)r->seq) : f_null(p);
    p = f_f8(p, r->lat);
    p = f_f8(p, r->lon);
    p = f_f8(p, r->alt);
    p = f_opt(p, r, DG_REC_HAS_SPEED, r->speed);
    p = f_opt(p, r, DG_REC_HAS_HEADING, r->heading);
    p = f_opt(p, r, DG_REC_HAS_CLIMB, r->climb);
    p = f_opt(p, r, DG_REC_HAS_BATTERY, r->battery);
    p = (r->flags & DG_REC_HAS_STATUS) ? f_text(p, r->status, strnlen(r->status, DG_STATUS_MAX)) : f_null(p);
    p = f_i8(p, ms_to_pg(r->recv_us / 1000));
    if (stage) {
        p = put32(p, 1);
        *p++ = (r->flags & DG_REC_HAS_TS) ? 1 : 0;
        p = put32(p, 4);
        p = put32(p, (uint32_t)n);
    }
    return p;
}

/* One record's (drone_id, seq, timestamp) as a COPY tuple of telemetry_seq. */
static char *enc_seq(char *p, const dg_record_t *r)
{
    p = put16(p, 3);
    p = f_text(p, r->drone_id, strnlen(r->drone_id, DG_DRONE_ID_MAX));
    p = f_i8(p, (int64_t)r->seq);
    return f_i8(p, ms_to_pg(r->ts_ms));
}

/* The part (0..nparts-1) a drone's rows go to when a batch is split over
 * several writer connections: all rows of one drone on one connection, so
 * a redelivered row always meets its original on the same connection. */
static unsigned drone_part(const char *id, int nparts)
{
    return dg_fnv1a32_str(id, DG_DRONE_ID_MAX) % (unsigned)nparts;
}

/* Encode the records of one part (sel NULL: every row; else the rows with
 * sel[i] == part) into w->enc: what 0 telemetry rows, 1 staging rows,
 * 2 telemetry_seq rows (records with a seq only). Returns the number of rows
 * encoded, or -ENOMEM. */
static long encode(w_conn_t *w, const dg_record_t *recs, size_t n, int what,
                   const uint8_t *sel, int part)
{
    dg_buf_t *b = &w->enc;
    b->len = 0;
    long rows = 0;
    if (dg_buf_reserve(b, COPY_HDR_LEN + n * ROW_MAX + 2)) return -ENOMEM;
    memcpy(b->data, COPY_HDR, COPY_HDR_LEN);
    char *p = b->data + COPY_HDR_LEN;
    for (size_t i = 0; i < n; i++) {
        const dg_record_t *r = &recs[i];
        if (sel && sel[i] != part) continue;
        if (what == 2) {
            if (!(r->flags & DG_REC_HAS_SEQ)) continue;
            p = enc_seq(p, r);
        } else {
            p = enc_bin(p, r, what == 1, i);
        }
        rows++;
    }
    p = put16(p, 0xFFFF);   /* trailer */
    b->len = (size_t)(p - b->data);
    return rows;
}

/* COPY w->enc into table; 0, or -errno (*unique_violation is set when the
 * failure was one: SQLSTATE 23505). */
static int copy_in(dg_store_t *s, w_conn_t *w, const char *table, const char *cols,
                   int *unique_violation, char *err, size_t errlen)
{
    char sql[256], m[256];
    PGconn *c = w->c;
    *unique_violation = 0;
    snprintf(sql, sizeof sql, "COPY %s (%s) FROM STDIN (FORMAT binary)", table, cols);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        int e = pg_errno(c, r);
        set_err(err, errlen, "%s: COPY %s failed to start: %s", s->where, table, pg_msg(c, r, m, sizeof m));
        PQclear(r);
        return e;
    }
    PQclear(r);
    int ok = PQputCopyData(c, w->enc.data, (int)w->enc.len) == 1;
    ok = PQputCopyEnd(c, ok ? NULL : "client failed to send the data") == 1 && ok;
    int e = 0;
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !e) {
            e = pg_errno(c, r);
            if (!e) e = -EIO;
            *unique_violation = sqlstate_is(r, "23505");
            set_err(err, errlen, "%s: COPY into %s failed: %s", s->where, table, pg_msg(c, r, m, sizeof m));
        }
        PQclear(r);
        if (PQstatus(c) == CONNECTION_BAD) break;
    }
    if (!ok && !e) {
        e = -ENOTCONN;
        set_err(err, errlen, "%s: COPY into %s failed: %s", s->where, table, pg_msg(c, NULL, m, sizeof m));
    }
    return e;
}

/* ---- partitions (native mode) ------------------------------------------- */

static int load_parts(dg_store_t *s, char *err, size_t errlen)
{
    PGresult *r = PQexec(s->wc[0].c, sql_parts);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[256];
        int e = pg_errno(s->wc[0].c, r);
        set_err(err, errlen, "%s: cannot list the partitions of telemetry: %s", s->where,
                pg_msg(s->wc[0].c, r, m, sizeof m));
        PQclear(r);
        return e;
    }
    size_t n = (size_t)PQntuples(r);
    if (n > s->parts_cap) {
        part_t *p = realloc(s->parts, n * sizeof *p);
        if (!p) { PQclear(r); set_err(err, errlen, "out of memory"); return -ENOMEM; }
        s->parts = p;
        s->parts_cap = n;
    }
    s->nparts = 0;
    for (size_t i = 0; i < n; i++) {
        if (PQgetisnull(r, (int)i, 0) || PQgetisnull(r, (int)i, 1)) continue;
        part_t *p = &s->parts[s->nparts++];
        p->lo = strtoll(PQgetvalue(r, (int)i, 0), NULL, 10);
        p->hi = strtoll(PQgetvalue(r, (int)i, 1), NULL, 10);
        snprintf(p->name, sizeof p->name, "%s", PQgetvalue(r, (int)i, 2));
    }
    PQclear(r);
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b) { int64_t q = a / b; return (a % b < 0) ? q - 1 : q; }

/* Create the partition for [lo, hi), clipped to the gaps between existing
 * ones (so a changed partition interval never overlaps older partitions).
 * Rows of that range already in telemetry_default move into it. 1 when a
 * partition was created, 0 when the range was covered, or -errno. */
static int make_part(dg_store_t *s, int64_t lo, int64_t hi, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->nparts; i++) {
        const part_t *p = &s->parts[i];
        if (p->lo <= lo && lo < p->hi) lo = p->hi;
        if (lo < p->lo && p->lo < hi) hi = p->lo;
    }
    if (lo >= hi) return 0;
    time_t t = (time_t)floor_div(lo, 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char name[64], sql[1536];
    if (lo % 86400000 == 0)
        strftime(name, sizeof name, "telemetry_p%Y%m%d", &tm);
    else
        strftime(name, sizeof name, "telemetry_p%Y%m%d_%H%M%S", &tm);
    char a[48], b[48];
    snprintf(a, sizeof a, "to_timestamp(%" PRId64 ".%03d)", floor_div(lo, 1000), (int)(lo - floor_div(lo, 1000) * 1000));
    snprintf(b, sizeof b, "to_timestamp(%" PRId64 ".%03d)", floor_div(hi, 1000), (int)(hi - floor_div(hi, 1000) * 1000));
    int n = snprintf(sql, sizeof sql,
        "BEGIN; SET LOCAL lock_timeout = '5s';"
        "CREATE TEMP TABLE dg_move ON COMMIT DROP AS SELECT * FROM telemetry_default"
        " WHERE \"timestamp\" >= %s AND \"timestamp\" < %s;"
        "DELETE FROM telemetry_default WHERE \"timestamp\" >= %s AND \"timestamp\" < %s;"
        "CREATE TABLE %s PARTITION OF telemetry FOR VALUES FROM (%s) TO (%s);"
        "INSERT INTO telemetry SELECT * FROM dg_move;"
        "COMMIT;", a, b, a, b, name, a, b);
    if (n < 0 || (size_t)n >= sizeof sql) { set_err(err, errlen, "partition SQL too long"); return -EOVERFLOW; }
    char what[96];
    snprintf(what, sizeof what, "creating partition %s", name);
    int e = exec_ok(s->wc[0].c, sql, what, err, errlen);
    abort_txn(s->wc[0].c);
    if (e) return e;
    /* keep the cached list sorted */
    if (s->nparts == s->parts_cap) {
        size_t cap = s->parts_cap ? s->parts_cap * 2 : 16;
        part_t *p = realloc(s->parts, cap * sizeof *p);
        if (!p) { s->nparts = 0; return 1; }   /* reloaded at the next maintenance */
        s->parts = p;
        s->parts_cap = cap;
    }
    size_t i = s->nparts;
    while (i > 0 && s->parts[i - 1].lo > lo) { s->parts[i] = s->parts[i - 1]; i--; }
    s->parts[i] = (part_t){ .lo = lo, .hi = hi };
    snprintf(s->parts[i].name, sizeof s->parts[i].name, "%s", name);
    s->nparts++;
    return 1;
}

/* Premake partitions, apply retention. Failures are logged, not returned:
 * rows without a partition land in telemetry_default. */
static void maintain(dg_store_t *s)
{
    char err[512];
    int64_t now = dg_now_ms();
    if (s->kind == KIND_NATIVE) {
        if (load_parts(s, err, sizeof err)) { dg_warn("postgres: maintenance: %s", err); return; }
        int64_t iv = s->o.partition_ms;
        int64_t cur = floor_div(now, iv) * iv;
        int made = 0;
        for (int k = -1; k <= s->o.premake; k++) {
            int r = make_part(s, cur + k * iv, cur + (k + 1) * iv, err, sizeof err);
            if (r < 0) {
                dg_warn("postgres: maintenance: %s (rows of that range go to telemetry_default)", err);
                if (PQstatus(s->wc[0].c) == CONNECTION_BAD) return;
            }
            made += r > 0;
        }
        if (made)
            dg_info("postgres: created %d partition%s of telemetry (now up to %s)", made,
                    made > 1 ? "s" : "", s->nparts ? s->parts[s->nparts - 1].name : "?");
    }
    if (s->o.retention_ms > 0 && s->kind != KIND_TIMESCALE) {
        int64_t cutoff = now - s->o.retention_ms;
        for (size_t i = 0; s->kind == KIND_NATIVE && i < s->nparts; i++) {
            if (s->parts[i].hi > cutoff) continue;
            /* the name comes from the catalog (regclass text: quoted if needed) */
            char sql[160];
            snprintf(sql, sizeof sql, "BEGIN; SET LOCAL lock_timeout = '5s'; DROP TABLE %s; COMMIT",
                     s->parts[i].name);
            if (exec_ok(s->wc[0].c, sql, "dropping an expired partition", err, sizeof err) < 0)
                dg_warn("postgres: retention: %s", err);
            else
                dg_info("postgres: retention: dropped partition %s", s->parts[i].name);
            abort_txn(s->wc[0].c);
        }
        char sql[512];
        snprintf(sql, sizeof sql,
                 "DELETE FROM %s WHERE \"timestamp\" < to_timestamp(%" PRId64 " / 1000.0);"
                 "DELETE FROM telemetry_seq WHERE \"timestamp\" < to_timestamp(%" PRId64 " / 1000.0);",
                 s->kind == KIND_NATIVE ? "telemetry_default" : "telemetry", cutoff, cutoff);
        if (exec_ok(s->wc[0].c, sql, "deleting expired rows", err, sizeof err) < 0)
            dg_warn("postgres: retention: %s", err);
        if (s->kind == KIND_NATIVE) load_parts(s, err, sizeof err);
    } else if (s->o.retention_ms > 0) {
        char sql[256];
        snprintf(sql, sizeof sql, "DELETE FROM telemetry_seq WHERE \"timestamp\" < to_timestamp(%" PRId64 " / 1000.0)",
                 now - s->o.retention_ms);
        if (exec_ok(s->wc[0].c, sql, "deleting expired dedup rows", err, sizeof err) < 0)
            dg_warn("postgres: retention: %s", err);
    }
    s->next_maint_ms = dg_mono_ms() + MAINT_EVERY_MS;
}

/* ---- writer connections ------------------------------------------------- */

static int w_ensure(dg_store_t *s, w_conn_t *w, char *err, size_t errlen)
{
    if (w->c && PQstatus(w->c) == CONNECTION_OK && w->ready) {
        abort_txn(w->c);
        return 0;
    }
    w->ready = 0;
    int e = pg_connect(s, &w->c, err, errlen);
    if (e) return e;
    e = session_setup(w->c, s->fsync ? "SET synchronous_commit = on;" : NULL, err, errlen);
    if (!e) e = exec_ok(w->c, sql_stage, "creating the staging tables", err, errlen);
    static const Oid cmd_types[8] = { OID_TEXT, OID_TEXT, OID_TEXT, OID_TEXT, OID_TEXT, OID_TEXT,
                                      OID_TIMESTAMPTZ, OID_TIMESTAMPTZ };
    if (!e) e = prepare(w->c, "stage_seq", sql_stage_seq, 0, NULL, err, errlen);
    if (!e) e = prepare(w->c, "from_stage", sql_from_stage, 0, NULL, err, errlen);
    if (!e) e = prepare(w->c, "stage_reused", sql_stage_reused, 0, NULL, err, errlen);
    if (!e && w->idx == 0) e = prepare(w->c, "drones_upsert", sql_drones_upsert, 1, NULL, err, errlen);
    if (!e && w->idx == 0) e = prepare(w->c, "put_command", sql_put_command, 8, cmd_types, err, errlen);
    if (e) return e;
    w->ready = 1;
    return 0;
}

static void w_failed(w_conn_t *w)
{
    abort_txn(w->c);
    if (PQstatus(w->c) == CONNECTION_BAD) w->ready = 0;
}

static int exec_prepared_ok(dg_store_t *s, w_conn_t *w, const char *stmt, int n, const char *const *vals,
                            const int *lens, const int *fmts, char *err, size_t errlen)
{
    PGresult *r = PQexecPrepared(w->c, stmt, n, vals, lens, fmts, 0);
    int e = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char m[256];
        e = pg_errno(w->c, r);
        set_err(err, errlen, "%s: %s failed: %s", s->where, stmt, pg_msg(w->c, r, m, sizeof m));
    }
    PQclear(r);
    return e;
}

/* Staging path for the rows of one part, inside the caller's transaction:
 * sets DG_REC_REJECTED_REUSED on the reused ones (rows of this part only,
 * so helper threads never touch the same record). */
static int write_staged(dg_store_t *s, w_conn_t *w, dg_record_t *recs, size_t n,
                        const uint8_t *sel, int part, char *err, size_t errlen)
{
    long rows = encode(w, recs, n, 1, sel, part);
    if (rows < 0) { set_err(err, errlen, "out of memory encoding %zu rows", n); return -ENOMEM; }
    if (rows == 0) return 0;
    int uv;
    int e = copy_in(s, w, "dg_stage", TEL_COLS ", drone_ts, n", &uv, err, errlen);
    if (!e) e = exec_prepared_ok(s, w, "stage_seq", 0, NULL, NULL, NULL, err, errlen);
    if (!e) e = exec_prepared_ok(s, w, "from_stage", 0, NULL, NULL, NULL, err, errlen);
    if (e) return e;
    PGresult *r = PQexecPrepared(w->c, "stage_reused", 0, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[256];
        e = pg_errno(w->c, r);
        set_err(err, errlen, "%s: stage_reused failed: %s", s->where, pg_msg(w->c, r, m, sizeof m));
        PQclear(r);
        return e ? e : -EIO;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        long k = strtol(PQgetvalue(r, i, 0), NULL, 10);
        if (k >= 0 && (size_t)k < n) recs[k].flags |= DG_REC_REJECTED_REUSED;
    }
    PQclear(r);
    return 0;
}

/* Write (and commit) the rows of one part of a batch on connection w. */
static int write_part(dg_store_t *s, w_conn_t *w, dg_record_t *recs, size_t n,
                      const uint8_t *sel, int part, char *err, size_t errlen)
{
    int e = w_ensure(s, w, err, errlen);
    if (e) return e;
    size_t mine = 0, seqs = 0;
    for (size_t i = 0; i < n; i++) {
        if (sel && sel[i] != part) continue;
        recs[i].flags &= ~DG_REC_REJECTED_REUSED;
        mine++;
        seqs += (recs[i].flags & DG_REC_HAS_SEQ) != 0;
    }
    if (mine == 0) return 0;

    if (!s->o.staging_only) {
        /* fast path: every (drone_id, seq) is new (telemetry_seq's primary
         * key says so, else a unique violation), then the rows straight into
         * telemetry; one transaction */
        int uv = 0;
        if ((e = exec_ok(w->c, "BEGIN", NULL, err, errlen))) goto fail;
        long rows = seqs ? encode(w, recs, n, 2, sel, part) : 0;
        if (rows < 0) { set_err(err, errlen, "out of memory encoding %zu rows", n); e = -ENOMEM; goto fail; }
        if (rows > 0) e = copy_in(s, w, "telemetry_seq", "drone_id, seq, \"timestamp\"", &uv, err, errlen);
        if (!e) {
            rows = encode(w, recs, n, 0, sel, part);
            if (rows < 0) { set_err(err, errlen, "out of memory encoding %zu rows", n); e = -ENOMEM; goto fail; }
            e = copy_in(s, w, "telemetry", TEL_COLS, &uv, err, errlen);
        }
        if (!e) e = exec_ok(w->c, "COMMIT", "commit", err, errlen);
        if (!e) return 0;
        if (!uv) goto fail;
        abort_txn(w->c);   /* a seq seen before: write the part again, judging each row */
    }
    if ((e = exec_ok(w->c, "BEGIN", NULL, err, errlen))) goto fail;
    if ((e = write_staged(s, w, recs, n, sel, part, err, errlen))) goto fail;
    if ((e = exec_ok(w->c, "COMMIT", "commit", err, errlen))) goto fail;
    return 0;
fail:
    w_failed(w);
    for (size_t i = 0; i < n; i++)
        if (!sel || sel[i] == part) recs[i].flags &= ~DG_REC_REJECTED_REUSED;
    return e ? e : -EIO;
}

/* Helper thread of writer connection w (idx >= 1): one part per job. */
static void *w_helper(void *arg)
{
    w_conn_t *w = arg;
    dg_store_t *s = w->s;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->state == W_IDLE || w->state == W_DONE) pthread_cond_wait(&w->cv, &w->mu);
        if (w->state == W_QUIT) break;
        pthread_mutex_unlock(&w->mu);
        w->err[0] = 0;
        int rc = write_part(s, w, w->recs, w->n, s->sel, w->idx, w->err, sizeof w->err);
        pthread_mutex_lock(&w->mu);
        w->rc = rc;
        w->state = W_DONE;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* A batch big enough is split by drone over `writers` connections, written
 * in parallel (one transaction each) and returns after every part
 * committed. If one part fails, the batch fails and is retried whole by the
 * writer thread: the parts that did commit are then redeliveries, which the
 * unique index turns into a staging-path write of that part (nothing is
 * stored twice). */
static int pg_write_batch(dg_store_t *s, dg_record_t *recs, size_t n, char *err, size_t errlen)
{
    if (n == 0) return 0;
    w_conn_t *w0 = &s->wc[0];
    int e = w_ensure(s, w0, err, errlen);
    if (e) return e;
    if (dg_mono_ms() >= s->next_maint_ms) maintain(s);

    size_t np = n / PART_MIN_ROWS;
    if (np > (size_t)s->nhelpers + 1) np = (size_t)s->nhelpers + 1;
    if (np <= 1) return write_part(s, w0, recs, n, NULL, 0, err, errlen);

    if (n > s->sel_cap) {
        uint8_t *p = realloc(s->sel, n);
        if (!p) { set_err(err, errlen, "out of memory splitting %zu rows", n); return -ENOMEM; }
        s->sel = p;
        s->sel_cap = n;
    }
    for (size_t i = 0; i < n; i++) s->sel[i] = (uint8_t)drone_part(recs[i].drone_id, (int)np);
    for (size_t k = 1; k < np; k++) {
        w_conn_t *w = &s->wc[k];
        pthread_mutex_lock(&w->mu);
        w->recs = recs;
        w->n = n;
        w->state = W_JOB;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    e = write_part(s, w0, recs, n, s->sel, 0, err, errlen);
    for (size_t k = 1; k < np; k++) {
        w_conn_t *w = &s->wc[k];
        pthread_mutex_lock(&w->mu);
        while (w->state != W_DONE) pthread_cond_wait(&w->cv, &w->mu);
        w->state = W_IDLE;
        if (w->rc && !e) {
            e = w->rc;
            set_err(err, errlen, "%s (writer connection %zu)", w->err, k + 1);
        }
        pthread_mutex_unlock(&w->mu);
    }
    return e;
}

static int pg_update_drones(dg_store_t *s, const dg_record_t *last, size_t n, char *err, size_t errlen)
{
    if (n == 0) return 0;
    w_conn_t *w = &s->wc[0];
    int e = w_ensure(s, w, err, errlen);
    if (e) return e;
    dg_buf_t *b = &w->enc;
    b->len = 0;
    if (dg_buf_reserve(b, COPY_HDR_LEN + n * (ROW_MAX + 8) + 2)) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    char *p = b->data;
    memcpy(p, COPY_HDR, COPY_HDR_LEN);
    p += COPY_HDR_LEN;
    for (size_t i = 0; i < n; i++) {
        const dg_record_t *r = &last[i];
        p = put16(p, 13);
        p = put32(p, 4);
        p = put32(p, (uint32_t)i);
        p = f_text(p, r->drone_id, strnlen(r->drone_id, DG_DRONE_ID_MAX));
        p = f_i8(p, ms_to_pg(r->recv_us / 1000));
        p = f_f8(p, r->lat);
        p = f_f8(p, r->lon);
        p = f_f8(p, r->alt);
        p = f_opt(p, r, DG_REC_HAS_SPEED, r->speed);
        p = f_opt(p, r, DG_REC_HAS_HEADING, r->heading);
        p = f_opt(p, r, DG_REC_HAS_CLIMB, r->climb);
        p = f_opt(p, r, DG_REC_HAS_BATTERY, r->battery);
        p = (r->flags & DG_REC_HAS_STATUS) ? f_text(p, r->status, strnlen(r->status, DG_STATUS_MAX)) : f_null(p);
        p = (r->flags & DG_REC_HAS_SEQ) ? f_i8(p, (int64_t)r->seq) : f_null(p);
        p = f_i8(p, ms_to_pg(r->ts_ms));
    }
    p = put16(p, 0xFFFF);
    b->len = (size_t)(p - b->data);
    int uv;
    if (!(e = exec_ok(w->c, "BEGIN", NULL, err, errlen)))
        e = copy_in(s, w, "dg_drone_stage", "n, drone_id, seen, latitude, longitude, altitude, speed,"
                    " heading, climb, battery, status, last_seq, ts", &uv, err, errlen);
    const char *inst[1] = { dg_instance };
    if (!e) e = exec_prepared_ok(s, w, "drones_upsert", 1, inst, NULL, NULL, err, errlen);
    if (!e) e = exec_ok(w->c, "COMMIT", "commit", err, errlen);
    if (e) w_failed(w);
    return e;
}

static int pg_put_command(dg_store_t *s, const dg_command_t *c, char *err, size_t errlen)
{
    w_conn_t *w = &s->wc[0];
    int e = w_ensure(s, w, err, errlen);
    if (e) return e;
    char created[8], updated[8];
    put64(created, (uint64_t)ms_to_pg(c->created_ms));
    put64(updated, (uint64_t)ms_to_pg(c->updated_ms));
    const char *vals[8] = { c->id, c->drone_id, c->name, c->args, dg_command_status_name(c->status),
                            c->message[0] ? c->message : NULL, created, updated };
    int lens[8] = { 0, 0, 0, 0, 0, 0, 8, 8 };
    int fmts[8] = { 0, 0, 0, 0, 0, 0, 1, 1 };
    e = exec_prepared_ok(s, w, "put_command", 8, vals, lens, fmts, err, errlen);
    if (e && PQstatus(w->c) == CONNECTION_BAD) w->ready = 0;
    return e;
}

/* ---- open / migrate / close --------------------------------------------- */

/* Which kind telemetry is, from the catalog; -1 when it does not exist. */
static int detect_kind(PGconn *c, enum kind *k, char *err, size_t errlen)
{
    PGresult *r = PQexec(c,
        "SELECT c.relkind::text, EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
        " FROM pg_class c WHERE c.oid = to_regclass('telemetry')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[256];
        set_err(err, errlen, "cannot inspect the schema: %s", pg_msg(c, r, m, sizeof m));
        PQclear(r);
        return -EIO;
    }
    int found = PQntuples(r) == 1;
    if (found) {
        const char *rk = PQgetvalue(r, 0, 0);
        if (rk[0] == 'p') *k = KIND_NATIVE;
        else *k = PQgetvalue(r, 0, 1)[0] == 't' ? KIND_TIMESCALE : KIND_PLAIN;
    }
    PQclear(r);
    if (found && *k == KIND_TIMESCALE) {   /* extension present: is telemetry a hypertable? */
        r = PQexec(c, "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'telemetry'");
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) == 0) *k = KIND_PLAIN;
        PQclear(r);
    }
    return found ? 0 : -1;
}

/* Can this server run TimescaleDB (package installed)? */
static int timescale_available(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    PQclear(r);
    return ok;
}

static int migrate(dg_store_t *s, char *err, size_t errlen)
{
    PGconn *c = s->wc[0].c;
    char m[256];
    int e = exec_ok(c, "BEGIN; SELECT pg_advisory_xact_lock(" ADVISORY_KEY ");"
                    "CREATE TABLE IF NOT EXISTS dronegate_schema ("
                    "  version     integer PRIMARY KEY,"
                    "  applied_at  timestamptz NOT NULL DEFAULT now(),"
                    "  description text);"
                    "COMMIT", "creating dronegate_schema", err, errlen);
    if (e) goto out;
    for (int v = 1; v <= SCHEMA_VERSION; v++) {
        if ((e = exec_ok(c, "BEGIN; SELECT pg_advisory_xact_lock(" ADVISORY_KEY ")", NULL, err, errlen))) goto out;
        PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM dronegate_schema");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            e = pg_errno(c, r);
            set_err(err, errlen, "reading dronegate_schema: %s", pg_msg(c, r, m, sizeof m));
            PQclear(r);
            goto out;
        }
        int have = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (have > SCHEMA_VERSION) {
            set_err(err, errlen, "the database has dronegate schema version %d but this dronegate "
                    "knows only up to %d (upgrade dronegate or use another database)", have, SCHEMA_VERSION);
            e = -EPROTO;
            goto out;
        }
        if (have >= v) { exec_ok(c, "COMMIT", NULL, NULL, 0); continue; }
        const char *desc = "";
        if (v == 1) {
            enum kind k = KIND_NATIVE;
            int use_ts = 0, exists = detect_kind(c, &k, err, errlen) == 0;
            if (exists) {
                use_ts = k == KIND_TIMESCALE;    /* keep what is there */
            } else if (s->o.timescale != 0 && timescale_available(c)) {
                use_ts = 1;
            } else if (s->o.timescale == 1) {
                set_err(err, errlen, "timescaledb=on but the timescaledb extension is not available "
                        "on this server (install it, or use timescaledb=auto|off)");
                e = -ENOTSUP;
                goto out;
            }
            if (use_ts) {
                /* savepoint: CREATE EXTENSION fails when the library is not preloaded */
                e = exec_ok(c, "SAVEPOINT ts", NULL, err, errlen);
                if (!e) e = exec_ok(c, sql_timescale_v1, "creating the TimescaleDB schema", err, errlen);
                if (!e) {
                    char sql[256];
                    snprintf(sql, sizeof sql, "SELECT create_hypertable('telemetry', 'timestamp',"
                             " chunk_time_interval => INTERVAL '%" PRId64 " milliseconds', if_not_exists => TRUE)",
                             s->o.partition_ms);
                    e = exec_ok(c, sql, "create_hypertable", err, errlen);
                }
                if (e && s->o.timescale == 1) goto out;
                if (e) {
                    dg_warn("postgres: TimescaleDB is installed but could not be used (%s); "
                            "using native partitioning", err);
                    if ((e = exec_ok(c, "ROLLBACK TO SAVEPOINT ts", NULL, err, errlen))) goto out;
                    use_ts = 0;
                }
            }
            /* a plain telemetry table made by hand: keep it, add the index */
            const char *tel = exists && k == KIND_PLAIN ? TEL_INDEX : sql_native_v1;
            if (!use_ts && (e = exec_ok(c, tel, "creating telemetry", err, errlen))) goto out;
            if ((e = exec_ok(c, sql_common_v1, "creating the tables", err, errlen))) goto out;
            desc = use_ts ? "telemetry (TimescaleDB hypertable), telemetry_seq, drones, commands"
                          : "telemetry (partitioned by time), telemetry_seq, drones, commands";
        }
        if (v == 2) {
            if ((e = exec_ok(c, sql_v2, "filling telemetry_seq", err, errlen))) goto out;
            desc = "telemetry_seq holds every (drone_id, seq): reused seqs are rejected";
        }
        if (v == 3) {
            if ((e = exec_ok(c, sql_v3, "adding the fleet columns of drones", err, errlen))) goto out;
            desc = "drones: timestamp, instance, fleet_txid (gateways see each other's drones)";
        }
        const char *vals[2];
        char vs[16];
        snprintf(vs, sizeof vs, "%d", v);
        vals[0] = vs;
        vals[1] = desc;
        r = PQexecParams(c, "INSERT INTO dronegate_schema (version, description) VALUES ($1::int, $2)",
                         2, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            e = pg_errno(c, r);
            set_err(err, errlen, "recording schema version %d: %s", v, pg_msg(c, r, m, sizeof m));
            PQclear(r);
            goto out;
        }
        PQclear(r);
        if ((e = exec_ok(c, "COMMIT", "committing the migration", err, errlen))) goto out;
        dg_info("postgres: schema migrated to version %d (%s)", v, desc);
    }
out:
    abort_txn(c);
    return e;
}

/* TimescaleDB policies follow the options at every start. */
static int timescale_policies(dg_store_t *s, char *err, size_t errlen)
{
    char sql[1024];
    int n = snprintf(sql, sizeof sql,
        "SELECT set_chunk_time_interval('telemetry', INTERVAL '%" PRId64 " milliseconds');"
        "SELECT remove_retention_policy('telemetry', if_exists => TRUE);"
        "SELECT remove_compression_policy('telemetry', if_exists => TRUE);",
        s->o.partition_ms);
    if (s->o.retention_ms > 0)
        n += snprintf(sql + n, sizeof sql - (size_t)n,
                      "SELECT add_retention_policy('telemetry', INTERVAL '%" PRId64 " milliseconds');",
                      s->o.retention_ms);
    if (s->o.compress_after_ms > 0)
        n += snprintf(sql + n, sizeof sql - (size_t)n,
                      "ALTER TABLE telemetry SET (timescaledb.compress,"
                      " timescaledb.compress_segmentby = 'drone_id',"
                      " timescaledb.compress_orderby = '\"timestamp\", seq');"
                      "SELECT add_compression_policy('telemetry', INTERVAL '%" PRId64 " milliseconds');",
                      s->o.compress_after_ms);
    if (n < 0 || (size_t)n >= sizeof sql) { set_err(err, errlen, "policy SQL too long"); return -EOVERFLOW; }
    return exec_ok(s->wc[0].c, sql, "setting the TimescaleDB policies", err, errlen);
}

static void pg_close(dg_store_t *s)
{
    if (!s) return;
    for (int i = 0; i < RD_MAX; i++) if (s->rd[i].c) PQfinish(s->rd[i].c);
    for (int i = 1; i <= s->nhelpers; i++) {
        w_conn_t *w = &s->wc[i];
        pthread_mutex_lock(&w->mu);
        w->state = W_QUIT;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->th, NULL);
    }
    for (int i = 0; i < WR_MAX; i++) {
        w_conn_t *w = &s->wc[i];
        if (w->c) PQfinish(w->c);
        dg_buf_free(&w->enc);
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
    }
    free(s->sel);
    free(s->parts);
    free(s->conninfo);
    pthread_cond_destroy(&s->rd_cv);
    pthread_mutex_destroy(&s->rd_mu);
    free(s);
}

static int pg_open(const char *uri, const dg_store_config_t *cfg, dg_store_t **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    if (!PQisthreadsafe()) {
        set_err(err, errlen, "the libpq library was built without thread support; install a standard libpq5");
        return -ENOTSUP;
    }
    dg_store_t *s = calloc(1, sizeof *s);
    if (!s) { set_err(err, errlen, "out of memory"); return -ENOMEM; }
    pthread_mutex_init(&s->rd_mu, NULL);
    pthread_cond_init(&s->rd_cv, NULL);
    for (int i = 0; i < WR_MAX; i++) {
        s->wc[i].idx = i;
        s->wc[i].s = s;
        pthread_mutex_init(&s->wc[i].mu, NULL);
        pthread_cond_init(&s->wc[i].cv, NULL);
    }
    s->fsync = cfg && cfg->fsync;
    snprintf(s->where, sizeof s->where, "PostgreSQL");
    int e = parse_uri(uri, &s->o, &s->conninfo, err, errlen);
    if (e) goto fail;

    /* libpq validates the URI itself: a bad one fails here with its reason */
    char *perr = NULL;
    PQconninfoOption *ci = PQconninfoParse(s->conninfo, &perr);
    if (!ci) {
        char m[256];
        set_err(err, errlen, "store URI is not a valid PostgreSQL URI: %s",
                one_line(perr ? perr : "out of memory", m, sizeof m));
        PQfreemem(perr);
        e = -EINVAL;
        goto fail;
    }
    PQconninfoFree(ci);

    s->wc[0].c = PQconnectdb(s->conninfo);   /* wc[0] */
    if (!s->wc[0].c) { set_err(err, errlen, "out of memory"); e = -ENOMEM; goto fail; }
    PQsetNoticeProcessor(s->wc[0].c, on_notice, NULL);
    describe(s, s->wc[0].c);
    if (PQstatus(s->wc[0].c) != CONNECTION_OK) {
        char m[256];
        set_err(err, errlen, "cannot connect to %s: %s (is the server running and the URI right? "
                "e.g. postgresql://user:password@host:5432/dbname)", s->where, pg_msg(s->wc[0].c, NULL, m, sizeof m));
        e = -ECONNREFUSED;
        goto fail;
    }
    if ((e = session_setup(s->wc[0].c, NULL, err, errlen))) goto fail;
    char merr[400];
    if ((e = migrate(s, merr, sizeof merr))) {
        set_err(err, errlen, "cannot set up the schema in %s: %s", s->where, merr);
        goto fail;
    }
    if (detect_kind(s->wc[0].c, &s->kind, err, errlen) != 0) {
        set_err(err, errlen, "%s: table telemetry is missing after the migration", s->where);
        e = -EIO;
        goto fail;
    }
    if (s->kind == KIND_PLAIN)
        dg_warn("postgres: table telemetry exists but is neither partitioned nor a hypertable: "
                "no partitions, no retention (it was not created by dronegate)");
    if (s->kind == KIND_TIMESCALE && (e = timescale_policies(s, merr, sizeof merr))) {
        set_err(err, errlen, "%s: %s", s->where, merr);
        goto fail;
    }
    for (int i = 0; i < s->o.writers; i++) {
        if ((e = w_ensure(s, &s->wc[i], merr, sizeof merr))) {
            set_err(err, errlen, "%s: writer connection %d: %s", s->where, i + 1, merr);
            goto fail;
        }
    }
    for (int i = 1; i < s->o.writers; i++) {
        sigset_t all, old;   /* helpers take no signals (see sqlite.c ck_start) */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        e = -pthread_create(&s->wc[i].th, NULL, w_helper, &s->wc[i]);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e) {
            set_err(err, errlen, "cannot start a PostgreSQL writer thread: %s", strerror(-e));
            goto fail;
        }
        s->nhelpers = i;
    }
    maintain(s);
    /* one reader now, so a read problem shows at start */
    rd_conn_t *rc = rd_acquire(s);
    e = rd_ensure(s, rc, 1, merr, sizeof merr);
    rd_release(s, rc);
    if (e) { set_err(err, errlen, "%s", merr); goto fail; }
    dg_info("postgres: %s, telemetry %s, %d writer connection%s, write=%s dedup=%s, retention %s",
            s->where, s->kind == KIND_NATIVE ? "partitioned by time" :
                      s->kind == KIND_TIMESCALE ? "a TimescaleDB hypertable" : "a plain table",
            s->o.writers, s->o.writers > 1 ? "s" : "", s->o.staging_only ? "staging" : "auto",
            s->o.strict ? "strict" : "ts", s->o.retention_ms ? "on" : "off");
    *out = s;
    return 0;
fail:
    pg_close(s);
    return e ? e : -EIO;
}

/* store.h: the libpq part of a postgresql:// store URI (fleet.c opens its
 * own connections to the same database). */
int dg_pg_conninfo(const char *uri, char **conninfo, char *err, size_t errlen)
{
    pg_opts_t o;
    return parse_uri(uri, &o, conninfo, err, errlen);
}

const dg_store_ops_t dg_store_postgresql_ops = {
    .scheme        = "postgresql",
    .durable       = true,
    .open          = pg_open,
    .write_batch   = pg_write_batch,
    .update_drones = pg_update_drones,
    .query         = pg_query,
    .latest        = pg_latest,
    .latest_of     = pg_latest_of,
    .put_command   = pg_put_command,
    .get_command   = pg_get_command,
    .open_commands = pg_open_commands,
    .last_seq      = pg_last_seq,
    .ping          = pg_ping,
    .close         = pg_close,
};

