/* decode_log.h - every call a JSON decoder makes on its sink, logged as
 * bytes in order: records bit for bit (NaNs included), errors (code, field,
 * seq, has_seq, message), command acks (id, status, message), each stop()
 * query and its answer. Two decodes reported the same thing iff their logs
 * are equal. Shared by fuzz/fuzz_json_fast.c and tests/unit/test_json_fast.c
 * (the fast path against the full decoder). */
#ifndef DG_FUZZ_DECODE_LOG_H
#define DG_FUZZ_DECODE_LOG_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_telemetry.h"

typedef struct dg_dlog {
    unsigned char *b;
    size_t         len, cap;
    int            calls, records, errors;
    long           stop_after;   /* stop() answers true once records >= stop_after */
} dg_dlog_t;

static inline void dg_dlog_put(dg_dlog_t *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 4096;
        while (cap < l->len + n) cap *= 2;
        unsigned char *b = realloc(l->b, cap);
        if (!b) { fprintf(stderr, "decode_log: out of memory\n"); abort(); }
        l->b = b;
        l->cap = cap;
    }
    if (n) memcpy(l->b + l->len, p, n);
    l->len += n;
}

/* a length-prefixed string */
static inline void dg_dlog_str(dg_dlog_t *l, const char *s, size_t n)
{
    dg_dlog_put(l, &n, sizeof n);
    dg_dlog_put(l, s, n);
}

static inline void dg_dlog_on_record(void *ud, const dg_record_t *r)
{
    dg_dlog_t *l = ud;
    l->calls++;
    l->records++;
    dg_dlog_put(l, "R", 1);
    dg_dlog_put(l, &r->seq, sizeof r->seq);
    dg_dlog_put(l, &r->ts_ms, sizeof r->ts_ms);
    dg_dlog_put(l, &r->recv_us, sizeof r->recv_us);
    const double *d = &r->lat;                       /* lat lon alt speed heading climb battery */
    for (int k = 0; k < 7; k++) dg_dlog_put(l, &d[k], sizeof d[k]);
    dg_dlog_put(l, &r->flags, sizeof r->flags);
    dg_dlog_put(l, &r->origin, sizeof r->origin);
    size_t il = r->drone_id_len <= DG_DRONE_ID_MAX ? r->drone_id_len : DG_DRONE_ID_MAX;
    size_t sl = r->status_len <= DG_STATUS_MAX ? r->status_len : DG_STATUS_MAX;
    dg_dlog_str(l, r->drone_id, il + 1);
    dg_dlog_str(l, r->status, sl + 1);
}

static inline void dg_dlog_on_error(void *ud, const dg_decode_error_t *e)
{
    dg_dlog_t *l = ud;
    l->calls++;
    l->errors++;
    dg_dlog_put(l, "E", 1);
    dg_dlog_str(l, e->code, strlen(e->code));
    dg_dlog_str(l, e->field ? e->field : "(none)", e->field ? strlen(e->field) : 6);
    dg_dlog_put(l, &e->seq, sizeof e->seq);
    dg_dlog_put(l, &e->has_seq, sizeof e->has_seq);
    dg_dlog_str(l, e->message, strnlen(e->message, sizeof e->message));
}

static inline void dg_dlog_on_ack(void *ud, const dg_command_ack_t *a)
{
    dg_dlog_t *l = ud;
    l->calls++;
    dg_dlog_put(l, "A", 1);
    dg_dlog_str(l, a->id, a->id_len);
    dg_dlog_str(l, a->status, a->status_len);
    dg_dlog_str(l, a->message, a->message_len);
}

static inline bool dg_dlog_on_stop(void *ud)
{
    dg_dlog_t *l = ud;
    bool stop = l->stop_after >= 0 && l->records >= l->stop_after;
    dg_dlog_put(l, stop ? "S" : "s", 1);
    return stop;
}

/* Empty the log; a sink that logs into it, with stop() ending a batch after
 * stop_after records (< 0: no stop callback). */
static inline dg_decode_sink_t dg_dlog_sink(dg_dlog_t *l, long stop_after)
{
    l->len = 0;
    l->calls = l->records = l->errors = 0;
    l->stop_after = stop_after;
    dg_decode_sink_t s = { dg_dlog_on_record, dg_dlog_on_error, dg_dlog_on_ack, l,
                           stop_after >= 0 ? dg_dlog_on_stop : NULL };
    return s;
}

static inline bool dg_dlog_equal(const dg_dlog_t *a, const dg_dlog_t *b)
{
    return a->len == b->len && (a->len == 0 || !memcmp(a->b, b->b, a->len));
}

#endif
