/* record_json.c - the contract's "Queue" message value: one JSON object per
 * record, the fields of a REST telemetry row plus "drone_id", "timestamp"
 * (epoch ms) and "received_at" (epoch ms).
 *
 * Decoding reuses the WebSocket decoder (codec/json_telemetry.c) for the
 * telemetry fields, so a queue message is validated exactly like a drone
 * frame (ranges, finiteness, timestamp range, status length); "drone_id" and
 * "received_at" are read here with jsmn and checked (drone id per contract,
 * received_at an integer in the stores' range). Unknown keys are ignored,
 * as on the WebSocket path, so later versions may add fields.
 */
#include "queue.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>
#include "../codec/jsmn_util.h"

#include "../codec/json_telemetry.h"
#include "../codec/jsonw.h"

#define QJ_MAX_TOKENS 64   /* 14 known members = 29 tokens; room for a few extra */

static void put_num(dg_buf_t *out, const char *key, double v)
{
    dg_buf_printf(out, ",\"%s\":%.17g", key, v);
}

void dg_queue_encode_json(const dg_record_t *r, dg_buf_t *out)
{
    dg_buf_puts(out, "{\"drone_id\":");
    dg_jw_str(out, r->drone_id, r->drone_id_len);
    if (r->flags & DG_REC_HAS_SEQ)
        dg_buf_printf(out, ",\"seq\":%" PRIu64, r->seq);
    dg_buf_printf(out, ",\"timestamp\":%" PRId64, r->ts_ms);
    put_num(out, "latitude", r->lat);
    put_num(out, "longitude", r->lon);
    put_num(out, "altitude", r->alt);
    if (r->flags & DG_REC_HAS_SPEED)   put_num(out, "speed", r->speed);
    if (r->flags & DG_REC_HAS_HEADING) put_num(out, "heading", r->heading);
    if (r->flags & DG_REC_HAS_CLIMB)   put_num(out, "climb", r->climb);
    if (r->flags & DG_REC_HAS_BATTERY) put_num(out, "battery", r->battery);
    if (r->flags & DG_REC_HAS_STATUS) {
        dg_buf_puts(out, ",\"status\":");
        dg_jw_str(out, r->status, r->status_len);
    }
    /* floor division: received_at is whole ms */
    int64_t us = r->recv_us;
    int64_t ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
    dg_buf_printf(out, ",\"received_at\":%" PRId64 "}", ms);
}

typedef struct qj_ctx {
    dg_record_t *r;
    int          records;
    const char  *err_field;
    char        *err;
    size_t       errlen;
} qj_ctx_t;

static void qj_on_record(void *ud, const dg_record_t *rec)
{
    qj_ctx_t *c = ud;
    if (c->records++ == 0) *c->r = *rec;
}

static void qj_on_error(void *ud, const dg_decode_error_t *e)
{
    qj_ctx_t *c = ud;
    if (c->err_field == NULL && c->records >= 0) {
        snprintf(c->err, c->errlen, "%s%s%s", e->code, e->field ? ": " : "",
                 e->field ? e->field : "");
        c->err_field = e->code;
    }
}

/* Stores hold 1677-09-22 .. 2262-04-11 (int64 ns); same bound for received_at. */
#define QJ_MS_MIN (-9223372036854LL)
#define QJ_MS_MAX ( 9223372036854LL)

static int parse_int_ms(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 20) return -1;
    size_t i = 0; bool neg = false;
    if (s[0] == '-') { neg = true; i = 1; if (n == 1) return -1; }
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        if (v > QJ_MS_MAX / 10) return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > QJ_MS_MAX) return -1;
    *out = neg ? -v : v;
    return 0;
}

int dg_queue_decode_json(const char *p, size_t n, dg_record_t *r, char *err, size_t errlen)
{
    if (errlen) err[0] = '\0';
    if (n == 0 || p[0] != '{') {
        snprintf(err, errlen, "invalid_json: a queue message is one JSON object");
        return -1;
    }
    /* drone_id and received_at: top-level members, by jsmn. */
    jsmn_parser jp; jsmntok_t tok[QJ_MAX_TOKENS];
    jsmn_init(&jp);
    int nt = jsmn_parse(&jp, p, n, tok, QJ_MAX_TOKENS);
    if (nt < 1 || tok[0].type != JSMN_OBJECT || (size_t)tok[0].end != n) {
        snprintf(err, errlen, "invalid_json: %s", nt == JSMN_ERROR_NOMEM ?
                 "too many members" : "not one JSON object");
        return -1;
    }
    int id_tok = -1, ra_tok = -1;
    for (int i = 1; i < nt; ) {
        if (tok[i].parent != 0 || i + 1 >= nt) { snprintf(err, errlen, "invalid_json"); return -1; }
        if (dg_jsmn_eq(p, &tok[i], "drone_id")) id_tok = i + 1;
        else if (dg_jsmn_eq(p, &tok[i], "received_at")) ra_tok = i + 1;
        i = dg_jsmn_skip(tok, nt, i + 1);
    }
    if (id_tok < 0 || tok[id_tok].type != JSMN_STRING) {
        snprintf(err, errlen, "invalid_field: drone_id missing or not a string");
        return -1;
    }
    size_t idn = (size_t)(tok[id_tok].end - tok[id_tok].start);
    const char *ids = p + tok[id_tok].start;
    if (!dg_drone_id_valid(ids, idn)) {   /* no escapes possible in a valid id */
        snprintf(err, errlen, "invalid_field: drone_id");
        return -1;
    }
    int64_t recv_ms = 0;
    if (ra_tok < 0 || tok[ra_tok].type != JSMN_PRIMITIVE ||
        parse_int_ms(p + tok[ra_tok].start, (size_t)(tok[ra_tok].end - tok[ra_tok].start), &recv_ms) < 0) {
        snprintf(err, errlen, "invalid_field: received_at must be integer epoch ms");
        return -1;
    }

    /* The telemetry fields: exactly the WebSocket decoder's validation. */
    dg_json_decoder_t *d = dg_json_decoder_new(QJ_MAX_TOKENS);
    if (!d) { snprintf(err, errlen, "out of memory"); return -1; }
    qj_ctx_t c = { .r = r, .records = 0, .err_field = NULL, .err = err, .errlen = errlen };
    dg_decode_sink_t sink = { .on_record = qj_on_record, .on_error = qj_on_error,
                              .on_command_ack = NULL, .ud = &c, .stop = NULL };
    dg_json_decode(d, p, n, recv_ms, recv_ms * 1000, &sink);
    dg_json_decoder_free(d);
    if (c.err_field || c.records != 1) {
        if (!c.err_field) snprintf(err, errlen, "invalid_field: not a telemetry record");
        return -1;
    }
    /* a record without seq is stored too (as on the direct path); only its
     * redelivery after a sink crash is not idempotent (no (drone_id, seq)) */
    memcpy(r->drone_id, ids, idn);
    r->drone_id[idn] = '\0';
    r->drone_id_len = (uint8_t)idn;
    r->recv_us = recv_ms * 1000;
    r->origin = 0;
    return 0;
}
