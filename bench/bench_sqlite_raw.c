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
 *   bench_sqlite_raw [rows [batch [path [fsync]]]]
 *     rows   default 1000000
 *     batch  default 0 = try 100, 1000 and 5000
 *     path   database file (default: a fresh temp directory); removed after
 *     fsync  0 (synchronous=NORMAL, the default) or 1 (synchronous=FULL)
 *
 * Prints one `name value unit` line per figure. Single-threaded.
 */
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DRONES 1000

typedef struct row {
    char    id[16];
    int     id_len;
    int64_t seq, ts, recv;
    double  lat, lon, alt, speed, heading, climb, battery;
} row_t;

/* Same DDL and pragmas as src/store/sqlite.c. */
static const char ddl[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA cache_size = -65536;"
    "PRAGMA temp_store = MEMORY;"
    "PRAGMA journal_size_limit = 67108864;"
    "CREATE TABLE telemetry ("
    "  drone_id TEXT NOT NULL, timestamp INTEGER NOT NULL, seq INTEGER,"
    "  latitude REAL NOT NULL, longitude REAL NOT NULL, altitude REAL NOT NULL,"
    "  speed REAL, heading REAL, climb REAL, battery REAL, status TEXT,"
    "  received_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX telemetry_drone_seq ON telemetry(drone_id, seq);"
    "CREATE INDEX telemetry_drone_time ON telemetry(drone_id, timestamp, seq);";

static const char ins[] =
    "INSERT INTO telemetry(drone_id, timestamp, seq, latitude, longitude,"
    " altitude, speed, heading, climb, battery, status, received_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    " ON CONFLICT(drone_id, seq) DO NOTHING";

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

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

/* rows/s, or a negative value on failure. */
static double run(const char *path, const row_t *rows, size_t n, size_t batch, int fsync)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL, *begin = NULL, *commit = NULL;
    double rate = -1;
    rm_db(path);
    int rc = sqlite3_open(path, &db);
    CHECK(db, rc, "open");
    rc = sqlite3_exec(db, fsync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                      NULL, NULL, NULL);
    CHECK(db, rc, "pragma");
    rc = sqlite3_exec(db, ddl, NULL, NULL, NULL);
    CHECK(db, rc, "schema");
    rc = sqlite3_prepare_v2(db, ins, -1, &st, NULL);
    CHECK(db, rc, "prepare");
    rc = sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL);
    CHECK(db, rc, "prepare");
    rc = sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL);
    CHECK(db, rc, "prepare");

    double t0 = now_s();
    for (size_t i = 0; i < n; ) {
        rc = sqlite3_step(begin);
        sqlite3_reset(begin);
        CHECK(db, rc, "begin");
        size_t end = i + batch < n ? i + batch : n;
        for (; i < end; i++) {
            const row_t *r = &rows[i];
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
    }
    double dt = now_s() - t0;
    rate = (double)n / dt;
out:
    sqlite3_finalize(st);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_close(db);
    rm_db(path);
    return rate;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    size_t batch = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    const char *path = argc > 3 && argv[3][0] ? argv[3] : NULL;
    int fsync = argc > 4 ? atoi(argv[4]) != 0 : 0;
    char tmpdir[256] = "", tmppath[300];
    int ret = 1;

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
    for (size_t j = 0; j < nsizes; j++) {
        double rate = run(path, rows, n, sizes[j], fsync);
        if (rate < 0) goto out;
        printf("sqlite_raw%s_b%zu %.0f rows/s\n", mode, sizes[j], rate);
        fflush(stdout);
        if (rate > best) best = rate;
    }
    printf("sqlite_raw%s_best %.0f rows/s\n", mode, best);
    ret = 0;
out:
    free(rows);
    if (tmpdir[0]) rmdir(tmpdir);
    return ret;
}
