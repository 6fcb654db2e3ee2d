/* test_strutil.c - the shared primitives: core/utf8 (validation, one
 * sequence), core/hash.h (FNV-1a), core/strutil (hex, percent-decoding,
 * durations) and codec/jsonstr (JSON string check and unescape). */
#include <string.h>

#include "check.h"
#include "codec/jsonstr.h"
#include "core/hash.h"
#include "core/strutil.h"
#include "core/utf8.h"

TEST(utf8)
{
    static const char *good[] = { "", "abc", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xef\xbf\xbd",
                                  "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "a\x7f" };
    static const char *bad[] = { "\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                 "\xf5\x80\x80\x80", "\xff", "\xc3", "\xe2\x82", "a\xc3(" };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!dg_utf8_valid(good[i], strlen(good[i]))) CHECK__FAIL("rejected good #%zu", i);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (dg_utf8_valid(bad[i], strlen(bad[i]))) CHECK__FAIL("accepted bad #%zu", i);
    /* incremental: split inside a code point */
    uint32_t st = dg_utf8_update(DG_UTF8_ACCEPT, (const uint8_t *)"\xe2\x82", 2);
    ASSERT(st != DG_UTF8_ACCEPT && st != DG_UTF8_REJECT);
    ASSERT_EQ(dg_utf8_update(st, (const uint8_t *)"\xac", 1), DG_UTF8_ACCEPT);
    /* one sequence: length, or minus the maximal ill-formed subpart */
    ASSERT_EQ(dg_utf8_seq((const unsigned char *)"\xc3\xa9", 2), 2);
    ASSERT_EQ(dg_utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    ASSERT_EQ(dg_utf8_seq((const unsigned char *)"\xff", 1), -1);
    ASSERT_EQ(dg_utf8_seq((const unsigned char *)"\xe2\x82(", 3), -2);
    ASSERT_EQ(dg_utf8_seq((const unsigned char *)"\xe2\x82", 2), -2);
    ASSERT_EQ(dg_utf8_seq((const unsigned char *)"\xed\xa0\x80", 3), -1);   /* surrogate: E0..9F only */
}

TEST(fnv)
{
    /* reference values of FNV-1a (Fowler/Noll/Vo test vectors) */
    ASSERT_U64_EQ(dg_fnv1a32("", 0), 0x811c9dc5u);
    ASSERT_U64_EQ(dg_fnv1a32("a", 1), 0xe40c292cu);
    ASSERT_U64_EQ(dg_fnv1a32("foobar", 6), 0xbf9cf968u);
    ASSERT_U64_EQ(dg_fnv1a32_str("foobar", 64), 0xbf9cf968u);
    ASSERT_U64_EQ(dg_fnv1a32_str("foobarbaz", 6), 0xbf9cf968u);
    ASSERT_U64_EQ(dg_fnv1a64("", 0), 0xcbf29ce484222325ull);
    ASSERT_U64_EQ(dg_fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
    ASSERT_U64_EQ(dg_fnv1a64("foobar", 6), 0x85944171f73967e8ull);
}

TEST(hex_and_percent)
{
    ASSERT_EQ(dg_hexval('0'), 0); ASSERT_EQ(dg_hexval('9'), 9); ASSERT_EQ(dg_hexval('a'), 10);
    ASSERT_EQ(dg_hexval('F'), 15); ASSERT_EQ(dg_hexval('g'), -1); ASSERT_EQ(dg_hexval('/'), -1);
    char out[16];
    ASSERT_EQ(dg_percent_decode("a%20b+c%2B", 10, out, sizeof out, DG_PCT_PLUS | DG_PCT_STRICT), 6);
    ASSERT_STR_EQ(out, "a b c+");
    ASSERT_EQ(dg_percent_decode("a+b", 3, out, sizeof out, 0), 3);
    ASSERT_STR_EQ(out, "a+b");
    ASSERT_EQ(dg_percent_decode("%4", 2, out, sizeof out, DG_PCT_STRICT), -1);
    ASSERT_EQ(dg_percent_decode("%zz", 3, out, sizeof out, DG_PCT_STRICT), -1);
    ASSERT_EQ(dg_percent_decode("%zz%4", 5, out, sizeof out, 0), 5);            /* lenient: kept */
    ASSERT_STR_EQ(out, "%zz%4");
    ASSERT_EQ(dg_percent_decode("%41%42", 6, out, sizeof out, 0), 2);
    ASSERT_STR_EQ(out, "AB");
    ASSERT_EQ(dg_percent_decode("x%00y", 5, out, sizeof out, DG_PCT_STRICT), 3);  /* length says NUL */
    ASSERT_EQ(dg_percent_decode("abcd", 4, out, 4, 0), -1);                       /* room for NUL */
    ASSERT_EQ(dg_percent_decode("abc", 3, out, 4, 0), 3);
    ASSERT_EQ(dg_percent_decode("", 0, out, 1, 0), 0);
    ASSERT_EQ(dg_percent_decode("", 0, out, 0, 0), -1);
}

TEST(durations)
{
    int64_t ms;
    ASSERT_EQ(dg_parse_duration_ms("500ms", 5, 0, &ms), 0); ASSERT_EQ(ms, 500);
    ASSERT_EQ(dg_parse_duration_ms("30s", 3, 0, &ms), 0);   ASSERT_EQ(ms, 30000);
    ASSERT_EQ(dg_parse_duration_ms("5m", 2, 0, &ms), 0);    ASSERT_EQ(ms, 300000);
    ASSERT_EQ(dg_parse_duration_ms("2h", 2, 0, &ms), 0);    ASSERT_EQ(ms, 7200000);
    ASSERT_EQ(dg_parse_duration_ms("1d", 2, 0, &ms), 0);    ASSERT_EQ(ms, 86400000);
    ASSERT_EQ(dg_parse_duration_ms("2w", 2, 0, &ms), 0);    ASSERT_EQ(ms, 14 * INT64_C(86400000));
    ASSERT_EQ(dg_parse_duration_ms("0", 1, 0, &ms), 0);     ASSERT_EQ(ms, 0);
    ASSERT_EQ(dg_parse_duration_ms("5", 1, 0, &ms), -1);                /* bare only "0" */
    ASSERT_EQ(dg_parse_duration_ms("5", 1, 1000, &ms), 0);  ASSERT_EQ(ms, 5000);
    static const char *bad[] = { "", "s", "-5s", "+5s", " 5s", "5 s", "5sec", "5S", "1.5s", "99999999999999999999ms",
                                 "9223372036854775807w" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (dg_parse_duration_ms(bad[i], strlen(bad[i]), 1000, &ms) == 0) CHECK__FAIL("accepted \"%s\"", bad[i]);
}

TEST(json_strings)
{
    size_t bad = 0;
    ASSERT_EQ(dg_json_str_check((const unsigned char *)"plain", 5, &bad), 0);
    ASSERT_EQ(dg_json_str_check((const unsigned char *)"a\\n\\u00e9", 9, &bad), 1);
    ASSERT_EQ(dg_json_str_check((const unsigned char *)"ab\xff", 3, &bad), -1);
    ASSERT_EQ(bad, 2);
    ASSERT_EQ(dg_json_str_check((const unsigned char *)"\\ud800x", 7, &bad), -1);
    ASSERT_EQ(dg_json_str_check((const unsigned char *)"a\tb", 3, &bad), -1);
    ASSERT_EQ(bad, 1);
    char out[16];
    ASSERT_EQ(dg_json_str_unescape("\\ud83d\\ude00\\/", 14, out, sizeof out), 5);
    ASSERT_MEM_EQ(out, "\xf0\x9f\x98\x80/", 5);
    ASSERT_EQ(dg_json_str_unescape("abcdef", 6, out, 5), -1);
}

int main(void)
{
    RUN(utf8);
    RUN(fnv);
    RUN(hex_and_percent);
    RUN(durations);
    RUN(json_strings);
    return check_summary("strutil");
}
