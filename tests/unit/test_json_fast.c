/* test_json_fast.c - the JSON decoder's single-pass fast path (codec/json_fast.c).
 *
 * Representative frames must be taken by the fast path (dg_json_fast_decode
 * does not give up) and give exactly the full decoder's records; every frame
 * outside the common shape must make it give up having reported nothing,
 * and dg_json_decode (fast path + fallback) must then equal the full decoder
 * alone (dg_json_decoder_set_fast(d, false)). fuzz/fuzz_json_fast.c checks
 * the same equality on arbitrary bytes.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codec/json_fast.h"
#include "codec/json_telemetry.h"
#include "../../fuzz/decode_log.h"   /* dg_dlog_t: shared with fuzz_json_fast */
#include "../../bench/worst_frames.h"  /* dg_batch100_frame: shared with bench_decode */

#define NOW_MS  INT64_C(1795514400000)
#define RECV_US INT64_C(1795514400000123)
#define LLA "\"latitude\":47.397742,\"longitude\":8.545594,\"altitude\":488.2"

static dg_dlog_t *la, *lb;
static dg_json_decoder_t *with_fast, *full_only;
static dg_json_fast_t fp;

static size_t first_byte(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* The fast path alone on frame s: its return value (logged into la). */
static int fast_only(const char *s, size_t n, size_t max_tokens, long stop_after)
{
    dg_decode_sink_t sk = dg_dlog_sink(la, stop_after);
    uint64_t work = 0;
    int rc = dg_json_fast_decode(&fp, s, n, first_byte(s, n), max_tokens, NOW_MS, RECV_US, &sk, &work);
    if (work > 2 * (uint64_t)n + 1) return -100;                  /* its work: about a byte each */
    return rc;
}

/* The full decoder alone (logged into lb). */
static int full(const char *s, size_t n, long stop_after)
{
    dg_decode_sink_t sk = dg_dlog_sink(lb, stop_after);
    return dg_json_decode(full_only, s, n, NOW_MS, RECV_US, &sk);
}

static bool logs_equal(void) { return dg_dlog_equal(la, lb); }

/* dg_json_decode with the fast path (+ fallback) on s, logged into la: its
 * return value must be rs and its log lb's (the full decoder's). */
static bool decode_equals_full(const char *s, size_t n, int rs)
{
    dg_decode_sink_t sk = dg_dlog_sink(la, -1);
    return dg_json_decode(with_fast, s, n, NOW_MS, RECV_US, &sk) == rs && logs_equal();
}

/* ------------------------------------------------------------------------ */

static const char *const TAKEN[] = {
    /* the contract's example, the benchmark's single and minimal frames */
    "{\"seq\": 42, \"timestamp\": \"2026-11-24T10:00:00.123Z\", \"latitude\": 47.397742, "
    "\"longitude\": 8.545594, \"altitude\": 488.2, \"speed\": 12.5, \"heading\": 271.0, "
    "\"climb\": -0.4, \"battery\": 76.5, \"status\": \"airborne\"}",
    "{\"seq\":42,\"latitude\":47.397742,\"longitude\":8.545594,\"altitude\":488.2}",
    /* the simulator's shape, batched */
    "[{\"seq\":1,\"timestamp\":\"2026-12-05T19:00:00.250Z\",\"latitude\":47.3977420,\"longitude\":8.5455940,"
    "\"altitude\":488.20,\"speed\":12.50,\"heading\":271.00,\"climb\":-0.40,\"battery\":76.50,\"status\":\"airborne\"},"
    "{\"seq\":2,\"timestamp\":\"2026-12-05T19:00:00.500Z\",\"latitude\":47.3977500,\"longitude\":8.5455800,"
    "\"altitude\":488.10,\"speed\":0.00,\"heading\":0.00,\"climb\":0.00,\"battery\":100.00,\"status\":\"landed\"}]",
    "[]", " \t\r\n[ \n ] \n", "[{" LLA "}]",
    /* whitespace everywhere */
    " \n{ \"latitude\" :\t-90 ,\r\n \"longitude\" : 180 , \"altitude\" : -1000 } \n",
    /* optional fields null, type telemetry or null, epoch-ms timestamps, edges */
    "{" LLA ",\"speed\":null,\"heading\":null,\"climb\":null,\"battery\":null,\"status\":null,"
    "\"timestamp\":null,\"seq\":null,\"type\":null}",
    "{\"type\":\"telemetry\"," LLA ",\"timestamp\":1795514400123,\"seq\":18446744073709551615}",
    "{" LLA ",\"timestamp\":-9223286400000,\"seq\":0}",
    "{" LLA ",\"timestamp\":\"2262-04-11T23:47:16.854Z\"}",
    "{" LLA ",\"timestamp\":\"2026-11-24T12:00:00.5+02:00\",\"heading\":359.999,\"battery\":0}",
    "{\"latitude\":-0.0,\"longitude\":1e-7,\"altitude\":1.5E+2,\"speed\":0e0,\"climb\":-1e308}",
    /* numbers ending the object or before whitespace; long mantissas (slow path) */
    "{\"altitude\":3,\"longitude\":2,\"latitude\":1}",
    "{\"altitude\":3 ,\"longitude\":2\n,\"latitude\":12345678901234567890123e-22 }",
    "{" LLA ",\"seq\":1234567890123456789,\"timestamp\":-1}",
    "{" LLA ",\"seq\":12345678901234567890}",
    /* status: empty, exactly 32 bytes, UTF-8 */
    "{" LLA ",\"status\":\"\"}",
    "{" LLA ",\"status\":\"0123456789abcdef0123456789abcdef\"}",
    "{" LLA ",\"status\":\"\xc3\xa9t\xc3\xa9 \xf0\x9f\x9b\xb8\"}",
    /* ignored members: unknown keys (any scalar), id and message */
    "{\"x\":1,\"y\":\"\xe2\x82\xac\",\"z\":true,\"w\":false,\"v\":null,\"u\":-1.5e-3," LLA ",\"id\":\"a\",\"message\":7}",
    "{" LLA ",\"note\":\"a long note with spaces, commas: and {braces} [brackets] inside the string\"}",
    "{\"\xc3\xa9\":1," LLA "}",
};

/* Frame s through the fast path alone: taken (it decodes the frame exactly
 * like the full decoder) or not (it gives up having reported nothing); then
 * through dg_json_decode (fast path + fallback), which must give the full
 * decoder's result. NULL, or what went wrong. */
static const char *check_frame(const char *s, size_t n, bool taken)
{
    int rf = fast_only(s, n, 1 << 20, -1);
    int rs = full(s, n, -1);
    if (taken) {
        if (rf < 0) return "not taken by the fast path";
        if (rf != rs || lb->errors || !logs_equal()) return "fast path records differ from the full decoder's";
    } else {
        if (rf != DG_JSON_FAST_GIVE_UP) return "taken by the fast path";
        if (la->calls || la->len) return "the fast path reported something before giving up";
    }
    return decode_equals_full(s, n, rs) ? NULL : "dg_json_decode differs from the full decoder";
}

TEST(fast_path_takes_common_frames_and_equals_full)
{
    for (size_t i = 0; i < sizeof TAKEN / sizeof *TAKEN; i++) {
        const char *why = check_frame(TAKEN[i], strlen(TAKEN[i]), true);
        if (why) CHECK__FAIL("frame %zu: %s: %s", i, why, TAKEN[i]);
    }
}

/* The benchmark's batch of 100, with stop() ending it after every count. */
TEST(fast_path_batch100_and_stop)
{
    static char buf[64 * 1024];
    size_t n = dg_batch100_frame(buf, sizeof buf);
    for (long stop = -1; stop <= 101; stop++) {
        int rf = fast_only(buf, n, 1 << 20, stop);
        int rs = full(buf, n, stop);
        ASSERT_EQ(rf, rs);
        ASSERT_EQ(rf, stop < 0 || stop > 100 ? 100 : stop);
        if (!logs_equal()) CHECK__FAIL("stop after %ld: logs differ", stop);
    }
    /* token limit: 1 + 100 x (1 + 2 x 10 members) = 2101 tokens, as the full decoder counts */
    ASSERT_EQ(fast_only(buf, n, 2101, -1), 100);
    ASSERT_EQ(fast_only(buf, n, 2100, -1), DG_JSON_FAST_GIVE_UP);
    ASSERT_EQ(la->calls, 0);
}

static const char *const GIVE_UP[] = {
    /* escapes (the full decoder unescapes keys and values) */
    "{\"lat\\u0069tude\":1,\"longitude\":2,\"altitude\":3}",
    "{" LLA ",\"status\":\"air\\nborne\"}",
    "{" LLA ",\"x\":\"\\\"\"}",
    /* duplicate telemetry keys (last wins in the full decoder) */
    "{" LLA ",\"latitude\":1}",
    "{\"seq\":1," LLA ",\"seq\":2}",
    "{" LLA ",\"timestamp\":1795514400123,\"timestamp\":null}",
    "{" LLA ",\"speed\":1,\"speed\":null}",
    "{" LLA ",\"status\":\"a\",\"status\":null}",
    /* command_ack and other types */
    "{\"type\":\"command_ack\",\"id\":\"c1\",\"status\":\"done\"}",
    "{\"type\":\"foo\"," LLA "}",
    "{\"type\":1," LLA "}",
    /* nested values, non-object batch elements */
    "{" LLA ",\"x\":{}}",
    "{" LLA ",\"x\":[1,2]}",
    "[{" LLA "},5]",
    "[[]]",
    /* per-object errors */
    "{}",
    "{\"latitude\":1,\"longitude\":2}",
    "{\"latitude\":91,\"longitude\":2,\"altitude\":3}",
    "{\"latitude\":1,\"longitude\":-180.5,\"altitude\":3}",
    "{\"latitude\":1,\"longitude\":2,\"altitude\":100000.1}",
    "{\"latitude\":null,\"longitude\":2,\"altitude\":3}",
    "{\"latitude\":\"1\",\"longitude\":2,\"altitude\":3}",
    "{\"latitude\":1e400,\"longitude\":2,\"altitude\":3}",
    "{" LLA ",\"speed\":-1}",
    "{" LLA ",\"heading\":360}",
    "{" LLA ",\"battery\":100.01}",
    "{" LLA ",\"climb\":true}",
    "{" LLA ",\"seq\":-1}",
    "{" LLA ",\"seq\":1.0}",
    "{" LLA ",\"seq\":18446744073709551616}",
    "{" LLA ",\"seq\":\"1\"}",
    "{" LLA ",\"timestamp\":\"\"}",
    "{" LLA ",\"timestamp\":\"yesterday\"}",
    "{" LLA ",\"timestamp\":1.5}",
    "{" LLA ",\"timestamp\":9223372036855}",
    "{" LLA ",\"timestamp\":true}",
    "{" LLA ",\"status\":\"0123456789abcdef0123456789abcdef!\"}",
    "{" LLA ",\"status\":5}",
    /* the last object of a batch is bad: nothing of the batch may be reported */
    "[{" LLA ",\"seq\":1},{" LLA ",\"seq\":2},{" LLA ",\"seq\":-3}]",
    /* not JSON */
    "{" LLA "}x", "{" LLA "},", "[{" LLA "}", "[{" LLA "},]", "{" LLA ",}",
    "{\"latitude\":01,\"longitude\":2,\"altitude\":3}",
    /* numbers parsed in one pass (number.h dg_scan_*): a valid number
     * followed by a byte that continues the run is no number */
    "{\"latitude\":1.2.3,\"longitude\":2,\"altitude\":3}",
    "{\"latitude\":1,\"longitude\":2-3,\"altitude\":3}",
    "{\"latitude\":1,\"longitude\":2,\"altitude\":3e5e5}",
    "{\"latitude\":1,\"longitude\":2,\"altitude\":3+}",
    "{\"latitude\":-,\"longitude\":2,\"altitude\":3}",
    "{\"latitude\":-01,\"longitude\":2,\"altitude\":3}",
    "{" LLA ",\"seq\":00}",
    "{" LLA ",\"seq\":1e3}",
    "{" LLA ",\"seq\":12-}",
    "{" LLA ",\"seq\":123456789012345678901234}",
    "{" LLA ",\"seq\":-0}",
    "{" LLA ",\"timestamp\":1795514400123.}",
    "{" LLA ",\"timestamp\":17955144001231795514400123}",
    "{" LLA ",\"timestamp\":--1}",
    "{" LLA ",\"timestamp\":9223372036854775808}",
    "{" LLA ",\"seq\":-5}",
    "{" LLA ",\"speed\":1.}",
    "{" LLA ",\"speed\":1e+}",
    "{" LLA ",\"speed\":.5}",
    "{\"latitude\":1.,\"longitude\":2,\"altitude\":3}",
    "{\"latitude\":1,\"longitude\":2,\"altitude\":3,\"x\":-}",
    "{\"latitude\":1,\"longitude\":2,\"altitude\":3,\"x\":1e}",
    "{\"latitude\":1,\"longitude\":2,\"altitude\":3,\"x\":tru}",
    "{\"latitude\":1,\"longitude\":2,\"altitude\":3,\"x\":nullx}",
    "{\"latitude\":1 \"longitude\":2,\"altitude\":3}",
    "{\"latitude\"1,\"longitude\":2,\"altitude\":3}",
    "{" LLA ",\"x\":\"\x01\"}",
    "{" LLA ",\"x\":\"\xc0\xaf\"}",
    "{" LLA ",\"x\":\"\xed\xa0\x80\"}",
    "{" LLA ",\"x\":\"\xf4\x90\x80\x80\"}",
    "{" LLA ",\"x\":\"abc",
    "{" LLA ",\"x\"",
    "{" LLA "\f}",
};

TEST(fast_path_gives_up_before_reporting)
{
    for (size_t i = 0; i < sizeof GIVE_UP / sizeof *GIVE_UP; i++) {
        const char *why = check_frame(GIVE_UP[i], strlen(GIVE_UP[i]), false);
        if (why) CHECK__FAIL("frame %zu: %s: %s", i, why, GIVE_UP[i]);
    }
    /* a NUL byte inside a string */
    static const char nul[] = "{" LLA ",\"x\":\"a\0b\"}";
    const char *why = check_frame(nul, sizeof nul - 1, false);
    if (why) CHECK__FAIL("NUL in a string: %s", why);
}

/* More objects than DG_JSON_FAST_MAX_RECORDS: the fast path gives up at the
 * first one over (having reported nothing), the full decoder takes the
 * frame, the total work stays linear. */
TEST(fast_path_record_cap_and_linear_work)
{
    size_t cap = 2u << 20, n = 0;
    char *buf = malloc(cap);
    ASSERT(buf != NULL);
    int objs = DG_JSON_FAST_MAX_RECORDS + 1;
    buf[n++] = '[';
    for (int k = 0; k < objs; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s{\"seq\":%d," LLA "}", k ? "," : "", k);
    buf[n++] = ']';
    ASSERT_EQ(fast_only(buf, n, 1 << 20, -1), DG_JSON_FAST_GIVE_UP);
    ASSERT_EQ(la->calls, 0);
    int rs = full(buf, n, -1);
    ASSERT_EQ(rs, objs);
    ASSERT(decode_equals_full(buf, n, objs));
    uint64_t both = dg_json_decoder_work(with_fast), alone = dg_json_decoder_work(full_only);
    ASSERT(both > alone);                          /* the fast path's attempt is counted */
    ASSERT(both <= alone + 2 * (uint64_t)n + 1);
    ASSERT(both <= 64 * (uint64_t)n);

    /* exactly at the cap: taken */
    n = 0;
    buf[n++] = '[';
    for (int k = 0; k < DG_JSON_FAST_MAX_RECORDS; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s{\"seq\":%d," LLA "}", k ? "," : "", k);
    buf[n++] = ']';
    ASSERT_EQ(fast_only(buf, n, 1 << 20, -1), DG_JSON_FAST_MAX_RECORDS);

    /* a 1 MiB string in an ignored member: one pass */
    n = (size_t)snprintf(buf, cap, "{" LLA ",\"x\":\"");
    memset(buf + n, 'a', 1u << 20);
    n += 1u << 20;
    memcpy(buf + n, "\"}", 2);
    n += 2;
    ASSERT_EQ(fast_only(buf, n, 1 << 20, -1), 1);
    dg_decode_sink_t sk = dg_dlog_sink(la, -1);
    ASSERT_EQ(dg_json_decode(with_fast, buf, n, NOW_MS, RECV_US, &sk), 1);
    ASSERT(dg_json_decoder_work(with_fast) <= n + 64);   /* + the three numbers, parsed twice */
    free(buf);
}

int main(void)
{
    la = calloc(1, sizeof *la);
    lb = calloc(1, sizeof *lb);
    with_fast = dg_json_decoder_new(0);
    full_only = dg_json_decoder_new(0);
    if (!la || !lb || !with_fast || !full_only) return 1;
    dg_json_decoder_set_fast(full_only, false);

    RUN(fast_path_takes_common_frames_and_equals_full);
    RUN(fast_path_batch100_and_stop);
    RUN(fast_path_gives_up_before_reporting);
    RUN(fast_path_record_cap_and_linear_work);

    dg_json_fast_free(&fp);
    dg_json_decoder_free(with_fast);
    dg_json_decoder_free(full_only);
    free(la->b);
    free(lb->b);
    free(la);
    free(lb);
    return check_summary("json_fast");
}
