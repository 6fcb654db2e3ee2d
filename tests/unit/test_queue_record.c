/* test_queue_record.c - the contract's Queue message value (queue/record_json.c). */
#include "check.h"

#include <math.h>
#include "../../src/queue/queue.h"

static dg_record_t sample(void)
{
    dg_record_t r; dg_record_init(&r);
    memcpy(r.drone_id, "d-1.x_Y", 8); r.drone_id_len = 7;
    r.seq = 18446744073709551615ULL; r.flags = DG_REC_HAS_SEQ | DG_REC_HAS_TS;
    r.ts_ms = 1795000000123LL; r.recv_us = 1795000000456789LL;
    r.lat = 47.397742; r.lon = -8.545594; r.alt = 488.2;
    r.speed = 12.5; r.flags |= DG_REC_HAS_SPEED;
    r.battery = 0.1; r.flags |= DG_REC_HAS_BATTERY;
    memcpy(r.status, "air\"borne", 10); r.status_len = 9; r.flags |= DG_REC_HAS_STATUS;
    return r;
}

TEST(round_trip)
{
    dg_record_t r = sample(), o; dg_buf_t b = {0};
    dg_queue_encode_json(&r, &b);
    char err[128];
    ASSERT_EQ(dg_queue_decode_json((const char *)b.data, b.len, &o, err, sizeof err), 0);
    ASSERT(strcmp(o.drone_id, "d-1.x_Y") == 0);
    ASSERT(o.seq == r.seq);
    ASSERT_EQ(o.ts_ms, r.ts_ms);
    ASSERT_EQ(o.recv_us, 1795000000456000LL);
    ASSERT(o.lat == r.lat && o.lon == r.lon && o.alt == r.alt);
    ASSERT(o.speed == 12.5 && o.battery == 0.1 && isnan(o.heading) && isnan(o.climb));
    ASSERT(strcmp(o.status, "air\"borne") == 0 && o.status_len == 9);
    ASSERT_EQ(o.flags & ~DG_REC_HAS_TS, r.flags & ~DG_REC_HAS_TS);
    dg_buf_free(&b);
}

TEST(format)
{
    dg_record_t r = sample(); dg_buf_t b = {0};
    r.flags &= ~(DG_REC_HAS_STATUS | DG_REC_HAS_SPEED | DG_REC_HAS_BATTERY);
    r.seq = 42; r.lat = 1.5; r.lon = 2; r.alt = -3;
    dg_queue_encode_json(&r, &b);
    const char *want = "{\"drone_id\":\"d-1.x_Y\",\"seq\":42,\"timestamp\":1795000000123,"
        "\"latitude\":1.5,\"longitude\":2,\"altitude\":-3,\"received_at\":1795000000456}";
    ASSERT(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0);
    dg_buf_free(&b);
}

static int bad(const char *s)
{
    dg_record_t o; char err[128];
    int rc = dg_queue_decode_json(s, strlen(s), &o, err, sizeof err);
    if (rc == 0) fprintf(stderr, "accepted: %s\n", s);
    return rc == -1 && err[0] != '\0';
}

TEST(rejects)
{
    ASSERT(bad(""));
    ASSERT(bad("[]"));
    ASSERT(bad("{"));
    ASSERT(bad("{\"seq\":1,\"timestamp\":1,\"latitude\":1,\"longitude\":1,\"altitude\":1,\"received_at\":1}"));
    ASSERT(bad("{\"drone_id\":\"a b\",\"seq\":1,\"timestamp\":1,\"latitude\":1,\"longitude\":1,\"altitude\":1,\"received_at\":1}"));
    ASSERT(bad("{\"drone_id\":\"a\",\"seq\":1,\"timestamp\":1,\"latitude\":91,\"longitude\":1,\"altitude\":1,\"received_at\":1}"));
    ASSERT(bad("{\"drone_id\":\"a\",\"seq\":1,\"timestamp\":1,\"latitude\":1,\"longitude\":1,\"altitude\":1}"));
    ASSERT(bad("{\"drone_id\":\"a\",\"seq\":1,\"timestamp\":1,\"latitude\":1,\"longitude\":1,\"altitude\":1,\"received_at\":1.5}"));
    ASSERT(bad("{\"drone_id\":\"a\",\"seq\":1,\"timestamp\":1,\"latitude\":1,\"longitude\":1,\"altitude\":1,\"received_at\":99999999999999999}"));
    /* no seq: stored as on the direct path (a drone may send without one) */
    ASSERT(!bad("{\"drone_id\":\"a\",\"timestamp\":1,\"latitude\":1,\"longitude\":1,\"altitude\":1,\"received_at\":1}"));
    ASSERT(bad("{\"drone_id\":\"a\",\"seq\":1,\"timestamp\":1,\"latitude\":1,\"longitude\":1,\"altitude\":1,\"received_at\":1} "));
    ASSERT(!bad("{\"drone_id\":\"a\",\"seq\":1,\"timestamp\":1,\"latitude\":1,\"longitude\":1,\"altitude\":1,\"received_at\":1,\"x\":[1]}"));
}

TEST(dispatch)
{
    char err[128]; const dg_sink_ops_t *ops = NULL;
    ASSERT(dg_queue_publisher_new("redis://x", NULL, NULL, &ops, err, sizeof err) == NULL);
    ASSERT(strstr(err, "unknown queue URI scheme") != NULL);
    ASSERT(dg_queue_consumer_ops("nats://x", err, sizeof err) == NULL);
    ASSERT(dg_queue_consumer_ops("amqp://h/v?queue=q", err, sizeof err) == &dg_amqp_consumer_ops);
    ASSERT(dg_queue_consumer_ops("kafka://h:1/t", err, sizeof err) == &dg_kafka_consumer_ops);
}

int main(void)
{
    RUN(dispatch);
    RUN(round_trip);
    RUN(format);
    RUN(rejects);
    return check_summary("test_queue_record");
}
