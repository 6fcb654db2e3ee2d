/* test_client_queue.c - libdronegate's store-and-forward queue (seq
 * assignment, cumulative ack trimming, full policies, resend order, the
 * session message), the reconnect backoff, sample validation/JSON and the
 * server-message parser. Links build/libdronegate.a (mk/client.mk). */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "internal.h"
#include "codec/pb_telemetry.h"

static dgc_rec_t rec(int64_t ts)
{
    dgc_rec_t r;
    memset(&r, 0, sizeof r);
    r.ts_ms = ts;
    r.lat = 1;
    return r;
}

static void push_n(dgc_queue_t *q, int n, int64_t ts0)
{
    for (int i = 0; i < n; i++) {
        dgc_rec_t r = rec(ts0 + i);
        dgc_q_push(q, &r, NULL);
    }
}

TEST(seq_assignment)
{
    dgc_queue_t q;
    dgc_q_init(&q, 100, DG_FULL_REFUSE_NEWEST);
    for (uint64_t i = 1; i <= 40; i++) {
        dgc_rec_t r = rec((int64_t)i * 10);
        uint64_t s = 0;
        ASSERT_EQ(dgc_q_push(&q, &r, &s), DG_CLIENT_OK);
        ASSERT_U64_EQ(s, i);
    }
    ASSERT_EQ(dgc_q_count(&q), 40);
    for (uint64_t i = 1; i <= 40; i++) ASSERT_EQ(dgc_q_at(&q, i)->ts_ms, (int64_t)i * 10);
    dgc_q_free(&q);
}

TEST(cumulative_ack_trims)
{
    dgc_queue_t q;
    dgc_q_init(&q, 100, DG_FULL_REFUSE_NEWEST);
    push_n(&q, 10, 1);
    ASSERT_EQ(dgc_q_mark_sent(&q, 10), 0);
    ASSERT_EQ(dgc_q_ack(&q, 4), 4);
    ASSERT_EQ(dgc_q_count(&q), 6);
    ASSERT_U64_EQ(q.head, 5);
    ASSERT_EQ(dgc_q_ack(&q, 2), 0);          /* older ack: nothing */
    ASSERT_EQ(dgc_q_ack(&q, 4), 0);          /* repeated ack: nothing */
    ASSERT_EQ(dgc_q_at(&q, 5)->ts_ms, 5);
    ASSERT_EQ(dgc_q_ack(&q, 10), 6);
    ASSERT_EQ(dgc_q_count(&q), 0);
    ASSERT_U64_EQ(q.acked, 10);
    uint64_t s;
    dgc_rec_t r = rec(99);
    dgc_q_push(&q, &r, &s);
    ASSERT_U64_EQ(s, 11);                    /* seqs keep counting */
    dgc_q_free(&q);
}

TEST(ack_beyond_sent_is_clamped)
{
    dgc_queue_t q;
    dgc_q_init(&q, 100, DG_FULL_REFUSE_NEWEST);
    push_n(&q, 10, 1);
    dgc_q_mark_sent(&q, 5);
    ASSERT_EQ(dgc_q_ack(&q, 8), 5);          /* 6..8 were never written */
    ASSERT_U64_EQ(q.head, 6);
    ASSERT_EQ(dgc_q_count(&q), 5);
    dgc_q_free(&q);
}

TEST(full_refuse_newest)
{
    dgc_queue_t q;
    dgc_q_init(&q, 3, DG_FULL_REFUSE_NEWEST);
    push_n(&q, 3, 1);
    dgc_rec_t r = rec(4);
    uint64_t s = 77;
    ASSERT_EQ(dgc_q_push(&q, &r, &s), DG_CLIENT_EFULL);
    ASSERT_U64_EQ(s, 77);
    ASSERT_EQ(dgc_q_push(&q, &r, &s), DG_CLIENT_EFULL);
    ASSERT_U64_EQ(q.refused, 2);
    ASSERT_EQ(dgc_q_count(&q), 3);
    ASSERT_EQ(dgc_q_at(&q, 1)->ts_ms, 1);
    dgc_q_mark_sent(&q, 3);
    dgc_q_ack(&q, 1);                         /* room again */
    ASSERT_EQ(dgc_q_push(&q, &r, &s), DG_CLIENT_OK);
    ASSERT_U64_EQ(s, 4);
    dgc_q_free(&q);
}

TEST(full_drop_oldest)
{
    dgc_queue_t q;
    dgc_q_init(&q, 3, DG_FULL_DROP_OLDEST);
    push_n(&q, 3, 1);
    dgc_q_mark_sent(&q, 1);
    dgc_rec_t r = rec(4);
    uint64_t s;
    ASSERT_EQ(dgc_q_push(&q, &r, &s), DG_CLIENT_EDROPPED);
    ASSERT_U64_EQ(s, 4);
    r = rec(5);
    ASSERT_EQ(dgc_q_push(&q, &r, &s), DG_CLIENT_EDROPPED);
    ASSERT_U64_EQ(q.dropped, 2);
    ASSERT_U64_EQ(q.head, 3);
    ASSERT_EQ(dgc_q_count(&q), 3);
    ASSERT_U64_EQ(q.tx, 2);                   /* the next write starts at the new head */
    for (uint64_t i = 3; i <= 5; i++) ASSERT_EQ(dgc_q_at(&q, i)->ts_ms, (int64_t)i);
    ASSERT_EQ(dgc_q_sendable(&q, 100), 3);
    dgc_q_free(&q);
}

TEST(resend_in_order_after_rewind)
{
    dgc_queue_t q;
    dgc_q_init(&q, 1000, DG_FULL_REFUSE_NEWEST);
    push_n(&q, 10, 100);
    ASSERT_EQ(dgc_q_sendable(&q, 1000), 10);
    ASSERT_EQ(dgc_q_mark_sent(&q, 6), 0);     /* 1..6 written once */
    ASSERT_EQ(dgc_q_ack(&q, 2), 2);
    dgc_q_rewind(&q);                         /* reconnect */
    ASSERT_U64_EQ(q.tx, 2);
    ASSERT_EQ(dgc_q_sendable(&q, 1000), 8);   /* 3..10 */
    ASSERT_EQ(dgc_q_at(&q, q.tx + 1)->ts_ms, 102);
    ASSERT_EQ(dgc_q_mark_sent(&q, 10), 4);    /* 3..6 again, 7..10 fresh */
    ASSERT_U64_EQ(q.hi_sent, 10);
    ASSERT_EQ(dgc_q_sendable(&q, 1000), 0);
    dgc_q_free(&q);
}

TEST(window_limits_in_flight)
{
    dgc_queue_t q;
    dgc_q_init(&q, 1000, DG_FULL_REFUSE_NEWEST);
    push_n(&q, 10, 1);
    ASSERT_EQ(dgc_q_sendable(&q, 4), 4);
    dgc_q_mark_sent(&q, 4);
    ASSERT_EQ(dgc_q_sendable(&q, 4), 0);
    dgc_q_ack(&q, 2);
    ASSERT_EQ(dgc_q_sendable(&q, 4), 2);
    dgc_q_free(&q);
}

TEST(ring_wraps_and_grows)
{
    dgc_queue_t q;
    dgc_q_init(&q, 100000, DG_FULL_REFUSE_NEWEST);
    int64_t ts = 0;
    uint64_t expect_head = 1;
    for (int round = 0; round < 200; round++) {
        push_n(&q, 37 + round % 50, ts);
        ts += 37 + round % 50;
        dgc_q_mark_sent(&q, q.next - 1);
        uint64_t a = q.head + (q.next - q.head) / 2;
        dgc_q_ack(&q, a);
        expect_head = a + 1;
        ASSERT_U64_EQ(q.head, expect_head);
        for (uint64_t s = q.head; s < q.next; s++) ASSERT_EQ(dgc_q_at(&q, s)->ts_ms, (int64_t)s - 1);
    }
    dgc_q_free(&q);
}

TEST(session_fresh_process_renumbers)
{
    dgc_queue_t q;
    dgc_q_init(&q, 1000, DG_FULL_REFUSE_NEWEST);
    push_n(&q, 3, 7);                         /* seqs 1..3, never written */
    ASSERT_EQ(dgc_q_session(&q, 1, 100), 1);  /* an earlier life stored up to 100 */
    ASSERT_U64_EQ(q.head, 101);
    ASSERT_EQ(dgc_q_count(&q), 3);
    ASSERT_U64_EQ(q.skipped, 0);
    for (int i = 0; i < 3; i++) ASSERT_EQ(dgc_q_at(&q, 101 + (uint64_t)i)->ts_ms, 7 + i);
    uint64_t s;
    dgc_rec_t r = rec(10);
    dgc_q_push(&q, &r, &s);
    ASSERT_U64_EQ(s, 104);
    ASSERT_EQ(dgc_q_sendable(&q, 1000), 4);
    ASSERT_U64_EQ(q.tx, 100);
    dgc_q_free(&q);
}

TEST(session_drops_what_was_stored)
{
    dgc_queue_t q;
    dgc_q_init(&q, 1000, DG_FULL_REFUSE_NEWEST);
    push_n(&q, 8, 1);
    dgc_q_mark_sent(&q, 5);                   /* 1..5 written, acks lost */
    dgc_q_rewind(&q);
    ASSERT_EQ(dgc_q_session(&q, 1, 3), 0);
    ASSERT_U64_EQ(q.head, 4);
    ASSERT_U64_EQ(q.skipped, 3);
    ASSERT_U64_EQ(q.acked, 3);
    ASSERT_U64_EQ(q.tx, 3);
    ASSERT_EQ(dgc_q_sendable(&q, 1000), 5);   /* 4..8 (4,5 again) */
    ASSERT_EQ(dgc_q_at(&q, 4)->ts_ms, 4);
    /* null last_seq: nothing changes */
    ASSERT_EQ(dgc_q_session(&q, 0, 0), 0);
    ASSERT_U64_EQ(q.head, 4);
    /* the gateway is behind us (restored from an older backup): keep all */
    ASSERT_EQ(dgc_q_session(&q, 1, 1), 0);
    ASSERT_U64_EQ(q.head, 4);
    ASSERT_EQ(dgc_q_count(&q), 5);
    dgc_q_free(&q);
}

TEST(session_mixed_written_and_renumbered)
{
    dgc_queue_t q;
    dgc_q_init(&q, 1000, DG_FULL_REFUSE_NEWEST);
    push_n(&q, 6, 1);
    dgc_q_mark_sent(&q, 2);                   /* 1,2 written; 3..6 not */
    dgc_q_rewind(&q);
    ASSERT_EQ(dgc_q_session(&q, 1, 10), 1);   /* another writer went up to 10 */
    ASSERT_U64_EQ(q.skipped, 2);
    ASSERT_U64_EQ(q.head, 11);
    ASSERT_EQ(dgc_q_count(&q), 4);
    for (int i = 0; i < 4; i++) ASSERT_EQ(dgc_q_at(&q, 11 + (uint64_t)i)->ts_ms, 3 + i);
    dgc_q_free(&q);
}

TEST(session_empty_queue_moves_next)
{
    dgc_queue_t q;
    dgc_q_init(&q, 10, DG_FULL_REFUSE_NEWEST);
    ASSERT_EQ(dgc_q_session(&q, 1, 41), 1);
    uint64_t s;
    dgc_rec_t r = rec(1);
    dgc_q_push(&q, &r, &s);
    ASSERT_U64_EQ(s, 42);
    dgc_q_free(&q);
}

TEST(backoff_doubles_with_jitter_and_cap)
{
    dgc_backoff_t b;
    dgc_backoff_init(&b, 100, 1000, 12345);
    unsigned lo[] = { 50, 100, 200, 400, 500, 500, 500 };
    unsigned hi[] = { 150, 300, 600, 1000, 1000, 1000, 1000 };
    for (int i = 0; i < 7; i++) {
        unsigned d = dgc_backoff_next(&b);
        if (d < lo[i] || d > hi[i]) CHECK__FAIL("attempt %d: %u not in [%u, %u]", i, d, lo[i], hi[i]);
    }
    dgc_backoff_reset(&b);
    unsigned d = dgc_backoff_next(&b);
    ASSERT(d >= 50 && d < 150);
    /* jitter: different seeds give different delays */
    unsigned seen[64];
    int distinct = 0;
    for (int i = 0; i < 64; i++) {
        dgc_backoff_init(&b, 1000, 60000, (uint64_t)i * 7919 + 1);
        seen[i] = dgc_backoff_next(&b);
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= seen[j] == seen[i];
        distinct += !dup;
        ASSERT(seen[i] >= 500 && seen[i] < 1500);
    }
    ASSERT(distinct > 32);
    /* many failures never overflow */
    dgc_backoff_init(&b, 1, 30000, 1);
    for (int i = 0; i < 200; i++) d = dgc_backoff_next(&b);
    ASSERT(d >= 15000 && d <= 30000);
}

TEST(sample_validation_and_json)
{
    dgc_rec_t r;
    const char *why = NULL;
    dg_sample_t s = { .latitude = 47.397742, .longitude = 8.545594, .altitude = 488.2 };
    ASSERT_EQ(dgc_rec_from_sample(&r, &s, 1700000000123LL, &why), DG_CLIENT_OK);
    ASSERT_EQ(r.ts_ms, 1700000000123LL);       /* 0 = now */
    char out[DGC_REC_JSON_MAX];
    dgc_rec_json(out, &r, 42);
    ASSERT_STR_EQ(out, "{\"seq\":42,\"timestamp\":1700000000123,\"latitude\":47.397742,"
                       "\"longitude\":8.545594,\"altitude\":488.2}");
    s.has = DG_HAS_SPEED | DG_HAS_BATTERY | DG_HAS_HEADING | DG_HAS_CLIMB;
    s.speed = 12.3; s.battery = 76.5; s.heading = 271; s.climb = -0.4;
    s.status = "air\"borne";
    s.timestamp_ms = 5;
    ASSERT_EQ(dgc_rec_from_sample(&r, &s, 0, &why), DG_CLIENT_OK);
    dgc_rec_json(out, &r, 1);
    ASSERT_STR_EQ(out, "{\"seq\":1,\"timestamp\":5,\"latitude\":47.397742,\"longitude\":8.545594,"
                       "\"altitude\":488.2,\"speed\":12.3,\"heading\":271,\"climb\":-0.4,"
                       "\"battery\":76.5,\"status\":\"air\\\"borne\"}");
    struct { double lat, lon, alt; const char *field; } bad[] = {
        { 91, 0, 0, "latitude" }, { NAN, 0, 0, "latitude" }, { 0, -180.5, 0, "longitude" },
        { 0, 0, 100001, "altitude" }, { 0, 0, INFINITY, "altitude" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dg_sample_t b = { .latitude = bad[i].lat, .longitude = bad[i].lon, .altitude = bad[i].alt };
        ASSERT_EQ(dgc_rec_from_sample(&r, &b, 1, &why), DG_CLIENT_EINVAL);
        ASSERT_STR_EQ(why, bad[i].field);
    }
    dg_sample_t b = { .has = DG_HAS_HEADING, .heading = 360 };
    ASSERT_EQ(dgc_rec_from_sample(&r, &b, 1, &why), DG_CLIENT_EINVAL);
    ASSERT_STR_EQ(why, "heading");
    b = (dg_sample_t){ .status = "123456789012345678901234567890123" };   /* 33 */
    ASSERT_EQ(dgc_rec_from_sample(&r, &b, 1, &why), DG_CLIENT_EINVAL);
    b = (dg_sample_t){ .status = "bad\xff" };
    ASSERT_EQ(dgc_rec_from_sample(&r, &b, 1, &why), DG_CLIENT_EINVAL);
    b = (dg_sample_t){ .status = "tab\t" };
    ASSERT_EQ(dgc_rec_from_sample(&r, &b, 1, &why), DG_CLIENT_EINVAL);
    b = (dg_sample_t){ .status = "h\xc3\xb6he" };
    ASSERT_EQ(dgc_rec_from_sample(&r, &b, 1, &why), DG_CLIENT_OK);
    b = (dg_sample_t){ .timestamp_ms = 9300000000000LL };
    ASSERT_EQ(dgc_rec_from_sample(&r, &b, 1, &why), DG_CLIENT_EINVAL);
    ASSERT_STR_EQ(why, "timestamp");
    ASSERT(sizeof(dgc_rec_t) <= 88);
}

/* Every number written in the sample JSON reads back as the value given
 * (fixed point when exact, else %g): positions on the 1e-7 grid, fractions
 * with trailing zeros, negatives, tiny values and arbitrary doubles. */
static double field(const char *json, const char *key)
{
    const char *p = strstr(json, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

TEST(json_numbers_read_back_exactly)
{
    char out[DGC_REC_JSON_MAX];
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        double lat;
        switch (i % 4) {
        case 0: lat = (double)((long long)(x % 1800000001ull) - 900000000LL) / 1e7; break;   /* the 1e-7 grid */
        case 1: lat = (double)((long long)(x % 1801ull) - 900LL) / 10; break;                /* 12.5, -0.1 */
        case 2: lat = ((double)(x >> 11) / 9007199254740992.0) * 180.0 - 90.0; break;     /* any double */
        default: lat = ldexp((double)(x % 1000u), -10 - (int)(x % 50u)); break;            /* tiny */
        }
        float speed = (float)((double)(x % 100000u) / 1000.0 + (i % 3 ? 0.0 : 1e-5));
        dg_sample_t s = { .latitude = lat, .longitude = -lat * 2 / 1.0000001, .altitude = lat * 10,
                          .has = DG_HAS_SPEED, .speed = speed };
        if (s.longitude < -180 || s.longitude > 180) s.longitude = 8.5;
        dgc_rec_t r;
        const char *why = NULL;
        ASSERT_EQ(dgc_rec_from_sample(&r, &s, 1, &why), DG_CLIENT_OK);
        dgc_rec_json(out, &r, 1);
        if (field(out, "\"latitude\":") != r.lat || field(out, "\"longitude\":") != r.lon ||
            field(out, "\"altitude\":") != r.alt || (float)field(out, "\"speed\":") != r.speed) {
            fprintf(stderr, "does not read back: lat %.17g lon %.17g alt %.17g speed %.9g -> %s\n",
                    r.lat, r.lon, r.alt, (double)r.speed, out);
            ASSERT(0);
            return;
        }
    }
    dg_sample_t s = { .latitude = -0.05, .longitude = 10.1000001, .altitude = 100 };
    dgc_rec_t r;
    const char *why = NULL;
    ASSERT_EQ(dgc_rec_from_sample(&r, &s, 0, &why), DG_CLIENT_OK);
    dgc_rec_json(out, &r, 7);
    ASSERT_STR_EQ(out, "{\"seq\":7,\"timestamp\":0,\"latitude\":-0.05,\"longitude\":10.1000001,\"altitude\":100}");
}

static dgc_msg_t got[8];
static int ngot;
static void collect(void *ud, const dgc_msg_t *m)
{
    (void)ud;
    if (ngot < 8) got[ngot++] = *m;
}

static int parse(const char *s)
{
    ngot = 0;
    return dgc_parse_server(s, strlen(s), collect, NULL);
}

TEST(server_messages)
{
    ASSERT_EQ(parse("{\"type\":\"session\",\"last_seq\":null}"), 1);
    ASSERT_EQ(got[0].type, DGC_MSG_SESSION);
    ASSERT_EQ(got[0].has_seq, 0);
    ASSERT_EQ(parse("{\"type\":\"session\",\"last_seq\":18446744073709551615}"), 1);
    ASSERT_EQ(got[0].type, DGC_MSG_SESSION);
    ASSERT_U64_EQ(got[0].seq, UINT64_MAX);
    ASSERT_EQ(parse("{\"type\":\"session\",\"last_seq\":18446744073709551616}"), 1);
    ASSERT_EQ(got[0].type, DGC_MSG_OTHER);    /* overflow: not a session */
    ASSERT_EQ(parse("{\"type\":\"session\"}"), 1);
    ASSERT_EQ(got[0].type, DGC_MSG_OTHER);
    ASSERT_EQ(parse(" {\"seq\": 42, \"type\":\"ack\"} "), 1);
    ASSERT_EQ(got[0].type, DGC_MSG_ACK);
    ASSERT_U64_EQ(got[0].seq, 42);
    ASSERT_EQ(parse("{\"type\":\"ack\",\"seq\":-1}"), 1);
    ASSERT_EQ(got[0].type, DGC_MSG_OTHER);
    ASSERT_EQ(parse("{\"type\":\"ack\",\"seq\":1.5}"), 1);
    ASSERT_EQ(got[0].type, DGC_MSG_OTHER);
    ASSERT_EQ(parse("{\"type\":\"error\",\"seq\":7,\"code\":\"invalid_field\",\"field\":\"latitude\","
                    "\"message\":\"out of \\\"range\\\" \\u00e9\"}"), 1);
    ASSERT_EQ(got[0].type, DGC_MSG_ERROR);
    ASSERT_U64_EQ(got[0].seq, 7);
    ASSERT_STR_EQ(got[0].code, "invalid_field");
    ASSERT_STR_EQ(got[0].field, "latitude");
    ASSERT_STR_EQ(got[0].message, "out of \"range\" \xc3\xa9");
    ASSERT_EQ(parse("{\"type\":\"command\",\"id\":\"c-1\",\"name\":\"goto\",\"args\":{\"lat\":1,\"x\":[1,{\"y\":2}]}}"), 1);
    ASSERT_EQ(got[0].type, DGC_MSG_COMMAND);
    ASSERT_STR_EQ(got[0].id, "c-1");
    ASSERT_STR_EQ(got[0].name, "goto");
    ASSERT_EQ(got[0].args_len, strlen("{\"lat\":1,\"x\":[1,{\"y\":2}]}"));
    ASSERT_EQ(parse("[{\"type\":\"ack\",\"seq\":1},3,{\"type\":\"ack\",\"seq\":2}]"), 2);
    ASSERT_U64_EQ(got[1].seq, 2);
    ASSERT_EQ(parse("{\"type\":\"ack\",\"seq\":1"), -1);
    ASSERT_EQ(parse("nope"), -1);
    ASSERT_EQ(parse(""), -1);
    ASSERT_EQ(parse("{\"type\":\"weird\"}"), 1);
    ASSERT_EQ(got[0].type, DGC_MSG_OTHER);
    /* long strings are truncated, NUL-terminated */
    char big[2000];
    int n = sprintf(big, "{\"type\":\"error\",\"code\":\"x\",\"message\":\"");
    memset(big + n, 'a', 1500);
    strcpy(big + n + 1500, "\"}");
    ASSERT_EQ(parse(big), 1);
    ASSERT_EQ(strlen(got[0].message), sizeof got[0].message - 1);
}

/* dgc_rec_pb (written in place, one-byte lengths) read back by the
 * gateway's own DroneMessage decoder: every field, the extremes of seq and
 * timestamp (10-byte varints), a 32-byte status, no optional field. */
static dg_record_t pb_got;
static int pb_records, pb_errors;
static void pb_on_record(void *ud, const dg_record_t *r) { (void)ud; pb_got = *r; pb_records++; }
static void pb_on_error(void *ud, const dg_decode_error_t *e) { (void)ud; (void)e; pb_errors++; }

TEST(pb_sample_read_back_by_the_gateway)
{
    static const char st32[] = "0123456789abcdef0123456789abcdef";
    struct { int64_t ts; uint64_t seq; unsigned has; const char *status; } cases[] = {
        { 1764000000123, 1, DG_HAS_SPEED | DG_HAS_HEADING | DG_HAS_CLIMB | DG_HAS_BATTERY, "airborne" },
        { -9000000000000, UINT64_MAX, 0, NULL },                 /* 10-byte varints, nothing optional */
        { 9000000000000, (uint64_t)1 << 63, DG_HAS_BATTERY, st32 },
        { -9000000000000, UINT64_MAX, DG_HAS_SPEED | DG_HAS_HEADING | DG_HAS_CLIMB | DG_HAS_BATTERY, st32 },
    };
    dg_decode_sink_t sink = { .on_record = pb_on_record, .on_error = pb_on_error };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dg_sample_t smp = { .timestamp_ms = cases[i].ts, .latitude = -89.9999999, .longitude = 179.1234567,
                            .altitude = 99999.99, .speed = 12.5, .heading = 359.99, .climb = -3.25,
                            .battery = 0.5, .has = cases[i].has, .status = cases[i].status };
        dgc_rec_t r;
        const char *why = NULL;
        ASSERT_EQ(dgc_rec_from_sample(&r, &smp, 1, &why), DG_CLIENT_OK);
        uint8_t buf[DGC_REC_PB_MAX];
        size_t n = dgc_rec_pb(buf, &r, cases[i].seq);
        ASSERT(n <= 107);                 /* client.c frames it with a 6-byte header (< 126) */
        pb_records = pb_errors = 0;
        ASSERT_EQ(dg_pb_decode(buf, n, 5, 0, &sink), 1);
        ASSERT_EQ(pb_records, 1);
        ASSERT_EQ(pb_errors, 0);
        ASSERT_U64_EQ(pb_got.seq, cases[i].seq);
        ASSERT_EQ(pb_got.ts_ms, cases[i].ts);
        ASSERT_DBL_EQ(pb_got.lat, -89.9999999);
        ASSERT_DBL_EQ(pb_got.lon, 179.1234567);
        ASSERT_DBL_EQ(pb_got.alt, 99999.99);
        if (cases[i].has & DG_HAS_SPEED) ASSERT_DBL_EQ(pb_got.speed, 12.5);
        else ASSERT(isnan(pb_got.speed));
        if (cases[i].has & DG_HAS_BATTERY) ASSERT_DBL_EQ(pb_got.battery, 0.5);
        else ASSERT(isnan(pb_got.battery));
        if (cases[i].has & DG_HAS_HEADING) ASSERT_DBL_EQ(pb_got.heading, (double)359.99f);
        ASSERT_STR_EQ(pb_got.status, cases[i].status ? cases[i].status : "");
    }
}

int main(void)
{
    RUN(seq_assignment);
    RUN(cumulative_ack_trims);
    RUN(ack_beyond_sent_is_clamped);
    RUN(full_refuse_newest);
    RUN(full_drop_oldest);
    RUN(resend_in_order_after_rewind);
    RUN(window_limits_in_flight);
    RUN(ring_wraps_and_grows);
    RUN(session_fresh_process_renumbers);
    RUN(session_drops_what_was_stored);
    RUN(session_mixed_written_and_renumbered);
    RUN(session_empty_queue_moves_next);
    RUN(backoff_doubles_with_jitter_and_cap);
    RUN(sample_validation_and_json);
    RUN(json_numbers_read_back_exactly);
    RUN(server_messages);
    RUN(pb_sample_read_back_by_the_gateway);
    return check_summary("client_queue");
}
