/* queue.c - libdronegate's store-and-forward queue, backoff and sample JSON.
 * See internal.h for the invariants. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dgc_q_init(dgc_queue_t *q, size_t max, int policy)
{
    memset(q, 0, sizeof *q);
    q->max = max ? max : 1;
    q->policy = policy;
    q->head = q->next = 1;
    q->tx = 0;
}

void dgc_q_free(dgc_queue_t *q)
{
    free(q->ring);
    q->ring = NULL;
    q->cap = 0;
}

/* Copy the queued records into a ring of capacity cap, seqs shifted by delta. */
static int q_relayout(dgc_queue_t *q, size_t cap, uint64_t delta)
{
    dgc_rec_t *r = malloc(cap * sizeof *r);
    if (!r) return DG_CLIENT_ENOMEM;
    for (uint64_t s = q->head; s < q->next; s++)
        r[(s + delta) & (cap - 1)] = *dgc_q_at(q, s);
    free(q->ring);
    q->ring = r;
    q->cap = cap;
    return 0;
}

int dgc_q_push(dgc_queue_t *q, const dgc_rec_t *r, uint64_t *seq)
{
    int rc = DG_CLIENT_OK;
    if (dgc_q_count(q) >= q->max) {
        if (q->policy != DG_FULL_DROP_OLDEST) {
            q->refused++;
            return DG_CLIENT_EFULL;
        }
        q->head++;                 /* drop the oldest (written or not) */
        if (q->tx < q->head - 1) q->tx = q->head - 1;
        q->dropped++;
        rc = DG_CLIENT_EDROPPED;
    }
    if (dgc_q_count(q) + 1 > q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        if (q_relayout(q, cap, 0)) {
            if (rc == DG_CLIENT_EDROPPED) { q->head--; q->dropped--; }
            return DG_CLIENT_ENOMEM;
        }
    }
    uint64_t s = q->next++;
    *dgc_q_at(q, s) = *r;
    q->accepted++;
    if (seq) *seq = s;
    return rc;
}

static void q_maybe_shrink(dgc_queue_t *q)
{
    if (q->next == q->head && q->cap > 1024) dgc_q_free(q);   /* a burst is over */
}

size_t dgc_q_ack(dgc_queue_t *q, uint64_t seq)
{
    if (seq > q->hi_sent) seq = q->hi_sent;   /* never ack what was never written */
    if (seq > q->acked) q->acked = seq;
    if (seq < q->head) return 0;
    uint64_t upto = seq + 1 < q->next ? seq + 1 : q->next;
    size_t n = (size_t)(upto - q->head);
    q->head = upto;
    if (q->tx < q->head - 1) q->tx = q->head - 1;
    q_maybe_shrink(q);
    return n;
}

size_t dgc_q_forget(dgc_queue_t *q, uint64_t seq)
{
    if (seq < q->head) return 0;
    uint64_t upto = seq + 1 < q->next ? seq + 1 : q->next;
    size_t n = (size_t)(upto - q->head);
    q->head = upto;
    if (q->tx < q->head - 1) q->tx = q->head - 1;
    return n;
}

void dgc_q_rewind(dgc_queue_t *q)
{
    q->tx = q->head - 1;
}

int dgc_q_session(dgc_queue_t *q, int has_last, uint64_t last)
{
    if (!has_last) return 0;
    /* written ones the gateway already has: stored, the ack was lost */
    uint64_t w = q->hi_sent < last ? q->hi_sent : last;
    if (w >= q->head) {
        uint64_t upto = w + 1 < q->next ? w + 1 : q->next;
        q->skipped += upto - q->head;
        q->head = upto;
        if (w > q->acked) q->acked = w;
    }
    if (q->tx < q->head - 1) q->tx = q->head - 1;
    /* never written but numbered at or below what the gateway has: these
     * seqs belong to an earlier life of this drone id, renumber */
    if (q->head <= last) {
        uint64_t delta = last + 1 - q->head;
        if (q->next > q->head && q->cap && q_relayout(q, q->cap, delta)) return DG_CLIENT_ENOMEM;
        q->next += delta;
        q->head += delta;
        q->tx = q->head - 1;
        q_maybe_shrink(q);
        return 1;
    }
    q_maybe_shrink(q);
    return 0;
}

size_t dgc_q_sendable(const dgc_queue_t *q, size_t window)
{
    uint64_t inflight = q->tx - (q->head - 1);
    if (inflight >= window) return 0;
    uint64_t avail = q->next - 1 - q->tx;
    uint64_t room = window - inflight;
    return (size_t)(avail < room ? avail : room);
}

size_t dgc_q_mark_sent(dgc_queue_t *q, uint64_t upto)
{
    size_t again = 0;
    if (upto <= q->tx) return 0;
    if (q->hi_sent > q->tx) again = (size_t)((q->hi_sent < upto ? q->hi_sent : upto) - q->tx);
    q->tx = upto;
    if (upto > q->hi_sent) q->hi_sent = upto;
    return again;
}

/* ------------------------------------------------------------ backoff */

uint64_t dgc_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

void dgc_backoff_init(dgc_backoff_t *b, unsigned min_ms, unsigned max_ms, uint64_t seed)
{
    b->min_ms = min_ms ? min_ms : 1;
    b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
    b->fails = 0;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

unsigned dgc_backoff_next(dgc_backoff_t *b)
{
    uint64_t d = b->min_ms;
    for (unsigned i = 0; i < b->fails && d < b->max_ms; i++) d *= 2;
    if (d > b->max_ms) d = b->max_ms;
    if (b->fails < 64) b->fails++;
    uint64_t j = d / 2 + dgc_rand(&b->rng) % (d ? d : 1);   /* [0.5d, 1.5d) */
    if (j > b->max_ms) j = b->max_ms;
    if (j == 0) j = 1;
    return (unsigned)j;
}

void dgc_backoff_reset(dgc_backoff_t *b)
{
    b->fails = 0;
}

/* ------------------------------------------------------- sample JSON */

/* Valid UTF-8 without control characters. */
static int status_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x20 || c == 0x7f) return 0;
        if (c < 0x80) { i++; continue; }
        size_t k;
        unsigned min;
        if (c >= 0xc2 && c <= 0xdf) { k = 1; min = 0x80; c &= 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { k = 2; min = 0x800; c &= 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { k = 3; min = 0x10000; c &= 0x07; }
        else return 0;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xc0) != 0x80) return 0;
            c = (c << 6) | (s[i + j] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
        i += k + 1;
    }
    return 1;
}

int dgc_rec_from_sample(dgc_rec_t *r, const dg_sample_t *s, int64_t now_ms, const char **why)
{
    const char *w = NULL;
    memset(r, 0, sizeof *r);
#define BAD(f) do { w = f; goto bad; } while (0)
    if (!s) BAD("sample");
    if (!isfinite(s->latitude) || s->latitude < -90 || s->latitude > 90) BAD("latitude");
    if (!isfinite(s->longitude) || s->longitude < -180 || s->longitude > 180) BAD("longitude");
    if (!isfinite(s->altitude) || s->altitude < -1000 || s->altitude > 100000) BAD("altitude");
    /* the contract's timestamp range: 1677-09-22 .. 2262-04-11 */
    int64_t ts = s->timestamp_ms ? s->timestamp_ms : now_ms;
    if (ts < -9223372036854LL || ts > 9223372036854LL) BAD("timestamp");
    unsigned has = s->has & (DG_HAS_SPEED | DG_HAS_HEADING | DG_HAS_CLIMB | DG_HAS_BATTERY);
    if ((has & DG_HAS_SPEED) && (!isfinite(s->speed) || s->speed < 0 || s->speed > 3.0e38)) BAD("speed");
    if ((has & DG_HAS_HEADING) && (!isfinite(s->heading) || s->heading < 0 || s->heading >= 360)) BAD("heading");
    if ((has & DG_HAS_CLIMB) && (!isfinite(s->climb) || fabs(s->climb) > 3.0e38)) BAD("climb");
    if ((has & DG_HAS_BATTERY) && (!isfinite(s->battery) || s->battery < 0 || s->battery > 100)) BAD("battery");
    if (s->status) {
        size_t n = strlen(s->status);
        if (n > 32 || !status_ok((const unsigned char *)s->status, n)) BAD("status");
        memcpy(r->status, s->status, n);
        r->status_len = (uint8_t)n;
    }
    r->ts_ms = ts;
    r->lat = s->latitude;
    r->lon = s->longitude;
    r->alt = s->altitude;
    r->has = (uint8_t)has;
    r->speed = (float)s->speed;
    r->heading = (float)s->heading;
    if ((has & DG_HAS_HEADING) && r->heading >= 360.0f) r->heading = 0;   /* 359.99999999 rounds up */
    r->climb = (float)s->climb;
    r->battery = (float)s->battery;
    return DG_CLIENT_OK;
bad:
    if (why) *why = w;
    return DG_CLIENT_EINVAL;
#undef BAD
}

/* Decimal digits of v (no sign). */
static char *put_u64(char *p, uint64_t v)
{
    char t[20];
    int n = 0;
    do { t[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *p++ = t[--n];
    return p;
}

/* k / 10^dec in fixed point, trailing zeros of the fraction dropped. */
static int put_fixed(char *p, long long k, int dec)
{
    static const uint64_t POW[8] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000 };
    char *s = p;
    uint64_t a = k < 0 ? (uint64_t)0 - (uint64_t)k : (uint64_t)k;
    if (k < 0) *p++ = '-';
    p = put_u64(p, a / POW[dec]);
    uint64_t f = a % POW[dec];
    if (f) {
        /* digits right to left: divisions by the constant 10 (a multiply),
         * not by POW[i] (a real division per digit: 19% of the sim's CPU) */
        while (f % 10 == 0) { f /= 10; dec--; }
        *p++ = '.';
        for (int i = dec - 1; i >= 0; i--) { p[i] = (char)('0' + f % 10); f /= 10; }
        p += dec;
    }
    return (int)(p - s);
}

/* A number that reads back as the same double: fixed point with up to 7
 * decimals when that is exact (positions, altitudes: the common case, no
 * printf on the hot path), else the shortest "%.Ng". k / 1e7 is a correctly
 * rounded division, so when it equals v, parsing the decimal gives v too. */
static int fmt_double(char *p, double v)
{
    if (fabs(v) < 1e9) {
        long long k = llround(v * 1e7);
        if ((double)k / 1e7 == v) return put_fixed(p, k, 7);
    }
    for (int prec = 15; prec <= 17; prec++) {
        int n = sprintf(p, "%.*g", prec, v);
        if (prec == 17 || strtod(p, NULL) == v) return n;
    }
    return 0;
}

/* The same for a float (speed, heading, ...): up to 4 decimals when the
 * decimal rounds to v (k / 1e4 is never that close to a tie between floats
 * for |v| < 1e6), else the shortest "%.Ng". */
static int fmt_float(char *p, float v)
{
    if (fabsf(v) < 1e6f) {
        long long k = llround((double)v * 1e4);
        if ((float)((double)k / 1e4) == v) return put_fixed(p, k, 4);
    }
    for (int prec = 6; prec <= 9; prec++) {
        int n = sprintf(p, "%.*g", prec, (double)v);
        if (prec == 9 || strtof(p, NULL) == v) return n;
    }
    return 0;
}

#define PUTS(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) += sizeof(lit) - 1)

size_t dgc_rec_json(char *out, const dgc_rec_t *r, uint64_t seq)
{
    char *p = out;
    PUTS(p, "{\"seq\":");
    p = put_u64(p, seq);
    PUTS(p, ",\"timestamp\":");
    if (r->ts_ms < 0) { *p++ = '-'; p = put_u64(p, (uint64_t)0 - (uint64_t)r->ts_ms); }
    else p = put_u64(p, (uint64_t)r->ts_ms);
    PUTS(p, ",\"latitude\":");
    p += fmt_double(p, r->lat);
    PUTS(p, ",\"longitude\":");
    p += fmt_double(p, r->lon);
    PUTS(p, ",\"altitude\":");
    p += fmt_double(p, r->alt);
    if (r->has & DG_HAS_SPEED) { PUTS(p, ",\"speed\":"); p += fmt_float(p, r->speed); }
    if (r->has & DG_HAS_HEADING) { PUTS(p, ",\"heading\":"); p += fmt_float(p, r->heading); }
    if (r->has & DG_HAS_CLIMB) { PUTS(p, ",\"climb\":"); p += fmt_float(p, r->climb); }
    if (r->has & DG_HAS_BATTERY) { PUTS(p, ",\"battery\":"); p += fmt_float(p, r->battery); }
    if (r->status_len) {
        PUTS(p, ",\"status\":\"");
        for (unsigned i = 0; i < r->status_len; i++) {
            char ch = r->status[i];
            if (ch == '"' || ch == '\\') *p++ = '\\';
            *p++ = ch;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return (size_t)(p - out);
}
