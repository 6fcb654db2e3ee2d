/* bench_store.c - the rows of bench_sqlite_raw.c, through the sqlite: backend
 * (dg_store_sqlite_ops.write_batch), so the backend's own overhead shows when
 * the two are put side by side.
 *
 * Same workload: N rows of 1000 drones at 10 Hz, interleaved, generated as
 * dg_record_t before the clock starts; every optional field present.
 * Two figures per batch size B:
 *   store_sqlite_bB         write_batch() of B records per call
 *   store_sqlite_drones_bB  the same plus update_drones() of the batch's
 *                           last state per drone after each batch (what a
 *                           writer that refreshes the registry every batch
 *                           pays: a second transaction of up to 1000 upserts)
 *
 *   bench_store [rows [batch [path [fsync]]]]   (as bench_sqlite_raw)
 *
 * Also prints bytes written and CPU microseconds per row (whole process, so
 * the backend's checkpointer thread is included), which unlike rows/s do not
 * follow the disk's mood.
 *
 * Prints one `name value unit` line per figure. Single-threaded (plus the
 * backend's checkpointer thread).
 *
 * Build by hand (sqlite.c names command statuses via core/commands.c):
 *   cc -O2 -std=gnu11 -D_GNU_SOURCE -Isrc -o bench_store bench/bench_store.c \
 *      src/store/store.c src/store/sqlite.c src/store/null.c src/core/buf.c \
 *      src/core/commands.c src/core/timefmt.c src/codec/jsonw.c \
 *      -lsqlite3 -lcrypto -lm -lpthread
 */
#include "store/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* drones in the workload: 1000, or DG_BENCH_DRONES (e.g. 200, as bench_window.sh) */
static int DRONES = 1000;

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

typedef struct result { double rate, bytes_per_row, cpu_us_per_row; } result_t;

/* Row i of the workload (same values as bench_sqlite_raw.c). */
static void gen(dg_record_t *r, size_t i)
{
    int d = (int)(i % DRONES);
    int64_t k = (int64_t)(i / DRONES);
    double t = (double)k * 0.1;
    dg_record_init(r);
    r->drone_id_len = (uint8_t)snprintf(r->drone_id, sizeof r->drone_id, "drone-%04d", d);
    r->seq = (uint64_t)k + 1;
    r->ts_ms = 1795860000000LL + k * 100 + d % 100;
    r->recv_us = (r->ts_ms + 15) * 1000;
    r->lat = 47.3 + d * 1e-3 + 0.01 * sin(t * 0.05 + d);
    r->lon = 8.5 + d * 1e-3 + 0.01 * cos(t * 0.05 + d);
    r->alt = 450.0 + 30.0 * sin(t * 0.01 + d) + d * 0.01;
    r->speed = 12.0 + 3.0 * sin(t * 0.2 + d);
    r->heading = fmod(t * 3.7 + d, 360.0);
    r->climb = 1.5 * cos(t * 0.3 + d);
    r->battery = 100.0 - t * 0.01 - d * 1e-4;
    memcpy(r->status, "airborne", 9);
    r->status_len = 8;
    r->flags = DG_REC_HAS_SEQ | DG_REC_HAS_TS | DG_REC_HAS_SPEED | DG_REC_HAS_HEADING |
               DG_REC_HAS_CLIMB | DG_REC_HAS_BATTERY | DG_REC_HAS_STATUS;
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

/* 0, or -1 on failure. */
static int run(const char *path, dg_record_t *recs, size_t n, size_t batch,
               int fsync, int drones, result_t *res)
{
    const dg_store_ops_t *ops = &dg_store_sqlite_ops;
    dg_store_config_t cfg = { .fsync = fsync != 0 };
    dg_store_t *s = NULL;
    char uri[4200], err[512];
    int ret = -1;
    rm_db(path);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    if (ops->open(uri, &cfg, &s, err, sizeof err) != 0) {
        fprintf(stderr, "bench_store: %s\n", err);
        return -1;
    }
    double t0 = now_s(), c0 = cpu_s(), w0 = written_bytes();
    for (size_t i = 0; i < n; i += batch) {
        size_t m = n - i < batch ? n - i : batch;
        if (ops->write_batch(s, recs + i, m, err, sizeof err) != 0) {
            fprintf(stderr, "bench_store: %s\n", err);
            goto out;
        }
        if (drones) {
            /* Rows are round-robin over the drones, so the last min(m, D)
             * records of the batch are the last state of distinct drones. */
            size_t k = m < (size_t)DRONES ? m : (size_t)DRONES;
            if (ops->update_drones(s, recs + i + m - k, k, err, sizeof err) != 0) {
                fprintf(stderr, "bench_store: %s\n", err);
                goto out;
            }
        }
    }
    res->rate = (double)n / (now_s() - t0);
    res->cpu_us_per_row = (cpu_s() - c0) * 1e6 / (double)n;
    res->bytes_per_row = (written_bytes() - w0) / (double)n;
    ret = 0;
out:
    ops->close(s);
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

    if (n == 0) { fprintf(stderr, "usage: %s [rows [batch [path [fsync]]]]\n", argv[0]); return 2; }
    {
        const char *d = getenv("DG_BENCH_DRONES");
        if (d && atoi(d) > 0) DRONES = atoi(d);
    }
    if (!path) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/dg_bench_store_XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
        snprintf(tmppath, sizeof tmppath, "%s/store.db", tmpdir);
        path = tmppath;
    }
    dg_record_t *recs = malloc(n * sizeof *recs);
    if (!recs) { fprintf(stderr, "bench_store: out of memory for %zu rows\n", n); goto out; }
    for (size_t i = 0; i < n; i++) gen(&recs[i], i);

    size_t sizes[] = { 100, 1000, 5000 };
    size_t nsizes = 3;
    if (batch) { sizes[0] = batch; nsizes = 1; }
    const char *mode = fsync ? "_full" : "";
    double best = 0;
    printf("store_sqlite_rows %zu rows\n", n);
    for (int drones = 0; drones <= 1; drones++) {
        const char *how = drones ? "_drones" : "";
        for (size_t j = 0; j < nsizes; j++) {
            result_t r;
            if (run(path, recs, n, sizes[j], fsync, drones, &r) < 0) goto out;
            printf("store_sqlite%s%s_b%zu %.0f rows/s\n", how, mode, sizes[j], r.rate);
            printf("store_sqlite%s%s_b%zu_bytes_per_row %.0f B\n", how, mode, sizes[j],
                   r.bytes_per_row);
            printf("store_sqlite%s%s_b%zu_cpu_per_row %.2f us\n", how, mode, sizes[j],
                   r.cpu_us_per_row);
            fflush(stdout);
            if (!drones && r.rate > best) best = r.rate;
        }
        if (!drones) printf("store_sqlite%s_best %.0f rows/s\n", mode, best);
    }
    ret = 0;
out:
    free(recs);
    if (tmpdir[0]) rmdir(tmpdir);
    return ret;
}
