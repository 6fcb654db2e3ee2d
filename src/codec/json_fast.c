/* json_fast.c - single-pass fast path of the JSON telemetry decoder (see
 * json_fast.h; issue 8 section 2: 100-message frames spent most of their time
 * in the full decoder's four passes: pre-scan, jsmn, strict walk, decode).
 *
 * One forward scan over the frame, no tokens: each member's key is matched
 * (json_keys.h, the full decoder's table) and its value parsed straight into
 * the object's dg_record_t with the full decoder's functions (number.c,
 * timefmt.c, dg_record_validate), so values are bit-identical. Records are
 * kept in a per-decoder array and reported only when the whole frame has
 * been accepted.
 *
 * What it accepts, all of which must hold for the whole frame:
 *   - top level: an object, or an array ([] included) of objects only;
 *   - members: a string key, then a scalar value: a string without
 *     backslashes (no escapes: the full decoder unescapes keys and values),
 *     a JSON number (grammar checked by number.c), true, false or null.
 *     Objects or arrays as member values are left to the full decoder;
 *   - strings: no raw control characters; non-ASCII bytes are checked with
 *     dg_json_str_check (UTF-8, RFC 3629);
 *   - telemetry keys (seq, type, timestamp, latitude, longitude, altitude,
 *     speed, heading, climb, battery, status) at most once per object;
 *     other keys (id, message and unknown ones) are ignored like the full
 *     decoder does for telemetry, their scalar value validated;
 *   - each object is valid telemetry: type absent, null or "telemetry"; seq
 *     absent, null or a u64; latitude/longitude/altitude numbers; timestamp
 *     absent, null, an RFC 3339 string or int64 ms; status absent, null or a
 *     string of <= 32 bytes; optional numbers absent, null or numbers; then
 *     dg_record_validate() passes;
 *   - nothing but JSON whitespace after the value; no more JSON tokens than
 *     the decoder's max_tokens; at most DG_JSON_FAST_MAX_RECORDS objects.
 * Anything else (command_ack, any per-object error, an escape, a nested
 * value, a duplicate key, invalid JSON) gives up at the first byte that
 * shows it, before anything is reported: the full decoder then decodes the
 * frame from the start (one restart, so the total cost stays linear).
 *
 * Equivalence with the full decoder is checked by fuzz/fuzz_json_fast.c
 * (differential, field by field) and tests/unit/test_json_fast.c.
 *
 * Thread: f is per decoder (per worker); not thread-safe.
 */
#include "json_fast.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/timefmt.h"
#include "json_keys.h"
#include "jsonstr.h"
#include "number.h"
#include "validate.h"

typedef struct fctx {
    const unsigned char *end;
    uint64_t             extra;    /* bytes looked at a second time (numbers, non-ASCII strings) */
    size_t               tokens;   /* JSON tokens so far, counted as the full decoder does */
    int                  bad;      /* gave up */
} fctx_t;

#define FAIL(q) do { c->bad = 1; return (q); } while (0)

static const unsigned char WS[256] = { [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1 };
static const unsigned char NUMCH[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['.'] = 1, ['e'] = 1, ['E'] = 1, ['+'] = 1, ['-'] = 1,
};

static inline const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && WS[*p]) p++;
    return p;
}

/* p: just after an opening quote. Returns the closing quote's position;
 * gives up at a backslash, a control character, the end of the frame or
 * invalid UTF-8. */
static inline const unsigned char *scan_string(fctx_t *c, const unsigned char *p)
{
    const unsigned char *s = p, *end = c->end;
    int high = 0;
    for (;;) {
        /* 8 bytes at a time while none is < 0x20, '"', '\\' or >= 0x80 */
        while (end - p >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            const uint64_t ones = 0x0101010101010101ull, hi = 0x8080808080808080ull;
            uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
            if (((x - ones * 0x20) | (q - ones) | (b - ones) | x) & hi) break;
            p += 8;
        }
        if (p >= end) FAIL(p);
        unsigned ch = *p;
        if (ch == '"') break;
        if (ch >= 0x80) { high = 1; p++; continue; }
        if (ch < 0x20 || ch == '\\') FAIL(p);
        p++;
    }
    if (high) {
        size_t bad;
        c->extra += (size_t)(p - s);
        if (dg_json_str_check(s, (size_t)(p - s), &bad) != 0) FAIL(s + bad);
    }
    return p;
}

/* p: just after a key's opening quote. When the key is one of the telemetry
 * names followed by the closing quote (then it is exactly that string: no
 * byte in between can be a backslash or a quote), its F_* with *q at the
 * closing quote, without scanning; else -1 (scan_string decides). */
static inline int known_key(const unsigned char *p, const unsigned char *end, const unsigned char **q)
{
    size_t left = (size_t)(end - p);
#define KEY(lit, f) \
    if (left >= sizeof lit && !memcmp(p, lit "\"", sizeof lit)) { *q = p + sizeof lit - 1; return (f); }
    if (!left) return -1;
    switch (*p) {
    case 's': KEY("seq", F_SEQ) KEY("speed", F_SPEED) KEY("status", F_STATUS) break;
    case 't': KEY("timestamp", F_TIMESTAMP) KEY("type", F_TYPE) break;
    case 'l': KEY("latitude", F_LAT) KEY("longitude", F_LON) break;
    case 'a': KEY("altitude", F_ALT) break;
    case 'h': KEY("heading", F_HEADING) break;
    case 'c': KEY("climb", F_CLIMB) break;
    case 'b': KEY("battery", F_BATTERY) break;
    default: break;
    }
#undef KEY
    return -1;
}

enum { V_STR, V_NUM, V_TRUE, V_FALSE, V_NULL, V_PARSED /* a number, already in its field */ };

typedef struct val {
    int         kind;
    const char *s;       /* V_STR: content between the quotes; V_NUM: the number's bytes */
    size_t      n;
} val_t;

/* A scalar value at p. Returns the position after it. V_NUM is only the
 * span of number characters: the caller checks its grammar. */
static inline const unsigned char *scalar(fctx_t *c, const unsigned char *p, val_t *v)
{
    const unsigned char *end = c->end;
    if (p >= end) FAIL(p);
    unsigned ch = *p;
    if (ch == '"') {
        const unsigned char *q = scan_string(c, p + 1);
        if (c->bad) return q;
        v->kind = V_STR;
        v->s = (const char *)p + 1;
        v->n = (size_t)(q - p - 1);
        return q + 1;
    }
    if (ch == '-' || ch - '0' < 10) {
        const unsigned char *q = p + 1;
        while (q < end && NUMCH[*q]) q++;
        v->kind = V_NUM;
        v->s = (const char *)p;
        v->n = (size_t)(q - p);
        c->extra += v->n;
        return q;
    }
    if (ch == 'n' && end - p >= 4 && !memcmp(p, "null", 4))  { v->kind = V_NULL;  return p + 4; }
    if (ch == 't' && end - p >= 4 && !memcmp(p, "true", 4))  { v->kind = V_TRUE;  return p + 4; }
    if (ch == 'f' && end - p >= 5 && !memcmp(p, "false", 5)) { v->kind = V_FALSE; return p + 5; }
    FAIL(p);   /* '{', '[' (a nested value) or not JSON */
}

#define BIT(f) (1u << (f))
#define REQUIRED (BIT(F_LAT) | BIT(F_LON) | BIT(F_ALT))
#define NUMERIC  (BIT(F_SEQ) | BIT(F_TIMESTAMP) | BIT(F_LAT) | BIT(F_LON) | BIT(F_ALT) | \
                  BIT(F_SPEED) | BIT(F_HEADING) | BIT(F_CLIMB) | BIT(F_BATTERY))

/* The object at p ('{') into *r. Returns the position after its '}'. */
static const unsigned char *object(fctx_t *c, const unsigned char *p, dg_record_t *r,
                                   int64_t now_ms, int64_t recv_us)
{
    static const uint32_t opt_flag[F_COUNT] = {
        [F_SPEED] = DG_REC_HAS_SPEED, [F_HEADING] = DG_REC_HAS_HEADING,
        [F_CLIMB] = DG_REC_HAS_CLIMB, [F_BATTERY] = DG_REC_HAS_BATTERY,
    };
    const unsigned char *end = c->end;
    double num[F_COUNT];
    const char *status = NULL;
    size_t status_len = 0;
    uint64_t seq = 0;
    int64_t ts = now_ms;
    uint32_t flags = 0;
    unsigned seen = 0;

    c->tokens++;
    p = skip_ws(p + 1, end);
    for (;;) {
        if (p >= end || *p != '"') FAIL(p);              /* also {} (no latitude) */
        const unsigned char *k = p + 1, *q;
        int f = known_key(k, end, &q);
        if (f < 0) {                                     /* id, message, unknown, or not plain */
            q = scan_string(c, k);
            if (c->bad) return q;
            f = dg_json_match_key((const char *)k, (size_t)(q - k));
        }
        p = skip_ws(q + 1, end);
        if (p >= end || *p != ':') FAIL(p);
        p = skip_ws(p + 1, end);
        val_t v = { V_NULL, NULL, 0 };
        if (f >= 0 && (BIT(f) & NUMERIC) && p < end && (*p == '-' || (unsigned)(*p - '0') < 10)) {
            /* a number in a numeric field: parsed in the same pass, straight
             * into its place (no scan for its end first). A byte after it
             * that would continue the run ("1.2.3", "2-3", "01") is caught
             * below: only whitespace, ',' or '}' may follow a value */
            const char *vs = (const char *)p, *ve = (const char *)end, *q;
            if (f == F_SEQ)            q = dg_scan_u64(vs, ve, &seq);
            else if (f == F_TIMESTAMP) q = dg_scan_i64(vs, ve, &ts);
            else                       q = dg_scan_double(vs, ve, &num[f]);
            if (!q) FAIL(p);
            c->extra += (size_t)(q - vs);
            v.kind = V_PARSED;
            p = (const unsigned char *)q;
        } else {
            p = scalar(c, p, &v);
            if (c->bad) return p;
        }
        c->tokens += 2;

        if (f >= 0 && f != F_ID && f != F_MESSAGE) {
            if (seen & BIT(f)) FAIL(p);                  /* duplicate: the full decoder's last-wins */
            seen |= BIT(f);
        }
        switch (f) {
        case F_SEQ:
            if (v.kind == V_NULL) break;
            if (v.kind != V_PARSED) FAIL(p);
            flags |= DG_REC_HAS_SEQ;
            break;
        case F_TYPE:
            if (v.kind == V_NULL) break;
            if (v.kind != V_STR || v.n != 9 || memcmp(v.s, "telemetry", 9)) FAIL(p);   /* command_ack too */
            break;
        case F_TIMESTAMP:
            if (v.kind == V_NULL) break;
            if (v.kind == V_STR) {
                if (v.n == 0 || dg_parse_rfc3339(v.s, v.n, &ts)) FAIL(p);
            } else if (v.kind != V_PARSED) {
                FAIL(p);
            }
            flags |= DG_REC_HAS_TS;
            break;
        case F_LAT: case F_LON: case F_ALT:
            if (v.kind != V_PARSED) FAIL(p);
            break;
        case F_SPEED: case F_HEADING: case F_CLIMB: case F_BATTERY:
            if (v.kind == V_NULL) break;
            if (v.kind != V_PARSED) FAIL(p);
            flags |= opt_flag[f];
            break;
        case F_STATUS:
            if (v.kind == V_NULL) break;
            if (v.kind != V_STR || v.n > DG_STATUS_MAX) FAIL(p);
            status = v.s;
            status_len = v.n;
            flags |= DG_REC_HAS_STATUS;
            break;
        default:                                         /* ignored: id, message, unknown keys */
            if (v.kind == V_NUM && !dg_number_valid(v.s, v.n)) FAIL(p);
            break;
        }

        p = skip_ws(p, end);
        if (p >= end) FAIL(p);
        if (*p == ',') { p = skip_ws(p + 1, end); continue; }
        if (*p == '}') { p++; break; }
        FAIL(p);
    }
    if ((seen & REQUIRED) != REQUIRED) FAIL(p);

    dg_record_init(r);
    r->recv_us = recv_us;
    r->seq = seq;
    r->ts_ms = ts;
    r->flags = flags;
    r->lat = num[F_LAT];
    r->lon = num[F_LON];
    r->alt = num[F_ALT];
    if (flags & DG_REC_HAS_SPEED)   r->speed = num[F_SPEED];
    if (flags & DG_REC_HAS_HEADING) r->heading = num[F_HEADING];
    if (flags & DG_REC_HAS_CLIMB)   r->climb = num[F_CLIMB];
    if (flags & DG_REC_HAS_BATTERY) r->battery = num[F_BATTERY];
    if (status) {
        memcpy(r->status, status, status_len);
        r->status[status_len] = '\0';
        r->status_len = (uint8_t)status_len;
    }
    if (dg_record_validate(r, NULL, NULL, 0)) FAIL(p);
    return p;
}

/* Room for record n (geometric, up to DG_JSON_FAST_MAX_RECORDS). 0 or -1. */
static int room(dg_json_fast_t *f, size_t n)
{
    if (n < f->cap) return 0;
    if (f->cap >= DG_JSON_FAST_MAX_RECORDS) return -1;
    size_t cap = f->cap ? f->cap * 2 : 16;
    if (cap > DG_JSON_FAST_MAX_RECORDS) cap = DG_JSON_FAST_MAX_RECORDS;
    dg_record_t *r = realloc(f->rec, cap * sizeof *r);   /* keeps this frame's records */
    if (!r) return -1;
    f->rec = r;
    f->cap = cap;
    return 0;
}

int dg_json_fast_decode(dg_json_fast_t *f, const char *json, size_t len, size_t first,
                        size_t max_tokens, int64_t now_ms, int64_t recv_us,
                        const dg_decode_sink_t *sink, uint64_t *work)
{
    const unsigned char *s = (const unsigned char *)json, *p = s + first, *end = s + len;
    fctx_t cx = { .end = end, .extra = 0, .tokens = 0, .bad = 0 }, *c = &cx;
    size_t n = 0;
    int is_array = *p == '[';

    if (!is_array) {
        if (room(f, 0)) goto give_up;
        p = object(c, p, &f->rec[0], now_ms, recv_us);
        if (c->bad) goto give_up;
        n = 1;
    } else {
        c->tokens = 1;
        p = skip_ws(p + 1, end);
        if (p < end && *p == ']') {
            p++;
        } else {
            for (;;) {
                if (p >= end || *p != '{' || room(f, n)) goto give_up;
                p = object(c, p, &f->rec[n], now_ms, recv_us);
                if (c->bad) goto give_up;
                n++;
                p = skip_ws(p, end);
                if (p >= end) goto give_up;
                if (*p == ',') { p = skip_ws(p + 1, end); continue; }
                if (*p == ']') { p++; break; }
                goto give_up;
            }
        }
    }
    p = skip_ws(p, end);
    if (p != end || c->tokens > max_tokens) goto give_up;
    *work = (uint64_t)(p - (s + first)) + c->extra;

    /* accepted: report as the full decoder does (stop checked before each
     * batch element, never for a single object) */
    int records = 0;
    for (size_t k = 0; k < n; k++) {
        if (is_array && sink->stop && sink->stop(sink->ud)) break;
        records++;
        if (sink->on_record) sink->on_record(sink->ud, &f->rec[k]);
    }
    return records;

give_up:
    if (p > end) p = end;
    *work = (uint64_t)(p - (s + first)) + 1 + c->extra;
    return DG_JSON_FAST_GIVE_UP;
}

void dg_json_fast_free(dg_json_fast_t *f)
{
    free(f->rec);
    f->rec = NULL;
    f->cap = 0;
}
