/* influxdb.c - the InfluxDB 1.x backend: `--store influxdb://[USER:PASS@]HOST:PORT/DB`
 * (optional query parameters: rp=NAME retention policy, timeout=10s per
 * request, token=T, writers=2 parallel write requests; each also from the
 * environment as DRONEGATE_INFLUX_RP, _TIMEOUT, _TOKEN, _WRITERS, the URI
 * winning). Talks to the HTTP API with libcurl;
 * the database is created at open (CREATE DATABASE, a no-op when it exists;
 * when it is refused - a 1.x user without admin rights, or InfluxDB 2.x,
 * whose 1.x compatibility API has no CREATE DATABASE - the database only has
 * to be readable).
 *
 * Authentication: USER:PASS@ (HTTP basic), or token=T, sent as
 * `Authorization: Token T` on every request (InfluxDB 2.x through its 1.x
 * compatibility API and a DBRP mapping; 1.x accepts it from 1.8 on). Not
 * both. The token and the password never appear in a message or log line.
 *
 * Data layout
 * -----------
 *
 *   measurement telemetry, tag drone_id, time = sample time (ms; written in
 *     ns: see below)
 *     fields: seq (integer, the uint64 bit pattern as int64, like sqlite.c),
 *     latitude, longitude, altitude, speed, heading, climb, battery (float;
 *     absent optional fields are simply not written), status (string),
 *     received_at (integer, ms)
 *   measurement telemetry_seq: written by earlier versions (no longer
 *     written nor read)
 *   measurement drones, tag drone_id, time = 0: one point per drone that
 *     every update overwrites (a table row, in InfluxDB terms), fields
 *     last_seen (integer ms), the last position and state, last_seq
 *   measurement commands, tag drone_id, time = created_at in ns plus a
 *     sub-ms offset derived from the id (unique per command, so every status
 *     change overwrites that command's point); fields id, name, args (JSON
 *     text), status, message, updated_at (integer ms)
 *
 * Duplicates and reused seqs: InfluxDB keeps one point per series (drone)
 * and timestamp; a later write of the same drone and timestamp overwrites
 * it, and nothing there is unique on seq. So the backend judges every
 * (drone_id, seq) itself (store.h): it keeps, per drone, the highest seq
 * written (a watermark, seeded at open from MAX(seq) of telemetry per drone,
 * uint64 order). A record whose seq is above its drone's watermark is new;
 * for the others (a redelivery after a reconnect, or a reused seq after a
 * drone reboot: rare) one query per batch asks which of those
 * (drone_id, seq) are stored and at which time (seq is a field, not
 * indexed: the drones' series are scanned). Then, in batch order, the first
 * record of a (drone_id, seq) that is not stored is written; another one
 * with the same timestamp, or without a drone timestamp, is a redelivery
 * (not written again); one with another drone timestamp is a reused seq:
 * flagged DG_REC_REJECTED_REUSED, not written (so no overwrite and no second
 * point). Limits: the watermarks are this process's: two gateways writing
 * the same drones into one database do not see each other's seqs; two
 * *different* samples of one drone with the same drone timestamp (ms) and
 * different seqs still keep only the last one written (one point per time).
 * A message without `timestamp` gets the receive time, and several such
 * messages of one frame share a millisecond. So their points are written at
 * receive ms + a sub-millisecond offset derived from the seq (1..999999 ns:
 * never the ms itself, where drone-stamped points sit; reads are in ms, so
 * the offset never shows).
 *
 * Threads: write_batch(), update_drones(), put_command() run on the writer
 * thread with its own curl handle (a kept-alive connection). A batch of at
 * least 2 * PART_MIN_POINTS points is split by drone into up to `writers`
 * (default 2) requests sent at once through a curl multi handle (its own
 * kept-alive connections): influxd parses one request on one core, so at a
 * fixed rate one request at a time kept the writer busy ~90% with p99 ack
 * latency of seconds (docs/benchmarks-stores.md). A failed part fails the
 * batch; the retry rewrites the parts that succeeded (same points: an
 * overwrite). query(),
 * latest(), get_command(), last_seq() and ping() take a handle from a small
 * mutex-protected pool. The seq watermarks and the batch's seq table belong
 * to the writer thread (filled at open, before it starts).
 *
 * Why libcurl rather than a hand-written HTTP/1.1 client: /query answers
 * with chunked transfer encoding, connections must be kept alive and
 * re-established, and timeouts, IPv6 and basic auth come for free; one
 * request carries a whole batch (thousands of points), so the client's
 * per-request cost is noise (measured: docs/benchmarks-stores.md).
 *
 * Known limits: InfluxDB stores times between 1677-09-21 and 2262-04-11 only:
 * a sample outside that range cannot be stored and is dropped with a
 * warning (it would otherwise block every later write); -0.0 reads back as 0;
 * plain http only (no https); a write that InfluxDB refuses (HTTP 4xx, e.g. a
 * field type conflict with data written by something else) fails the batch,
 * and the writer retries it until it succeeds.
 */
#include "store.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_PARENT_LINKS
#include <jsmn.h>
#include "../codec/jsmn_util.h"

#include "../codec/jsonw.h"
#include "../core/buf.h"
#include "../core/hash.h"
#include "../core/strutil.h"
#include "../core/commands.h"
#include "../core/log.h"
#include "../core/timefmt.h"

#define RD_MAX          4
#define WM_BUCKETS      4096u
#define PING_RETRY_MS   1000
#define CHUNK_ROWS      10000
#define TOKEN_MAX       512
#define WR_MAX          8
#define PART_MIN_POINTS 2048    /* a batch is split only into parts at least this big */
/* InfluxDB's time range: int64 ns minus the two reserved values, in whole
 * ms: 1677-09-21T00:12:43.146Z..2262-04-11T23:47:16.854Z (the contract's
 * range, 1677-09-22..2262-04-11T23:47:16.854Z, lies inside). A point with a
 * sub-ms offset (below) needs one ms less at the top. */
#define IX_MIN_MS       (INT64_C(-9223372036854775806) / 1000000)
#define IX_MAX_MS       (INT64_C(9223372036854775806) / 1000000)

typedef struct wm_ent {         /* highest seq written, per drone */
    struct wm_ent *next;
    uint64_t       max;         /* committed */
    uint64_t       pend;        /* highest of the batch being written */
    uint32_t       pend_gen;    /* == ix->gen while pend is of this batch */
    int            has;         /* max is valid */
    char           id[DG_DRONE_ID_MAX + 1];
} wm_ent_t;

/* One (drone_id, seq) of the batch being written (open addressing). */
typedef struct bh_ent {
    const char *id;             /* NULL: free slot; else a record's drone_id */
    uint64_t    seq;
    int64_t     ts_ms;          /* the stored (or first written) timestamp */
    int         state;          /* BH_ASK, BH_STORED, BH_BATCH */
} bh_ent_t;

enum { BH_ASK = 1, BH_STORED, BH_BATCH };

typedef struct w_part {         /* one of the parallel write requests */
    CURL    *h;
    dg_buf_t lines, body;
} w_part_t;

typedef struct rd_handle {
    CURL    *h;
    int      busy;
    dg_buf_t body;
} rd_handle_t;

struct dg_store {
    char            base[300];      /* http://host:port */
    char            db[128], rp[128];
    char            where[400];     /* "InfluxDB at host:port/db" */
    char            userpwd[256];
    char            authz[TOKEN_MAX + 32];  /* "Authorization: Token T" or "" */
    long            timeout_ms;
    /* writer thread only */
    CURL           *w;
    dg_buf_t        lines, body;
    char           *write_url;       /* /write?db=..&precision=ns */
    int             writers;         /* writers=N: parallel requests for big batches */
    CURLM          *multi;           /* runs the parts of a split batch */
    w_part_t        part[WR_MAX];
    uint32_t        noseq;            /* sub-ms offsets of rows without seq */
    wm_ent_t       *wm[WM_BUCKETS];
    wm_ent_t      **touched;
    size_t          ntouched, touched_cap;
    uint32_t        gen;             /* batch generation, never 0 (fresh entries have 0) */
    int64_t         dropped, last_drop_log_ms;
    bh_ent_t       *bh;              /* (drone_id, seq) of the batch being written */
    size_t          bh_cap;          /* power of 2 */
    dg_buf_t        q;               /* lookup query text */
    /* readers */
    pthread_mutex_t rd_mu;
    pthread_cond_t  rd_cv;
    rd_handle_t     rd[RD_MAX];
    int64_t         ping_fail_until_ms;  /* mono; under rd_mu */
};

/* ---- helpers ------------------------------------------------------------ */

#define set_err dg__store_err   /* store.h */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    dg_buf_t *b = ud;
    return dg_buf_append(b, p, size * n) ? 0 : size * n;
}

static int setup_handle(dg_store_t *s, CURL *h, dg_buf_t *body)
{
    CURLcode rc = CURLE_OK;
#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val); } while (0)
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms < 5000 ? s->timeout_ms : 5000L);
    SET(CURLOPT_TIMEOUT_MS, s->timeout_ms);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, body);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_PROXY, "");                 /* never through $http_proxy */
    if (s->userpwd[0]) SET(CURLOPT_USERPWD, s->userpwd);
#undef SET
    return rc == CURLE_OK ? 0 : -EINVAL;
}

/* Append one header line; the list is kept (not lost) on failure. */
static int add_hdr(struct curl_slist **l, const char *line)
{
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n) return -1;
    *l = n;
    return 0;
}

/* One request. post: body bytes (NULL for GET). Returns the HTTP status
 * (0 when no response) and fills body; err gets a sentence on failure. */
static long http(dg_store_t *s, CURL *h, dg_buf_t *body, const char *url, const char *post,
                 size_t postlen, const char *ctype, char *err, size_t errlen)
{
    struct curl_slist *hdr = NULL;
    body->len = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    char ct[96];
    if (post) snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
    if ((s->authz[0] && add_hdr(&hdr, s->authz)) ||
        (post && (add_hdr(&hdr, ct) || add_hdr(&hdr, "Expect:")))) {   /* Expect: no 100-continue round trip */
        curl_slist_free_all(hdr);
        set_err(err, errlen, "out of memory building a request to %s", s->where);
        return 0;
    }
    if (post) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)postlen);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdr);
    if (rc != CURLE_OK) {
        set_err(err, errlen, "%s: %s", s->where, curl_easy_strerror(rc));
        return 0;
    }
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* The "error" text of an InfluxDB answer (first 200 bytes), for messages. */
static const char *answer_text(dg_buf_t *b)
{
    if (dg_buf_reserve(b, 1)) return "";
    b->data[b->len] = '\0';
    size_t n = strcspn(b->data, "\n");
    if (n > 300) n = 300;
    b->data[n] = '\0';
    return b->data;
}

static void answer_reason(dg_buf_t *b, char *out, size_t cap);

/* URL-encode s into out (always NUL-terminated; -1 when too long). */
static int urlenc(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        if (o + 4 > cap) return -1;
        if (plain) out[o++] = (char)c;
        else { out[o++] = '%'; out[o++] = hex[c >> 4]; out[o++] = hex[c & 15]; }
    }
    out[o] = '\0';
    return 0;
}

/* ---- line protocol ------------------------------------------------------ */

static int lp_str(dg_buf_t *b, const char *s, size_t n)
{
    int e = dg_buf_append(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '"' && s[i] != '\\') continue;
        e |= dg_buf_append(b, s + start, i - start);
        e |= dg_buf_append(b, "\\", 1);
        start = i;
    }
    e |= dg_buf_append(b, s + start, n - start);
    e |= dg_buf_append(b, "\"", 1);
    return e;
}

/* ",key=" and a float (shortest text that reads back to the same double) */
static int lp_f(dg_buf_t *b, const char *key, double v)
{
    if (!isfinite(v)) return 0;
    return dg_buf_puts(b, key) | dg_jw_double(b, v);
}

/* The fields shared by telemetry and drones (position and state). */
static int lp_state(dg_buf_t *b, const dg_record_t *r)
{
    int e = 0;
    e |= lp_f(b, ",latitude=", r->lat);
    e |= lp_f(b, ",longitude=", r->lon);
    e |= lp_f(b, ",altitude=", r->alt);
    if (r->flags & DG_REC_HAS_SPEED)   e |= lp_f(b, ",speed=", r->speed);
    if (r->flags & DG_REC_HAS_HEADING) e |= lp_f(b, ",heading=", r->heading);
    if (r->flags & DG_REC_HAS_CLIMB)   e |= lp_f(b, ",climb=", r->climb);
    if (r->flags & DG_REC_HAS_BATTERY) e |= lp_f(b, ",battery=", r->battery);
    if (r->flags & DG_REC_HAS_STATUS) {
        e |= dg_buf_puts(b, ",status=");
        e |= lp_str(b, r->status, strnlen(r->status, DG_STATUS_MAX));
    }
    return e;
}

/* telemetry,drone_id=ID received_at=Ni,seq=Ni,latitude=..,... TS_NS\n */
static int lp_telemetry(dg_buf_t *b, const dg_record_t *r, int64_t ts_ns)
{
    int e = dg_buf_puts(b, "telemetry,drone_id=");
    e |= dg_buf_append(b, r->drone_id, strnlen(r->drone_id, DG_DRONE_ID_MAX));
    e |= dg_buf_puts(b, " received_at=");
    e |= dg_jw_i64(b, r->recv_us / 1000);
    e |= dg_buf_puts(b, "i");
    if (r->flags & DG_REC_HAS_SEQ) {
        e |= dg_buf_puts(b, ",seq=");
        e |= dg_jw_i64(b, (int64_t)r->seq);
        e |= dg_buf_puts(b, "i");
    }
    e |= lp_state(b, r);
    e |= dg_buf_puts(b, " ");
    e |= dg_jw_i64(b, ts_ns);
    e |= dg_buf_puts(b, "\n");
    return e;
}

/* ---- seq watermarks of messages without timestamp (writer thread) ------- */

static uint32_t id_hash(const char *s)
{
    return dg_fnv1a32(s, strlen(s));
}

static wm_ent_t *wm_get(dg_store_t *s, const char *id, int create)
{
    uint32_t b = id_hash(id) & (WM_BUCKETS - 1);
    for (wm_ent_t *e = s->wm[b]; e; e = e->next)
        if (!strcmp(e->id, id)) return e;
    if (!create) return NULL;
    wm_ent_t *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    snprintf(e->id, sizeof e->id, "%s", id);
    e->next = s->wm[b];
    s->wm[b] = e;
    return e;
}

/* Note that seq of drone id goes into the current batch. */
static int wm_note(dg_store_t *s, wm_ent_t *e, uint64_t seq)
{
    if (e->pend_gen != s->gen) {
        if (s->ntouched == s->touched_cap) {
            size_t cap = s->touched_cap ? s->touched_cap * 2 : 256;
            wm_ent_t **p = realloc(s->touched, cap * sizeof *p);
            if (!p) return -ENOMEM;
            s->touched = p;
            s->touched_cap = cap;
        }
        s->touched[s->ntouched++] = e;
        e->pend_gen = s->gen;
        e->pend = seq;
    } else if (seq > e->pend) {
        e->pend = seq;
    }
    return 0;
}

/* After a successful write: the batch's seqs become the watermarks. */
static void wm_commit(dg_store_t *s)
{
    for (size_t i = 0; i < s->ntouched; i++) {
        wm_ent_t *e = s->touched[i];
        if (!e->has || e->pend > e->max) e->max = e->pend;
        e->has = 1;
    }
    s->ntouched = 0;
    if (++s->gen == 0) s->gen = 1;
}

static void wm_abort(dg_store_t *s)
{
    s->ntouched = 0;
    if (++s->gen == 0) s->gen = 1;
}

/* ---- writes ------------------------------------------------------------- */

static int post_lines(dg_store_t *s, const char *url, char *err, size_t errlen)
{
    long code = http(s, s->w, &s->body, url, s->lines.data, s->lines.len,
                     "text/plain; charset=utf-8", err, errlen);
    if (code == 204 || code == 200) return 0;
    if (code == 0) return -ENOTCONN;
    char why[300];
    answer_reason(&s->body, why, sizeof why);
    set_err(err, errlen, "%s: write refused (HTTP %ld: %s)", s->where, code, why);
    return code == 401 ? -EACCES : code >= 500 ? -EIO : -EINVAL;
}

/* The parts of a split batch as parallel requests on s->multi; 0 when
 * every one was accepted, else the first failure (the batch is retried
 * whole by the writer: points already written are overwritten by the same
 * points, so a partial success is harmless). */
static int post_parts(dg_store_t *s, int np, char *err, size_t errlen)
{
    struct curl_slist *hdr = NULL;
    if ((s->authz[0] && add_hdr(&hdr, s->authz)) ||
        add_hdr(&hdr, "Content-Type: text/plain; charset=utf-8") || add_hdr(&hdr, "Expect:")) {
        curl_slist_free_all(hdr);
        set_err(err, errlen, "out of memory building a request to %s", s->where);
        return -ENOMEM;
    }
    int added = 0, e = 0;
    for (int k = 0; k < np; k++) {
        w_part_t *p = &s->part[k];
        if (!p->lines.len) continue;
        p->body.len = 0;
        curl_easy_setopt(p->h, CURLOPT_URL, s->write_url);
        curl_easy_setopt(p->h, CURLOPT_POST, 1L);
        curl_easy_setopt(p->h, CURLOPT_POSTFIELDS, p->lines.data);
        curl_easy_setopt(p->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->lines.len);
        curl_easy_setopt(p->h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(p->h, CURLOPT_PRIVATE, p);
        if (curl_multi_add_handle(s->multi, p->h) != CURLM_OK) {
            set_err(err, errlen, "%s: cannot start a write request", s->where);
            e = -ENOMEM;
            break;
        }
        added++;
    }
    int running = added;
    while (!e && running > 0) {
        CURLMcode mc = curl_multi_perform(s->multi, &running);
        if (mc == CURLM_OK && running > 0) mc = curl_multi_poll(s->multi, NULL, 0, 1000, NULL);
        if (mc != CURLM_OK) {
            set_err(err, errlen, "%s: %s", s->where, curl_multi_strerror(mc));
            e = -EIO;
        }
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) continue;
        w_part_t *p = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&p);
        if (e || !p) continue;
        if (msg->data.result != CURLE_OK) {
            set_err(err, errlen, "%s: %s", s->where, curl_easy_strerror(msg->data.result));
            e = -ENOTCONN;
            continue;
        }
        long code = 0;
        curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE, &code);
        if (code != 204 && code != 200) {
            char why[300];
            answer_reason(&p->body, why, sizeof why);
            set_err(err, errlen, "%s: write refused (HTTP %ld: %s)", s->where, code, why);
            e = code == 401 ? -EACCES : code >= 500 ? -EIO : -EINVAL;
        }
    }
    for (int k = 0; k < np; k++) {
        w_part_t *p = &s->part[k];
        if (!p->lines.len) continue;
        curl_multi_remove_handle(s->multi, p->h);
        curl_easy_setopt(p->h, CURLOPT_HTTPHEADER, NULL);
    }
    curl_slist_free_all(hdr);
    return e;
}

/* ---- reused seqs (writer thread) -------------------------------------- */

static int run_query(dg_store_t *s, CURL *h, dg_buf_t *body, const char *q, int post,
                     char *err, size_t errlen);
static int walk_answer(dg_store_t *s, dg_buf_t *body, dg_record_cb cb, void *ud, char *err, size_t errlen);

static bh_ent_t *bh_find(dg_store_t *s, const char *id, uint64_t seq, int create)
{
    size_t mask = s->bh_cap - 1;
    size_t i = (id_hash(id) ^ (uint32_t)(seq * 2654435761u) ^ (uint32_t)(seq >> 32)) & mask;
    for (;; i = (i + 1) & mask) {
        bh_ent_t *e = &s->bh[i];
        if (!e->id) {
            if (!create) return NULL;
            e->id = id;
            e->seq = seq;
            e->state = 0;
            return e;
        }
        if (e->seq == seq && !strcmp(e->id, id)) return e;
    }
}

static int on_stored_seq(void *ud, const dg_record_t *r)
{
    dg_store_t *s = ud;
    if (!(r->flags & DG_REC_HAS_SEQ)) return 0;
    bh_ent_t *e = bh_find(s, r->drone_id, r->seq, 0);
    if (e && e->state == BH_ASK) { e->state = BH_STORED; e->ts_ms = r->ts_ms; }
    return 0;
}

/* Ask InfluxDB which of the BH_ASK entries are stored, and at which time
 * (one query per LOOKUP_MAX of them, drones OR-ed, GROUP BY drone_id). seq
 * is a field, not indexed: the drones' series are scanned, which is why only
 * seqs at or below a drone's watermark are asked (redeliveries, reused seqs). */
#define LOOKUP_MAX 400
static int lookup_stored(dg_store_t *s, const dg_record_t *recs, size_t n, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < n) {
        dg_buf_t *q = &s->q;
        q->len = 0;
        int e = dg_buf_puts(q, "SELECT seq FROM telemetry WHERE ");
        size_t k = 0;
        const char *cur = NULL;
        for (; i < n && k < LOOKUP_MAX; i++) {
            const dg_record_t *r = &recs[i];
            if (!(r->flags & DG_REC_HAS_SEQ)) continue;
            bh_ent_t *b = bh_find(s, r->drone_id, r->seq, 0);
            if (!b || b->state != BH_ASK || b->ts_ms == INT64_MIN) continue;
            b->ts_ms = INT64_MIN;                   /* asked (once per entry) */
            if (!cur || strcmp(cur, r->drone_id)) {
                if (cur) e |= dg_buf_puts(q, ")) OR ");
                e |= dg_buf_puts(q, "(drone_id = '");
                e |= dg_buf_puts(q, r->drone_id);   /* validated: [A-Za-z0-9._-] */
                e |= dg_buf_puts(q, "' AND (");
                cur = r->drone_id;
            } else {
                e |= dg_buf_puts(q, " OR ");
            }
            e |= dg_buf_puts(q, "seq = ");
            e |= dg_jw_i64(q, (int64_t)r->seq);
            k++;
        }
        if (!k) break;
        e |= dg_buf_puts(q, ")) GROUP BY drone_id");
        e |= dg_buf_append(q, "", 1);
        if (e) { set_err(err, errlen, "out of memory building a seq lookup"); return -ENOMEM; }
        if ((e = run_query(s, s->w, &s->body, q->data, 0, err, errlen)) ||
            (e = walk_answer(s, &s->body, on_stored_seq, s, err, errlen)) < 0)
            return e < 0 ? e : -EIO;
    }
    return 0;
}

/* Judge every record with a seq (store.h): writes *skip[i] = 1 for records
 * not to be written (redeliveries, reused seqs: those also get the flag). */
static int judge_seqs(dg_store_t *s, dg_record_t *recs, size_t n, uint8_t *skip, char *err, size_t errlen)
{
    size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    if (cap > s->bh_cap) {
        bh_ent_t *p = realloc(s->bh, cap * sizeof *p);
        if (!p) { set_err(err, errlen, "out of memory judging %zu seqs", n); return -ENOMEM; }
        s->bh = p;
        s->bh_cap = cap;
    }
    memset(s->bh, 0, s->bh_cap * sizeof *s->bh);
    /* 1: seqs at or below the drone's watermark may be stored: ask */
    size_t ask = 0;
    for (size_t i = 0; i < n; i++) {
        dg_record_t *r = &recs[i];
        if (!(r->flags & DG_REC_HAS_SEQ)) continue;
        wm_ent_t *w = wm_get(s, r->drone_id, 0);
        if (!w || !w->has || r->seq > w->max) continue;
        bh_ent_t *b = bh_find(s, r->drone_id, r->seq, 1);
        if (!b->state) { b->state = BH_ASK; b->ts_ms = 0; ask++; }
    }
    if (ask) {
        int e = lookup_stored(s, recs, n, err, errlen);
        if (e < 0) return e;
    }
    /* 2: in order: the first of a (drone_id, seq) not stored is written;
     * any other is a redelivery (same timestamp, or none from the drone) or
     * a reused seq */
    for (size_t i = 0; i < n; i++) {
        dg_record_t *r = &recs[i];
        if (!(r->flags & DG_REC_HAS_SEQ)) continue;
        bh_ent_t *b = bh_find(s, r->drone_id, r->seq, 1);
        if (b->state == 0 || b->state == BH_ASK) {
            b->state = BH_BATCH;
            b->ts_ms = r->ts_ms;
            continue;
        }
        skip[i] = 1;
        if ((r->flags & DG_REC_HAS_TS) && r->ts_ms != b->ts_ms) r->flags |= DG_REC_REJECTED_REUSED;
    }
    return 0;
}

static int ix_write_batch(dg_store_t *s, dg_record_t *recs, size_t n, char *err, size_t errlen)
{
    /* big batches: split by drone over `writers` parallel requests */
    int np = 1;
    if (s->writers > 1 && n >= 2 * PART_MIN_POINTS) {
        np = (int)(n / PART_MIN_POINTS);
        if (np > s->writers) np = s->writers;
        for (int k = 0; k < np; k++) s->part[k].lines.len = 0;
    }
    uint8_t *skip = calloc(n ? n : 1, 1);
    if (!skip) { set_err(err, errlen, "out of memory building %zu InfluxDB points", n); return -ENOMEM; }
    for (size_t i = 0; i < n; i++) recs[i].flags &= ~DG_REC_REJECTED_REUSED;
    int e = judge_seqs(s, recs, n, skip, err, errlen);
    if (e) {
        for (size_t i = 0; i < n; i++) recs[i].flags &= ~DG_REC_REJECTED_REUSED;
        free(skip);
        return e;
    }
    dg_buf_t *b = &s->lines;
    b->len = 0;
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        const dg_record_t *r = &recs[i];
        if (skip[i]) continue;
        if (np > 1) b = &s->part[id_hash(r->drone_id) % (uint32_t)np].lines;
        if (r->ts_ms < IX_MIN_MS || r->ts_ms > IX_MAX_MS) {
            s->dropped++;
            int64_t now = dg_mono_ms();
            if (now - s->last_drop_log_ms >= 60000) {
                s->last_drop_log_ms = now;
                dg_warn("influxdb: drone %s sent a timestamp outside what InfluxDB can store "
                        "(1677-09-21..2262-04-11); %" PRId64 " such samples dropped so far",
                        r->drone_id, s->dropped);
            }
            continue;
        }
        int64_t ts_ns = r->ts_ms * 1000000;
        if (r->flags & DG_REC_HAS_SEQ) {
            wm_ent_t *w = wm_get(s, r->drone_id, 1);
            if (!w || wm_note(s, w, r->seq)) { e = -ENOMEM; break; }
            if (!(r->flags & DG_REC_HAS_TS) && r->ts_ms < IX_MAX_MS) ts_ns += 1 + (int64_t)(r->seq % 999999u);
        } else if (!(r->flags & DG_REC_HAS_TS) && r->ts_ms < IX_MAX_MS) {
            ts_ns += 1 + (int64_t)(s->noseq++ % 999999u);
        }
        if (lp_telemetry(b, r, ts_ns)) { e = -ENOMEM; break; }
        rows++;
    }
    free(skip);
    if (e) {
        wm_abort(s);
        for (size_t i = 0; i < n; i++) recs[i].flags &= ~DG_REC_REJECTED_REUSED;
        set_err(err, errlen, "out of memory building %zu InfluxDB points", n);
        return e;
    }
    if (rows == 0) { wm_abort(s); return 0; }
    if (np > 1) dg_debug("influxdb: %zu points as %d parallel write requests", rows, np);
    e = np > 1 ? post_parts(s, np, err, errlen) : post_lines(s, s->write_url, err, errlen);
    if (e) {
        wm_abort(s);
        for (size_t i = 0; i < n; i++) recs[i].flags &= ~DG_REC_REJECTED_REUSED;
    } else {
        wm_commit(s);
    }
    return e;
}

static int ix_update_drones(dg_store_t *s, const dg_record_t *last, size_t n, char *err, size_t errlen)
{
    dg_buf_t *b = &s->lines;
    b->len = 0;
    int e = 0;
    for (size_t i = 0; i < n; i++) {
        const dg_record_t *r = &last[i];
        e |= dg_buf_puts(b, "drones,drone_id=");
        e |= dg_buf_append(b, r->drone_id, strnlen(r->drone_id, DG_DRONE_ID_MAX));
        e |= dg_buf_puts(b, " last_seen=");
        e |= dg_jw_i64(b, r->recv_us / 1000);
        e |= dg_buf_puts(b, "i");
        if (r->flags & DG_REC_HAS_SEQ) {
            e |= dg_buf_puts(b, ",last_seq=");
            e |= dg_jw_i64(b, (int64_t)r->seq);
            e |= dg_buf_puts(b, "i");
        }
        e |= lp_state(b, r);
        e |= dg_buf_puts(b, " 0\n");     /* time 0: one point per drone, overwritten */
    }
    if (e) { set_err(err, errlen, "out of memory"); return -ENOMEM; }
    return n ? post_lines(s, s->write_url, err, errlen) : 0;
}

static int ix_put_command(dg_store_t *s, const dg_command_t *c, char *err, size_t errlen)
{
    dg_buf_t *b = &s->lines;
    b->len = 0;
    int e = dg_buf_puts(b, "commands,drone_id=");
    e |= dg_buf_append(b, c->drone_id, strnlen(c->drone_id, DG_DRONE_ID_MAX));
    e |= dg_buf_puts(b, " id=");
    e |= lp_str(b, c->id, strnlen(c->id, DG_CMD_ID_LEN));
    e |= dg_buf_puts(b, ",name=");
    e |= lp_str(b, c->name, strnlen(c->name, DG_CMD_NAME_MAX));
    e |= dg_buf_puts(b, ",args=");
    e |= lp_str(b, c->args, strnlen(c->args, DG_CMD_ARGS_MAX));
    const char *st = dg_command_status_name(c->status);
    e |= dg_buf_puts(b, ",status=");
    e |= lp_str(b, st, strlen(st));
    e |= dg_buf_puts(b, ",message=");
    e |= lp_str(b, c->message, strnlen(c->message, DG_CMD_MSG_MAX));
    e |= dg_buf_puts(b, ",updated_at=");
    e |= dg_jw_i64(b, c->updated_ms);
    e |= dg_buf_puts(b, "i ");
    int64_t ms = c->created_ms < IX_MIN_MS ? IX_MIN_MS : c->created_ms > IX_MAX_MS - 1 ? IX_MAX_MS - 1 : c->created_ms;
    e |= dg_jw_i64(b, ms * 1000000 + (int64_t)(id_hash(c->id) % 1000000u));
    e |= dg_buf_puts(b, "\n");
    if (e) { set_err(err, errlen, "out of memory"); return -ENOMEM; }
    return post_lines(s, s->write_url, err, errlen);
}

/* ---- reads: /query answers ---------------------------------------------- */

static int tok_eq(const char *js, const jsmntok_t *t, const char *s) { return dg_jsmn_eq(js, t, s); }
static int skip(const jsmntok_t *t, int n, int i) { return dg_jsmn_skip(t, n, i); }

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = dg_hexval(p[i]);
        if (h < 0) return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

/* Unescape a JSON string token into out (NUL-terminated, at most cap - 1
 * bytes, cut at a character boundary). Returns the length. InfluxDB writes
 * valid JSON; anything malformed ends the string. */
static size_t json_str(const char *js, const jsmntok_t *t, char *out, size_t cap)
{
    const char *p = js + t->start, *end = js + t->end;
    size_t o = 0;
    while (p < end) {
        char tmp[4];
        size_t n = 1;
        unsigned cp;
        if (*p != '\\') {
            tmp[0] = *p++;
        } else if (p + 1 < end && p[1] != 'u') {
            char c = p[1];
            tmp[0] = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == 'b' ? '\b' : c == 'f' ? '\f' : c;
            p += 2;
        } else if (p + 6 <= end && hex4(p + 2, &cp) == 0) {
            p += 6;
            unsigned lo;
            if (cp >= 0xD800 && cp < 0xDC00 && p + 6 <= end && p[0] == '\\' && p[1] == 'u' &&
                hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            if (cp < 0x80) {
                tmp[0] = (char)cp;
            } else if (cp < 0x800) {
                tmp[0] = (char)(0xC0 | cp >> 6); tmp[1] = (char)(0x80 | (cp & 63)); n = 2;
            } else if (cp < 0x10000) {
                tmp[0] = (char)(0xE0 | cp >> 12); tmp[1] = (char)(0x80 | ((cp >> 6) & 63));
                tmp[2] = (char)(0x80 | (cp & 63)); n = 3;
            } else {
                tmp[0] = (char)(0xF0 | cp >> 18); tmp[1] = (char)(0x80 | ((cp >> 12) & 63));
                tmp[2] = (char)(0x80 | ((cp >> 6) & 63)); tmp[3] = (char)(0x80 | (cp & 63)); n = 4;
            }
        } else {
            break;
        }
        if (o + n >= cap) break;
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
    return o;
}

enum col { COL_TIME, COL_DRONE, COL_SEQ, COL_LAT, COL_LON, COL_ALT, COL_SPEED, COL_HEADING,
           COL_CLIMB, COL_BATTERY, COL_STATUS, COL_RECV, COL_OTHER };
static const char *const col_names[] = { "time", "drone_id", "seq", "latitude", "longitude", "altitude",
    "speed", "heading", "climb", "battery", "status", "received_at", NULL };

static int prim_num(const char *js, const jsmntok_t *t, double *d, int64_t *i)
{
    if (t->type != JSMN_PRIMITIVE) return 0;
    char c = js[t->start];
    if (c == 'n' || c == 't' || c == 'f') return 0;
    char buf[64];
    size_t n = (size_t)(t->end - t->start);
    if (n >= sizeof buf) return 0;
    memcpy(buf, js + t->start, n);
    buf[n] = '\0';
    if (d) *d = strtod(buf, NULL);
    if (i) *i = strtoll(buf, NULL, 10);
    return 1;
}

/* One series (object at token i) -> records. Returns the index after it, or
 * -1 when the callback stopped. */
static int series_rows(const char *js, const jsmntok_t *t, int n, int i, dg_record_cb cb, void *ud)
{
    int end = skip(t, n, i);
    int cols[32], ncols = 0, values = -1;
    char tag_id[DG_DRONE_ID_MAX + 1] = "";
    for (int k = i + 1; k < end; ) {
        const jsmntok_t *key = &t[k];
        int v = k + 1;
        if (v >= end) break;
        if (tok_eq(js, key, "columns") && t[v].type == JSMN_ARRAY) {
            for (int c = v + 1; c < skip(t, n, v) && ncols < 32; c = skip(t, n, c)) {
                int id = COL_OTHER;
                for (int j = 0; col_names[j]; j++) if (tok_eq(js, &t[c], col_names[j])) { id = j; break; }
                cols[ncols++] = id;
            }
        } else if (tok_eq(js, key, "values") && t[v].type == JSMN_ARRAY) {
            values = v;
        } else if (tok_eq(js, key, "tags") && t[v].type == JSMN_OBJECT) {
            for (int c = v + 1; c + 1 < skip(t, n, v); c = skip(t, n, c + 1))
                if (tok_eq(js, &t[c], "drone_id") && t[c + 1].type == JSMN_STRING)
                    json_str(js, &t[c + 1], tag_id, sizeof tag_id);
        }
        k = skip(t, n, v);
    }
    if (values < 0) return end;
    dg_record_t rec;
    for (int row = values + 1; row < skip(t, n, values); row = skip(t, n, row)) {
        if (t[row].type != JSMN_ARRAY) continue;
        dg_record_init(&rec);
        snprintf(rec.drone_id, sizeof rec.drone_id, "%s", tag_id);
        rec.flags |= DG_REC_HAS_TS;
        int c = 0;
        for (int cell = row + 1; cell < skip(t, n, row) && c < ncols; cell = skip(t, n, cell), c++) {
            const jsmntok_t *x = &t[cell];
            double d;
            int64_t iv;
            switch (cols[c]) {
            case COL_TIME:  if (prim_num(js, x, NULL, &iv)) rec.ts_ms = iv; break;
            case COL_DRONE: if (x->type == JSMN_STRING) json_str(js, x, rec.drone_id, sizeof rec.drone_id); break;
            case COL_SEQ:   if (prim_num(js, x, NULL, &iv)) { rec.seq = (uint64_t)iv; rec.flags |= DG_REC_HAS_SEQ; } break;
            case COL_LAT:   if (prim_num(js, x, &d, NULL)) rec.lat = d; break;
            case COL_LON:   if (prim_num(js, x, &d, NULL)) rec.lon = d; break;
            case COL_ALT:   if (prim_num(js, x, &d, NULL)) rec.alt = d; break;
            case COL_SPEED: if (prim_num(js, x, &d, NULL)) { rec.speed = d; rec.flags |= DG_REC_HAS_SPEED; } break;
            case COL_HEADING: if (prim_num(js, x, &d, NULL)) { rec.heading = d; rec.flags |= DG_REC_HAS_HEADING; } break;
            case COL_CLIMB: if (prim_num(js, x, &d, NULL)) { rec.climb = d; rec.flags |= DG_REC_HAS_CLIMB; } break;
            case COL_BATTERY: if (prim_num(js, x, &d, NULL)) { rec.battery = d; rec.flags |= DG_REC_HAS_BATTERY; } break;
            case COL_STATUS:
                if (x->type == JSMN_STRING) {
                    rec.status_len = (uint8_t)json_str(js, x, rec.status, sizeof rec.status);
                    rec.flags |= DG_REC_HAS_STATUS;
                }
                break;
            case COL_RECV:
                if (prim_num(js, x, NULL, &iv))
                    rec.recv_us = iv > INT64_MAX / 1000 ? INT64_MAX : iv < INT64_MIN / 1000 ? INT64_MIN : iv * 1000;
                break;
            default: break;
            }
        }
        rec.drone_id_len = (uint8_t)strlen(rec.drone_id);
        if (cb(ud, &rec)) return -1;
    }
    return end;
}

/* One series (object at token i) of an answer: returns the index after it,
 * or -1 to stop the walk. */
typedef int (*series_fn)(const char *js, const jsmntok_t *t, int n, int i, void *ud);

/* Walk every newline-separated JSON document of a (chunked) /query answer,
 * fn on each series (fn may be NULL: errors only). 0, 1 when fn stopped, or
 * -errno with err. */
static int walk_series(dg_store_t *s, dg_buf_t *body, series_fn fn, void *ud, char *err, size_t errlen)
{
    jsmntok_t *tok = NULL;
    size_t tcap = 0;
    int rc = 0;
    size_t pos = 0;
    while (pos < body->len && rc == 0) {
        const char *doc = body->data + pos;
        const char *nl = memchr(doc, '\n', body->len - pos);
        size_t len = nl ? (size_t)(nl - doc) : body->len - pos;
        pos += len + 1;
        if (len == 0) continue;
        jsmn_parser p;
        jsmn_init(&p);
        int need = jsmn_parse(&p, doc, len, NULL, 0);
        if (need < 1) { set_err(err, errlen, "%s: unreadable answer to a query", s->where); rc = -EPROTO; break; }
        if ((size_t)need > tcap) {
            jsmntok_t *nt = realloc(tok, (size_t)need * sizeof *nt);
            if (!nt) { set_err(err, errlen, "out of memory reading a query answer"); rc = -ENOMEM; break; }
            tok = nt;
            tcap = (size_t)need;
        }
        jsmn_init(&p);
        int n = jsmn_parse(&p, doc, len, tok, (unsigned)tcap);
        if (n < 1 || tok[0].type != JSMN_OBJECT) { set_err(err, errlen, "%s: unreadable answer to a query", s->where); rc = -EPROTO; break; }
        /* {"results":[{"statement_id":0,"series":[...],"error":"..."}], "error": "..."} */
        for (int k = 1; k < n && rc == 0; ) {
            int v = k + 1;
            if (v >= n) break;
            if (tok_eq(doc, &tok[k], "error")) {
                char m[256];
                json_str(doc, &tok[v], m, sizeof m);
                set_err(err, errlen, "%s: query failed: %s", s->where, m);
                rc = -EIO;
            } else if (tok_eq(doc, &tok[k], "results") && tok[v].type == JSMN_ARRAY) {
                for (int r = v + 1; r < skip(tok, n, v) && rc == 0; r = skip(tok, n, r)) {
                    if (tok[r].type != JSMN_OBJECT) continue;
                    for (int q = r + 1; q + 1 < skip(tok, n, r) && rc == 0; q = skip(tok, n, q + 1)) {
                        if (tok_eq(doc, &tok[q], "error")) {
                            char m[256];
                            json_str(doc, &tok[q + 1], m, sizeof m);
                            set_err(err, errlen, "%s: query failed: %s", s->where, m);
                            rc = -EIO;
                        } else if (tok_eq(doc, &tok[q], "series") && tok[q + 1].type == JSMN_ARRAY && fn) {
                            for (int se = q + 2; se < skip(tok, n, q + 1); ) {
                                int nx = fn(doc, tok, n, se, ud);
                                if (nx < 0) { rc = 1; break; }
                                se = nx;
                            }
                        }
                    }
                }
            }
            k = skip(tok, n, v);
        }
    }
    free(tok);
    return rc;
}

typedef struct rec_walk {
    dg_record_cb cb;
    void        *ud;
} rec_walk_t;

static int rec_series(const char *js, const jsmntok_t *t, int n, int i, void *ud)
{
    rec_walk_t *w = ud;
    return series_rows(js, t, n, i, w->cb, w->ud);
}

/* walk_series() with one record per row (cb may be NULL: errors only). */
static int walk_answer(dg_store_t *s, dg_buf_t *body, dg_record_cb cb, void *ud, char *err, size_t errlen)
{
    rec_walk_t w = { cb, ud };
    return walk_series(s, body, cb ? rec_series : NULL, &w, err, errlen);
}

static rd_handle_t *rd_acquire(dg_store_t *s)
{
    rd_handle_t *h = NULL;
    pthread_mutex_lock(&s->rd_mu);
    for (;;) {
        for (int i = 0; i < RD_MAX && !h; i++) if (!s->rd[i].busy) h = &s->rd[i];
        if (h) break;
        pthread_cond_wait(&s->rd_cv, &s->rd_mu);
    }
    h->busy = 1;
    pthread_mutex_unlock(&s->rd_mu);
    if (!h->h && (h->h = curl_easy_init()) != NULL && setup_handle(s, h->h, &h->body)) {
        curl_easy_cleanup(h->h);
        h->h = NULL;
    }
    return h;
}

static void rd_release(dg_store_t *s, rd_handle_t *h)
{
    if (h->body.cap > (1u << 20)) dg_buf_free(&h->body);   /* do not keep a big answer around */
    pthread_mutex_lock(&s->rd_mu);
    h->busy = 0;
    pthread_cond_signal(&s->rd_cv);
    pthread_mutex_unlock(&s->rd_mu);
}


/* Run an InfluxQL statement on handle h (GET, or POST for statements that
 * change things); the answer is left in h's body. */
static int run_query(dg_store_t *s, CURL *h, dg_buf_t *body, const char *q, int post,
                     char *err, size_t errlen)
{
    char *url = NULL;
    size_t cap = strlen(s->base) + strlen(q) * 3 + 512;
    char *qe = malloc(strlen(q) * 3 + 1);
    char dbe[400], rpe[400];
    int e = 0;
    if (!qe || !(url = malloc(cap)) || urlenc(q, qe, strlen(q) * 3 + 1) ||
        urlenc(s->db, dbe, sizeof dbe) || urlenc(s->rp, rpe, sizeof rpe)) {
        set_err(err, errlen, "out of memory building a query");
        e = -ENOMEM;
        goto out;
    }
    snprintf(url, cap, "%s/query?db=%s%s%s&epoch=ms&chunked=true&chunk_size=%d&q=%s", s->base, dbe,
             s->rp[0] ? "&rp=" : "", rpe, CHUNK_ROWS, qe);
    long code = http(s, h, body, url, post ? "" : NULL, 0, "application/x-www-form-urlencoded", err, errlen);
    if (code == 0) { e = -ENOTCONN; goto out; }
    if (code != 200) {
        char why[300];
        answer_reason(body, why, sizeof why);
        set_err(err, errlen, "%s: query refused (HTTP %ld: %s)", s->where, code, why);
        e = code == 401 ? -EACCES : code >= 500 ? -EIO : -EINVAL;
    }
out:
    free(qe);
    free(url);
    return e;
}

/* An InfluxQL read on a pooled handle, its series walked by fn (NULL: the
 * answer is only checked). 0, or <0 with err. */
static int read_series(dg_store_t *s, const char *q, series_fn fn, void *ud, char *err, size_t errlen)
{
    rd_handle_t *h = rd_acquire(s);
    int e;
    if (!h->h) { set_err(err, errlen, "cannot create an HTTP client handle"); e = -ENOMEM; }
    else if ((e = run_query(s, h->h, &h->body, q, 0, err, errlen)) == 0)
        e = walk_series(s, &h->body, fn, ud, err, errlen);
    rd_release(s, h);
    return e < 0 ? e : 0;
}

static int ix_query(dg_store_t *s, const dg_query_t *q, dg_record_cb cb, void *ud, char *err, size_t errlen)
{
    if (!q || !q->drone_id || !cb || q->limit == 0) {
        set_err(err, errlen, "history query needs a drone id, a callback and a limit > 0");
        return -EINVAL;
    }
    /* the id is validated ([A-Za-z0-9._-]): nothing to escape in '...' */
    if (!dg_drone_id_valid(q->drone_id, strnlen(q->drone_id, DG_DRONE_ID_MAX + 1))) {
        set_err(err, errlen, "invalid drone id");
        return -EINVAL;
    }
    char sql[512];
    int n = snprintf(sql, sizeof sql, "SELECT drone_id, seq, latitude, longitude, altitude, speed, heading,"
                     " climb, battery, status, received_at FROM telemetry WHERE drone_id = '%s'", q->drone_id);
    if (q->from_ms > IX_MAX_MS || q->to_ms < IX_MIN_MS) return 0;   /* nothing can be there */
    if (q->from_ms > IX_MIN_MS)
        n += snprintf(sql + n, sizeof sql - (size_t)n, " AND time >= %" PRId64, q->from_ms * 1000000);
    if (q->to_ms < IX_MAX_MS)
        n += snprintf(sql + n, sizeof sql - (size_t)n, " AND time <= %" PRId64, q->to_ms * 1000000 + 999999);
    snprintf(sql + n, sizeof sql - (size_t)n, " ORDER BY time ASC LIMIT %zu", q->limit);
    rec_walk_t w = { cb, ud };
    return read_series(s, sql, cb ? rec_series : NULL, &w, err, errlen);
}

/* The latest point of every drone by the registry's rule (registry.h: what
 * the drone sent last, never the newest claimed time): the highest seq in
 * uint64 order (seqs >= 2^63 are stored negative, so those come first),
 * else, for a drone without seqs, the last received. Three selector
 * queries, one series per drone_id tag each; a drone answered by an earlier
 * one is skipped by the later ones. */
#define LATEST_FIELDS "latitude, longitude, altitude, speed, heading, climb, battery, status"
static const char *const sql_latest[3] = {
    "SELECT max(seq) AS seq, " LATEST_FIELDS ", received_at FROM telemetry WHERE seq < 0 GROUP BY drone_id",
    "SELECT max(seq) AS seq, " LATEST_FIELDS ", received_at FROM telemetry WHERE seq >= 0 GROUP BY drone_id",
    "SELECT max(received_at) AS received_at, seq, " LATEST_FIELDS " FROM telemetry GROUP BY drone_id",
};

typedef struct latest_walk {
    dg_record_cb cb;
    void        *ud;
    char       **ids;        /* drones answered so far (open addressing) */
    size_t       cap, n;
    int          oom;
} latest_walk_t;

static int latest_seen(latest_walk_t *lw, const char *id, int add)
{
    if (add && (lw->n + 1) * 2 > lw->cap) {
        size_t ncap = lw->cap ? lw->cap * 2 : 1024;
        char **nids = calloc(ncap, sizeof *nids);
        if (!nids) { lw->oom = 1; return 0; }
        for (size_t i = 0; i < lw->cap; i++) {
            if (!lw->ids[i]) continue;
            size_t j = dg_fnv1a32(lw->ids[i], strlen(lw->ids[i])) & (ncap - 1);
            while (nids[j]) j = (j + 1) & (ncap - 1);
            nids[j] = lw->ids[i];
        }
        free(lw->ids);
        lw->ids = nids;
        lw->cap = ncap;
    }
    if (!lw->cap) return 0;
    size_t j = dg_fnv1a32(id, strlen(id)) & (lw->cap - 1);
    for (; lw->ids[j]; j = (j + 1) & (lw->cap - 1))
        if (!strcmp(lw->ids[j], id)) return 1;
    if (add) {
        if (!(lw->ids[j] = strdup(id))) { lw->oom = 1; return 0; }
        lw->n++;
    }
    return 0;
}

static int on_latest(void *ud, const dg_record_t *r)
{
    latest_walk_t *lw = ud;
    if (latest_seen(lw, r->drone_id, 0)) return 0;
    latest_seen(lw, r->drone_id, 1);
    return lw->cb ? lw->cb(lw->ud, r) : 0;
}

static int ix_latest(dg_store_t *s, dg_record_cb cb, void *ud, char *err, size_t errlen)
{
    latest_walk_t lw = { .cb = cb, .ud = ud };
    rec_walk_t w = { on_latest, &lw };
    int e = 0;
    for (int i = 0; i < 3 && e == 0; i++) {
        e = read_series(s, sql_latest[i], rec_series, &w, err, errlen);
        if (e == 0 && lw.oom) { set_err(err, errlen, "out of memory reading the latest states"); e = -ENOMEM; }
    }
    for (size_t i = 0; i < lw.cap; i++) free(lw.ids[i]);
    free(lw.ids);
    return e;
}

/* last_seq: the seq of the one row MAX() answers with. */
typedef struct seq_walk {
    uint64_t seq;
    int      has;
} seq_walk_t;

static int on_max_seq(void *ud, const dg_record_t *r)
{
    seq_walk_t *w = ud;
    if (r->flags & DG_REC_HAS_SEQ) { w->seq = r->seq; w->has = 1; }
    return 0;
}

/* MAX(seq) of the drone's points, compared as uint64: seqs >= 2^63 are the
 * negative int64s, so those are asked first. Reads every seq of the drone
 * (a field, not indexed): one call per drone connection. */
static int ix_last_seq(dg_store_t *s, const char *drone_id, uint64_t *seq, char *err, size_t errlen)
{
    if (!dg_drone_id_valid(drone_id, strnlen(drone_id, DG_DRONE_ID_MAX + 1))) {
        set_err(err, errlen, "invalid drone id");
        return -EINVAL;
    }
    static const char *const cond[2] = { "seq < 0", "seq >= 0" };
    for (int k = 0; k < 2; k++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT MAX(seq) AS seq FROM telemetry WHERE drone_id = '%s' AND %s",
                 drone_id, cond[k]);
        seq_walk_t w = { 0, 0 };
        rec_walk_t rw = { on_max_seq, &w };
        int e = read_series(s, sql, rec_series, &rw, err, errlen);
        if (e < 0) return e;
        if (w.has) { *seq = w.seq; return 0; }
    }
    return 1;
}

/* ---- commands read back ------------------------------------------------ */

enum ccol { CC_TIME, CC_ID, CC_DRONE, CC_NAME, CC_ARGS, CC_STATUS, CC_MESSAGE, CC_UPDATED, CC_OTHER };
static const char *const ccol_names[] = { "time", "id", "drone_id", "name", "args", "status", "message",
                                          "updated_at", NULL };

typedef struct cmd_walk {
    const char   *id;       /* the wanted id; NULL: every open command to cb */
    dg_command_t *out;
    int           found;
    int         (*cb)(void *ud, const dg_command_t *c);
    void         *ud;
    int           stop;
    dg_command_t  row;      /* scratch */
} cmd_walk_t;

/* args come back as stored by put_command (a JSON object, validated by the
 * API); anything else - data written by something else - reads as "{}", so
 * the REST answer stays valid JSON. */
static int args_plausible(const char *a)
{
    size_t n = strlen(a);
    while (n && (a[n - 1] == ' ' || a[n - 1] == '\n' || a[n - 1] == '\r' || a[n - 1] == '\t')) n--;
    size_t i = strspn(a, " \n\r\t");
    if (i >= n || a[i] != '{' || a[n - 1] != '}') return 0;
    jsmn_parser p;
    jsmn_init(&p);
    return jsmn_parse(&p, a + i, n - i, NULL, 0) >= 1;
}

/* Rows of the commands measurement: keep the row of the wanted id with the
 * newest updated_at (there is one point per command; a second one could only
 * come from something else writing there). */
static int cmd_series(const char *js, const jsmntok_t *t, int n, int i, void *ud)
{
    cmd_walk_t *w = ud;
    int end = skip(t, n, i);
    int cols[32], ncols = 0, values = -1;
    char tag_id[DG_DRONE_ID_MAX + 1] = "";
    for (int k = i + 1; k < end; ) {
        int v = k + 1;
        if (v >= end) break;
        if (tok_eq(js, &t[k], "columns") && t[v].type == JSMN_ARRAY) {
            for (int c = v + 1; c < skip(t, n, v) && ncols < 32; c = skip(t, n, c)) {
                int id = CC_OTHER;
                for (int j = 0; ccol_names[j]; j++) if (tok_eq(js, &t[c], ccol_names[j])) { id = j; break; }
                cols[ncols++] = id;
            }
        } else if (tok_eq(js, &t[k], "values") && t[v].type == JSMN_ARRAY) {
            values = v;
        } else if (tok_eq(js, &t[k], "tags") && t[v].type == JSMN_OBJECT) {
            for (int c = v + 1; c + 1 < skip(t, n, v); c = skip(t, n, c + 1))
                if (tok_eq(js, &t[c], "drone_id") && t[c + 1].type == JSMN_STRING)
                    json_str(js, &t[c + 1], tag_id, sizeof tag_id);
        }
        k = skip(t, n, v);
    }
    if (values < 0) return end;
    dg_command_t *r = &w->row;
    for (int row = values + 1; row < skip(t, n, values); row = skip(t, n, row)) {
        if (t[row].type != JSMN_ARRAY) continue;
        char status[16] = "";
        memset(r, 0, sizeof *r);
        snprintf(r->drone_id, sizeof r->drone_id, "%s", tag_id);
        int c = 0;
        for (int cell = row + 1; cell < skip(t, n, row) && c < ncols; cell = skip(t, n, cell), c++) {
            const jsmntok_t *x = &t[cell];
            int64_t iv;
            int str = x->type == JSMN_STRING;
            switch (cols[c]) {
            case CC_TIME:    if (prim_num(js, x, NULL, &iv)) r->created_ms = iv; break;
            case CC_ID:      if (str) json_str(js, x, r->id, sizeof r->id); break;
            case CC_DRONE:   if (str) json_str(js, x, r->drone_id, sizeof r->drone_id); break;
            case CC_NAME:    if (str) json_str(js, x, r->name, sizeof r->name); break;
            case CC_ARGS:    if (str) json_str(js, x, r->args, sizeof r->args); break;
            case CC_STATUS:  if (str) json_str(js, x, status, sizeof status); break;
            case CC_MESSAGE: if (str) json_str(js, x, r->message, sizeof r->message); break;
            case CC_UPDATED: if (prim_num(js, x, NULL, &iv)) r->updated_ms = iv; break;
            default: break;
            }
        }
        if (w->id && strcmp(r->id, w->id) != 0) continue;
        if (!args_plausible(r->args)) snprintf(r->args, sizeof r->args, "{}");
        r->status = dg_command_status_from_name(status);
        if (r->status < 0) r->status = DG_CMD_PENDING;          /* as sqlite.c */
        if (!w->id) {
            if (w->stop || strnlen(r->id, sizeof r->id) != DG_CMD_ID_LEN) continue;
            if (r->status == DG_CMD_PENDING || r->status == DG_CMD_SENT || r->status == DG_CMD_ACCEPTED)
                w->stop = w->cb(w->ud, r);
            continue;
        }
        if (!w->found || r->updated_ms >= w->out->updated_ms) *w->out = *r;
        w->found = 1;
    }
    return end;
}

/* One command by id (a GET of a command this process does not remember).
 * Same contract as sqlite.c: 0 and *out, 1 when there is no such command,
 * <0 with err when InfluxDB cannot answer. */
static int ix_get_command(dg_store_t *s, const char *id, dg_command_t *out, char *err, size_t errlen)
{
    /* ids are DG_CMD_ID_LEN lowercase hex (commands.c): anything else was
     * never stored, and is never put into a query */
    size_t idlen = id ? strnlen(id, DG_CMD_ID_LEN + 1) : 0;
    if (idlen != DG_CMD_ID_LEN) return 1;
    for (size_t i = 0; i < idlen; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return 1;
    /* an InfluxQL string literal: ' and \ escaped (none can be left after
     * the check above; kept so that the quoting never depends on it) */
    char q[256];
    size_t o = (size_t)snprintf(q, sizeof q, "SELECT \"id\", \"drone_id\", \"name\", \"args\", \"status\", "
                                "\"message\", \"updated_at\" FROM \"commands\" WHERE \"id\" = '");
    for (size_t i = 0; i < idlen && o + 4 < sizeof q; i++) {
        if (id[i] == '\'' || id[i] == '\\') q[o++] = '\\';
        q[o++] = id[i];
    }
    snprintf(q + o, sizeof q - o, "'");
    cmd_walk_t *w = malloc(sizeof *w);      /* ~5 KB: not on a worker's stack */
    if (!w) { set_err(err, errlen, "out of memory reading a command"); return -ENOMEM; }
    w->id = id;
    w->out = out;
    w->found = 0;
    int e = read_series(s, q, cmd_series, w, err, errlen);
    int found = w->found;
    free(w);
    if (e < 0) return e;
    return found ? 0 : 1;
}

/* The open commands created since since_ms (one point per command, its
 * latest status: put_command overwrites it), oldest first. */
static int ix_open_commands(dg_store_t *s, int64_t since_ms, int (*cb)(void *ud, const dg_command_t *c),
                            void *ud, char *err, size_t errlen)
{
    char q[256];
    if (since_ms < IX_MIN_MS) since_ms = IX_MIN_MS;
    snprintf(q, sizeof q, "SELECT \"id\", \"drone_id\", \"name\", \"args\", \"status\", \"message\", "
             "\"updated_at\" FROM \"commands\" WHERE time >= %" PRId64, since_ms * 1000000);
    cmd_walk_t *w = calloc(1, sizeof *w);
    if (!w) { set_err(err, errlen, "out of memory reading the open commands"); return -ENOMEM; }
    w->cb = cb;
    w->ud = ud;
    int e = read_series(s, q, cmd_series, w, err, errlen);
    free(w);
    return e;
}

static int ix_ping(dg_store_t *s)
{
    int64_t now = dg_mono_ms();
    pthread_mutex_lock(&s->rd_mu);
    int recent_fail = now < s->ping_fail_until_ms;
    pthread_mutex_unlock(&s->rd_mu);
    if (recent_fail) return -ENOTCONN;   /* a worker thread never waits on a dead server twice a second */
    rd_handle_t *h = rd_acquire(s);
    char url[340];
    snprintf(url, sizeof url, "%s/ping", s->base);
    long code = h->h ? http(s, h->h, &h->body, url, NULL, 0, NULL, NULL, 0) : 0;
    rd_release(s, h);
    if (code == 204 || code == 200) return 0;
    pthread_mutex_lock(&s->rd_mu);
    s->ping_fail_until_ms = now + PING_RETRY_MS;
    pthread_mutex_unlock(&s->rd_mu);
    return code == 0 ? -ENOTCONN : -EIO;
}

/* ---- open / close ------------------------------------------------------- */

static void ix_close(dg_store_t *s)
{
    if (!s) return;
    for (int i = 0; i < RD_MAX; i++) {
        if (s->rd[i].h) curl_easy_cleanup(s->rd[i].h);
        dg_buf_free(&s->rd[i].body);
    }
    if (s->w) curl_easy_cleanup(s->w);
    for (int k = 0; k < WR_MAX; k++) {
        if (s->part[k].h) curl_easy_cleanup(s->part[k].h);
        dg_buf_free(&s->part[k].lines);
        dg_buf_free(&s->part[k].body);
    }
    if (s->multi) curl_multi_cleanup(s->multi);
    for (unsigned b = 0; b < WM_BUCKETS; b++)
        for (wm_ent_t *e = s->wm[b], *nx; e; e = nx) { nx = e->next; free(e); }
    free(s->touched);
    free(s->bh);
    dg_buf_free(&s->q);
    dg_buf_free(&s->lines);
    dg_buf_free(&s->body);
    free(s->write_url);
    pthread_cond_destroy(&s->rd_cv);
    pthread_mutex_destroy(&s->rd_mu);
    explicit_bzero(s->userpwd, sizeof s->userpwd);
    explicit_bzero(s->authz, sizeof s->authz);
    free(s);
    curl_global_cleanup();
}

/* Percent-decode src[0..n) into out (NUL-terminated); -1 when it does not fit. */
static int pct_decode(const char *src, size_t n, char *out, size_t cap)
{
    return dg_percent_decode(src, n, out, cap, 0) < 0 ? -1 : 0;
}

/* The URI for messages: no password, no query string (token=). */
static void uri_shown(const char *uri, char *out, size_t cap)
{
    size_t n = strcspn(uri, "?");
    const char *sch = strstr(uri, "://");
    const char *auth = sch && (size_t)(sch - uri) < n ? sch + 3 : NULL;
    const char *at = auth ? memchr(auth, '@', (size_t)(uri + n - auth)) : NULL;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (at && strcspn(auth, "/") < (size_t)(at - auth)) at = colon = NULL;   /* an '@' in the path */
    if (colon)
        snprintf(out, cap, "%.*s:***%.*s%s", (int)(colon - uri), uri, (int)(uri + n - at), at, uri[n] ? "?..." : "");
    else
        snprintf(out, cap, "%.*s%s", (int)n, uri, uri[n] ? "?..." : "");
}

/* One option (rp, timeout, token) from the URI (src "", value percent-
 * encoded) or the environment (src "(env DRONEGATE_INFLUX_...) ", raw).
 * 0, 1 when the key is not an option, -EINVAL with err. */
static int apply_opt(dg_store_t *s, const char *k, size_t kl, const char *v, size_t vl, int decode,
                     const char *src, char *err, size_t errlen)
{
#define KEY(name) (kl == sizeof(name) - 1 && !strncmp(k, name, kl))
    if (!KEY("rp") && !KEY("timeout") && !KEY("token") && !KEY("writers")) return 1;
    char tmp[TOKEN_MAX + 2];
    if (vl >= sizeof tmp) goto toolong;
    if (decode) {
        if (pct_decode(v, vl, tmp, sizeof tmp)) goto toolong;
    } else {
        memcpy(tmp, v, vl);
        tmp[vl] = '\0';
    }
    if (KEY("rp")) {
        size_t n = strlen(tmp);
        if (n >= sizeof s->rp) goto toolong;
        memcpy(s->rp, tmp, n + 1);
    } else if (KEY("timeout")) {
        int64_t ms = 0;                   /* a bare number is seconds */
        if (dg_parse_duration_ms(tmp, strlen(tmp), 1000, &ms) || ms <= 0 || ms > 3600000) goto badtime;
        s->timeout_ms = (long)ms;
    } else if (KEY("writers")) {
        char *end;
        long w = strtol(tmp, &end, 10);
        if (!tmp[0] || *end || w < 1 || w > WR_MAX) {
            set_err(err, errlen, "InfluxDB store option %swriters must be 1-%d", src, WR_MAX);
            return -EINVAL;
        }
        s->writers = (int)w;
    } else if (KEY("token")) {
        size_t n = strlen(tmp);
        int ok = n > 0 && n <= TOKEN_MAX;
        for (size_t i = 0; i < n && ok; i++) ok = tmp[i] > ' ' && tmp[i] < 0x7f;   /* nothing to break the header */
        if (!ok) {
            explicit_bzero(tmp, sizeof tmp);
            set_err(err, errlen, "InfluxDB store option %stoken must be 1-%d printable ASCII characters "
                    "without spaces", src, TOKEN_MAX);
            return -EINVAL;
        }
        snprintf(s->authz, sizeof s->authz, "Authorization: Token %s", tmp);
    }
    explicit_bzero(tmp, sizeof tmp);
    return 0;
toolong:
    explicit_bzero(tmp, sizeof tmp);
    set_err(err, errlen, "InfluxDB store option %s%.*s is too long", src, (int)kl, k);
    return -EINVAL;
badtime:
    set_err(err, errlen, "InfluxDB store option %stimeout must be like 10s, 500ms or 2m (at most 1h)", src);
    return -EINVAL;
#undef KEY
}

static int parse_uri(dg_store_t *s, const char *uri, char *err, size_t errlen)
{
    s->timeout_ms = 10000;
    s->writers = 2;
    /* environment first (an empty variable is unset), the URI overrides */
    static const char *const env_opts[][2] = { { "rp", "DRONEGATE_INFLUX_RP" },
        { "timeout", "DRONEGATE_INFLUX_TIMEOUT" }, { "token", "DRONEGATE_INFLUX_TOKEN" },
        { "writers", "DRONEGATE_INFLUX_WRITERS" } };
    for (size_t i = 0; i < sizeof env_opts / sizeof env_opts[0]; i++) {
        const char *v = getenv(env_opts[i][1]);
        char src[64];
        snprintf(src, sizeof src, "(env %s) ", env_opts[i][1]);
        if (v && *v && apply_opt(s, env_opts[i][0], strlen(env_opts[i][0]), v, strlen(v), 0, src, err, errlen))
            return -EINVAL;
    }
    const char *p = strchr(uri, ':');
    if (!p || strncmp(p, "://", 3) != 0) goto bad;
    p += 3;
    const char *slash = strchr(p, '/');
    if (!slash) goto bad;
    const char *at = memchr(p, '@', (size_t)(slash - p));
    if (at) {
        if (pct_decode(p, (size_t)(at - p), s->userpwd, sizeof s->userpwd)) goto bad;
        p = at + 1;
    }
    size_t hl = (size_t)(slash - p);
    if (hl == 0 || hl > 255) goto bad;
    const char *colon = NULL;
    for (const char *c = p; c < slash; c++) if (*c == ':') colon = c;
    if (p[0] == '[') { const char *rb = memchr(p, ']', hl); if (!rb || (colon && colon < rb)) colon = NULL; }
    snprintf(s->base, sizeof s->base, "http://%.*s%s", (int)hl, p, colon ? "" : ":8086");
    const char *dbs = slash + 1;
    size_t dl = strcspn(dbs, "?");
    if (dl == 0 || pct_decode(dbs, dl, s->db, sizeof s->db)) goto bad;
    snprintf(s->where, sizeof s->where, "InfluxDB at %.*s/%s", (int)hl, p, s->db);
    const char *q = dbs[dl] == '?' ? dbs + dl + 1 : NULL;
    while (q && *q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        size_t kl = eq ? (size_t)(eq - q) : len;
        const char *v = eq ? eq + 1 : q + len;
        size_t vl = eq ? len - kl - 1 : 0;
        int r = len ? apply_opt(s, q, kl, v, vl, 1, "", err, errlen) : 0;
        if (r < 0) return r;
        if (r > 0) {
            set_err(err, errlen, "unknown InfluxDB store option '%.*s' (known: rp=NAME, timeout=10s, token=T)",
                    (int)kl, q);
            return -EINVAL;
        }
        q += len;
        if (*q == '&') q++;
    }
    if (s->userpwd[0] && s->authz[0]) {
        set_err(err, errlen, "InfluxDB store: give either USER:PASS@ in the URI or a token (token= or "
                "DRONEGATE_INFLUX_TOKEN), not both");
        return -EINVAL;
    }
    return 0;
bad: {
        char shown[300];
        uri_shown(uri, shown, sizeof shown);
        set_err(err, errlen, "store URI '%s' is not an InfluxDB URI: use influxdb://HOST:PORT/DB "
                "(e.g. influxdb://127.0.0.1:8086/dronegate)", shown);
        return -EINVAL;
    }
}

/* m without a leading "InfluxDB at host:port/db: " (messages that add it themselves). */
static const char *unprefixed(const dg_store_t *s, const char *m)
{
    size_t n = strlen(s->where);
    return !strncmp(m, s->where, n) && m[n] == ':' && m[n + 1] == ' ' ? m + n + 2 : m;
}

/* The reason in an error answer, for a one-line message: its "error" (1.x)
 * or "message" (2.x) string, else the answer's first line; control
 * characters become spaces. */
static void answer_reason(dg_buf_t *b, char *out, size_t cap)
{
    const char *txt = answer_text(b);       /* NUL-terminated first line */
    jsmntok_t tok[16];
    jsmn_parser p;
    jsmn_init(&p);
    int n = jsmn_parse(&p, txt, strlen(txt), tok, 16), found = 0;
    for (int k = 1; n > 0 && tok[0].type == JSMN_OBJECT && k + 1 < n && !found; k = skip(tok, n, k + 1)) {
        if ((tok_eq(txt, &tok[k], "error") || tok_eq(txt, &tok[k], "message")) && tok[k + 1].type == JSMN_STRING) {
            json_str(txt, &tok[k + 1], out, cap);
            found = 1;
        }
    }
    if (!found) snprintf(out, cap, "%s", txt[0] ? txt : "no details given");
    for (char *c = out; *c; c++) if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = ' ';
}

/* HTTP 401 at open: one sentence saying which credentials to check (never
 * their values). The server's answer is in s->body. */
static void auth_failed(dg_store_t *s, char *err, size_t errlen)
{
    char why[200];
    answer_reason(&s->body, why, sizeof why);
    const char *what = s->userpwd[0] ? "check the user name and password (USER:PASS@ in the store URI)"
                     : s->authz[0]   ? "check the token (token= or DRONEGATE_INFLUX_TOKEN; InfluxDB 1.x "
                                       "accepts tokens only from 1.8 on, use USER:PASS@ before that)"
                                     : "it needs credentials: USER:PASS@ in the store URI, or token=T "
                                       "(InfluxDB 2.x)";
    set_err(err, errlen, "cannot use %s: authentication failed (HTTP 401: %s): %s", s->where, why, what);
}

/* The watermarks: MAX(seq) of telemetry per drone, as uint64 (see "Duplicates"). */
static int seed_one(void *ud, const dg_record_t *r)
{
    dg_store_t *s = ud;
    if (!(r->flags & DG_REC_HAS_SEQ) || !r->drone_id[0]) return 0;
    wm_ent_t *e = wm_get(s, r->drone_id, 1);
    if (e && (!e->has || r->seq > e->max)) { e->max = r->seq; e->has = 1; }
    return 0;
}

static int ix_open(const char *uri, const dg_store_config_t *cfg, dg_store_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        set_err(err, errlen, "cannot initialise libcurl");
        return -ENOMEM;
    }
    dg_store_t *s = calloc(1, sizeof *s);
    if (!s) { curl_global_cleanup(); set_err(err, errlen, "out of memory"); return -ENOMEM; }
    pthread_mutex_init(&s->rd_mu, NULL);
    pthread_cond_init(&s->rd_cv, NULL);
    s->gen = 1;
    int e = parse_uri(s, uri, err, errlen);
    if (e) goto fail;
    if (cfg && cfg->fsync)
        dg_warn("influxdb: --fsync has no effect: InfluxDB acknowledges a write once it is in its WAL "
                "(fsync there is the server's wal-fsync-delay setting)");

    char dbe[400], rpe[400];
    size_t ul = strlen(s->base) + 1024;
    if (urlenc(s->db, dbe, sizeof dbe) || urlenc(s->rp, rpe, sizeof rpe) ||
        !(s->write_url = malloc(ul))) {
        set_err(err, errlen, "out of memory");
        e = -ENOMEM;
        goto fail;
    }
    snprintf(s->write_url, ul, "%s/write?db=%s&precision=ns%s%s", s->base, dbe, s->rp[0] ? "&rp=" : "", rpe);
    if (!(s->w = curl_easy_init()) || setup_handle(s, s->w, &s->body)) {
        set_err(err, errlen, "cannot create an HTTP client handle");
        e = -ENOMEM;
        goto fail;
    }
    if (s->writers > 1 && !(s->multi = curl_multi_init())) {
        set_err(err, errlen, "cannot create an HTTP client handle");
        e = -ENOMEM;
        goto fail;
    }
    for (int k = 0; k < s->writers && s->writers > 1; k++) {
        if (!(s->part[k].h = curl_easy_init()) || setup_handle(s, s->part[k].h, &s->part[k].body)) {
            set_err(err, errlen, "cannot create an HTTP client handle");
            e = -ENOMEM;
            goto fail;
        }
    }
    /* CREATE DATABASE: identifiers in double quotes, " and \ escaped */
    char q[400];
    size_t o = (size_t)snprintf(q, sizeof q, "CREATE DATABASE \"");
    for (const char *c = s->db; *c && o + 4 < sizeof q; c++) {
        if (*c == '"' || *c == '\\') q[o++] = '\\';
        q[o++] = *c;
    }
    snprintf(q + o, sizeof q - o, "\"");
    char m[400], cm[400] = "";
    int ce = run_query(s, s->w, &s->body, q, 1, m, sizeof m);
    if (ce == 0) ce = walk_answer(s, &s->body, NULL, NULL, m, sizeof m);
    if (ce == -ENOTCONN) {
        set_err(err, errlen, "cannot use %s: %s (is influxd running there? e.g. "
                "influxdb://127.0.0.1:8086/dronegate)", s->where, unprefixed(s, m));
        e = ce;
        goto fail;
    }
    if (ce == -EACCES) { auth_failed(s, err, errlen); e = ce; goto fail; }
    /* refused otherwise (a 1.x user without admin rights; InfluxDB 2.x has no
     * CREATE DATABASE): fine if the database can be read */
    if (ce < 0) snprintf(cm, sizeof cm, "%s", unprefixed(s, m));
    static const char *const seed_q[2] = {
        "SELECT MAX(seq) AS seq FROM telemetry WHERE seq >= 0 GROUP BY drone_id",
        "SELECT MAX(seq) AS seq FROM telemetry WHERE seq < 0 GROUP BY drone_id",   /* >= 2^63 */
    };
    for (int k = 0; k < 2; k++) {
        if ((e = run_query(s, s->w, &s->body, seed_q[k], 0, m, sizeof m)) == 0)
            e = walk_answer(s, &s->body, seed_one, s, m, sizeof m);
        if (e) break;
    }
    if (e == -EACCES) { auth_failed(s, err, errlen); goto fail; }
    if (e < 0 && ce < 0) {
        set_err(err, errlen, "cannot use %s: CREATE DATABASE was refused (%s) and the database cannot be "
                "read (%s)", s->where, cm, unprefixed(s, m));
        goto fail;
    }
    if (e < 0) {
        set_err(err, errlen, "cannot read %s: %s", s->where, unprefixed(s, m));
        goto fail;
    }
    if (ce < 0)
        dg_info("influxdb: %s: CREATE DATABASE was refused (%s); the database can be read, so it exists "
                "(expected with a user without admin rights, or InfluxDB 2.x with a DBRP mapping)", s->where, cm);
    dg_info("influxdb: %s, measurement telemetry (one point per drone and ms: a redelivery overwrites), %d parallel write request%s for big batches",
            s->where, s->writers, s->writers > 1 ? "s" : "");
    *out = s;
    return 0;
fail:
    ix_close(s);
    return e ? e : -EIO;
}

const dg_store_ops_t dg_store_influxdb_ops = {
    .scheme        = "influxdb",
    .durable       = true,
    .open          = ix_open,
    .write_batch   = ix_write_batch,
    .update_drones = ix_update_drones,
    .query         = ix_query,
    .latest        = ix_latest,
    .put_command   = ix_put_command,
    .get_command   = ix_get_command,
    .open_commands = ix_open_commands,
    .last_seq      = ix_last_seq,
    .ping          = ix_ping,
    .close         = ix_close,
};
