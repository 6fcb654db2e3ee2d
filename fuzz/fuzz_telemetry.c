/* fuzz_telemetry.c - libFuzzer target for the JSON telemetry decoder.
 *
 *   clang -fsanitize=fuzzer,address,undefined ... fuzz/fuzz_telemetry.c \
 *         src/codec/{json_telemetry,jsonw,number,validate}.c src/core/timefmt.c src/core/buf.c -lm
 *   ./fuzz_telemetry -dict=fuzz/telemetry.dict CORPUS_COPY/
 *
 * Decodes arbitrary bytes and aborts when an invariant breaks:
 *   - rc == -1  <=>  exactly one callback, an invalid_json error without
 *     field or seq; rc >= 0 => rc == records delivered, every error is
 *     invalid_field with a known field name and a non-empty message;
 *   - a top-level object gives exactly one callback;
 *   - every record passes dg_record_validate(), carries the given recv_us,
 *     now_ms when it has no timestamp, NAN for absent optional fields,
 *     a NUL-terminated status of status_len <= 32 bytes, no drone id;
 *   - every command_ack has a 1-64 byte id, a known status;
 *   - round trip: each record written back with jsonw.c (timestamps
 *     alternately as RFC 3339 via timefmt.c and as epoch ms) decodes, with a
 *     second decoder, to the identical record;
 *   - determinism: a second decoder with a tiny initial token budget (so it
 *     regrows) reports the same digest of callbacks;
 *   - linear cost: the decoder's work counter stays within 70 units per
 *     byte (deep nesting is refused before jsmn's quadratic close walk).
 * Cheap side checks on the same bytes: number.c agrees with strtod when the
 * input is a JSON number; RFC 3339 parse -> format -> parse is stable;
 * dg_jw_str() output is always a valid JSON string for the decoder.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_telemetry.h"
#include "codec/jsonw.h"
#include "codec/number.h"
#include "codec/validate.h"
#include "core/buf.h"
#include "core/timefmt.h"

#define NOW_MS  INT64_C(1795514400000)
#define RECV_US INT64_C(1795514400000777)

#define FZ_ASSERT(c) do { if (!(c)) { fprintf(stderr, "invariant failed: %s (%s:%d)\n", \
    #c, __FILE__, __LINE__); abort(); } } while (0)

static dg_json_decoder_t *dec_main, *dec_small, *dec_rt;
static dg_buf_t rtbuf;

typedef struct run {
    int records, errors, acks, invalid_json, rt;
    uint64_t digest;
} run_t;

static void mix(run_t *r, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) r->digest = (r->digest ^ b[i]) * 0x100000001B3ull;
}

static void rt_on_record(void *ud, const dg_record_t *rec) { *(dg_record_t *)ud = *rec; }
static void rt_on_error(void *ud, const dg_decode_error_t *e)
{
    (void)ud;
    fprintf(stderr, "round trip error: %s %s\n", e->field ? e->field : "", e->message);
    abort();
}

static uint64_t bits(double v) { uint64_t u; memcpy(&u, &v, sizeof u); return u; }

static void roundtrip(const dg_record_t *r, int as_string)
{
    dg_buf_t *b = &rtbuf;
    int first = 1;
    b->len = 0;
    FZ_ASSERT(dg_buf_append(b, "{", 1) == 0);
    if (r->flags & DG_REC_HAS_SEQ) { dg_jw_key(b, &first, "seq"); dg_jw_u64(b, r->seq); }
    dg_jw_key(b, &first, "latitude"); dg_jw_double(b, r->lat);
    dg_jw_key(b, &first, "longitude"); dg_jw_double(b, r->lon);
    dg_jw_key(b, &first, "altitude"); dg_jw_double(b, r->alt);
    if (r->flags & DG_REC_HAS_TS) {
        dg_jw_key(b, &first, "timestamp");
        if (as_string) {
            char ts[32];
            size_t n = dg_format_rfc3339(r->ts_ms, ts);
            dg_jw_str(b, ts, n);
        } else {
            dg_jw_i64(b, r->ts_ms);
        }
    }
    if (r->flags & DG_REC_HAS_SPEED)   { dg_jw_key(b, &first, "speed");   dg_jw_double(b, r->speed); }
    if (r->flags & DG_REC_HAS_HEADING) { dg_jw_key(b, &first, "heading"); dg_jw_double(b, r->heading); }
    if (r->flags & DG_REC_HAS_CLIMB)   { dg_jw_key(b, &first, "climb");   dg_jw_double(b, r->climb); }
    if (r->flags & DG_REC_HAS_BATTERY) { dg_jw_key(b, &first, "battery"); dg_jw_double(b, r->battery); }
    if (r->flags & DG_REC_HAS_STATUS)  { dg_jw_key(b, &first, "status");  dg_jw_str(b, r->status, r->status_len); }
    FZ_ASSERT(dg_buf_append(b, "}", 1) == 0);

    dg_record_t o;
    dg_decode_sink_t sink = { rt_on_record, rt_on_error, NULL, &o };
    int rc = dg_json_decode(dec_rt, b->data, b->len, r->ts_ms, r->recv_us, &sink);
    if (rc != 1) {
        fprintf(stderr, "round trip of %.*s gave %d\n", (int)b->len, b->data, rc);
        abort();
    }
    FZ_ASSERT(o.flags == r->flags);
    FZ_ASSERT(o.seq == r->seq);
    FZ_ASSERT(o.ts_ms == r->ts_ms);
    FZ_ASSERT(bits(o.lat) == bits(r->lat) && bits(o.lon) == bits(r->lon) && bits(o.alt) == bits(r->alt));
    FZ_ASSERT(bits(o.speed) == bits(r->speed) || (isnan(o.speed) && isnan(r->speed)));
    FZ_ASSERT(bits(o.heading) == bits(r->heading) || (isnan(o.heading) && isnan(r->heading)));
    FZ_ASSERT(bits(o.climb) == bits(r->climb) || (isnan(o.climb) && isnan(r->climb)));
    FZ_ASSERT(bits(o.battery) == bits(r->battery) || (isnan(o.battery) && isnan(r->battery)));
    FZ_ASSERT(o.status_len == r->status_len && !memcmp(o.status, r->status, r->status_len + 1u));
}

static void on_record(void *ud, const dg_record_t *r)
{
    run_t *x = ud;
    x->records++;
    const char *field = NULL;
    char msg[160];
    FZ_ASSERT(dg_record_validate(r, &field, msg, sizeof msg) == 0);
    FZ_ASSERT(r->recv_us == RECV_US);
    FZ_ASSERT((r->flags & ~0x7Fu) == 0);
    if (!(r->flags & DG_REC_HAS_TS)) FZ_ASSERT(r->ts_ms == NOW_MS);
    if (!(r->flags & DG_REC_HAS_SEQ)) FZ_ASSERT(r->seq == 0);
    if (!(r->flags & DG_REC_HAS_SPEED)) FZ_ASSERT(isnan(r->speed));
    if (!(r->flags & DG_REC_HAS_HEADING)) FZ_ASSERT(isnan(r->heading));
    if (!(r->flags & DG_REC_HAS_CLIMB)) FZ_ASSERT(isnan(r->climb));
    if (!(r->flags & DG_REC_HAS_BATTERY)) FZ_ASSERT(isnan(r->battery));
    if (!(r->flags & DG_REC_HAS_STATUS)) FZ_ASSERT(r->status_len == 0);
    FZ_ASSERT(r->status_len <= DG_STATUS_MAX && r->status[r->status_len] == '\0');
    FZ_ASSERT(r->drone_id_len == 0 && r->drone_id[0] == '\0');
    FZ_ASSERT(r->origin == 0);
    mix(x, &r->seq, sizeof r->seq);
    mix(x, &r->ts_ms, sizeof r->ts_ms);
    mix(x, &r->lat, 3 * sizeof(double));
    mix(x, &r->flags, sizeof r->flags);
    mix(x, r->status, r->status_len);
    if (x->rt) roundtrip(r, x->records & 1);
}

static void on_error(void *ud, const dg_decode_error_t *e)
{
    static const char *const fields[] = {
        "seq", "type", "timestamp", "latitude", "longitude", "altitude", "speed", "heading",
        "climb", "battery", "status", "id", "message",
    };
    run_t *x = ud;
    x->errors++;
    size_t ml = strnlen(e->message, sizeof e->message);
    FZ_ASSERT(ml > 0 && ml < sizeof e->message);
    if (!strcmp(e->code, "invalid_json")) {
        x->invalid_json++;
        FZ_ASSERT(e->field == NULL && !e->has_seq);
    } else {
        FZ_ASSERT(!strcmp(e->code, "invalid_field"));
        FZ_ASSERT(e->field != NULL);
        int known = 0;
        for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) known |= !strcmp(e->field, fields[i]);
        FZ_ASSERT(known);
        if (!e->has_seq) FZ_ASSERT(e->seq == 0);
    }
    mix(x, e->field ? e->field : "-", 1);
    mix(x, e->message, ml);
    mix(x, &e->seq, sizeof e->seq);
}

static void on_ack(void *ud, const dg_command_ack_t *a)
{
    run_t *x = ud;
    x->acks++;
    FZ_ASSERT(a->id && a->id_len >= 1 && a->id_len <= 64 && !memchr(a->id, '\0', a->id_len));
    FZ_ASSERT((a->status_len == 8 && (!memcmp(a->status, "accepted", 8) || !memcmp(a->status, "rejected", 8))) ||
              (a->status_len == 4 && !memcmp(a->status, "done", 4)));
    FZ_ASSERT(a->message != NULL || a->message_len == 0);
    mix(x, a->id, a->id_len);
    mix(x, a->status, a->status_len);
    if (a->message_len) mix(x, a->message, a->message_len);
}

static void side_checks(const char *s, size_t n)
{
    /* number.c vs strtod */
    if (n <= 1024 && dg_number_valid(s, n)) {
        double v;
        FZ_ASSERT(dg_parse_double(s, n, &v) == 0);
        char tmp[1025];
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        FZ_ASSERT(bits(v) == bits(strtod(tmp, NULL)));
    }
    /* RFC 3339: parse -> format -> parse is stable within years 0000-9999 */
    int64_t ms, ms2;
    if (dg_parse_rfc3339(s, n, &ms) == 0 && ms >= INT64_C(-62167219200000) && ms <= INT64_C(253402300799999)) {
        char out[32];
        size_t on = dg_format_rfc3339(ms, out);
        FZ_ASSERT(on == 24);
        FZ_ASSERT(dg_parse_rfc3339(out, on, &ms2) == 0 && ms2 == ms);
    }
    /* jsonw string output is always valid JSON */
    if (n <= 4096) {
        dg_buf_t *b = &rtbuf;
        b->len = 0;
        FZ_ASSERT(dg_buf_append(b, "{\"x\":", 5) == 0);
        FZ_ASSERT(dg_jw_str(b, s, n) == 0);
        FZ_ASSERT(dg_buf_puts(b, ",\"latitude\":0,\"longitude\":0,\"altitude\":0}") == 0);
        dg_record_t o;
        dg_decode_sink_t sink = { rt_on_record, rt_on_error, NULL, &o };
        FZ_ASSERT(dg_json_decode(dec_rt, b->data, b->len, 0, 0, &sink) == 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dec_main) {
        dec_main = dg_json_decoder_new(1 << 16);
        dec_small = dg_json_decoder_new(1 << 16);
        dec_rt = dg_json_decoder_new(1 << 10);
        FZ_ASSERT(dec_main && dec_small && dec_rt);
    }
    /* a private copy, so ASan catches any read past `size` */
    char *buf = malloc(size ? size : 1);
    FZ_ASSERT(buf);
    memcpy(buf, data, size);

    run_t a = { .digest = 14695981039346656037ull, .rt = 1 };
    dg_decode_sink_t sink = { on_record, on_error, on_ack, &a };
    int rc = dg_json_decode(dec_main, buf, size, NOW_MS, RECV_US, &sink);
    /* linear cost for every input (depth bounded before jsmn runs) */
    FZ_ASSERT(dg_json_decoder_work(dec_main) <= 70 * (uint64_t)size + 64);
    if (rc == -1) {
        FZ_ASSERT(a.invalid_json == 1 && a.errors == 1 && a.records == 0 && a.acks == 0);
    } else {
        FZ_ASSERT(rc >= 0 && rc == a.records && a.invalid_json == 0);
        size_t i = 0;
        while (i < size && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r')) i++;
        FZ_ASSERT(i < size && (buf[i] == '{' || buf[i] == '['));
        if (buf[i] == '{') FZ_ASSERT(a.records + a.errors + a.acks == 1);
    }

    /* same answer from a fresh decoder that must regrow its tokens */
    if (size <= 2048) {
        dg_json_decoder_free(dec_small);
        dec_small = dg_json_decoder_new(1 << 16);
        FZ_ASSERT(dec_small);
        run_t b = { .digest = 14695981039346656037ull, .rt = 0 };
        dg_decode_sink_t sink2 = { on_record, on_error, on_ack, &b };
        int rc2 = dg_json_decode(dec_small, buf, size, NOW_MS, RECV_US, &sink2);
        FZ_ASSERT(rc2 == rc && b.digest == a.digest && b.records == a.records &&
                  b.errors == a.errors && b.acks == a.acks);
    }

    side_checks(buf, size);
    free(buf);
    return 0;
}
