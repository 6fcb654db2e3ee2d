/* test_timefmt.c - unit tests of src/core/timefmt.c: RFC 3339 parsing and
 * formatting, epoch-ms query parameters, clocks.
 *
 * timegm() (glibc, UTC) serves as the reference for the civil-date
 * arithmetic; timefmt.c itself never uses it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "core/timefmt.h"

static uint64_t rng_state = 0xD1B54A32D192ED03ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return rng_state = x;
}

static int parse(const char *s, int64_t *ms) { return dg_parse_rfc3339(s, strlen(s), ms); }

TEST(parse_known)
{
    int64_t ms;
    ASSERT_EQ(parse("1970-01-01T00:00:00Z", &ms), 0); ASSERT_EQ(ms, 0);
    ASSERT_EQ(parse("2026-11-24T10:00:00.123Z", &ms), 0); ASSERT_EQ(ms, INT64_C(1795514400123));
    ASSERT_EQ(parse("2026-11-24T12:00:00.123+02:00", &ms), 0); ASSERT_EQ(ms, INT64_C(1795514400123));
    ASSERT_EQ(parse("2026-11-24T05:30:00.123-04:30", &ms), 0); ASSERT_EQ(ms, INT64_C(1795514400123));
    ASSERT_EQ(parse("2026-11-24T10:00:00.123-00:00", &ms), 0); ASSERT_EQ(ms, INT64_C(1795514400123));
    ASSERT_EQ(parse("2026-11-24t10:00:00.123z", &ms), 0); ASSERT_EQ(ms, INT64_C(1795514400123));
    ASSERT_EQ(parse("2026-11-24 10:00:00.123Z", &ms), 0); ASSERT_EQ(ms, INT64_C(1795514400123));
    ASSERT_EQ(parse("1969-12-31T23:59:59.999Z", &ms), 0); ASSERT_EQ(ms, -1);
    ASSERT_EQ(parse("1970-01-01T00:00:00.5Z", &ms), 0); ASSERT_EQ(ms, 500);
    ASSERT_EQ(parse("1970-01-01T00:00:00.05Z", &ms), 0); ASSERT_EQ(ms, 50);
    ASSERT_EQ(parse("1970-01-01T00:00:00.999999999Z", &ms), 0); ASSERT_EQ(ms, 999);   /* truncated */
    ASSERT_EQ(parse("1970-01-01T00:00:00.0001Z", &ms), 0); ASSERT_EQ(ms, 0);
    ASSERT_EQ(parse("1970-01-01T00:00:00.12345678901234567890123Z", &ms), 0); ASSERT_EQ(ms, 123);
    ASSERT_EQ(parse("2000-02-29T00:00:00Z", &ms), 0); ASSERT_EQ(ms, INT64_C(951782400000));
    ASSERT_EQ(parse("2024-02-29T23:59:59Z", &ms), 0); ASSERT_EQ(ms, INT64_C(1709251199000));
    ASSERT_EQ(parse("0000-01-01T00:00:00Z", &ms), 0); ASSERT_EQ(ms, INT64_C(-62167219200000));
    ASSERT_EQ(parse("0000-02-29T00:00:00Z", &ms), 0);                              /* year 0 is leap */
    ASSERT_EQ(parse("9999-12-31T23:59:59.999Z", &ms), 0); ASSERT_EQ(ms, INT64_C(253402300799999));
    ASSERT_EQ(parse("9999-12-31T23:59:59.999-23:59", &ms), 0);                     /* past 9999 in UTC */
    ASSERT_EQ(ms, INT64_C(253402300799999) + (23 * 60 + 59) * INT64_C(60000));
    /* leap second: counted as the first second of the next minute */
    ASSERT_EQ(parse("2016-12-31T23:59:60Z", &ms), 0); ASSERT_EQ(ms, INT64_C(1483228800000));
}

TEST(parse_invalid)
{
    static const char *bad[] = {
        "", "2026", "2026-11-24", "2026-11-24T10:00:00", "2026-11-24T10:00Z", "2026-11-24T10:00:00.Z",
        "2026-11-24T10:00:00.123", "2026-11-24T10:00:00+0200", "2026-11-24T10:00:00+02", "2026-11-24T10:00:00+2:00",
        "2026-11-24T10:00:00 Z", "2026-11-24T10:00:00Z ", " 2026-11-24T10:00:00Z", "2026-11-24X10:00:00Z",
        "2026-11-24_10:00:00Z", "2026/11/24T10:00:00Z", "26-11-24T10:00:00Z", "+2026-11-24T10:00:00Z",
        "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-32T00:00:00Z",
        "2026-04-31T00:00:00Z", "2026-06-31T00:00:00Z", "2026-09-31T00:00:00Z", "2026-11-31T00:00:00Z",
        "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2024-02-30T00:00:00Z",
        "2026-11-24T24:00:00Z", "2026-11-24T23:60:00Z", "2026-11-24T23:59:61Z", "2026-11-24T10:00:00+24:00",
        "2026-11-24T10:00:00+02:60", "2026-11-24T10:00:00ZZ", "2026-11-24T10:00:00.12a3Z", "2026-11-24T1a:00:00Z",
        "2026-11-24T10:00:00.-1Z", "2026-11-24T10:00:00,123Z", "2026-11-24T10:00:00.123+02:00x",
        "2026-1-24T10:00:00Z", "2026-11-2T10:00:00Z", "２026-11-24T10:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ms = 12345;
        if (parse(bad[i], &ms) == 0) CHECK__FAIL("accepted \"%s\"", bad[i]);
        ASSERT_EQ(ms, 12345);                     /* untouched on failure */
    }
    /* the length is honoured */
    int64_t ms;
    ASSERT_EQ(dg_parse_rfc3339("2026-11-24T10:00:00Zjunk", 20, &ms), 0);
    ASSERT_EQ(dg_parse_rfc3339("2026-11-24T10:00:00Z", 19, &ms), -1);
}

static const char *fmt(int64_t ms)
{
    static char out[32];
    size_t n = dg_format_rfc3339(ms, out);
    if (n != strlen(out)) return "(bad length)";
    return out;
}

TEST(format_known)
{
    ASSERT_STR_EQ(fmt(0), "1970-01-01T00:00:00.000Z");
    ASSERT_STR_EQ(fmt(INT64_C(1795514400123)), "2026-11-24T10:00:00.123Z");
    ASSERT_STR_EQ(fmt(-1), "1969-12-31T23:59:59.999Z");
    ASSERT_STR_EQ(fmt(-86400000), "1969-12-31T00:00:00.000Z");
    ASSERT_STR_EQ(fmt(INT64_C(951782400000)), "2000-02-29T00:00:00.000Z");
    ASSERT_STR_EQ(fmt(INT64_C(-62167219200000)), "0000-01-01T00:00:00.000Z");
    ASSERT_STR_EQ(fmt(INT64_C(253402300799999)), "9999-12-31T23:59:59.999Z");
    char out[32];
    ASSERT_EQ(dg_format_rfc3339(INT64_C(1795514400123), out), 24);
    /* outside 0000-9999: still written, never overflowing the 32 bytes */
    ASSERT_STR_EQ(fmt(INT64_C(253402300800000)), "10000-01-01T00:00:00.000Z");
    ASSERT_STR_EQ(fmt(INT64_C(-62167219200001)), "-1-12-31T23:59:59.999Z");
    ASSERT(strlen(fmt(INT64_MAX)) < 32);
    ASSERT(strlen(fmt(INT64_MIN)) < 32);
    ASSERT_STR_EQ(fmt(INT64_MAX), "292278994-08-17T07:12:55.807Z");
    ASSERT_STR_EQ(fmt(INT64_MIN), "-292275055-05-16T16:47:04.192Z");
}

/* civil arithmetic vs timegm, and format -> parse round trips */
TEST(roundtrip_random)
{
    const int64_t lo = INT64_C(-62167219200000), hi = INT64_C(253402300799999);
    char out[32];
    for (int i = 0; i < 1000000; i++) {
        int64_t ms = lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
        size_t n = dg_format_rfc3339(ms, out);
        ASSERT_EQ(n, 24);
        int64_t back;
        if (dg_parse_rfc3339(out, n, &back) != 0) CHECK__FAIL("cannot parse own output %s", out);
        if (back != ms) CHECK__FAIL("%s -> %lld, expected %lld", out, (long long)back, (long long)ms);

        /* reference: timegm on the fields we printed */
        struct tm tm = { 0 };
        int y, mo, d, h, mi, s, f;
        if (sscanf(out, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &y, &mo, &d, &h, &mi, &s, &f) != 7) CHECK__FAIL("%s", out);
        tm.tm_year = y - 1900; tm.tm_mon = mo - 1; tm.tm_mday = d;
        tm.tm_hour = h; tm.tm_min = mi; tm.tm_sec = s;
        int64_t ref = (int64_t)timegm(&tm) * 1000 + f;
        if (ref != ms) CHECK__FAIL("%s: timegm says %lld, we say %lld", out, (long long)ref, (long long)ms);
    }
    /* every day of 1900-2100 with random offsets: agrees with timegm */
    for (int y = 1900; y <= 2100; y++) {
        for (int mo = 1; mo <= 12; mo++) {
            for (int d = 1; d <= 31; d++) {
                char s[64];
                int oh = (int)(rnd() % 24), om = (int)(rnd() % 60), sign = rnd() & 1 ? 1 : -1;
                snprintf(s, sizeof s, "%04d-%02d-%02dT12:34:56.789%c%02d:%02d", y, mo, d, sign > 0 ? '+' : '-', oh, om);
                struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                                 .tm_hour = 12, .tm_min = 34, .tm_sec = 56 };
                time_t t = timegm(&tm);
                int exists = tm.tm_mday == d;     /* timegm normalises Feb 30 to Mar 2 */
                int64_t ms;
                int rc = dg_parse_rfc3339(s, strlen(s), &ms);
                if (exists != (rc == 0)) CHECK__FAIL("%s: exists %d, rc %d", s, exists, rc);
                if (rc == 0 && ms != ((int64_t)t - sign * (oh * 3600 + om * 60)) * 1000 + 789)
                    CHECK__FAIL("%s: %lld", s, (long long)ms);
            }
        }
    }
}

TEST(time_param)
{
    int64_t ms;
    ASSERT_EQ(dg_parse_time_param("1795514400123", 13, &ms), 0); ASSERT_EQ(ms, INT64_C(1795514400123));
    ASSERT_EQ(dg_parse_time_param("0", 1, &ms), 0); ASSERT_EQ(ms, 0);
    ASSERT_EQ(dg_parse_time_param("-5", 2, &ms), 0); ASSERT_EQ(ms, -5);
    ASSERT_EQ(dg_parse_time_param("9223372036854775807", 19, &ms), 0); ASSERT(ms == INT64_MAX);
    ASSERT_EQ(dg_parse_time_param("-9223372036854775808", 20, &ms), 0); ASSERT(ms == INT64_MIN);
    ASSERT_EQ(dg_parse_time_param("2026-11-24T10:00:00.123Z", 24, &ms), 0); ASSERT_EQ(ms, INT64_C(1795514400123));
    static const char *bad[] = { "", "-", "01", "-0x", "9223372036854775808", "-9223372036854775809",
                                 "1.5", "1e3", "+5", "abc", "2026-11-24", " 5", "5 " };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (dg_parse_time_param(bad[i], strlen(bad[i]), &ms) == 0) CHECK__FAIL("accepted \"%s\"", bad[i]);
}

TEST(clocks)
{
    int64_t ms = dg_now_ms(), us = dg_now_us();
    int64_t t = (int64_t)time(NULL) * 1000;
    ASSERT(ms >= t - 2000 && ms <= t + 2000);
    ASSERT(us / 1000 >= ms && us / 1000 <= ms + 1000);
    int64_t m1 = dg_mono_ms(), m2 = dg_mono_ms();
    ASSERT(m2 >= m1);
    ASSERT(m1 >= 0);
}

int main(void)
{
    RUN(parse_known);
    RUN(parse_invalid);
    RUN(format_known);
    RUN(roundtrip_random);
    RUN(time_param);
    RUN(clocks);
    return check_summary("timefmt");
}
