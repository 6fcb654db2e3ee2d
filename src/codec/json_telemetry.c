/* json_telemetry.c - decode drone -> server JSON text frames (see json_telemetry.h).
 *
 * Fast path first: json_fast.c decodes the common shape (telemetry objects
 * with scalar members, no escapes, every object valid) in one pass and
 * reports exactly what steps 0-3 would; on anything else it gives up before
 * reporting anything and the frame goes through the steps below from its
 * first byte (fuzz/fuzz_json_fast.c checks the two agree).
 *
 * Four steps per frame, none of which allocates once the token array fits:
 *
 *   0. pre-scan   one linear pass (a byte-class table, strings skipped with a
 *                 SWAR fast path) that measures the bracket depth outside
 *                 strings and counts an upper bound on the tokens. A frame
 *                 nested deeper than DG_JSON_MAX_DEPTH, or with more tokens
 *                 than max_tokens, is refused here, before jsmn sees it:
 *                 jsmn with parent links walks up the parent chain at every
 *                 '}' / ']', which is quadratic in depth (a 200 KB frame of
 *                 nested arrays held a worker for 12 s). With the depth
 *                 bounded, each close costs <= DG_JSON_MAX_DEPTH + 1 steps, so
 *                 the decode is linear in the frame size for every input.
 *   1. tokenize   jsmn (Debian's header-only jsmn.h, strict mode, parent
 *                 links) fills the decoder's token array, sized from the
 *                 pre-scan's count so one pass suffices. Should jsmn still
 *                 return JSMN_ERROR_NOMEM (the count is a bound for valid
 *                 JSON only) the array doubles (up to max_tokens) and the
 *                 frame is tokenized again; the array is kept for later frames.
 *   2. validate   jsmn is a tokenizer, not a validator: even in strict mode it
 *                 accepts "tru", "01", "[1 2]", "[1,]", "{,}", ":{}", raw
 *                 control characters and lone surrogates in strings, and stops
 *                 at a NUL byte. So a recursive walk re-checks the frame
 *                 against RFC 8259 using the tokens only as a map: every byte
 *                 between tokens must be whitespace or exactly the expected
 *                 ',' ':' ']' '}'; every primitive is true/false/null or a
 *                 strict JSON number; every string has valid escapes, no raw
 *                 control characters, valid UTF-8 and no lone surrogates
 *                 (\uD800-\uDFFF must form pairs); nothing but whitespace
 *                 follows the top-level value. Nesting deeper than
 *                 DG_JSON_MAX_DEPTH is refused. Any failure rejects the
 *                 whole frame as invalid_json *before* anything is reported,
 *                 so a batch is never half-delivered.
 *                 The walk also replaces each string token's jsmn `size`
 *                 (0 or 1, no longer needed) by "has escapes", so step 3
 *                 copies plain strings without scanning them again.
 *   3. decode     one pass over each object's members: keys are matched by
 *                 length + first byte + memcmp and remembered in a slot table
 *                 (so "seq" is known before any error is reported, whatever
 *                 the field order), then the record is filled and checked by
 *                 dg_record_validate(). Numbers use number.c's exact fast
 *                 path. Escaped keys ("lat\u0069tude") are unescaped first.
 *
 * Frame shapes and what the sink sees:
 *
 *   +------------------------------+-------------------------------------------+
 *   | not JSON, too many tokens,   | on_error once, code invalid_json, no      |
 *   | too deep, trailing garbage,  | field, no seq; return -1                   |
 *   | top level not {...} / [...]  |                                           |
 *   | {...}                        | one object (below); return records (0/1)  |
 *   | [...]  (batch)               | each element in order; [] reports nothing |
 *   | batch element not an object  | on_error: invalid_field, field "message"  |
 *   |  (e.g. [{...}, 5])           | ("batch element 2 is not a JSON object"); |
 *   |                              | the other elements are still decoded      |
 *   +------------------------------+-------------------------------------------+
 *
 * Per object ("type" absent, null or "telemetry" -> telemetry; "command_ack"
 * -> on_command_ack; anything else -> invalid_field "type"):
 *   - exactly one callback: on_record, on_error (invalid_field, the first
 *     problem found) or on_command_ack (ignored when the sink has none);
 *   - errors carry seq whenever "seq" parsed as a u64, even if the error is
 *     about another field;
 *   - check order: type, seq, required fields present, timestamp format,
 *     status type/length, then dg_record_validate() (ranges, finiteness);
 *   - a wrong JSON type for a number field becomes NAN, so it is reported by
 *     dg_record_validate() with the field's rule ("latitude must be a number
 *     in [-90, 90]"); null means absent for optional fields and is a type
 *     error for the required ones;
 *   - duplicate keys: the last occurrence wins (RFC 8259 leaves it open);
 *   - unknown keys are ignored, whatever their (valid JSON) value;
 *   - seq: JSON integer 0..2^64-1 (no '-', no fraction, no exponent);
 *     timestamp: RFC 3339 string or JSON integer epoch ms (int64);
 *   - status: unescaped, at most DG_STATUS_MAX (32) bytes of UTF-8, no NUL;
 *   - command_ack: id non-empty, <= 64 bytes unescaped, no NUL; status
 *     exactly accepted|rejected|done; message optional string (null =
 *     absent = ""). The ack's id and message point into the frame or into
 *     decoder scratch memory, valid during the callback only.
 *
 * Known limits: frames >= 2 GiB are refused (jsmn uses int offsets); numbers
 * longer than 1024 bytes in a known field are refused (number.c).
 *
 * Thread: one decoder per worker thread; not thread-safe.
 */
#include "json_telemetry.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>
#include "jsmn_util.h"

#include "../core/timefmt.h"
#include "json_fast.h"
#include "json_keys.h"
#include "jsonstr.h"
#include "number.h"
#include "validate.h"

#define DG_JSON_MAX_DEPTH          64
#define DG_JSON_DEFAULT_MAX_TOKENS (1u << 20)
#define DG_JSON_INITIAL_TOKENS     256u
#define DG_ACK_ID_MAX              64

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

struct dg_json_decoder {
    jsmntok_t *tok;          /* token array, grown geometrically, kept */
    uint64_t   work;         /* work units of the last decode (dg_json_decoder_work) */
    unsigned   cap;          /* tokens allocated */
    unsigned   max;          /* never grow beyond */
    char      *scratch;      /* unescaped command_ack message */
    size_t     scratch_cap;
    dg_json_fast_t fast;     /* the single-pass fast path's records (json_fast.c) */
    bool       no_fast;      /* dg_json_decoder_set_fast(d, false): full decoder only */
};

dg_json_decoder_t *dg_json_decoder_new(size_t max_tokens)
{
    dg_json_decoder_t *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    if (max_tokens == 0) max_tokens = DG_JSON_DEFAULT_MAX_TOKENS;
    if (max_tokens > INT_MAX / 2) max_tokens = INT_MAX / 2;
    d->max = (unsigned)max_tokens;
    d->cap = d->max < DG_JSON_INITIAL_TOKENS ? d->max : DG_JSON_INITIAL_TOKENS;
    d->tok = malloc((size_t)d->cap * sizeof *d->tok);
    if (!d->tok) { free(d); return NULL; }
    return d;
}

void dg_json_decoder_free(dg_json_decoder_t *d)
{
    if (!d) return;
    free(d->tok);
    free(d->scratch);
    dg_json_fast_free(&d->fast);
    free(d);
}

/* ------------------------------------------------------------------------ */
/* Step 0: linear pre-scan                                                  */

enum { PS_PRIM = 0, PS_WS, PS_OPEN, PS_CLOSE, PS_SEP, PS_QUOTE };

/* Byte classes outside strings. PS_PRIM: may be part of a primitive. */
static const unsigned char dg__ps_class[256] = {
    ['\t'] = PS_WS, ['\n'] = PS_WS, ['\r'] = PS_WS, [' '] = PS_WS,
    ['{'] = PS_OPEN, ['['] = PS_OPEN, ['}'] = PS_CLOSE, [']'] = PS_CLOSE,
    [','] = PS_SEP, [':'] = PS_SEP, ['"'] = PS_QUOTE,
};

typedef struct prescan {
    size_t   tokens;     /* upper bound on jsmn's tokens for valid JSON */
    unsigned max_depth;  /* deepest bracket nesting outside strings */
    size_t   deep_at;    /* offset of the first '{' / '[' beyond limit, or SIZE_MAX */
    size_t   scanned;    /* bytes looked at */
} prescan_t;

/* One pass over js[from..len). Stops at the first bracket that opens level
 * limit + 1 (deep_at), so a deep frame costs no more than its prefix. */
static void prescan(const char *js, size_t len, size_t from, unsigned limit, prescan_t *ps)
{
    const unsigned char *s = (const unsigned char *)js;
    size_t i = from, tokens = 0;
    unsigned depth = 0, max_depth = 0;
    int prev = PS_WS;
    ps->deep_at = SIZE_MAX;
    while (i < len) {
        int c = dg__ps_class[s[i]];
        switch (c) {
        case PS_PRIM:
            tokens += prev != PS_PRIM;
            break;
        case PS_OPEN:
            tokens++;
            if (++depth > max_depth) {
                max_depth = depth;
                if (depth > limit) { ps->deep_at = i; goto out; }
            }
            break;
        case PS_CLOSE:
            if (depth) depth--;
            break;
        case PS_QUOTE:
            tokens++;
            for (i++; i < len; i++) {            /* skip the string */
                while (len - i >= 8) {           /* 8 bytes without '"' or '\\' */
                    uint64_t x;
                    memcpy(&x, s + i, 8);
                    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
                    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
                    if (((q - ones) & ~q & high) | ((b - ones) & ~b & high)) break;
                    i += 8;
                }
                if (i >= len) break;
                if (s[i] == '"') break;
                if (s[i] == '\\') i++;
            }
            break;
        default:
            break;
        }
        prev = c;
        i++;
    }
out:
    ps->tokens = tokens;
    ps->max_depth = max_depth;
    ps->scanned = (i < len ? i + 1 : len) - from;
}

/* ------------------------------------------------------------------------ */
/* Step 2: strict validation                                                */

typedef struct walk {
    const char *js;
    size_t      len;
    size_t      pos;    /* byte cursor */
    jsmntok_t  *tok;
    int         ntok;
    int         i;      /* next token */
    const char *why;    /* failure reason */
} walk_t;

static inline void skip_ws(walk_t *w)
{
    while (w->pos < w->len) {
        char c = w->js[w->pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
        w->pos++;
    }
}

static inline int expect(walk_t *w, char c)
{
    skip_ws(w);
    if (w->pos >= w->len || w->js[w->pos] != c) return -1;
    w->pos++;
    return 0;
}

/* The string token w->i must start at the cursor: validate it, record
 * "has escapes" in its size field, advance. want_size: 1 for keys, 0 else. */
static int walk_string(walk_t *w, int want_size)
{
    jsmntok_t *t = &w->tok[w->i];
    if (t->type != JSMN_STRING || t->size != want_size) return -1;
    if ((size_t)t->start != w->pos + 1 || w->js[w->pos] != '"') return -1;
    if (t->end < t->start || (size_t)t->end >= w->len || w->js[t->end] != '"') return -1;
    size_t bad;
    int esc = dg_json_str_check((const unsigned char *)w->js + t->start, (size_t)(t->end - t->start), &bad);
    if (esc < 0) {
        w->pos = (size_t)t->start + bad;
        w->why = "invalid string (bad escape, control character, invalid UTF-8 or lone surrogate)";
        return -1;
    }
    t->size = esc;
    w->pos = (size_t)t->end + 1;
    w->i++;
    return 0;
}

static int walk_value(walk_t *w, int depth)
{
    if (w->i >= w->ntok) return -1;
    skip_ws(w);
    jsmntok_t *t = &w->tok[w->i];
    switch (t->type) {
    case JSMN_STRING:
        return walk_string(w, 0);
    case JSMN_PRIMITIVE: {
        if ((size_t)t->start != w->pos || t->end <= t->start || (size_t)t->end > w->len || t->size != 0)
            return -1;
        const char *s = w->js + t->start;
        size_t n = (size_t)(t->end - t->start);
        int ok;
        switch (s[0]) {
        case 't': ok = n == 4 && !memcmp(s, "true", 4); break;
        case 'f': ok = n == 5 && !memcmp(s, "false", 5); break;
        case 'n': ok = n == 4 && !memcmp(s, "null", 4); break;
        default:  ok = dg_number_valid(s, n); break;
        }
        if (!ok) { w->why = "invalid literal or number"; return -1; }
        w->pos = (size_t)t->end;
        w->i++;
        return 0;
    }
    case JSMN_OBJECT:
    case JSMN_ARRAY: {
        int is_obj = t->type == JSMN_OBJECT;
        if ((size_t)t->start != w->pos || t->size < 0) return -1;
        if (depth >= DG_JSON_MAX_DEPTH) { w->why = "nested too deeply"; return -1; }
        w->pos++;
        w->i++;
        for (int k = 0; k < t->size; k++) {
            if (k > 0 && expect(w, ',')) return -1;
            if (is_obj) {
                skip_ws(w);
                if (w->i >= w->ntok || walk_string(w, 1)) return -1;
                if (expect(w, ':')) return -1;
            }
            if (walk_value(w, depth + 1)) return -1;
        }
        if (expect(w, is_obj ? '}' : ']')) return -1;
        if (w->pos != (size_t)t->end) return -1;
        return 0;
    }
    default:
        return -1;
    }
}

/* ------------------------------------------------------------------------ */
/* Step 3: decode objects                                                   */

typedef struct dctx {
    dg_json_decoder_t      *d;
    const char             *js;
    const jsmntok_t        *tok;
    int                     ntok;
    int64_t                 now_ms;
    int64_t                 recv_us;
    const dg_decode_sink_t *sink;
    int                     records;
} dctx_t;

static void emit_error(const dctx_t *c, int has_seq, uint64_t seq, const char *code,
                       const char *field, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void emit_error(const dctx_t *c, int has_seq, uint64_t seq, const char *code,
                       const char *field, const char *fmt, ...)
{
    if (!c->sink->on_error) return;
    dg_decode_error_t e;
    e.seq = has_seq ? seq : 0;
    e.has_seq = has_seq != 0;
    e.code = code;
    e.field = field;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    c->sink->on_error(c->sink->ud, &e);
}

/* Index of the token after the value at i (and its subtree). */
static int skip_value(const dctx_t *c, int i)
{
    const jsmntok_t *t = &c->tok[i];
    if (t->type != JSMN_OBJECT && t->type != JSMN_ARRAY) return i + 1;
    return dg_jsmn_skip(c->tok, c->ntok, i);
}

static inline const char *tstr(const dctx_t *c, int i, size_t *n)
{
    *n = (size_t)(c->tok[i].end - c->tok[i].start);
    return c->js + c->tok[i].start;
}

static inline int is_null(const dctx_t *c, int i)
{
    return c->tok[i].type == JSMN_PRIMITIVE && c->js[c->tok[i].start] == 'n';
}

/* A string value into out[0..cap): length, or -1 (not a string / too long). */
static long get_string(const dctx_t *c, int i, char *out, size_t cap)
{
    if (c->tok[i].type != JSMN_STRING) return -1;
    size_t n;
    const char *s = tstr(c, i, &n);
    if (c->tok[i].size) return dg_json_str_unescape(s, n, out, cap);     /* has escapes (step 2) */
    if (n > cap) return -1;
    memcpy(out, s, n);
    return (long)n;
}

/* A number field: its value, or NAN for a wrong JSON type (reported by
 * dg_record_validate with the field's rule). */
static double get_number(const dctx_t *c, int i)
{
    const jsmntok_t *t = &c->tok[i];
    double v;
    if (t->type == JSMN_PRIMITIVE) {
        char ch = c->js[t->start];
        if ((ch == '-' || (ch >= '0' && ch <= '9')) &&
            dg_parse_double(c->js + t->start, (size_t)(t->end - t->start), &v) == 0)
            return v;
    }
    return NAN;
}

static const char MSG_TYPE[] = "type must be \"telemetry\" or \"command_ack\"";
static const char MSG_SEQ[] = "seq must be an unsigned 64-bit integer";
static const char MSG_TS[] =
    "timestamp must be an RFC 3339 date-time string or integer milliseconds since the Unix epoch";
static const char MSG_STATUS[] = "status must be a string of at most 32 bytes";

static void decode_command_ack(dctx_t *c, const int *slot, int has_seq, uint64_t seq)
{
    char id[DG_ACK_ID_MAX];
    long idn = slot[F_ID] < 0 ? -1 : get_string(c, slot[F_ID], id, sizeof id);
    if (idn <= 0 || memchr(id, '\0', (size_t)idn)) {
        emit_error(c, has_seq, seq, "invalid_field", "id",
                   slot[F_ID] < 0 ? "missing required field id"
                                  : "id must be a non-empty string of at most 64 bytes");
        return;
    }
    char st[8];
    long stn = slot[F_STATUS] < 0 ? -1 : get_string(c, slot[F_STATUS], st, sizeof st);
    const char *status = NULL;
    if (stn == 8 && !memcmp(st, "accepted", 8)) status = "accepted";
    else if (stn == 8 && !memcmp(st, "rejected", 8)) status = "rejected";
    else if (stn == 4 && !memcmp(st, "done", 4)) status = "done";
    if (!status) {
        emit_error(c, has_seq, seq, "invalid_field", "status",
                   slot[F_STATUS] < 0 ? "missing required field status"
                                      : "status must be one of accepted, rejected, done");
        return;
    }
    const char *msg = "";
    size_t msgn = 0;
    int mi = slot[F_MESSAGE];
    if (mi >= 0 && !is_null(c, mi)) {
        if (c->tok[mi].type != JSMN_STRING) {
            emit_error(c, has_seq, seq, "invalid_field", "message", "message must be a string");
            return;
        }
        msg = tstr(c, mi, &msgn);
        if (c->tok[mi].size) {                               /* escaped: unescape to scratch */
            dg_json_decoder_t *d = c->d;
            if (d->scratch_cap < msgn) {
                size_t cap = d->scratch_cap ? d->scratch_cap : 256;
                while (cap < msgn) cap *= 2;
                char *p = realloc(d->scratch, cap);
                if (!p) {
                    emit_error(c, has_seq, seq, "invalid_field", "message",
                               "message could not be decoded (out of memory)");
                    return;
                }
                d->scratch = p;
                d->scratch_cap = cap;
            }
            long m = dg_json_str_unescape(msg, msgn, d->scratch, d->scratch_cap);   /* fits: never longer */
            msg = d->scratch;
            msgn = (size_t)m;
        }
    }
    if (!c->sink->on_command_ack) return;
    dg_command_ack_t ack = {
        .id = id, .id_len = (size_t)idn,
        .status = status, .status_len = strlen(status),
        .message = msg, .message_len = msgn,
    };
    c->sink->on_command_ack(c->sink->ud, &ack);
}

static void decode_telemetry(dctx_t *c, const int *slot, int has_seq, uint64_t seq)
{
    static const struct { int f; const char *name; } required[3] = {
        { F_LAT, "latitude" }, { F_LON, "longitude" }, { F_ALT, "altitude" },
    };
    for (int k = 0; k < 3; k++) {
        if (slot[required[k].f] < 0) {
            emit_error(c, has_seq, seq, "invalid_field", required[k].name,
                       "missing required field %s", required[k].name);
            return;
        }
    }

    dg_record_t r;
    dg_record_init(&r);
    r.recv_us = c->recv_us;
    if (has_seq) { r.seq = seq; r.flags |= DG_REC_HAS_SEQ; }

    int ti = slot[F_TIMESTAMP];
    if (ti < 0 || is_null(c, ti)) {
        r.ts_ms = c->now_ms;
    } else {
        int ok = 0;
        if (c->tok[ti].type == JSMN_STRING) {
            char buf[64];
            size_t n;
            const char *s = tstr(c, ti, &n);
            if (c->tok[ti].size) {
                long m = dg_json_str_unescape(s, n, buf, sizeof buf);
                s = buf;
                n = m < 0 ? 0 : (size_t)m;
            }
            ok = n > 0 && dg_parse_rfc3339(s, n, &r.ts_ms) == 0;
        } else if (c->tok[ti].type == JSMN_PRIMITIVE) {
            size_t n;
            const char *s = tstr(c, ti, &n);
            ok = dg_parse_i64(s, n, &r.ts_ms) == 0;
        }
        if (!ok) {
            emit_error(c, has_seq, seq, "invalid_field", "timestamp", "%s", MSG_TS);
            return;
        }
        r.flags |= DG_REC_HAS_TS;
    }

    int si = slot[F_STATUS];
    if (si >= 0 && !is_null(c, si)) {
        long n = get_string(c, si, r.status, DG_STATUS_MAX);
        if (n < 0) {
            emit_error(c, has_seq, seq, "invalid_field", "status", "%s", MSG_STATUS);
            return;
        }
        r.status[n] = '\0';
        r.status_len = (uint8_t)n;
        r.flags |= DG_REC_HAS_STATUS;
    }

    /* null is a type error for required fields: get_number() gives NAN */
    r.lat = get_number(c, slot[F_LAT]);
    r.lon = get_number(c, slot[F_LON]);
    r.alt = get_number(c, slot[F_ALT]);
    static const struct { int f; uint32_t flag; size_t off; } opt[4] = {
        { F_SPEED,   DG_REC_HAS_SPEED,   offsetof(dg_record_t, speed) },
        { F_HEADING, DG_REC_HAS_HEADING, offsetof(dg_record_t, heading) },
        { F_CLIMB,   DG_REC_HAS_CLIMB,   offsetof(dg_record_t, climb) },
        { F_BATTERY, DG_REC_HAS_BATTERY, offsetof(dg_record_t, battery) },
    };
    for (int k = 0; k < 4; k++) {
        int i = slot[opt[k].f];
        if (i < 0 || is_null(c, i)) continue;
        double v = get_number(c, i);
        memcpy((char *)&r + opt[k].off, &v, sizeof v);
        r.flags |= opt[k].flag;
    }

    dg_decode_error_t e;
    const char *field = NULL;
    if (dg_record_validate(&r, &field, e.message, sizeof e.message)) {
        emit_error(c, has_seq, seq, "invalid_field", field, "%s", e.message);
        return;
    }
    c->records++;
    if (c->sink->on_record) c->sink->on_record(c->sink->ud, &r);
}

/* Decode the object at token i; returns the index after it. */
static int decode_object(dctx_t *c, int i)
{
    int slot[F_COUNT];
    for (int k = 0; k < F_COUNT; k++) slot[k] = -1;

    int n = c->tok[i].size, j = i + 1;
    for (int k = 0; k < n; k++) {
        size_t kn;
        const char *ks = tstr(c, j, &kn);
        int f;
        if (likely(!c->tok[j].size)) {
            f = dg_json_match_key(ks, kn);
        } else {                                   /* escaped key, e.g. "lat\u0069tude" */
            char buf[16];
            long m = dg_json_str_unescape(ks, kn, buf, sizeof buf);
            f = m < 0 ? -1 : dg_json_match_key(buf, (size_t)m);
        }
        if (f >= 0) slot[f] = j + 1;               /* duplicates: last one wins */
        j = skip_value(c, j + 1);
    }

    uint64_t seq = 0;
    int has_seq = 0, seq_bad = 0;
    int si = slot[F_SEQ];
    if (si >= 0 && !is_null(c, si)) {
        size_t sn;
        const char *s = tstr(c, si, &sn);
        if (c->tok[si].type == JSMN_PRIMITIVE && dg_parse_u64(s, sn, &seq) == 0) has_seq = 1;
        else seq_bad = 1;
    }

    int is_ack = 0;
    int ti = slot[F_TYPE];
    if (ti >= 0 && !is_null(c, ti)) {
        char t[16];
        long tn = get_string(c, ti, t, sizeof t);
        if (tn == 9 && !memcmp(t, "telemetry", 9)) is_ack = 0;
        else if (tn == 11 && !memcmp(t, "command_ack", 11)) is_ack = 1;
        else {
            emit_error(c, has_seq, seq, "invalid_field", "type", "%s", MSG_TYPE);
            return j;
        }
    }
    if (is_ack) {
        decode_command_ack(c, slot, has_seq, seq);
    } else if (seq_bad) {
        emit_error(c, 0, 0, "invalid_field", "seq", "%s", MSG_SEQ);
    } else {
        decode_telemetry(c, slot, has_seq, seq);
    }
    return j;
}

/* ------------------------------------------------------------------------ */

static int frame_error(const dg_decode_sink_t *sink, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int frame_error(const dg_decode_sink_t *sink, const char *fmt, ...)
{
    if (sink->on_error) {
        dg_decode_error_t e = { .seq = 0, .has_seq = false, .code = "invalid_json", .field = NULL };
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e.message, sizeof e.message, fmt, ap);
        va_end(ap);
        sink->on_error(sink->ud, &e);
    }
    return -1;
}

static int why_fail(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why_fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Steps 0-2 on json[0..len), whose first non-blank byte (at first) is '{'
 * or '['. 0 with *ntok tokens in d->tok, or -1 with a reason in why. */
static int strict_parse(dg_json_decoder_t *d, const char *json, size_t len, size_t first,
                        int *ntok, char *why, size_t whylen)
{
    /* 0. pre-scan: bound depth and tokens before jsmn runs */
    prescan_t ps;
    prescan(json, len, first, DG_JSON_MAX_DEPTH, &ps);
    d->work += ps.scanned;
    if (ps.deep_at != SIZE_MAX)
        return why_fail(why, whylen, "invalid JSON near byte %zu: nested too deeply (more than %d levels)",
                        ps.deep_at, DG_JSON_MAX_DEPTH);
    if (ps.tokens > d->max)
        return why_fail(why, whylen, "frame has more than %u JSON tokens", d->max);
    if (ps.tokens > d->cap) {
        unsigned cap = d->cap;
        while (cap < ps.tokens) cap = cap > d->max / 2 ? d->max : cap * 2;
        jsmntok_t *t = malloc((size_t)cap * sizeof *t);   /* contents are scratch: no realloc copy */
        if (!t) return why_fail(why, whylen, "out of memory decoding frame");
        free(d->tok);
        d->tok = t;
        d->cap = cap;
    }

    /* 1. tokenize */
    jsmn_parser p;
    int r;
    for (;;) {
        jsmn_init(&p);
        r = jsmn_parse(&p, json, len, d->tok, d->cap);
        /* a bound on jsmn's work: every byte, and at each close at most one
         * parent-link step per level of nesting */
        d->work += len + (uint64_t)p.toknext * (ps.max_depth + 1);
        if (r != JSMN_ERROR_NOMEM) break;
        if (d->cap >= d->max)
            return why_fail(why, whylen, "frame has more than %u JSON tokens", d->max);
        unsigned cap = d->cap > d->max / 2 ? d->max : d->cap * 2;
        jsmntok_t *t = malloc((size_t)cap * sizeof *t);   /* contents are scratch: no realloc copy */
        if (!t) return why_fail(why, whylen, "out of memory decoding frame");
        free(d->tok);
        d->tok = t;
        d->cap = cap;
    }
    if (r == JSMN_ERROR_PART) {
        if (memchr(json, '\0', len))    /* jsmn stops at NUL */
            return why_fail(why, whylen, "invalid JSON: NUL byte in frame");
        return why_fail(why, whylen, "invalid JSON: unexpected end of frame");
    }
    if (r < 0)
        return why_fail(why, whylen, "invalid JSON near byte %u", p.pos);
    if (r == 0)
        return why_fail(why, whylen, "empty frame: expected a JSON object or array");

    /* 2. validate */
    walk_t w = { .js = json, .len = len, .pos = first, .tok = d->tok, .ntok = (int)p.toknext,
                 .i = 0, .why = NULL };
    if (walk_value(&w, 0) == 0) {
        skip_ws(&w);
        if (w.i != w.ntok || w.pos != len) {
            if (w.pos >= len) w.pos = len ? len - 1 : 0;
            w.why = "unexpected data after the JSON value";
        } else {
            d->work += (uint64_t)w.ntok;
            *ntok = w.ntok;
            return 0;
        }
    }
    if (w.pos > len) w.pos = len;
    return why_fail(why, whylen, "invalid JSON near byte %zu%s%s", w.pos,
                    w.why ? ": " : "", w.why ? w.why : "");
}

uint64_t dg_json_decoder_work(const dg_json_decoder_t *d)
{
    return d->work;
}

void dg_json_decoder_set_fast(dg_json_decoder_t *d, bool on)
{
    d->no_fast = !on;
}

int dg_json_decode(dg_json_decoder_t *d, const char *json, size_t len,
                   int64_t now_ms, int64_t recv_us, const dg_decode_sink_t *sink)
{
    d->work = 0;
    if (len >= INT_MAX) return frame_error(sink, "frame too large to decode");

    size_t first = 0;
    while (first < len && (json[first] == ' ' || json[first] == '\n' ||
                           json[first] == '\r' || json[first] == '\t'))
        first++;
    if (first == len) return frame_error(sink, "empty frame: expected a JSON object or array");
    if (json[first] != '{' && json[first] != '[')
        return frame_error(sink, "frame must be a JSON object or an array of objects");

    /* the common shape in one pass; anything else (nothing reported yet)
     * goes through steps 0-3 from the start */
    if (likely(!d->no_fast)) {
        uint64_t fw;
        int n = dg_json_fast_decode(&d->fast, json, len, first, d->max, now_ms, recv_us, sink, &fw);
        d->work = fw;
        if (n != DG_JSON_FAST_GIVE_UP) return n;
    }

    char why[160];
    int ntok;
    if (strict_parse(d, json, len, first, &ntok, why, sizeof why)) return frame_error(sink, "%s", why);

    /* 3. decode */
    dctx_t c = { .d = d, .js = json, .tok = d->tok, .ntok = ntok, .now_ms = now_ms,
                 .recv_us = recv_us, .sink = sink, .records = 0 };
    if (d->tok[0].type == JSMN_OBJECT) {
        decode_object(&c, 0);
    } else {
        int n = d->tok[0].size, j = 1;
        for (int k = 0; k < n; k++) {
            if (sink->stop && sink->stop(sink->ud)) break;
            if (d->tok[j].type == JSMN_OBJECT) {
                j = decode_object(&c, j);
            } else {
                emit_error(&c, 0, 0, "invalid_field", "message",
                           "batch element %d is not a JSON object", k + 1);
                j = skip_value(&c, j);
            }
        }
    }
    return c.records;
}

int dg_json_validate(dg_json_decoder_t *d, const char *json, size_t len, char *why, size_t whylen)
{
    d->work = 0;
    if (len >= INT_MAX) return why_fail(why, whylen, "JSON text too large");
    size_t first = 0;
    while (first < len && (json[first] == ' ' || json[first] == '\n' ||
                           json[first] == '\r' || json[first] == '\t'))
        first++;
    if (first == len || (json[first] != '{' && json[first] != '['))
        return why_fail(why, whylen, "expected a JSON object or array");
    int ntok;
    return strict_parse(d, json, len, first, &ntok, why, whylen);
}
