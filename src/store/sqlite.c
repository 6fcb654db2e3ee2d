/* sqlite.c - the embedded SQLite backend: `--store sqlite:PATH` (the default,
 * sqlite:./data/dronegate.db).
 *
 * Connections and threads
 * -----------------------
 *
 *   +-------------------+      one connection, used only by the store writer
 *   | writer connection | <--  thread: write_batch(), update_drones(),
 *   |  (read/write)     |      put_command(); holds the cached INSERT /
 *   +-------------------+      upserts / BEGIN / COMMIT / ROLLBACK.
 *   +-------------------+
 *   | reader pool       | <--  any worker thread: query(), latest(), ping().
 *   |  up to RD_MAX     |      A connection is taken from the pool under
 *   |  read-only conns  |      rd_mu, used without any lock, and given back.
 *   +-------------------+      Readers are opened lazily (one at open()).
 *   +-------------------+
 *   | checkpointer      | <--  its own thread and connection: copies the WAL
 *   |  (read/write)     |      back into the database file (see below).
 *   +-------------------+
 *
 * Locking rules: rd_mu protects only rd[].busy (a connection marked busy
 * belongs to exactly one thread until released); ck_mu the checkpointer's
 * wake-up flags; ck_run_mu is held around every checkpoint call (the
 * thread's PASSIVE, the writer's RESTART). No two are ever nested.
 * Every connection is opened SQLITE_OPEN_NOMUTEX (SQLite "multi-thread"
 * mode): safe because no connection is ever used by two threads at once.
 * A query callback runs while its reader is held; it must not call back into
 * the store (with every reader held by such callbacks it would wait forever).
 *
 * Durability
 * ----------
 * journal_mode=WAL. With synchronous=NORMAL (the default) a COMMIT appends
 * the transaction to the WAL without fsync: committed rows survive a crash of
 * the process (they are in the OS page cache) but not a power loss; only
 * checkpoints fsync. With cfg->fsync, synchronous=FULL fsyncs the WAL at every
 * COMMIT, so an acknowledged row survives a power loss too. WAL lets the
 * readers run alongside the writer; every read statement is reset as soon as
 * it is done so no read transaction pins the WAL (which would stop
 * checkpoints from recycling it).
 *
 * Write cost and checkpoints (measured with bench/bench_sqlite_raw.c)
 * -------------------------------------------------------------------
 * Both telemetry indexes lead with drone_id, so with 1000 drones sending at
 * once a batch of B rows dirties about min(B, drones) leaf pages per index,
 * and a WAL commit writes every dirty page whole. The write volume and the
 * fsyncs, more than the CPU, limit ingest; two choices help:
 *   page_size = 1024   bytes written per row (1000 drones, checkpoint every
 *                      64 MiB): B = 1000: 4 KiB pages 9.5 KB, 1 KiB pages
 *                      3.9 KB; B = 5000: 2.7 KB vs 1.5 KB (with SQLite's
 *                      default 4 MiB checkpoints: 15.8 KB vs 5.5 KB at
 *                      B = 1000). Costs ~10-30% more CPU per row.
 *   checkpoints off the commit path (same bytes written, fsyncs moved off
 *                      the writer; B = 5000 on the 2-core dev VM: median
 *                      47k vs 30k rows/s over 4 interleaved runs, B = 1000:
 *                      no clear difference). In WAL mode with synchronous=NORMAL the
 *                      only fsyncs are in checkpoints, and SQLite's
 *                      autocheckpoint runs them inside the writer's COMMIT
 *                      (a stall of tens to hundreds of ms on a slow disk,
 *                      seen by every pending ack). Here the writer's
 *                      autocheckpoint is off; a wal hook counts WAL frames
 *                      after each commit, and every CK_STEP_FRAMES of growth
 *                      wakes the checkpointer thread, which runs a PASSIVE
 *                      checkpoint (never blocks the writer or readers), and
 *                      also every CK_IDLE_SEC. A PASSIVE checkpoint cannot
 *                      restart the WAL while the writer keeps appending, so
 *                      at CK_MAX_FRAMES the writer runs a RESTART checkpoint
 *                      itself (cheap: in the last step the thread is woken
 *                      after every commit and has copied all but about one
 *                      transaction; the writer does not wait for a pass in
 *                      progress unless the restart has been due for a step;
 *                      it waits at most CK_RESTART_WAIT_MS for readers;
 *                      see after_commit) and the next commit starts the WAL
 *                      over.
 *                      The WAL stays near CK_MAX_FRAMES pages at most
 *                      (longer only while a reader holds an old snapshot).
 *                      The checkpointer's connection must have read the
 *                      file once, else its checkpoints silently do nothing
 *                      (tests/unit/test_store.c checks that they copy).
 *   WAL appends coalesced: every connection is opened through the
 *                      "dg-walbuf" VFS (sqlite_walbuf.c), SQLite's unix VFS
 *                      whose WAL file buffers a transaction's frames and
 *                      writes them with one pwrite per 120 KiB instead of two
 *                      per page (frame header, page): bench_store at 1000
 *                      drones, batch 2000: 23 -> 14-18 us of CPU per row.
 *                      DRONEGATE_SQLITE_VFS=default opens with SQLite's own
 *                      VFS (for comparisons).
 * A database created with another page size keeps it (SQLite fixes it at
 * creation); only the speed differs.
 *
 * Schema (version 1, PRAGMA user_version; migrations are idempotent)
 * ------------------------------------------------------------------
 *
 *   telemetry  drone_id TEXT NOT NULL | timestamp INTEGER NOT NULL (ms)
 *              seq INTEGER (NULL when absent) | latitude, longitude,
 *              altitude REAL NOT NULL | speed, heading, climb, battery REAL
 *              status TEXT | received_at INTEGER NOT NULL (ms)
 *     telemetry_drone_seq   UNIQUE (drone_id, seq)   NULL seqs never conflict
 *     telemetry_drone_time  (drone_id, timestamp, seq)  history + latest;
 *                           seq is in it so ORDER BY timestamp, seq needs no
 *                           sort step
 *   drones     drone_id TEXT PRIMARY KEY | first_seen, last_seen INTEGER (ms,
 *              server receive time) | last position and state | last_seq
 *   commands   id TEXT PRIMARY KEY | drone_id, name, args, status, message,
 *              created_at, updated_at (used by the command layer)
 *
 * seq is unsigned 64-bit in the contract, SQLite INTEGER is signed 64-bit:
 * the bit pattern is stored (int64_t)seq and read back (uint64_t)value, so
 * every value round-trips, but a seq >= 2^63 is stored negative and sorts
 * before small seqs in SQL (only matters for ties on timestamp and for tools
 * reading the file directly).
 *
 * Duplicates: the INSERT is `ON CONFLICT(drone_id, seq) DO NOTHING` rather
 * than `INSERT OR IGNORE`. When it inserted nothing (sqlite3_changes() is 0)
 * the stored row's timestamp is read back: the same one is a redelivery
 * (stored once, acked again), another one a reused seq (flagged
 * DG_REC_REJECTED_REUSED: not stored, not acked; store.h). The read-back
 * runs in the batch's transaction, so a reused seq within one batch is
 * caught the same way. OR IGNORE
 * would also silently drop a row violating NOT NULL (a NaN coordinate binds
 * as NULL); here such a row fails the batch loudly. Validation upstream
 * makes that impossible, so a failure means a bug, not a drone.
 *
 * Known limits: one database file, one writer connection; no retention /
 * pruning of old telemetry yet; sqlite::memory: is refused (the readers
 * would not see the writer's data); ping() notices a database file that was
 * deleted or replaced under a running gateway, write_batch() does not.
 */
#include "store.h"
#include "sqlite_walbuf.h"
#include "../core/commands.h"
#include "../core/hash.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define RD_MAX          4       /* reader connections (lazily opened) */
#define BUSY_TIMEOUT_MS 5000    /* wait this long for another process's lock */
#define SCHEMA_VERSION  1
#define PAGE_SIZE       1024    /* new databases only; see above */
#define CK_STEP_FRAMES  8192    /* wake the checkpointer every 8 MiB of WAL */
#define CK_MAX_FRAMES   65536   /* writer restarts the WAL at 64 MiB */
#define CK_IDLE_SEC     5       /* checkpoint at least this often when idle */
#define CK_RESTART_WAIT_MS 100  /* the writer's RESTART waits this long for readers */

/* Pragmas applied to the writer connection. cache_size: with N drones
 * every batch touches the last leaf page of each drone in both indexes (about
 * 2 * N pages plus interior pages: ~3 MiB of 1 KiB pages for 1000 drones),
 * which must stay cached; 64 MiB leaves room for tens of thousands of drones
 * (not measured beyond 1000). journal_size_limit truncates the WAL back to
 * 64 MiB after a restart instead of keeping its high-water size. */
#define WRITER_PRAGMAS \
    "PRAGMA cache_size = -65536;"        /* 64 MiB */ \
    "PRAGMA temp_store = MEMORY;" \
    "PRAGMA journal_size_limit = 67108864;"  /* = CK_MAX_FRAMES of 1 KiB */
#define DG__STR_(x) #x
#define DG__STR(x) DG__STR_(x)
#define READER_PRAGMAS "PRAGMA cache_size = -8192;" /* 8 MiB each */

typedef struct rd_conn {
    sqlite3      *db;        /* NULL until first needed */
    sqlite3_stmt *hist;      /* one drone's history */
    sqlite3_stmt *latest;    /* latest row of every drone */
    sqlite3_stmt *latest_of; /* latest row of one drone */
    sqlite3_stmt *ping;      /* PRAGMA user_version */
    sqlite3_stmt *last_seq;  /* highest seq of one drone */
    int           busy;      /* taken by a thread (under rd_mu) */
} rd_conn_t;

struct dg_store {
    char           *path;    /* database file, as given after "sqlite:" */
    dev_t           dev;     /* identity of the file at open, for ping() */
    ino_t           ino;
    sqlite3        *w;       /* writer connection (writer thread only) */
    sqlite3_stmt   *w_begin, *w_commit, *w_rollback;
    sqlite3_stmt   *w_insert; /* telemetry INSERT ... DO NOTHING */
    sqlite3_stmt   *w_seq_ts; /* timestamp of a stored (drone_id, seq) */
    sqlite3_stmt   *w_upsert; /* drones upsert */
    sqlite3_stmt   *w_cmd;    /* commands upsert */
    struct ins_ord *ord;      /* write_batch's insertion order (writer only) */
    size_t          ord_cap;
    pthread_mutex_t rd_mu;
    pthread_cond_t  rd_cv;   /* signalled when a reader is released */
    rd_conn_t       rd[RD_MAX];

    /* checkpointing */
    int             wal_frames;   /* frames in the WAL after the last commit
                                     (wal hook; writer thread only) */
    int             wal_kicked;   /* wal_frames at the last wake-up (writer only) */
    int             restart_at;   /* next RESTART attempt at this many frames
                                     (writer only; backs off while readers
                                     hold old snapshots) */
    int             restart_due;  /* frames when a RESTART first became due,
                                     0 if none is (writer only) */
    unsigned long   restarts;     /* RESTARTs run (writer only; tests) */
    unsigned long   kicks;        /* checkpointer wake-ups (writer only; tests) */
    int             ck_step, ck_max; /* CK_STEP_FRAMES, CK_MAX_FRAMES (tests lower them) */
    sqlite3        *ck_db;        /* checkpointer connection (its thread only) */
    const char     *vfs;          /* every connection's VFS (NULL: SQLite's default) */
    pthread_t       ck_thread;
    int             ck_started;   /* ck_thread exists */
    pthread_mutex_t ck_mu;        /* protects ck_kick, ck_stop */
    pthread_mutex_t ck_run_mu;    /* held while a checkpoint runs: SQLite
                                     refuses a second one at once (BUSY,
                                     no busy handler) */
    pthread_cond_t  ck_cv;
    int             ck_kick, ck_stop;
    int             mu_init;      /* the mutexes/conds above are initialised */
};

/* ---- SQL ---------------------------------------------------------------- */

/* migrations[v] takes the schema from version v to v + 1. Each is written to
 * be idempotent (IF NOT EXISTS) so a half-applied history cannot break it. */
static const char *const migrations[SCHEMA_VERSION] = {
    /* 0 -> 1 */
    "CREATE TABLE IF NOT EXISTS telemetry ("
    "  drone_id    TEXT    NOT NULL,"
    "  timestamp   INTEGER NOT NULL,"
    "  seq         INTEGER,"
    "  latitude    REAL    NOT NULL,"
    "  longitude   REAL    NOT NULL,"
    "  altitude    REAL    NOT NULL,"
    "  speed       REAL,"
    "  heading     REAL,"
    "  climb       REAL,"
    "  battery     REAL,"
    "  status      TEXT,"
    "  received_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS telemetry_drone_seq"
    "  ON telemetry(drone_id, seq);"
    "CREATE INDEX IF NOT EXISTS telemetry_drone_time"
    "  ON telemetry(drone_id, timestamp, seq);"
    "CREATE TABLE IF NOT EXISTS drones ("
    "  drone_id   TEXT PRIMARY KEY,"
    "  first_seen INTEGER,"
    "  last_seen  INTEGER,"
    "  latitude   REAL,"
    "  longitude  REAL,"
    "  altitude   REAL,"
    "  speed      REAL,"
    "  heading    REAL,"
    "  climb      REAL,"
    "  battery    REAL,"
    "  status     TEXT,"
    "  last_seq   INTEGER);"
    "CREATE TABLE IF NOT EXISTS commands ("
    "  id         TEXT PRIMARY KEY,"
    "  drone_id   TEXT    NOT NULL,"
    "  name       TEXT    NOT NULL,"
    "  args       TEXT,"
    "  status     TEXT    NOT NULL,"
    "  message    TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS commands_drone_created"
    "  ON commands(drone_id, created_at);",
};

static const char sql_insert[] =
    "INSERT INTO telemetry(drone_id, timestamp, seq, latitude, longitude,"
    " altitude, speed, heading, climb, battery, status, received_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    " ON CONFLICT(drone_id, seq) DO NOTHING";

/* After a conflict: the stored timestamp of (drone_id, seq), one seek on
 * telemetry_drone_seq (a redelivery or a reused seq: rare). */
static const char sql_seq_ts[] =
    "SELECT timestamp FROM telemetry WHERE drone_id = ?1 AND seq = ?2";

/* Last call wins: the writer hands states over in arrival order. No guard on
 * last_seen or last_seq: a clock step back or a drone that reboots and starts
 * its seq again must still update the registry. */
static const char sql_upsert[] =
    "INSERT INTO drones(drone_id, first_seen, last_seen, latitude, longitude,"
    " altitude, speed, heading, climb, battery, status, last_seq)"
    " VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    " ON CONFLICT(drone_id) DO UPDATE SET"
    "  last_seen = excluded.last_seen, latitude = excluded.latitude,"
    "  longitude = excluded.longitude, altitude = excluded.altitude,"
    "  speed = excluded.speed, heading = excluded.heading,"
    "  climb = excluded.climb, battery = excluded.battery,"
    "  status = excluded.status, last_seq = excluded.last_seq";

/* A command row changes status over time (pending -> sent -> ...); an
 * update older than the stored one (two threads queued transitions out of
 * order) does not overwrite it. */
static const char sql_cmd[] =
    "INSERT INTO commands(id, drone_id, name, args, status, message, created_at, updated_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    " ON CONFLICT(id) DO UPDATE SET"
    "  status = excluded.status, message = excluded.message,"
    "  updated_at = excluded.updated_at"
    " WHERE excluded.updated_at >= commands.updated_at";

#define ROW_COLS "drone_id, timestamp, seq, latitude, longitude, altitude," \
                 " speed, heading, climb, battery, status, received_at"
enum { C_ID, C_TS, C_SEQ, C_LAT, C_LON, C_ALT, C_SPEED, C_HEADING, C_CLIMB,
       C_BATTERY, C_STATUS, C_RECV };

/* Index range scan on telemetry_drone_time, already in ORDER BY order. */
static const char sql_hist[] =
    "SELECT " ROW_COLS " FROM telemetry"
    " WHERE drone_id = ?1 AND timestamp >= ?2 AND timestamp <= ?3"
    " ORDER BY timestamp, seq LIMIT ?4";

/* Latest row of every drone, O(drones * log rows) instead of a scan: the
 * recursive CTE walks the distinct drone ids with one index seek each (a
 * "loose index scan"), then one descending seek per drone finds its latest
 * row: the highest seq (what the drone sent last, never the newest claimed
 * timestamp: see registry.h), or for a drone without seqs the last received
 * (a scan of that drone's rows). Reads telemetry, not drones, so it is
 * right after a kill -9 that happened before update_drones() ran. */
static const char sql_latest[] =
    "WITH RECURSIVE ids(id) AS ("
    "  SELECT (SELECT drone_id FROM telemetry ORDER BY drone_id LIMIT 1)"
    "  UNION ALL"
    "  SELECT (SELECT drone_id FROM telemetry WHERE drone_id > ids.id"
    "          ORDER BY drone_id LIMIT 1)"
    "  FROM ids WHERE ids.id IS NOT NULL)"
    " SELECT " ROW_COLS " FROM ids JOIN telemetry ON telemetry.rowid ="
    "  COALESCE((SELECT rowid FROM telemetry WHERE drone_id = ids.id AND seq < 0"
    "            ORDER BY seq DESC LIMIT 1),"     /* seqs >= 2^63 (stored negative) first: uint64 order */
    "           (SELECT rowid FROM telemetry WHERE drone_id = ids.id AND seq >= 0"
    "            ORDER BY seq DESC LIMIT 1),"     /* what the drone sent last (registry.h) */
    "           (SELECT rowid FROM telemetry WHERE drone_id = ids.id"
    "            ORDER BY received_at DESC, rowid DESC LIMIT 1))"   /* no seq: last received */
    " WHERE ids.id IS NOT NULL";

/* sql_latest's rule for one drone. */
static const char sql_latest_of[] =
    "SELECT " ROW_COLS " FROM telemetry WHERE rowid ="
    "  COALESCE((SELECT rowid FROM telemetry WHERE drone_id = ?1 AND seq < 0 ORDER BY seq DESC LIMIT 1),"
    "           (SELECT rowid FROM telemetry WHERE drone_id = ?1 AND seq >= 0 ORDER BY seq DESC LIMIT 1),"
    "           (SELECT rowid FROM telemetry WHERE drone_id = ?1 ORDER BY received_at DESC, rowid DESC LIMIT 1))";

/* The highest seq of one drone as uint64: seqs >= 2^63 are stored
 * negative, so the largest negative one wins when there is any. Two seeks
 * on telemetry_drone_seq (min/max optimisation), no scan. */
static const char sql_last_seq[] =
    "SELECT (SELECT max(seq) FROM telemetry WHERE drone_id = ?1 AND seq < 0),"
    "       (SELECT max(seq) FROM telemetry WHERE drone_id = ?1 AND seq >= 0)";

/* ---- helpers ------------------------------------------------------------ */

#define set_err dg__store_err   /* store.h */

/* SQLite result code -> negative errno (the store's convention). */
static int sq_errno(sqlite3 *db, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return 0;
    case SQLITE_NOMEM:    return -ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:   return -EBUSY;
    case SQLITE_FULL:     return -ENOSPC;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:     return -EACCES;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:    return -EINVAL;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:  return -EILSEQ;
    case SQLITE_CANTOPEN: {
        int e = db ? sqlite3_system_errno(db) : 0;
        return e > 0 ? -e : -EACCES;
    }
    default:              return -EIO;
    }
}

/* What a user can do about an open/setup failure, by result code. */
static const char *open_hint(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
        return "the file exists but is not a SQLite database; point --store at another file";
    case SQLITE_CORRUPT:
        return "the database is corrupt; restore it from a backup or point --store at another file";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return "another process holds a lock on it; stop that process or use another file";
    case SQLITE_FULL:
        return "the disk is full; free some space";
    default:
        return "check the directory exists and is writable";
    }
}

/* Step a statement that returns no rows, then reset it. SQLite result code. */
static int step_once(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

/* The directory must be writable even when the database exists: SQLite
 * creates the -wal and -shm files beside it. */
static int check_dir_writable(const char *dir, const char *path, char *err, size_t errlen)
{
    if (access(dir, W_OK | X_OK) == 0) return 0;
    int e = errno;
    set_err(err, errlen, "cannot open SQLite database %s: directory %s is not writable: %s "
            "(SQLite creates its -wal and -shm files there; fix the permissions or "
            "choose another path)", path, dir, strerror(e));
    return -e;
}

/* mkdir -p of the directory that holds path, then check it is writable.
 * 0 or negative errno. */
static int make_parent_dirs(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof dir) {
        set_err(err, errlen, "SQLite database path is too long (%zu bytes, at most %d)",
                n, PATH_MAX - 1);
        return -ENAMETOOLONG;
    }
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash) return check_dir_writable(".", path, err, errlen);   /* "file.db" */
    if (slash == dir) return check_dir_writable("/", path, err, errlen);
    *slash = '\0';
    for (char *p = dir + 1; ; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            set_err(err, errlen, "cannot create directory %s for the SQLite database %s: %s "
                    "(check the permissions of its parent)", dir, path, strerror(e));
            return -e;
        }
        *p = c;
        if (c == '\0') break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "cannot create the SQLite database %s: %s is not a directory",
                path, dir);
        return -ENOTDIR;
    }
    return check_dir_writable(dir, path, err, errlen);
}

/* ---- records <-> rows --------------------------------------------------- */

static inline void bind_opt(sqlite3_stmt *st, int col, const dg_record_t *r,
                            uint32_t flag, double v)
{
    if ((r->flags & flag) && !isnan(v)) sqlite3_bind_double(st, col, v);
    else sqlite3_bind_null(st, col);
}

static inline int id_len(const dg_record_t *r)
{
    /* strnlen rather than drone_id_len: a producer that forgot the length
     * must not store an empty id. 64 bytes, noise next to the INSERT. */
    return (int)strnlen(r->drone_id, DG_DRONE_ID_MAX);
}

static inline void bind_status(sqlite3_stmt *st, int col, const dg_record_t *r)
{
    if (r->flags & DG_REC_HAS_STATUS)
        sqlite3_bind_text(st, col, r->status, (int)strnlen(r->status, DG_STATUS_MAX),
                          SQLITE_STATIC);
    else
        sqlite3_bind_null(st, col);
}

/* All binds are SQLITE_STATIC: the record outlives the step. */
static inline void bind_telemetry(sqlite3_stmt *st, const dg_record_t *r)
{
    sqlite3_bind_text(st, 1, r->drone_id, id_len(r), SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->ts_ms);
    if (r->flags & DG_REC_HAS_SEQ) sqlite3_bind_int64(st, 3, (sqlite3_int64)r->seq);
    else sqlite3_bind_null(st, 3);
    sqlite3_bind_double(st, 4, r->lat);
    sqlite3_bind_double(st, 5, r->lon);
    sqlite3_bind_double(st, 6, r->alt);
    bind_opt(st, 7, r, DG_REC_HAS_SPEED, r->speed);
    bind_opt(st, 8, r, DG_REC_HAS_HEADING, r->heading);
    bind_opt(st, 9, r, DG_REC_HAS_CLIMB, r->climb);
    bind_opt(st, 10, r, DG_REC_HAS_BATTERY, r->battery);
    bind_status(st, 11, r);
    sqlite3_bind_int64(st, 12, r->recv_us / 1000);
}

static inline void bind_drone(sqlite3_stmt *st, const dg_record_t *r)
{
    sqlite3_bind_text(st, 1, r->drone_id, id_len(r), SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->recv_us / 1000);
    sqlite3_bind_double(st, 3, r->lat);
    sqlite3_bind_double(st, 4, r->lon);
    sqlite3_bind_double(st, 5, r->alt);
    bind_opt(st, 6, r, DG_REC_HAS_SPEED, r->speed);
    bind_opt(st, 7, r, DG_REC_HAS_HEADING, r->heading);
    bind_opt(st, 8, r, DG_REC_HAS_CLIMB, r->climb);
    bind_opt(st, 9, r, DG_REC_HAS_BATTERY, r->battery);
    bind_status(st, 10, r);
    if (r->flags & DG_REC_HAS_SEQ) sqlite3_bind_int64(st, 11, (sqlite3_int64)r->seq);
    else sqlite3_bind_null(st, 11);
}

static inline int col_opt(sqlite3_stmt *st, int col, double *v)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) return 0;
    *v = sqlite3_column_double(st, col);
    return 1;
}

/* One ROW_COLS row -> record; only present fields get their flag. */
static void row_to_record(sqlite3_stmt *st, dg_record_t *r)
{
    dg_record_init(r);
    const unsigned char *id = sqlite3_column_text(st, C_ID);
    int n = sqlite3_column_bytes(st, C_ID);
    if (id) {
        if (n > DG_DRONE_ID_MAX) n = DG_DRONE_ID_MAX;
        memcpy(r->drone_id, id, (size_t)n);
        r->drone_id[n] = '\0';
        r->drone_id_len = (uint8_t)n;
    }
    r->ts_ms = sqlite3_column_int64(st, C_TS);
    r->flags |= DG_REC_HAS_TS;
    if (sqlite3_column_type(st, C_SEQ) != SQLITE_NULL) {
        r->seq = (uint64_t)sqlite3_column_int64(st, C_SEQ);
        r->flags |= DG_REC_HAS_SEQ;
    }
    r->lat = sqlite3_column_double(st, C_LAT);
    r->lon = sqlite3_column_double(st, C_LON);
    r->alt = sqlite3_column_double(st, C_ALT);
    if (col_opt(st, C_SPEED, &r->speed)) r->flags |= DG_REC_HAS_SPEED;
    if (col_opt(st, C_HEADING, &r->heading)) r->flags |= DG_REC_HAS_HEADING;
    if (col_opt(st, C_CLIMB, &r->climb)) r->flags |= DG_REC_HAS_CLIMB;
    if (col_opt(st, C_BATTERY, &r->battery)) r->flags |= DG_REC_HAS_BATTERY;
    if (sqlite3_column_type(st, C_STATUS) != SQLITE_NULL) {
        const unsigned char *s = sqlite3_column_text(st, C_STATUS);
        n = sqlite3_column_bytes(st, C_STATUS);
        if (s) {
            if (n > DG_STATUS_MAX) n = DG_STATUS_MAX;
            memcpy(r->status, s, (size_t)n);
            r->status[n] = '\0';
            r->status_len = (uint8_t)n;
            r->flags |= DG_REC_HAS_STATUS;
        }
    }
    int64_t recv_ms = sqlite3_column_int64(st, C_RECV);
    if (recv_ms > INT64_MAX / 1000) r->recv_us = INT64_MAX;      /* hand-edited rows */
    else if (recv_ms < INT64_MIN / 1000) r->recv_us = INT64_MIN;
    else r->recv_us = recv_ms * 1000;
}

/* ---- reader pool -------------------------------------------------------- */

static void rd_close(rd_conn_t *c)
{
    sqlite3_finalize(c->hist);
    sqlite3_finalize(c->latest);
    sqlite3_finalize(c->latest_of);
    sqlite3_finalize(c->ping);
    sqlite3_finalize(c->last_seq);
    sqlite3_close(c->db);
    c->hist = c->latest = c->latest_of = c->ping = c->last_seq = NULL;
    c->db = NULL;
}

static int rd_open(dg_store_t *s, rd_conn_t *c, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(s->path, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, s->vfs);
    if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    if (rc == SQLITE_OK) rc = sqlite3_exec(c->db, READER_PRAGMAS, NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = prepare(c->db, sql_hist, &c->hist);
    if (rc == SQLITE_OK) rc = prepare(c->db, sql_latest, &c->latest);
    if (rc == SQLITE_OK) rc = prepare(c->db, sql_latest_of, &c->latest_of);
    if (rc == SQLITE_OK) rc = prepare(c->db, "PRAGMA user_version", &c->ping);
    if (rc == SQLITE_OK) rc = prepare(c->db, sql_last_seq, &c->last_seq);
    if (rc == SQLITE_OK) return 0;
    int e = sq_errno(c->db, rc);
    set_err(err, errlen, "cannot open a read connection to SQLite database %s: %s (%s)",
            s->path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc), open_hint(rc));
    rd_close(c);
    return e ? e : -EIO;
}

/* Take a reader: an open idle one if any, else open a new one, else wait. */
static int rd_acquire(dg_store_t *s, rd_conn_t **out, char *err, size_t errlen)
{
    rd_conn_t *c = NULL;
    pthread_mutex_lock(&s->rd_mu);
    for (;;) {
        rd_conn_t *closed = NULL;
        for (int i = 0; i < RD_MAX; i++) {
            if (s->rd[i].busy) continue;
            if (s->rd[i].db) { c = &s->rd[i]; break; }
            if (!closed) closed = &s->rd[i];
        }
        if (!c) c = closed;
        if (c) break;
        pthread_cond_wait(&s->rd_cv, &s->rd_mu);
    }
    c->busy = 1;
    pthread_mutex_unlock(&s->rd_mu);

    if (!c->db) {   /* open outside the lock: it does file I/O */
        int rc = rd_open(s, c, err, errlen);
        if (rc < 0) {
            pthread_mutex_lock(&s->rd_mu);
            c->busy = 0;
            pthread_cond_signal(&s->rd_cv);
            pthread_mutex_unlock(&s->rd_mu);
            return rc;
        }
    }
    *out = c;
    return 0;
}

static void rd_release(dg_store_t *s, rd_conn_t *c)
{
    pthread_mutex_lock(&s->rd_mu);
    c->busy = 0;
    pthread_cond_signal(&s->rd_cv);
    pthread_mutex_unlock(&s->rd_mu);
}

/* ---- checkpointer ------------------------------------------------------- */

static void *ck_main(void *ud)
{
    dg_store_t *s = ud;
    pthread_mutex_lock(&s->ck_mu);
    while (!s->ck_stop) {
        if (!s->ck_kick) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += CK_IDLE_SEC;
            pthread_cond_timedwait(&s->ck_cv, &s->ck_mu, &until);
            if (s->ck_stop) break;
        }
        s->ck_kick = 0;
        pthread_mutex_unlock(&s->ck_mu);
        /* Errors (disk full, I/O) are not fatal here: the WAL keeps the
         * committed data, the writer's own write or RESTART reports them. */
        pthread_mutex_lock(&s->ck_run_mu);
        sqlite3_wal_checkpoint_v2(s->ck_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_unlock(&s->ck_run_mu);
        pthread_mutex_lock(&s->ck_mu);
    }
    pthread_mutex_unlock(&s->ck_mu);
    return NULL;
}

/* Writer thread, inside COMMIT: remember how big the WAL is. */
static int on_wal_commit(void *ud, sqlite3 *db, const char *name, int frames)
{
    ((dg_store_t *)ud)->wal_frames = frames;
    return SQLITE_OK;
}

/* Writer thread, after a successful COMMIT.
 *
 * The writer's RESTART stalls every pending ack for as long as it copies
 * what the checkpointer has not copied yet, plus an fsync of the database
 * (measured at 200 drones: 20-90 ms, a few times a second at 150k rows/s);
 * before it also waited for a checkpointer pass in progress (up to 280 ms
 * seen). So, in the last step before the limit the checkpointer is woken
 * after every commit (it trails the writer by about one transaction), and
 * at the limit the writer restarts only when no pass is running: while one
 * runs it goes on committing (the pass copies what the restart would) and
 * tries again after the next commit. Once a restart has been due for
 * another step of growth it waits for the pass as before, so the WAL
 * stays bounded (limit + one step + one transaction). */
static void after_commit(dg_store_t *s)
{
    int frames = s->wal_frames;
    if (frames < s->wal_kicked) {                          /* the WAL restarted */
        s->wal_kicked = 0;
        s->restart_at = 0;
        s->restart_due = 0;
    }
    if (frames >= s->ck_max && frames >= s->restart_at) {
        /* Copy the rest and make the next commit restart the WAL, then
         * wait a little for readers on old frames. If they stay (a slow
         * API client), try again only after another step of growth, so
         * such a reader costs the writer one short wait per step, not per
         * batch. */
        if (!s->restart_due) s->restart_due = frames;
        if (frames - s->restart_due < s->ck_step) {
            if (pthread_mutex_trylock(&s->ck_run_mu) != 0) return;   /* a pass is copying */
        } else {
            pthread_mutex_lock(&s->ck_run_mu);
        }
        sqlite3_busy_timeout(s->w, CK_RESTART_WAIT_MS);
        int rc = sqlite3_wal_checkpoint_v2(s->w, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
        sqlite3_busy_timeout(s->w, BUSY_TIMEOUT_MS);
        pthread_mutex_unlock(&s->ck_run_mu);
        s->restarts++;
        s->wal_kicked = frames;
        s->restart_due = 0;
        s->restart_at = rc == SQLITE_OK ? 0 : frames + s->ck_step;
    } else if (frames >= s->ck_max - s->ck_step && frames < s->ck_max ? frames > s->wal_kicked
                                                                      : frames - s->wal_kicked >= s->ck_step) {
        s->wal_kicked = frames;
        s->kicks++;
        pthread_mutex_lock(&s->ck_mu);
        s->ck_kick = 1;
        pthread_cond_signal(&s->ck_cv);
        pthread_mutex_unlock(&s->ck_mu);
    }
}

/* Tests only (not in store.h): lower the checkpoint thresholds. */
void dg__sqlite_set_wal_limits(dg_store_t *s, int step_frames, int max_frames);
void dg__sqlite_set_wal_limits(dg_store_t *s, int step_frames, int max_frames)
{
    s->ck_step = step_frames;
    s->ck_max = max_frames;
}

/* Tests only: hold the checkpointer's run lock (as a pass in progress
 * does); the WAL's frames after the last commit; RESTARTs run and
 * checkpointer wake-ups so far. */
void dg__sqlite_hold_checkpoint(dg_store_t *s, int hold);
void dg__sqlite_hold_checkpoint(dg_store_t *s, int hold)
{
    if (hold) pthread_mutex_lock(&s->ck_run_mu);
    else pthread_mutex_unlock(&s->ck_run_mu);
}
int dg__sqlite_wal_frames(dg_store_t *s);
int dg__sqlite_wal_frames(dg_store_t *s) { return s->wal_frames; }
unsigned long dg__sqlite_restarts(dg_store_t *s);
unsigned long dg__sqlite_restarts(dg_store_t *s) { return s->restarts; }
unsigned long dg__sqlite_kicks(dg_store_t *s);
unsigned long dg__sqlite_kicks(dg_store_t *s) { return s->kicks; }

static int ck_start(dg_store_t *s, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(s->path, &s->ck_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                             s->vfs);
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->ck_db, "PRAGMA cache_size = -1024", NULL, NULL, NULL);
    /* Read the file once: until a connection has read it, it does not know
     * the database is in WAL mode and its checkpoints are silent no-ops. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->ck_db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int e = sq_errno(s->ck_db, rc);
        set_err(err, errlen, "cannot open the checkpoint connection to SQLite database %s: "
                "%s (%s)", s->path, s->ck_db ? sqlite3_errmsg(s->ck_db) : sqlite3_errstr(rc),
                open_hint(rc));
        return e ? e : -EIO;
    }
    /* The thread takes no signals (the store may be opened before the
     * process blocks SIGTERM for its sigwait(): a SIGTERM delivered here
     * would kill the process instead of draining it). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int e = pthread_create(&s->ck_thread, NULL, ck_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        set_err(err, errlen, "cannot start the SQLite checkpoint thread: %s", strerror(e));
        return -e;
    }
    s->ck_started = 1;
    return 0;
}

static void ck_stop(dg_store_t *s)
{
    if (s->ck_started) {
        pthread_mutex_lock(&s->ck_mu);
        s->ck_stop = 1;
        pthread_cond_signal(&s->ck_cv);
        pthread_mutex_unlock(&s->ck_mu);
        pthread_join(s->ck_thread, NULL);
        s->ck_started = 0;
    }
    sqlite3_close(s->ck_db);
    s->ck_db = NULL;
}

/* ---- open / migrate / close --------------------------------------------- */

static int migrate(dg_store_t *s, char *err, size_t errlen)
{
    sqlite3 *db = s->w;
    sqlite3_stmt *st = NULL;
    int version = 0, e = 0;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) goto sqlerr;
    version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (version > SCHEMA_VERSION || version < 0) {
        set_err(err, errlen, "SQLite database %s has schema version %d but this dronegate "
                "knows only up to %d (upgrade dronegate or point --store at another file)",
                s->path, version, SCHEMA_VERSION);
        e = -EPROTO;
        goto out;
    }
    for (int v = version; v < SCHEMA_VERSION; v++) {
        rc = sqlite3_exec(db, migrations[v], NULL, NULL, NULL);
        if (rc != SQLITE_OK) goto sqlerr;
    }
    if (version != SCHEMA_VERSION) {
        char sql[64];
        int n = snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        if (n < 0 || (size_t)n >= sizeof sql) { e = -EOVERFLOW; goto out; }
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) goto sqlerr;
    }
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    return 0;

sqlerr:
    e = sq_errno(db, rc);
    if (!e) e = -EIO;
    set_err(err, errlen, "cannot create the schema in SQLite database %s: %s (%s)",
            s->path, sqlite3_errmsg(db), open_hint(rc));
out:
    sqlite3_finalize(st);
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return e;
}

static void sq_close(dg_store_t *s)
{
    if (!s) return;
    /* Checkpointer and readers first: the last connection to close
     * checkpoints the WAL and deletes it; let that be the writer. */
    ck_stop(s);
    for (int i = 0; i < RD_MAX; i++) rd_close(&s->rd[i]);
    sqlite3_finalize(s->w_begin);
    sqlite3_finalize(s->w_commit);
    sqlite3_finalize(s->w_rollback);
    sqlite3_finalize(s->w_insert);
    sqlite3_finalize(s->w_seq_ts);
    sqlite3_finalize(s->w_upsert);
    sqlite3_finalize(s->w_cmd);
    sqlite3_close(s->w);
    free(s->ord);
    if (s->mu_init) {
        pthread_cond_destroy(&s->rd_cv);
        pthread_mutex_destroy(&s->rd_mu);
        pthread_cond_destroy(&s->ck_cv);
        pthread_mutex_destroy(&s->ck_mu);
        pthread_mutex_destroy(&s->ck_run_mu);
    }
    free(s->path);
    free(s);
}

/* "sqlite:PATH"; also accepts the URL-ish "sqlite://PATH" (so
 * sqlite:///var/lib/x.db is /var/lib/x.db). */
static const char *uri_path(const char *uri)
{
    const char *p = strchr(uri, ':');
    if (!p) return NULL;
    p++;
    if (p[0] == '/' && p[1] == '/') p += 2;
    return p;
}

/* Process-wide SQLite settings, before the library initialises (the first
 * open or VFS registration). Memory statistics off: with them on (SQLite's
 * default) every sqlite3_malloc/free takes one global mutex, which the writer
 * and the checkpointer then contend for (perf of the writer at window 256,
 * half rate: pthread_mutex_lock/unlock ~5 % of its CPU). Nothing here reads
 * sqlite3_memory_used(). If SQLite was already initialised by someone else in
 * the process, sqlite3_config() says SQLITE_MISUSE and the default stays. */
static pthread_once_t sq_lib_once = PTHREAD_ONCE_INIT;
static void sq_lib_init(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int sq_open(const char *uri, const dg_store_config_t *cfg, dg_store_t **out,
                   char *err, size_t errlen)
{
    dg_store_t *s = NULL;
    const char *what = "open";
    int rc = SQLITE_OK, e = 0;
    *out = NULL;

    const char *path = uri ? uri_path(uri) : NULL;
    if (!path || !*path) {
        set_err(err, errlen, "store URI '%s' has no database path (use e.g. "
                "sqlite:./data/dronegate.db)", uri ? uri : "");
        return -EINVAL;
    }
    if (strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) {
        set_err(err, errlen, "store URI '%s' is not supported: give a file path "
                "(e.g. sqlite:./data/dronegate.db), or use null: to store nothing", uri);
        return -EINVAL;
    }
    pthread_once(&sq_lib_once, sq_lib_init);
    if (!sqlite3_threadsafe()) {
        set_err(err, errlen, "the SQLite library was built without thread support "
                "(SQLITE_THREADSAFE=0); install a standard libsqlite3");
        return -ENOTSUP;
    }

    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "cannot open SQLite database %s: it is a directory "
                "(give a file name, e.g. sqlite:%s/dronegate.db)", path, path);
        return -EISDIR;
    }
    e = make_parent_dirs(path, err, errlen);
    if (e < 0) return e;

    s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        set_err(err, errlen, "cannot open SQLite database %s: out of memory", path);
        return -ENOMEM;
    }
    pthread_mutex_init(&s->rd_mu, NULL);
    pthread_cond_init(&s->rd_cv, NULL);
    pthread_mutex_init(&s->ck_mu, NULL);
    pthread_mutex_init(&s->ck_run_mu, NULL);
    {
        pthread_condattr_t ca;          /* timed waits on the monotonic clock */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->ck_cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    s->mu_init = 1;
    s->ck_step = CK_STEP_FRAMES;
    s->ck_max = CK_MAX_FRAMES;

    /* every connection through dg-walbuf (WAL appends coalesced; sqlite_walbuf.h);
     * DRONEGATE_SQLITE_VFS=default opens with SQLite's own VFS (comparisons) */
    {
        const char *v = getenv("DRONEGATE_SQLITE_VFS");
        s->vfs = v && !strcmp(v, "default") ? NULL : dg_sqlite_walbuf_vfs();
    }
    rc = sqlite3_open_v2(path, &s->w,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, s->vfs);
    if (rc != SQLITE_OK) goto sqlerr;
    rc = sqlite3_busy_timeout(s->w, BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK) goto sqlerr;

    /* page_size only takes effect while the file is still empty. */
    rc = sqlite3_exec(s->w, "PRAGMA page_size = " DG__STR(PAGE_SIZE), NULL, NULL, NULL);
    if (rc != SQLITE_OK) goto sqlerr;

    /* The first statement that reads the file: a non-database shows here. */
    {
        sqlite3_stmt *jm = NULL;
        rc = sqlite3_prepare_v2(s->w, "PRAGMA journal_mode = WAL", -1, &jm, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_step(jm);
        if (rc == SQLITE_ROW) {
            const char *mode = (const char *)sqlite3_column_text(jm, 0);
            if (!mode || strcasecmp(mode, "wal") != 0) {
                set_err(err, errlen, "cannot use SQLite database %s: WAL journal mode "
                        "is not available there (got '%s'; a network file system? "
                        "use a local disk)", path, mode ? mode : "?");
                sqlite3_finalize(jm);
                e = -ENOTSUP;
                goto fail;
            }
            rc = SQLITE_OK;
        }
        sqlite3_finalize(jm);
        if (rc != SQLITE_OK) goto sqlerr;
    }
    what = "configure";
    rc = sqlite3_exec(s->w, cfg && cfg->fsync ? "PRAGMA synchronous = FULL"
                                              : "PRAGMA synchronous = NORMAL",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    rc = sqlite3_exec(s->w, WRITER_PRAGMAS, NULL, NULL, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    sqlite3_wal_hook(s->w, on_wal_commit, s);   /* replaces autocheckpoint */

    e = migrate(s, err, errlen);
    if (e < 0) goto fail;

    what = "prepare statements for";
    if ((rc = prepare(s->w, "BEGIN IMMEDIATE", &s->w_begin)) != SQLITE_OK ||
        (rc = prepare(s->w, "COMMIT", &s->w_commit)) != SQLITE_OK ||
        (rc = prepare(s->w, "ROLLBACK", &s->w_rollback)) != SQLITE_OK ||
        (rc = prepare(s->w, sql_insert, &s->w_insert)) != SQLITE_OK ||
        (rc = prepare(s->w, sql_seq_ts, &s->w_seq_ts)) != SQLITE_OK ||
        (rc = prepare(s->w, sql_upsert, &s->w_upsert)) != SQLITE_OK ||
        (rc = prepare(s->w, sql_cmd, &s->w_cmd)) != SQLITE_OK)
        goto sqlerr;

    if (stat(path, &st) != 0) {
        e = -errno;
        set_err(err, errlen, "cannot open SQLite database %s: %s", path, strerror(-e));
        goto fail;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;

    /* Open one reader now so a read problem shows at start, not at the
     * first API call. */
    rd_conn_t *c;
    e = rd_acquire(s, &c, err, errlen);
    if (e < 0) goto fail;
    rd_release(s, c);
    e = ck_start(s, err, errlen);
    if (e < 0) goto fail;

    *out = s;
    return 0;

sqlerr:
    e = sq_errno(s->w, rc);
    if (!e) e = -EIO;
    set_err(err, errlen, "cannot %s SQLite database %s: %s (%s)", what, path,
            s->w ? sqlite3_errmsg(s->w) : sqlite3_errstr(rc), open_hint(rc));
fail:
    sq_close(s);
    return e;
}

/* ---- writer ------------------------------------------------------------- */

/* ROLLBACK if a transaction is still open after a failure. */
static void rollback(dg_store_t *s)
{
    if (!sqlite3_get_autocommit(s->w)) step_once(s->w_rollback);
}

/* After an INSERT that did nothing (the (drone_id, seq) is taken, by an
 * earlier batch or earlier in this one: the same transaction sees it): a
 * reused seq when the stored timestamp differs and r's came from the drone.
 * 1 reused, 0 a redelivery, or a SQLite error code < 0. */
static int seq_reused(dg_store_t *s, const dg_record_t *r)
{
    if (!(r->flags & DG_REC_HAS_TS)) return 0;
    sqlite3_stmt *st = s->w_seq_ts;
    sqlite3_bind_text(st, 1, r->drone_id, id_len(r), SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)r->seq);
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) != r->ts_ms
            : rc == SQLITE_DONE ? 0 : -rc;
    sqlite3_reset(st);
    return out;
}

/* Insertion order of one transaction: grouped by drone, each drone's records
 * in the order they came (a stable sort on (hash of drone_id, position)).
 * Both telemetry indexes lead with drone_id, so arrival order (drones
 * interleaved) sends every insert to another leaf of each index; grouped,
 * a drone's run of inserts stays on the same leaves, hot in the CPU cache.
 * The rowid order within a drone is unchanged (the no-seq "latest" query
 * orders by rowid within a drone only), and so is which of two records with
 * the same (drone_id, seq) is inserted first. Measured: docs/stores-notes.md
 * section 8. A hash collision only interleaves two drones' runs. */
struct ins_ord { uint64_t key; size_t i; };

static int ins_ord_cmp(const void *a, const void *b)
{
    const struct ins_ord *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* s->ord[0..n) sorted; -ENOMEM when it cannot grow (caller: arrival order) */
static int ins_order(dg_store_t *s, const dg_record_t *recs, size_t n)
{
    if (n > s->ord_cap) {
        size_t cap = n < 1024 ? 1024 : n + n / 2;
        struct ins_ord *o = realloc(s->ord, cap * sizeof *o);
        if (!o) return -ENOMEM;
        s->ord = o;
        s->ord_cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        s->ord[i].key = dg_fnv1a64(recs[i].drone_id, recs[i].drone_id_len);
        s->ord[i].i = i;
    }
    qsort(s->ord, n, sizeof *s->ord, ins_ord_cmp);
    return 0;
}

static int sq_write_batch(dg_store_t *s, dg_record_t *recs, size_t n,
                          char *err, size_t errlen)
{
    if (n == 0) return 0;
    const struct ins_ord *ord = ins_order(s, recs, n) == 0 ? s->ord : NULL;
    int rc = step_once(s->w_begin);
    if (rc != SQLITE_DONE) {
        set_err(err, errlen, "SQLite %s: cannot begin a transaction: %s", s->path,
                sqlite3_errmsg(s->w));
        goto fail;
    }
    sqlite3_stmt *st = s->w_insert;
    for (size_t j = 0; j < n; j++) {
        size_t i = ord ? ord[j].i : j;
        dg_record_t *r = &recs[i];
        r->flags &= ~DG_REC_REJECTED_REUSED;
        bind_telemetry(st, r);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            set_err(err, errlen, "SQLite %s: insert of drone %.64s seq %" PRIu64
                    " (row %zu of %zu) failed: %s", s->path, r->drone_id,
                    (r->flags & DG_REC_HAS_SEQ) ? r->seq : 0, i + 1, n,
                    sqlite3_errmsg(s->w));
            sqlite3_reset(st);
            goto fail;
        }
        sqlite3_reset(st);
        if ((r->flags & DG_REC_HAS_SEQ) && sqlite3_changes(s->w) == 0) {
            int k = seq_reused(s, r);
            if (k < 0) {
                rc = -k;
                set_err(err, errlen, "SQLite %s: reading back drone %.64s seq %" PRIu64
                        " failed: %s", s->path, r->drone_id, r->seq, sqlite3_errmsg(s->w));
                goto fail;
            }
            if (k) r->flags |= DG_REC_REJECTED_REUSED;
        }
    }
    rc = step_once(s->w_commit);
    if (rc != SQLITE_DONE) {
        set_err(err, errlen, "SQLite %s: commit of %zu rows failed: %s", s->path, n,
                sqlite3_errmsg(s->w));
        goto fail;
    }
    after_commit(s);
    return 0;

fail: {
        int e = sq_errno(s->w, rc);
        rollback(s);
        return e ? e : -EIO;
    }
}

static int sq_update_drones(dg_store_t *s, const dg_record_t *last, size_t n,
                            char *err, size_t errlen)
{
    if (n == 0) return 0;
    int rc = step_once(s->w_begin);
    if (rc != SQLITE_DONE) {
        set_err(err, errlen, "SQLite %s: cannot begin a transaction: %s", s->path,
                sqlite3_errmsg(s->w));
        goto fail;
    }
    sqlite3_stmt *st = s->w_upsert;
    for (size_t i = 0; i < n; i++) {
        bind_drone(st, &last[i]);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            set_err(err, errlen, "SQLite %s: update of drone %.64s failed: %s", s->path,
                    last[i].drone_id, sqlite3_errmsg(s->w));
            sqlite3_reset(st);
            goto fail;
        }
        sqlite3_reset(st);
    }
    rc = step_once(s->w_commit);
    if (rc != SQLITE_DONE) {
        set_err(err, errlen, "SQLite %s: commit of %zu drone updates failed: %s", s->path,
                n, sqlite3_errmsg(s->w));
        goto fail;
    }
    after_commit(s);
    return 0;

fail: {
        int e = sq_errno(s->w, rc);
        rollback(s);
        return e ? e : -EIO;
    }
}

/* One command row, in its own transaction (commands are rare). Status is
 * stored by name ("pending", "sent", ...), an empty message as NULL. */
static int sq_put_command(dg_store_t *s, const struct dg_command *c, char *err, size_t errlen)
{
    sqlite3_stmt *st = s->w_cmd;
    size_t msg_len = strnlen(c->message, DG_CMD_MSG_MAX);
    sqlite3_bind_text(st, 1, c->id, (int)strnlen(c->id, DG_CMD_ID_LEN), SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->drone_id, (int)strnlen(c->drone_id, DG_DRONE_ID_MAX),
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->name, (int)strnlen(c->name, DG_CMD_NAME_MAX), SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->args, (int)strnlen(c->args, DG_CMD_ARGS_MAX), SQLITE_STATIC);
    sqlite3_bind_text(st, 5, dg_command_status_name(c->status), -1, SQLITE_STATIC);
    if (msg_len) sqlite3_bind_text(st, 6, c->message, (int)msg_len, SQLITE_STATIC);
    else sqlite3_bind_null(st, 6);
    sqlite3_bind_int64(st, 7, c->created_ms);
    sqlite3_bind_int64(st, 8, c->updated_ms);
    int rc = step_once(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        set_err(err, errlen, "SQLite %s: storing command %.32s failed: %s", s->path, c->id,
                sqlite3_errmsg(s->w));
        int e = sq_errno(s->w, rc);
        return e ? e : -EIO;
    }
    after_commit(s);
    return 0;
}

/* ---- readers ------------------------------------------------------------ */

/* Step st to the end, one callback per row. The callback may stop early
 * (that is not an error). Resets st in every case. */
static int run_rows(dg_store_t *s, sqlite3 *db, sqlite3_stmt *st, dg_record_cb cb, void *ud,
                    const char *what, char *err, size_t errlen)
{
    dg_record_t rec;
    int rc, e = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row_to_record(st, &rec);
        if (cb(ud, &rec)) { rc = SQLITE_DONE; break; }
    }
    if (rc != SQLITE_DONE) {
        e = sq_errno(db, rc);
        if (!e) e = -EIO;
        set_err(err, errlen, "SQLite %s: %s failed: %s", s->path, what, sqlite3_errmsg(db));
    }
    sqlite3_reset(st);          /* ends the read transaction */
    sqlite3_clear_bindings(st); /* no dangling SQLITE_STATIC pointer */
    return e;
}

static int sq_query(dg_store_t *s, const dg_query_t *q, dg_record_cb cb, void *ud,
                    char *err, size_t errlen)
{
    if (!q || !q->drone_id || !cb || q->limit == 0) {
        set_err(err, errlen, "history query needs a drone id, a callback and a limit > 0");
        return -EINVAL;
    }
    rd_conn_t *c;
    int e = rd_acquire(s, &c, err, errlen);
    if (e < 0) return e;
    sqlite3_stmt *st = c->hist;
    sqlite3_bind_text(st, 1, q->drone_id, (int)strnlen(q->drone_id, DG_DRONE_ID_MAX + 1),
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, q->from_ms);
    sqlite3_bind_int64(st, 3, q->to_ms);
    sqlite3_bind_int64(st, 4, q->limit > (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)q->limit);
    e = run_rows(s, c->db, st, cb, ud, "history query", err, errlen);
    rd_release(s, c);
    return e;
}

static int sq_latest(dg_store_t *s, dg_record_cb cb, void *ud, char *err, size_t errlen)
{
    rd_conn_t *c;
    int e = rd_acquire(s, &c, err, errlen);
    if (e < 0) return e;
    e = run_rows(s, c->db, c->latest, cb, ud, "latest-state query", err, errlen);
    rd_release(s, c);
    return e;
}

static int sq_latest_of(dg_store_t *s, const char *drone_id, dg_record_cb cb, void *ud, char *err, size_t errlen)
{
    rd_conn_t *c;
    int e = rd_acquire(s, &c, err, errlen);
    if (e < 0) return e;
    sqlite3_bind_text(c->latest_of, 1, drone_id, (int)strnlen(drone_id, DG_DRONE_ID_MAX), SQLITE_STATIC);
    e = run_rows(s, c->db, c->latest_of, cb, ud, "latest-state query", err, errlen);
    rd_release(s, c);
    return e;
}

static int sq_last_seq(dg_store_t *s, const char *drone_id, uint64_t *seq, char *err, size_t errlen)
{
    rd_conn_t *c;
    int e = rd_acquire(s, &c, err, errlen);
    if (e < 0) return e;
    sqlite3_stmt *st = c->last_seq;
    sqlite3_bind_text(st, 1, drone_id, (int)strnlen(drone_id, DG_DRONE_ID_MAX + 1), SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int col = sqlite3_column_type(st, 0) != SQLITE_NULL ? 0 : 1;
        if (sqlite3_column_type(st, col) == SQLITE_NULL) {
            e = 1;
        } else {
            *seq = (uint64_t)sqlite3_column_int64(st, col);
            e = 0;
        }
    } else {
        e = sq_errno(c->db, rc);
        if (!e) e = -EIO;
        set_err(err, errlen, "SQLite %s: reading the last seq of drone %.64s failed: %s", s->path,
                drone_id, sqlite3_errmsg(c->db));
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    rd_release(s, c);
    return e;
}

/* Rare (a GET of a command the process does not remember): prepared per call. */
static int sq_get_command(dg_store_t *s, const char *id, struct dg_command *out, char *err, size_t errlen)
{
    rd_conn_t *c;
    int e = rd_acquire(s, &c, err, errlen);
    if (e < 0) return e;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "SELECT id, drone_id, name, args, status, message, created_at, updated_at "
                                       "FROM commands WHERE id = ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW) {
        const char *col[6];
        size_t n[6];
        for (int i = 0; i < 6; i++) {
            col[i] = (const char *)sqlite3_column_text(st, i);
            n[i] = col[i] ? (size_t)sqlite3_column_bytes(st, i) : 0;
        }
        dg__command_from_row(out, col, n, sqlite3_column_int64(st, 6), sqlite3_column_int64(st, 7));
        e = 0;
    } else if (rc == SQLITE_DONE) {
        e = 1;
    } else {
        set_err(err, errlen, "SQLite %s: reading command %.32s failed: %s", s->path, id, sqlite3_errmsg(c->db));
        e = -EIO;
    }
    sqlite3_finalize(st);
    rd_release(s, c);
    return e;
}

static int sq_open_commands(dg_store_t *s, int64_t since_ms, int (*cb)(void *ud, const struct dg_command *c),
                            void *ud, char *err, size_t errlen)
{
    rd_conn_t *c;
    int e = rd_acquire(s, &c, err, errlen);
    if (e < 0) return e;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "SELECT id, drone_id, name, args, status, message, created_at, updated_at "
                                       "FROM commands WHERE status IN ('pending', 'sent', 'accepted') "
                                       "AND created_at >= ? ORDER BY created_at, id", -1, &st, NULL);
    if (rc == SQLITE_OK) sqlite3_bind_int64(st, 1, since_ms);
    dg_command_t *cmd = rc == SQLITE_OK ? malloc(sizeof *cmd) : NULL;
    e = 0;
    while (cmd && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *col[6];
        size_t n[6];
        for (int i = 0; i < 6; i++) {
            col[i] = (const char *)sqlite3_column_text(st, i);
            n[i] = col[i] ? (size_t)sqlite3_column_bytes(st, i) : 0;
        }
        dg__command_from_row(cmd, col, n, sqlite3_column_int64(st, 6), sqlite3_column_int64(st, 7));
        if (cb(ud, cmd)) break;
    }
    if (!cmd || (rc != SQLITE_DONE && rc != SQLITE_ROW)) {
        set_err(err, errlen, "SQLite %s: reading the open commands failed: %s", s->path,
                cmd ? sqlite3_errmsg(c->db) : "out of memory");
        e = -EIO;
    }
    free(cmd);
    sqlite3_finalize(st);
    rd_release(s, c);
    return e;
}

/* The database answers a read, and the file at the path is still the one
 * we opened (a deleted or replaced file would take writes into the void). */
static int sq_ping(dg_store_t *s)
{
    struct stat st;
    if (stat(s->path, &st) != 0) return -errno;
    if (st.st_dev != s->dev || st.st_ino != s->ino) return -ESTALE;
    rd_conn_t *c;
    int e = rd_acquire(s, &c, NULL, 0);
    if (e < 0) return e;
    int rc = sqlite3_step(c->ping);
    if (rc == SQLITE_ROW) rc = SQLITE_DONE;
    e = rc == SQLITE_DONE ? 0 : sq_errno(c->db, rc);
    sqlite3_reset(c->ping);
    rd_release(s, c);
    return e;
}

const dg_store_ops_t dg_store_sqlite_ops = {
    .scheme        = "sqlite",
    .durable       = true,
    .open          = sq_open,
    .write_batch   = sq_write_batch,
    .update_drones = sq_update_drones,
    .query         = sq_query,
    .latest        = sq_latest,
    .latest_of     = sq_latest_of,
    .put_command   = sq_put_command,
    .get_command   = sq_get_command,
    .open_commands = sq_open_commands,
    .last_seq      = sq_last_seq,
    .ping          = sq_ping,
    .close         = sq_close,
};
