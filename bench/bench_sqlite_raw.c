/* bench_sqlite_raw.c - the limit the gateway's SQLite ingest is compared
 * against: SQLite's own batched-insert speed on this machine, for the rows
 * dronegate stores, with nothing of dronegate in the way.
 *
 * Same schema, indexes and pragmas as src/store/sqlite.c (keep them in sync
 * by hand: this file is deliberately standalone, only libsqlite3), one
 * prepared INSERT reset and re-bound per row (SQLITE_STATIC), transactions of
 * B rows. The rows are generated before the clock starts: N rows of D = 1000
 * drones sending at 10 Hz, interleaved (row i is drone i % D, seq i / D), so
 * every batch touches many places of both indexes, as live ingest does.
 *
 * Three runs per batch size:
 *   sqlite_raw_bB         SQLite's autocheckpoint (every 8 MiB of WAL,
 *                         inside COMMIT): plain SQLite.
 *   sqlite_raw_bgckpt_bB  autocheckpoint off, a second thread and connection
 *                         runs PASSIVE checkpoints every 8 MiB and the writer
 *                         a RESTART one at 64 MiB: the scheme the sqlite:
 *                         backend uses, so this is the fair ceiling for it.
 *   sqlite_raw_noindex_bB  as bgckpt, but the table has no index and the
 *                         INSERT no conflict clause: an unindexed append,
 *                         the floor of any SQLite layout for these rows
 *                         (an ingest table merged later would pay this
 *                         first, then the merge). No reused-seq check is
 *                         possible without an index.
 *   sqlite_raw_ingest_bB  an LSM-style layout prototyped here only (the
 *                         backend does not use it): each transaction appends
 *                         to an unindexed `ingest` table after probing
 *                         telemetry's (drone_id, seq) index for the row (the
 *                         reused-seq check against merged rows; checking the
 *                         ingest rows would need an in-memory set, not
 *                         counted), and once DG_BENCH_MERGE rows (default
 *                         100000) have gathered, one transaction moves them
 *                         into the indexed table in (drone_id, seq) order.
 *                         Prints also the longest merge (a stall every ack
 *                         waiting behind it would see, unless merges were
 *                         cut into key ranges).
 * Besides rows/s (which follows the disk, and on a shared VM disk varies
 * run to run) it prints what does not vary: bytes written per row and CPU
 * microseconds per row (both for the whole process, /proc/self/io and
 * getrusage).
 *
 *   bench_sqlite_raw [rows [batch [path [fsync]]]]
 *     rows   default 1000000
 *     batch  default 0 = try 100, 1000 and 5000
 *     path   database file (default: a fresh temp directory); removed after
 *     fsync  0 (synchronous=NORMAL, the default) or 1 (synchronous=FULL)
 *   DG_BENCH_DRONES=D   rows of D drones instead of 1000 (as bench_store)
 *
 * Prints one `name value unit` line per figure. Single-threaded.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int DRONES = 1000;   /* DG_BENCH_DRONES */
#define CK_STEP_FRAMES 8192    /* as src/store/sqlite.c */
#define CK_MAX_FRAMES  65536

typedef struct row {
    char    id[16];
    int     id_len;
    int64_t seq, ts, recv;
    double  lat, lon, alt, speed, heading, climb, battery;
} row_t;

/* Same DDL and pragmas as src/store/sqlite.c. */
#define PRAGMAS \
    "PRAGMA page_size = 1024;" \
    "PRAGMA journal_mode = WAL;" \
    "PRAGMA cache_size = -65536;" \
    "PRAGMA temp_store = MEMORY;" \
    "PRAGMA journal_size_limit = 67108864;"
#define TABLE "CREATE TABLE telemetry (" COLS
#define COLS \
    "  drone_id TEXT NOT NULL, timestamp INTEGER NOT NULL, seq INTEGER," \
    "  latitude REAL NOT NULL, longitude REAL NOT NULL, altitude REAL NOT NULL," \
    "  speed REAL, heading REAL, climb REAL, battery REAL, status TEXT," \
    "  received_at INTEGER NOT NULL);"

#define INDEXES \
    "CREATE UNIQUE INDEX telemetry_drone_seq ON telemetry(drone_id, seq);" \
    "CREATE INDEX telemetry_drone_time ON telemetry(drone_id, timestamp, seq);"
#define INSERT_INTO(table) \
    "INSERT INTO " table "(drone_id, timestamp, seq, latitude, longitude," \
    " altitude, speed, heading, climb, battery, status, received_at)" \
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"

static const char ddl[] = PRAGMAS TABLE INDEXES;

/* The unindexed variant (sqlite_raw_noindex_bB). */
static const char ddl_noindex[] = PRAGMAS TABLE;

/* The ingest-table variant (sqlite_raw_ingest_bB). */
static const char ddl_ingest[] = PRAGMAS TABLE INDEXES "CREATE TABLE ingest (" COLS;
static const char ins_ingest[] = INSERT_INTO("ingest");
static const char probe_sql[] =
    "SELECT timestamp FROM telemetry WHERE drone_id = ?1 AND seq = ?2";
static const char merge_sql[] =
    "BEGIN IMMEDIATE;"
    "INSERT INTO telemetry SELECT * FROM ingest WHERE 1 ORDER BY drone_id, seq"
    " ON CONFLICT(drone_id, seq) DO NOTHING;"
    "DELETE FROM ingest;"
    "COMMIT";
static size_t merge_rows = 100000;   /* DG_BENCH_MERGE */

static const char ins[] = INSERT_INTO("telemetry") " ON CONFLICT(drone_id, seq) DO NOTHING";
static const char ins_noindex[] = INSERT_INTO("telemetry");

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Bytes this process has written (write(2) and friends); 0 if unknown. */
static double written_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    double v = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "wchar: %lf", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

/* Background checkpointer (the backend's scheme, in short). */
typedef struct ck {
    const char     *path;
    pthread_mutex_t mu, run_mu;
    pthread_cond_t  cv;
    int             kick, stop, frames;
} ck_t;

static void *ck_main(void *ud)
{
    ck_t *c = ud;
    sqlite3 *db = NULL;
    sqlite3_open(c->path, &db);
    /* Until it has read the file, a connection does not know the database
     * is in WAL mode and its checkpoints do nothing. */
    sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        while (!c->kick && !c->stop) pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop) break;
        c->kick = 0;
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_lock(&c->run_mu);
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_unlock(&c->run_mu);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    sqlite3_close(db);
    return NULL;
}

static int on_wal(void *ud, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    ((ck_t *)ud)->frames = frames;
    return SQLITE_OK;
}

static void ck_after_commit(ck_t *c, sqlite3 *w, int *kicked)
{
    if (c->frames < *kicked) *kicked = 0;
    if (c->frames >= CK_MAX_FRAMES) {
        pthread_mutex_lock(&c->run_mu);
        sqlite3_wal_checkpoint_v2(w, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
        pthread_mutex_unlock(&c->run_mu);
        *kicked = c->frames;
    } else if (c->frames - *kicked >= CK_STEP_FRAMES) {
        *kicked = c->frames;
        pthread_mutex_lock(&c->mu);
        c->kick = 1;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
}

typedef struct result { double rate, bytes_per_row, cpu_us_per_row, max_merge_ms; } result_t;

/* Row i of the workload (same as bench_store.c). */
static void gen(row_t *r, size_t i)
{
    int d = (int)(i % DRONES);
    int64_t k = (int64_t)(i / DRONES);
    double t = (double)k * 0.1;
    r->id_len = snprintf(r->id, sizeof r->id, "drone-%04d", d);
    r->seq = k + 1;
    r->ts = 1795860000000LL + k * 100 + d % 100;
    r->recv = r->ts + 15;
    r->lat = 47.3 + d * 1e-3 + 0.01 * sin(t * 0.05 + d);
    r->lon = 8.5 + d * 1e-3 + 0.01 * cos(t * 0.05 + d);
    r->alt = 450.0 + 30.0 * sin(t * 0.01 + d) + d * 0.01;
    r->speed = 12.0 + 3.0 * sin(t * 0.2 + d);
    r->heading = fmod(t * 3.7 + d, 360.0);
    r->climb = 1.5 * cos(t * 0.3 + d);
    r->battery = 100.0 - t * 0.01 - d * 1e-4;
}

static void rm_db(const char *path)
{
    char p[4096];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

#define CHECK(db, rc, what) do { if ((rc) != SQLITE_OK && (rc) != SQLITE_DONE) { \
    fprintf(stderr, "bench_sqlite_raw: %s: %s\n", what, sqlite3_errmsg(db)); goto out; } } while (0)

/* mode 0: autocheckpoint; 1: background checkpointer; 2: as 1, no index;
 * 3: as 1, ingest table merged every merge_rows rows. 0, or -1 on failure. */
static int run(const char *path, const row_t *rows, size_t n, size_t batch, int fsync,
               int mode, result_t *res)
{
    int bgckpt = mode >= 1, noindex = mode == 2, ingest = mode == 3;
    sqlite3_stmt *probe = NULL;
    size_t gathered = 0;
    res->max_merge_ms = 0;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL, *begin = NULL, *commit = NULL;
    ck_t ck = { .path = path };
    int ck_started = 0, kicked = 0, ret = -1;
    pthread_t ck_thread;
    rm_db(path);
    int rc = sqlite3_open(path, &db);
    CHECK(db, rc, "open");
    rc = sqlite3_exec(db, fsync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                      NULL, NULL, NULL);
    CHECK(db, rc, "pragma");
    rc = sqlite3_exec(db, noindex ? ddl_noindex : ingest ? ddl_ingest : ddl, NULL, NULL, NULL);
    CHECK(db, rc, "schema");
    if (bgckpt) {
        pthread_mutex_init(&ck.mu, NULL);
        pthread_mutex_init(&ck.run_mu, NULL);
        pthread_cond_init(&ck.cv, NULL);
        sqlite3_wal_hook(db, on_wal, &ck);
        if (pthread_create(&ck_thread, NULL, ck_main, &ck) != 0) goto out;
        ck_started = 1;
    } else {
        sqlite3_wal_autocheckpoint(db, CK_STEP_FRAMES);
    }
    rc = sqlite3_prepare_v2(db, noindex ? ins_noindex : ingest ? ins_ingest : ins, -1, &st, NULL);
    CHECK(db, rc, "prepare");
    if (ingest) {
        rc = sqlite3_prepare_v2(db, probe_sql, -1, &probe, NULL);
        CHECK(db, rc, "prepare");
    }
    rc = sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL);
    CHECK(db, rc, "prepare");
    rc = sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL);
    CHECK(db, rc, "prepare");

    double t0 = now_s(), c0 = cpu_s(), w0 = written_bytes();
    for (size_t i = 0; i < n; ) {
        rc = sqlite3_step(begin);
        sqlite3_reset(begin);
        CHECK(db, rc, "begin");
        size_t start = i, end = i + batch < n ? i + batch : n;
        for (; i < end; i++) {
            const row_t *r = &rows[i];
            if (probe) {
                sqlite3_bind_text(probe, 1, r->id, r->id_len, SQLITE_STATIC);
                sqlite3_bind_int64(probe, 2, r->seq);
                rc = sqlite3_step(probe);
                sqlite3_reset(probe);
                if (rc == SQLITE_ROW) rc = SQLITE_DONE;   /* a found row is only read */
                CHECK(db, rc, "probe");
            }
            sqlite3_bind_text(st, 1, r->id, r->id_len, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, r->ts);
            sqlite3_bind_int64(st, 3, r->seq);
            sqlite3_bind_double(st, 4, r->lat);
            sqlite3_bind_double(st, 5, r->lon);
            sqlite3_bind_double(st, 6, r->alt);
            sqlite3_bind_double(st, 7, r->speed);
            sqlite3_bind_double(st, 8, r->heading);
            sqlite3_bind_double(st, 9, r->climb);
            sqlite3_bind_double(st, 10, r->battery);
            sqlite3_bind_text(st, 11, "airborne", 8, SQLITE_STATIC);
            sqlite3_bind_int64(st, 12, r->recv);
            rc = sqlite3_step(st);
            sqlite3_reset(st);
            CHECK(db, rc, "insert");
        }
        rc = sqlite3_step(commit);
        sqlite3_reset(commit);
        CHECK(db, rc, "commit");
        if (bgckpt) ck_after_commit(&ck, db, &kicked);
        if (ingest && ((gathered += end - start) >= merge_rows || i >= n)) {
            double m0 = now_s();
            rc = sqlite3_exec(db, merge_sql, NULL, NULL, NULL);
            CHECK(db, rc, "merge");
            double ms = (now_s() - m0) * 1e3;
            if (ms > res->max_merge_ms) res->max_merge_ms = ms;
            gathered = 0;
            ck_after_commit(&ck, db, &kicked);
        }
    }
    res->rate = (double)n / (now_s() - t0);
    res->cpu_us_per_row = (cpu_s() - c0) * 1e6 / (double)n;
    res->bytes_per_row = (written_bytes() - w0) / (double)n;
    ret = 0;
out:
    if (ck_started) {
        pthread_mutex_lock(&ck.mu);
        ck.stop = 1;
        pthread_cond_signal(&ck.cv);
        pthread_mutex_unlock(&ck.mu);
        pthread_join(ck_thread, NULL);
    }
    if (bgckpt) {
        pthread_cond_destroy(&ck.cv);
        pthread_mutex_destroy(&ck.mu);
        pthread_mutex_destroy(&ck.run_mu);
    }
    sqlite3_finalize(st);
    sqlite3_finalize(probe);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_close(db);
    rm_db(path);
    return ret;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 500000;
    size_t batch = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    const char *path = argc > 3 && argv[3][0] ? argv[3] : NULL;
    int fsync = argc > 4 ? atoi(argv[4]) != 0 : 0;
    char tmpdir[256] = "", tmppath[300];
    int ret = 1;

    const char *d = getenv("DG_BENCH_DRONES");
    if (d && atoi(d) > 0) DRONES = atoi(d);
    const char *m = getenv("DG_BENCH_MERGE");
    if (m && atoi(m) > 0) merge_rows = (size_t)atoi(m);
    if (n == 0) { fprintf(stderr, "usage: %s [rows [batch [path [fsync]]]]\n", argv[0]); return 2; }
    if (!path) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/dg_bench_raw_XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
        snprintf(tmppath, sizeof tmppath, "%s/raw.db", tmpdir);
        path = tmppath;
    }
    row_t *rows = malloc(n * sizeof *rows);
    if (!rows) { fprintf(stderr, "bench_sqlite_raw: out of memory for %zu rows\n", n); goto out; }
    for (size_t i = 0; i < n; i++) gen(&rows[i], i);

    size_t sizes[] = { 100, 1000, 5000 };
    size_t nsizes = 3;
    if (batch) { sizes[0] = batch; nsizes = 1; }
    const char *mode = fsync ? "_full" : "";
    double best = 0;
    printf("sqlite_raw_rows %zu rows\n", n);
    printf("sqlite_raw_drones %d drones\n", DRONES);
    for (int bg = 0; bg <= 3; bg++) {
        const char *how = bg == 3 ? "_ingest" : bg == 2 ? "_noindex" : bg ? "_bgckpt" : "";
        for (size_t j = 0; j < nsizes; j++) {
            result_t r;
            if (run(path, rows, n, sizes[j], fsync, bg, &r) < 0) goto out;
            printf("sqlite_raw%s%s_b%zu %.0f rows/s\n", how, mode, sizes[j], r.rate);
            printf("sqlite_raw%s%s_b%zu_bytes_per_row %.0f B\n", how, mode, sizes[j],
                   r.bytes_per_row);
            printf("sqlite_raw%s%s_b%zu_cpu_per_row %.2f us\n", how, mode, sizes[j],
                   r.cpu_us_per_row);
            if (bg == 3)
                printf("sqlite_raw%s%s_b%zu_max_merge %.1f ms (%zu rows per merge)\n", how, mode,
                       sizes[j], r.max_merge_ms, merge_rows);
            fflush(stdout);
            if (bg < 2 && r.rate > best) best = r.rate;
        }
    }
    printf("sqlite_raw%s_best %.0f rows/s\n", mode, best);
    ret = 0;
out:
    free(rows);
    if (tmpdir[0]) rmdir(tmpdir);
    return ret;
}
