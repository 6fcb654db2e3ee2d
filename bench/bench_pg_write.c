/* bench_pg_write.c - write paths into PostgreSQL / InfluxDB side by side,
 * without the network path of the gateway (that is bench/bench_pg.sh).
 *
 *   bench_pg_write MODE URI [rows [batch [dup_pct]]]
 *
 * MODE
 *   store     write_batch() of the backend picked by URI (postgresql://...
 *             with its options write=, copy=, dedup=; influxdb://...)
 *   insert    PostgreSQL: multi-row INSERT ... ON CONFLICT DO NOTHING,
 *             text parameters, batch rows per statement (<= 5000), one
 *             transaction per batch (what a naive client does)
 *   copy      PostgreSQL: text COPY of the same rows straight into
 *             telemetry, no dedup: the limit of one connection (what
 *             `psql \copy` does)
 * URI is a postgresql:// URI (libpq syntax plus the store options; the
 * schema is created by opening the store first) or an influxdb:// URI.
 *
 * Workload as bench/bench_store.c: 1000 drones at 10 Hz, interleaved, every
 * optional field present, drone timestamps; dup_pct percent of the batches
 * are written twice in a row (a redelivery: the second write takes the
 * fallback path; rows/s counts both writes). Rows start at
 * the current day so they land in premade partitions; each run uses fresh
 * drone ids (prefix from the clock), so runs do not collide.
 *
 * Prints `name rows_per_s` and the batch count. Single-threaded.
 */
#include "store/store.h"

#include <math.h>
#include <postgresql/libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/jsonw.h"
#include "core/buf.h"
#include "core/timefmt.h"

#define DRONES 1000

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void gen(dg_record_t *r, size_t i, const char *prefix, int64_t t0)
{
    int d = (int)(i % DRONES);
    int64_t k = (int64_t)(i / DRONES);
    double t = (double)k * 0.1;
    dg_record_init(r);
    r->drone_id_len = (uint8_t)snprintf(r->drone_id, sizeof r->drone_id, "%s-%04d", prefix, d);
    r->seq = (uint64_t)k + 1;
    r->ts_ms = t0 + k * 100 + d % 100;
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

/* libpq conninfo from a store URI: the dronegate options removed. */
static char *libpq_uri(const char *uri)
{
    static const char *const ours[] = { "partition", "premake", "retention", "compress_after",
        "timescaledb", "write", "copy", "dedup", "readers", "query_timeout", NULL };
    char *out = malloc(strlen(uri) + 1);
    const char *q = strchr(uri, '?');
    size_t base = q ? (size_t)(q - uri) : strlen(uri);
    memcpy(out, uri, base);
    size_t o = base;
    int kept = 0;
    for (const char *p = q ? q + 1 : ""; *p; ) {
        size_t len = strcspn(p, "&"), kl = strcspn(p, "=&");
        int mine = 0;
        for (int i = 0; ours[i]; i++) if (strlen(ours[i]) == kl && !strncmp(p, ours[i], kl)) mine = 1;
        if (!mine) { out[o++] = kept++ ? '&' : '?'; memcpy(out + o, p, len); o += len; }
        p += len;
        if (*p == '&') p++;
    }
    out[o] = '\0';
    return out;
}

static void txt_row(dg_buf_t *b, const dg_record_t *r, char sep, int quote)
{
    char ts[32];
    const double v[7] = { r->lat, r->lon, r->alt, r->speed, r->heading, r->climb, r->battery };
    if (quote) dg_buf_puts(b, "('");
    dg_buf_puts(b, r->drone_id);
    if (quote) dg_buf_puts(b, "'");
    dg_buf_append(b, &sep, 1);
    if (quote) dg_buf_puts(b, "'");
    dg_buf_append(b, ts, dg_format_rfc3339(r->ts_ms, ts));
    if (quote) dg_buf_puts(b, "'");
    dg_buf_append(b, &sep, 1);
    dg_jw_i64(b, (int64_t)r->seq);
    for (int i = 0; i < 7; i++) { dg_buf_append(b, &sep, 1); dg_jw_double(b, v[i]); }
    dg_buf_append(b, &sep, 1);
    if (quote) dg_buf_puts(b, "'");
    dg_buf_puts(b, r->status);
    if (quote) dg_buf_puts(b, "'");
    dg_buf_append(b, &sep, 1);
    if (quote) dg_buf_puts(b, "'");
    dg_buf_append(b, ts, dg_format_rfc3339(r->recv_us / 1000, ts));
    if (quote) dg_buf_puts(b, "')");
}

static int pg_ok(PGconn *c, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_IN;
    if (!ok) fprintf(stderr, "%s: %s", what, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

#define COLS "drone_id, \"timestamp\", seq, latitude, longitude, altitude, speed, heading, climb, battery, status, received_at"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s store|insert|copy URI [rows [batch [dup_pct]]]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1], *uri = argv[2];
    size_t n = argc > 3 ? strtoull(argv[3], NULL, 10) : 500000;
    size_t batch = argc > 4 ? strtoull(argv[4], NULL, 10) : 2000;
    int dup_pct = argc > 5 ? atoi(argv[5]) : 0;
    if (n == 0 || batch == 0) return 2;

    char prefix[32];
    snprintf(prefix, sizeof prefix, "b%lx", (unsigned long)(dg_now_us() % 0xffffffffu));
    int64_t t0 = dg_now_ms() / 86400000 * 86400000;   /* today 00:00 UTC: a premade partition */
    dg_record_t *recs = malloc(n * sizeof *recs);
    if (!recs) return 1;
    for (size_t i = 0; i < n; i++) gen(&recs[i], i, prefix, t0);

    const dg_store_ops_t *ops = NULL;
    dg_store_t *s = NULL;
    char err[512];
    if (dg_store_open(uri, NULL, &ops, &s, err, sizeof err)) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    size_t batches = 0, dups = 0;
    double t = now_s();
    int rc = 0;
    if (!strcmp(mode, "store")) {
        unsigned seed = 1;
        for (size_t off = 0; off < n && !rc; off += batch, batches++) {
            size_t k = n - off < batch ? n - off : batch;
            if ((rc = ops->write_batch(s, recs + off, k, err, sizeof err))) fprintf(stderr, "write: %s\n", err);
            seed = seed * 1103515245u + 12345u;
            if (dup_pct && (int)((seed >> 16) % 100) < dup_pct && !rc) {
                /* the same batch again (its acks were lost): counted as rows written */
                if ((rc = ops->write_batch(s, recs + off, k, err, sizeof err))) fprintf(stderr, "write: %s\n", err);
                dups += k;
            }
        }
    } else {
        char *ci = libpq_uri(uri);
        PGconn *c = PQconnectdb(ci);
        free(ci);
        if (PQstatus(c) != CONNECTION_OK) { fprintf(stderr, "connect: %s", PQerrorMessage(c)); return 1; }
        dg_buf_t b = { 0 };
        t = now_s();
        for (size_t off = 0; off < n && !rc; off += batch, batches++) {
            size_t k = n - off < batch ? n - off : batch;
            b.len = 0;
            if (!strcmp(mode, "copy")) {
                for (size_t i = 0; i < k; i++) { txt_row(&b, &recs[off + i], '\t', 0); dg_buf_puts(&b, "\n"); }
                if (!pg_ok(c, PQexec(c, "COPY telemetry (" COLS ") FROM STDIN"), "copy")) { rc = 1; break; }
                PQputCopyData(c, b.data, (int)b.len);
                PQputCopyEnd(c, NULL);
                PGresult *r;
                while ((r = PQgetResult(c))) if (!pg_ok(c, r, "copy end")) rc = 1;
            } else if (!strcmp(mode, "insert")) {
                dg_buf_puts(&b, "INSERT INTO telemetry (" COLS ") VALUES ");
                for (size_t i = 0; i < k; i++) {
                    if (i) dg_buf_puts(&b, ",");
                    txt_row(&b, &recs[off + i], ',', 1);
                }
                dg_buf_puts(&b, " ON CONFLICT DO NOTHING");
                dg_buf_append(&b, "", 1);
                if (!pg_ok(c, PQexec(c, b.data), "insert")) rc = 1;
            } else {
                fprintf(stderr, "unknown mode %s\n", mode);
                rc = 2;
            }
        }
        dg_buf_free(&b);
        PQfinish(c);
    }
    double dt = now_s() - t;
    ops->close(s);
    free(recs);
    if (rc) return 1;
    printf("%s %.0f rows/s (%zu rows + %zu redelivered, %zu batches of %zu, %.2f s)\n", mode,
           (double)(n + dups) / dt, n, dups, batches, batch, dt);
    return 0;
}
