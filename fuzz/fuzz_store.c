/* fuzz_store.c - libFuzzer target: decoded telemetry through a real SQLite
 * store and back out through the REST record writer.
 *
 *   make build/fuzz/fuzz_store && build/fuzz/fuzz_store fuzz/corpus/store
 *
 * One process-wide store on a temp file (sqlite:<mkdtemp>/f.db, removed at
 * exit). Each input is decoded with the JSON telemetry decoder (so the
 * fuzzer explores the same bytes a drone sends); the valid records (at most
 * MAXREC, first occurrence of each seq, like the ingest path's dedup) get a
 * drone id of their own and go to write_batch() in one transaction. Then:
 *   - write_batch() returns 0 (every decoded record is storable);
 *   - query() over all time returns exactly those records, each equal,
 *     as stored (seq, timestamp, coordinates, optional fields, status) to one
 *     sent, in timestamp order;
 *   - a query bounded to [min ts, max ts] with limit 1 returns the oldest;
 *   - each row written with dg_view_record_members() (the JSON REST writer)
 *     decodes again to the identical record;
 *   - a second write_batch() of the same records (a redelivery) returns 0
 *     and adds no row.
 * The CSV and GeoJSON history writers are static in src/http/api.c on this
 * branch; they join here once they live in a codec module of their own.
 * Single-threaded (libFuzzer's thread).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/json_telemetry.h"
#include "codec/jsonw.h"
#include "codec/views.h"
#include "core/buf.h"
#include "http/http.h"
#include "store/store.h"

#define MAXREC 64
#define NOW_MS  INT64_C(1795514400000)
#define RECV_US INT64_C(1795514400000777)

#define FZ_ASSERT(c) do { if (!(c)) { fprintf(stderr, "invariant failed: %s (%s:%d)\n", \
    #c, __FILE__, __LINE__); abort(); } } while (0)

static const dg_store_ops_t *ops;
static dg_store_t *store;
static dg_json_decoder_t *dec;
static char dir[64], dbpath[128];
static unsigned long drone_no;

typedef struct batch { dg_record_t r[MAXREC]; size_t n; } batch_t;
typedef struct rows { dg_record_t r[MAXREC + 1]; size_t n; } rows_t;


/* Equal as stored: the timestamp is always stored (HAS_TS only says whether
 * the drone sent it), absent optional fields are not compared, numbers
 * compare as numbers (SQLite keeps REAL -0.0 as 0: same value). */
static int same(const dg_record_t *a, const dg_record_t *b)
{
    return (a->flags & ~DG_REC_HAS_TS) == (b->flags & ~DG_REC_HAS_TS) && a->seq == b->seq && a->ts_ms == b->ts_ms &&
           a->lat == b->lat && a->lon == b->lon && a->alt == b->alt &&
           (!(a->flags & DG_REC_HAS_SPEED) || a->speed == b->speed) &&
           (!(a->flags & DG_REC_HAS_HEADING) || a->heading == b->heading) &&
           (!(a->flags & DG_REC_HAS_CLIMB) || a->climb == b->climb) &&
           (!(a->flags & DG_REC_HAS_BATTERY) || a->battery == b->battery) &&
           a->status_len == b->status_len && !memcmp(a->status, b->status, a->status_len);
}

static void cleanup(void)
{
    if (store) ops->close(store);
    char p[160];
    static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        snprintf(p, sizeof p, "%s%s", dbpath, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void init(void)
{
    snprintf(dir, sizeof dir, "/tmp/fuzz_store.XXXXXX");
    FZ_ASSERT(mkdtemp(dir));
    snprintf(dbpath, sizeof dbpath, "%s/f.db", dir);
    char uri[160], err[256] = "";
    snprintf(uri, sizeof uri, "sqlite:%s", dbpath);
    dg_store_config_t cfg = { .fsync = false };
    if (dg_store_open(uri, &cfg, &ops, &store, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_store: cannot open %s: %s\n", uri, err);
        abort();
    }
    dec = dg_json_decoder_new(1 << 16);
    FZ_ASSERT(dec);
    atexit(cleanup);
}

static void on_record(void *ud, const dg_record_t *rec)
{
    batch_t *b = ud;
    if (b->n == MAXREC) return;
    if (rec->flags & DG_REC_HAS_SEQ)
        for (size_t i = 0; i < b->n; i++)
            if ((b->r[i].flags & DG_REC_HAS_SEQ) && b->r[i].seq == rec->seq) return;
    b->r[b->n++] = *rec;
}

static void on_error(void *ud, const dg_decode_error_t *e) { (void)ud; (void)e; }

static int collect(void *ud, const dg_record_t *r)
{
    rows_t *x = ud;
    FZ_ASSERT(x->n < MAXREC + 1);
    x->r[x->n++] = *r;
    return 0;
}

static void rt_on_record(void *ud, const dg_record_t *rec) { *(dg_record_t *)ud = *rec; }
static void rt_on_error(void *ud, const dg_decode_error_t *e)
{
    (void)ud;
    fprintf(stderr, "REST JSON of a stored row does not decode: %s %s\n", e->field ? e->field : "", e->message);
    abort();
}

/* The REST JSON writer: a stored row written and decoded back is the same. */
static void rest_roundtrip(const dg_record_t *r)
{
    static dg_buf_t b;
    int first = 1;
    b.len = 0;
    FZ_ASSERT(dg_buf_puts(&b, "{") == 0);
    dg_view_record_members(&b, &first, r);
    FZ_ASSERT(dg_buf_puts(&b, "}") == 0);
    dg_record_t o;
    dg_decode_sink_t sink = { rt_on_record, rt_on_error, NULL, &o };
    int rc = dg_json_decode(dec, b.data, b.len, 0, r->recv_us, &sink);
    if (rc != 1) {
        fprintf(stderr, "REST JSON %.*s decoded to %d records\n", (int)b.len, b.data, rc);
        abort();
    }
    FZ_ASSERT(same(&o, r));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!store) init();
    char *buf = malloc(size ? size : 1);   /* private copy: ASan sees reads past size */
    FZ_ASSERT(buf);
    memcpy(buf, data, size);

    static batch_t b;
    b.n = 0;
    dg_decode_sink_t sink = { on_record, on_error, NULL, &b };
    dg_json_decode(dec, buf, size, NOW_MS, RECV_US, &sink);
    free(buf);
    if (!b.n) return 0;

    char id[32];
    int idn = snprintf(id, sizeof id, "fz-%lu", ++drone_no);
    FZ_ASSERT(idn > 0 && (size_t)idn < sizeof id);
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < b.n; i++) {
        memcpy(b.r[i].drone_id, id, (size_t)idn + 1);
        b.r[i].drone_id_len = (uint8_t)idn;
        if (b.r[i].ts_ms < lo) lo = b.r[i].ts_ms;
        if (b.r[i].ts_ms > hi) hi = b.r[i].ts_ms;
    }

    char err[256] = "";
    if (ops->write_batch(store, b.r, b.n, err, sizeof err) != 0) {
        fprintf(stderr, "write_batch of %zu valid records failed: %s\n", b.n, err);
        abort();
    }

    static rows_t got;
    got.n = 0;
    dg_query_t q = { .drone_id = id, .from_ms = INT64_MIN, .to_ms = INT64_MAX, .limit = MAXREC + 1 };
    FZ_ASSERT(ops->query(store, &q, collect, &got, err, sizeof err) == 0);
    if (got.n != b.n) {
        fprintf(stderr, "stored %zu records, read back %zu\n", b.n, got.n);
        abort();
    }
    for (size_t i = 0; i < got.n; i++) {
        const dg_record_t *g = &got.r[i];
        FZ_ASSERT(g->drone_id_len == idn && !memcmp(g->drone_id, id, (size_t)idn));
        if (i) FZ_ASSERT(got.r[i - 1].ts_ms <= g->ts_ms);
        int found = 0;
        for (size_t k = 0; k < b.n && !found; k++) found = same(g, &b.r[k]);
        if (!found) {
            fprintf(stderr, "row %zu (seq %llu ts %lld) read back is none of the records written\n", i,
                    (unsigned long long)g->seq, (long long)g->ts_ms);
            abort();
        }
        rest_roundtrip(g);
    }

    /* bounded range, limit 1: the oldest */
    static rows_t one;
    one.n = 0;
    dg_query_t q1 = { .drone_id = id, .from_ms = lo, .to_ms = hi, .limit = 1 };
    FZ_ASSERT(ops->query(store, &q1, collect, &one, err, sizeof err) == 0);
    FZ_ASSERT(one.n == 1 && one.r[0].ts_ms == lo);

    /* a redelivery of records with a seq is durable and adds nothing */
    static batch_t re;
    re.n = 0;
    for (size_t i = 0; i < b.n; i++)
        if (b.r[i].flags & DG_REC_HAS_SEQ) re.r[re.n++] = b.r[i];
    if (re.n) {
        FZ_ASSERT(ops->write_batch(store, re.r, re.n, err, sizeof err) == 0);
        got.n = 0;
        FZ_ASSERT(ops->query(store, &q, collect, &got, err, sizeof err) == 0);
        FZ_ASSERT(got.n == b.n);
    }
    return 0;
}
