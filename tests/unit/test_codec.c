/* test_codec.c - unit tests of the codec layer: number.c, jsonw.c,
 * validate.c and json_telemetry.c (bytes in, records/errors out).
 *
 * The JSON strictness tests list the inputs jsmn (even in strict mode)
 * tokenizes happily although they are not JSON; each must be rejected as
 * invalid_json. Random tests use a fixed-seed xorshift PRNG, so runs are
 * reproducible.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codec/json_telemetry.h"
#include "codec/jsonw.h"
#include "codec/number.h"
#include "codec/validate.h"
#include "core/buf.h"
#include "core/timefmt.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return rng_state = x;
}

static uint64_t dbits(double v) { uint64_t u; memcpy(&u, &v, sizeof u); return u; }

#define MAXREC 2048
typedef struct coll {
    int nrec, nerr, nack;
    dg_record_t rec[MAXREC];
    struct { dg_decode_error_t e; char field[32]; char code[32]; } err[64];
    struct { char id[80]; size_t id_len; char status[16]; char message[256]; size_t message_len; } ack[8];
} coll_t;

static void on_record(void *ud, const dg_record_t *r)
{
    coll_t *c = ud;
    if (c->nrec < MAXREC) c->rec[c->nrec] = *r;
    c->nrec++;
}

static void on_error(void *ud, const dg_decode_error_t *e)
{
    coll_t *c = ud;
    if (c->nerr < 64) {
        c->err[c->nerr].e = *e;
        snprintf(c->err[c->nerr].field, 32, "%s", e->field ? e->field : "(null)");
        snprintf(c->err[c->nerr].code, 32, "%s", e->code);
    }
    c->nerr++;
}

static void on_ack(void *ud, const dg_command_ack_t *a)
{
    coll_t *c = ud;
    if (c->nack < 8) {
        size_t n = a->id_len < 79 ? a->id_len : 79;
        memcpy(c->ack[c->nack].id, a->id, n); c->ack[c->nack].id[n] = 0;
        c->ack[c->nack].id_len = a->id_len;
        snprintf(c->ack[c->nack].status, 16, "%.*s", (int)a->status_len, a->status);
        n = a->message_len < 255 ? a->message_len : 255;
        memcpy(c->ack[c->nack].message, a->message, n); c->ack[c->nack].message[n] = 0;
        c->ack[c->nack].message_len = a->message_len;
    }
    c->nack++;
}

static dg_json_decoder_t *dec;
static coll_t *col;

#define NOW_MS  INT64_C(1795514400000)
#define RECV_US INT64_C(1795514400000123)

/* Decode a NUL-terminated frame into the shared collector. */
static int decode_n(const char *s, size_t n, bool with_ack)
{
    memset(col, 0, sizeof *col);
    dg_decode_sink_t sink = { .on_record = on_record, .on_error = on_error, .on_command_ack = with_ack ? on_ack : NULL, .ud = col };
    return dg_json_decode(dec, s, n, NOW_MS, RECV_US, &sink);
}
static int decode(const char *s) { return decode_n(s, strlen(s), true); }

#define LATLONALT "\"latitude\":47.397742,\"longitude\":8.545594,\"altitude\":488.2"

/* ------------------------------------------------------------------------ */
/* number.c                                                                 */

TEST(number_grammar)
{
    static const char *good[] = {
        "0", "-0", "1", "-1", "0.5", "-0.5", "10", "1e5", "1E5", "1e+5", "1e-5", "1.5e10",
        "0e0", "-0.0e-0", "123456789012345678901234567890", "1.7976931348623157e308",
        "4.9e-324", "0.000001",
    };
    static const char *bad[] = {
        "", "-", "+1", "01", "-01", "00", "1.", ".5", "-.5", "1e", "1e+", "1e-", "1.e5",
        "0x10", "NaN", "Infinity", "-Infinity", "inf", "1 ", " 1", "1,", "1..2", "1e5.5",
        "1ee5", "--1", "1-", "true", "0.5.", "1e5e5", "١",
    };
    double v;
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        if (dg_parse_double(good[i], strlen(good[i]), &v) != 0) CHECK__FAIL("rejected good \"%s\"", good[i]);
        if (!dg_number_valid(good[i], strlen(good[i]))) CHECK__FAIL("valid() rejected \"%s\"", good[i]);
        ASSERT_U64_EQ(dbits(v), dbits(strtod(good[i], NULL)));
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (dg_parse_double(bad[i], strlen(bad[i]), &v) == 0) CHECK__FAIL("accepted bad \"%s\"", bad[i]);
        if (dg_number_valid(bad[i], strlen(bad[i]))) CHECK__FAIL("valid() accepted \"%s\"", bad[i]);
    }
    /* length is explicit: bytes after n are not read */
    ASSERT_EQ(dg_parse_double("12x", 2, &v), 0);
    ASSERT_DBL_EQ(v, 12.0);
    ASSERT_EQ(dg_parse_double("-0", 2, &v), 0);
    ASSERT(signbit(v));
}

TEST(number_hard_cases)
{
    static const char *cases[] = {
        "0.1", "0.2", "0.3", "47.397742", "8.545594", "488.2", "1e23", "9007199254740993",
        "9007199254740992", "9007199254740991", "2.2250738585072011e-308",
        "2.2250738585072012e-308", "2.2250738585072014e-308", "4.9406564584124654e-324",
        "2.4703282292062327e-324", "2.4703282292062328e-324", "1.7976931348623157e308",
        "1.7976931348623158e308", "1.7976931348623159e308", "1e309", "-1e309", "1e-400",
        "8.98846567431158e307", "0.1e1", "1e22", "1e-22", "123456789e-22", "9999999999999999999",
        "99999999999999999999", "12345678901234567890123", "0.00000000000000000000001",
        "7.2057594037927933e16", "3.0517578125e-05", "1.00000000000000011102230246251565404236316680908203125",
        "1.00000000000000011102230246251565404236316680908203124",
        "1.00000000000000011102230246251565404236316680908203126",
        "-0.0", "0e99999999999999999999", "1e-99999999999999999999", "1e99999999999999999999",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double v;
        if (dg_parse_double(cases[i], strlen(cases[i]), &v) != 0) CHECK__FAIL("rejected \"%s\"", cases[i]);
        double w = strtod(cases[i], NULL);
        if (dbits(v) != dbits(w)) CHECK__FAIL("\"%s\": %.17g != strtod %.17g", cases[i], v, w);
    }
}

/* Random decimal strings of many shapes: bit-identical to strtod. */
TEST(number_random_vs_strtod)
{
    char s[96];
    for (int iter = 0; iter < 2000000; iter++) {
        size_t n = 0;
        uint64_t r = rnd();
        if (r & 1) s[n++] = '-';
        int idig = (int)(rnd() % 21);                 /* 0 -> "0" */
        if (idig == 0) s[n++] = '0';
        else {
            s[n++] = (char)('1' + rnd() % 9);
            for (int k = 1; k < idig; k++) s[n++] = (char)('0' + rnd() % 10);
        }
        if (r & 2) {
            int fdig = 1 + (int)(rnd() % 22);
            s[n++] = '.';
            int zeros = (r & 4) ? (int)(rnd() % 8) : 0;  /* leading zeros in the fraction */
            for (int k = 0; k < fdig; k++) s[n++] = (char)(k < zeros ? '0' : '0' + rnd() % 10);
        }
        if (r & 8) {
            s[n++] = (r & 16) ? 'e' : 'E';
            if (r & 32) s[n++] = (r & 64) ? '-' : '+';
            int e = (r & 128) ? (int)(rnd() % 30) : (int)(rnd() % 340);
            n += (size_t)snprintf(s + n, 8, "%d", e);
        }
        s[n] = '\0';
        double v;
        if (dg_parse_double(s, n, &v) != 0) CHECK__FAIL("rejected \"%s\"", s);
        double w = strtod(s, NULL), x = 0;
        if (dbits(v) != dbits(w)) CHECK__FAIL("\"%s\": %.17g != strtod %.17g", s, v, w);
        s[n] = ',';   /* greedy form, inside a longer text */
        if (dg_scan_double(s, s + n + 1, &x) != s + n || dbits(x) != dbits(w)) CHECK__FAIL("scan \"%.*s\"", (int)n, s);
    }
    /* shortest representations of random doubles (the telemetry case) */
    for (int iter = 0; iter < 500000; iter++) {
        uint64_t u = rnd();
        double x;
        memcpy(&x, &u, sizeof x);
        if (!isfinite(x)) continue;
        int len = snprintf(s, sizeof s, (iter & 1) ? "%.17g" : "%.9g", x);
        /* %g may print "1e+100" (valid JSON) */
        double v;
        if (dg_parse_double(s, (size_t)len, &v) != 0) CHECK__FAIL("rejected \"%s\"", s);
        double w = strtod(s, NULL);
        if (dbits(v) != dbits(w)) CHECK__FAIL("\"%s\": %.17g != strtod %.17g", s, v, w);
    }
}

/* Integers of every length up to 21 digits, random digits (8 at a time in
 * number.c where 8 remain): the same as strtoull/strtoll, overflow refused,
 * one non-digit anywhere refused. */
TEST(number_integers_vs_strtoull)
{
    char s[32];
    for (int iter = 0; iter < 400000; iter++) {
        size_t n = 0;
        int neg = (int)(rnd() & 1);
        if (neg) s[n++] = '-';
        size_t len = 1 + rnd() % 21;
        s[n++] = (char)('1' + rnd() % 9);
        for (size_t k = 1; k < len; k++) s[n++] = (char)('0' + rnd() % 10);
        if (rnd() % 8 == 0) s[neg + rnd() % len] = (char)"x.e-+/:"[rnd() % 7];
        s[n] = '\0';
        /* the oracle: an optional '-' (i64 only), then [1-9][0-9]* or "0" */
        size_t m0 = s[0] == '-';
        int digits_only = n > m0 && !(s[m0] == '0' && n > m0 + 1);
        for (size_t k = m0; k < n; k++) if (s[k] < '0' || s[k] > '9') digits_only = 0;
        neg = (int)m0;
        uint64_t u; int64_t i;
        int ru = dg_parse_u64(s, n, &u), ri = dg_parse_i64(s, n, &i);
        errno = 0;
        unsigned long long eu = strtoull(s, NULL, 10);
        int u_ok = digits_only && !neg && errno == 0;
        errno = 0;
        long long ei = strtoll(s, NULL, 10);
        int i_ok = digits_only && errno == 0;
        /* the greedy forms agree: the whole text exactly when it parses */
        uint64_t su; int64_t si;
        const char *qu = dg_scan_u64(s, s + n, &su), *qi = dg_scan_i64(s, s + n, &si);
        if ((qu == s + n) != (ru == 0) || (ru == 0 && su != u)) CHECK__FAIL("scan_u64 \"%s\"", s);
        if ((qi == s + n) != (ri == 0) || (ri == 0 && si != i)) CHECK__FAIL("scan_i64 \"%s\"", s);
        if ((ru == 0) != u_ok) CHECK__FAIL("u64 \"%s\": rc %d", s, ru);
        if (ru == 0 && u != eu) CHECK__FAIL("u64 \"%s\": %llu", s, (unsigned long long)u);
        if ((ri == 0) != i_ok) CHECK__FAIL("i64 \"%s\": rc %d", s, ri);
        if (ri == 0 && i != ei) CHECK__FAIL("i64 \"%s\": %lld", s, (long long)i);
    }
    uint64_t u;
    int64_t i;
    ASSERT_EQ(dg_parse_u64("18446744073709551615", 20, &u), 0);
    ASSERT_U64_EQ(u, UINT64_MAX);
    ASSERT_EQ(dg_parse_u64("18446744073709551616", 20, &u), -1);
    ASSERT_EQ(dg_parse_u64("9999999999999999999", 19, &u), 0);
    ASSERT_U64_EQ(u, UINT64_C(9999999999999999999));
    ASSERT_EQ(dg_parse_i64("9223372036854775807", 19, &i), 0);
    ASSERT(i == INT64_MAX);
    ASSERT_EQ(dg_parse_i64("9223372036854775808", 19, &i), -1);
    ASSERT_EQ(dg_parse_i64("-9223372036854775808", 20, &i), 0);
    ASSERT(i == INT64_MIN);
    ASSERT_EQ(dg_parse_i64("-9223372036854775809", 20, &i), -1);
    ASSERT_EQ(dg_parse_u64("1234567812345678", 15, &u), 0);   /* length is explicit */
    ASSERT_U64_EQ(u, UINT64_C(123456781234567));
    ASSERT_EQ(dg_parse_u64("12345678x", 9, &u), -1);
    ASSERT_EQ(dg_parse_u64("1234567x8", 9, &u), -1);
}

TEST(number_long)
{
    char *s = malloc(3000);
    memset(s, '1', 3000);
    double v;
    ASSERT_EQ(dg_parse_double(s, 1024, &v), 0);
    ASSERT(isinf(v));                                 /* 1.1e1023 overflows, like strtod */
    ASSERT_EQ(dg_parse_double(s, 1025, &v), -1);      /* refused: longer than 1024 */
    ASSERT_EQ(dg_number_valid(s, 3000), 1);           /* but it is a JSON number */
    s[0] = '0'; s[1] = '.';
    ASSERT_EQ(dg_parse_double(s, 400, &v), 0);
    s[400] = 0;
    ASSERT_U64_EQ(dbits(v), dbits(strtod(s, NULL)));
    free(s);
}

TEST(number_integers)
{
    uint64_t u;
    int64_t i;
    ASSERT_EQ(dg_parse_u64("0", 1, &u), 0); ASSERT_U64_EQ(u, 0);
    ASSERT_EQ(dg_parse_u64("42", 2, &u), 0); ASSERT_U64_EQ(u, 42);
    ASSERT_EQ(dg_parse_u64("18446744073709551615", 20, &u), 0); ASSERT_U64_EQ(u, UINT64_MAX);
    ASSERT_EQ(dg_parse_u64("18446744073709551616", 20, &u), -1);
    ASSERT_EQ(dg_parse_u64("99999999999999999999", 20, &u), -1);
    ASSERT_EQ(dg_parse_u64("184467440737095516150", 21, &u), -1);
    static const char *ubad[] = { "", "-1", "-0", "01", "1.0", "1e3", "1.5", "+1", " 1", "1 ", "a" };
    for (size_t k = 0; k < sizeof ubad / sizeof *ubad; k++)
        if (dg_parse_u64(ubad[k], strlen(ubad[k]), &u) == 0) CHECK__FAIL("u64 accepted \"%s\"", ubad[k]);
    ASSERT_EQ(dg_parse_i64("-9223372036854775808", 20, &i), 0); ASSERT(i == INT64_MIN);
    ASSERT_EQ(dg_parse_i64("9223372036854775807", 19, &i), 0); ASSERT(i == INT64_MAX);
    ASSERT_EQ(dg_parse_i64("9223372036854775808", 19, &i), -1);
    ASSERT_EQ(dg_parse_i64("-9223372036854775809", 20, &i), -1);
    ASSERT_EQ(dg_parse_i64("-0", 2, &i), 0); ASSERT_EQ(i, 0);
    ASSERT_EQ(dg_parse_i64("-17", 3, &i), 0); ASSERT_EQ(i, -17);
    static const char *ibad[] = { "", "-", "--1", "-01", "1.0", "1e3", "+5", "0x1" };
    for (size_t k = 0; k < sizeof ibad / sizeof *ibad; k++)
        if (dg_parse_i64(ibad[k], strlen(ibad[k]), &i) == 0) CHECK__FAIL("i64 accepted \"%s\"", ibad[k]);
}

/* ------------------------------------------------------------------------ */
/* jsonw.c                                                                  */

static char *jw_str(dg_buf_t *b, const char *s, size_t n)
{
    b->len = 0;
    if (dg_jw_str(b, s, n)) return NULL;
    dg_buf_append(b, "", 1);
    return b->data;
}

TEST(jsonw_strings)
{
    dg_buf_t b = { 0 };
    ASSERT_STR_EQ(jw_str(&b, "", 0), "\"\"");
    ASSERT_STR_EQ(jw_str(&b, "abc", 3), "\"abc\"");
    ASSERT_STR_EQ(jw_str(&b, "a\"b\\c/", 6), "\"a\\\"b\\\\c/\"");
    ASSERT_STR_EQ(jw_str(&b, "\b\f\n\r\t", 5), "\"\\b\\f\\n\\r\\t\"");
    ASSERT_STR_EQ(jw_str(&b, "\x01\x1f\x7f", 3), "\"\\u0001\\u001f\x7f\"");
    ASSERT_STR_EQ(jw_str(&b, "a\0b", 3), "\"a\\u0000b\"");
    ASSERT_STR_EQ(jw_str(&b, "h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 12), "\"h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");
    /* invalid UTF-8 -> U+FFFD per maximal subpart */
    ASSERT_STR_EQ(jw_str(&b, "a\xFF" "b", 3), "\"a\xEF\xBF\xBD" "b\"");
    ASSERT_STR_EQ(jw_str(&b, "\xC3", 1), "\"\xEF\xBF\xBD\"");
    ASSERT_STR_EQ(jw_str(&b, "\xF0\x9F\x98", 3), "\"\xEF\xBF\xBD\"");              /* truncated: one */
    ASSERT_STR_EQ(jw_str(&b, "\xF0\x9F\x98x", 4), "\"\xEF\xBF\xBDx\"");
    ASSERT_STR_EQ(jw_str(&b, "\xE0\x80", 2), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");     /* overlong: two */
    ASSERT_STR_EQ(jw_str(&b, "\xED\xA0\x80", 3), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""); /* surrogate */
    ASSERT_STR_EQ(jw_str(&b, "\xC0\xAF", 2), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
    ASSERT_STR_EQ(jw_str(&b, "\xF4\x90\x80\x80", 4),
                  "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");          /* > U+10FFFF */
    ASSERT_STR_EQ(jw_str(&b, "\x80", 1), "\"\xEF\xBF\xBD\"");

    /* every output decodes as JSON: a random byte soup is wrapped in an
     * object and fed to the strict decoder as an unknown field */
    char in[64], frame[600];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = rnd() % sizeof in;
        for (size_t k = 0; k < n; k++) in[k] = (char)rnd();
        b.len = 0;
        ASSERT_EQ(dg_jw_str(&b, in, n), 0);
        int len = snprintf(frame, sizeof frame, "{\"x\":%.*s," LATLONALT "}", (int)b.len, b.data);
        int rc = decode_n(frame, (size_t)len, true);
        if (rc != 1) CHECK__FAIL("jw_str output rejected: %s (%s)", frame, col->nerr ? col->err[0].e.message : "");
    }

    int first = 1;
    b.len = 0;
    dg_buf_append(&b, "{", 1);
    ASSERT_EQ(dg_jw_key(&b, &first, "seq"), 0);
    dg_jw_u64(&b, UINT64_MAX);
    ASSERT_EQ(first, 0);
    dg_jw_key(&b, &first, "i");
    dg_jw_i64(&b, INT64_MIN);
    dg_jw_key(&b, &first, "j");
    dg_jw_i64(&b, 0);
    dg_jw_key(&b, &first, "k\"");
    dg_jw_i64(&b, -42);
    dg_buf_append(&b, "}", 2);
    ASSERT_STR_EQ(b.data, "{\"seq\":18446744073709551615,\"i\":-9223372036854775808,\"j\":0,\"k\\\"\":-42}");
    dg_buf_free(&b);
}

static char *jw_dbl(dg_buf_t *b, double v)
{
    b->len = 0;
    if (dg_jw_double(b, v)) return NULL;
    dg_buf_append(b, "", 1);
    return b->data;
}

/* The brief's reference method: %.15g, %.16g, %.17g, first that round-trips. */
static int ref_len(double v)
{
    char t[40];
    int w = 0;
    for (int p = 15; p <= 17; p++) {
        w = snprintf(t, sizeof t, "%.*g", p, v);
        if (strtod(t, NULL) == v) break;
    }
    return w;
}

TEST(jsonw_doubles)
{
    dg_buf_t b = { 0 };
    ASSERT_STR_EQ(jw_dbl(&b, 47.397742), "47.397742");
    ASSERT_STR_EQ(jw_dbl(&b, 8.545594), "8.545594");
    ASSERT_STR_EQ(jw_dbl(&b, 488.2), "488.2");
    ASSERT_STR_EQ(jw_dbl(&b, -0.4), "-0.4");
    ASSERT_STR_EQ(jw_dbl(&b, 76.0), "76");
    ASSERT_STR_EQ(jw_dbl(&b, 0.0), "0");
    ASSERT_STR_EQ(jw_dbl(&b, -0.0), "-0");
    ASSERT_STR_EQ(jw_dbl(&b, 0.1), "0.1");
    ASSERT_STR_EQ(jw_dbl(&b, 0.001), "0.001");
    ASSERT_STR_EQ(jw_dbl(&b, 0.1 + 0.2), "0.30000000000000004");
    ASSERT_STR_EQ(jw_dbl(&b, 1e21), "1e+21");
    ASSERT_STR_EQ(jw_dbl(&b, 123456789012.5), "123456789012.5");
    ASSERT_STR_EQ(jw_dbl(&b, NAN), "null");
    ASSERT_STR_EQ(jw_dbl(&b, INFINITY), "null");
    ASSERT_STR_EQ(jw_dbl(&b, -INFINITY), "null");
    ASSERT_STR_EQ(jw_dbl(&b, 5e-324), "4.94065645841247e-324");   /* %.15g already round-trips */
    ASSERT_STR_EQ(jw_dbl(&b, DBL_MAX), "1.7976931348623157e+308");

    /* round trip, valid JSON number, never longer than the reference method */
    for (int iter = 0; iter < 300000; iter++) {
        double v;
        switch (iter % 3) {
        case 0: { uint64_t u = rnd(); memcpy(&v, &u, sizeof v); break; }
        case 1: v = (double)(int64_t)(rnd() % 2000000001 - 1000000000) / 1e6; break;  /* 6 decimals */
        default: v = ((double)(rnd() >> 11) / 9007199254740992.0 - 0.5) * 360.0; break;
        }
        if (!isfinite(v)) continue;
        char *s = jw_dbl(&b, v);
        ASSERT(s != NULL);
        size_t n = strlen(s);
        if (!dg_number_valid(s, n)) CHECK__FAIL("not a JSON number: %s", s);
        double w;
        if (dg_parse_double(s, n, &w) || dbits(w) != dbits(v)) CHECK__FAIL("%s does not round-trip %.17g", s, v);
        if ((int)n > ref_len(v) + (signbit(v) && v == 0 ? 1 : 0)) CHECK__FAIL("%s longer than %%g form for %.17g", s, v);
    }
    dg_buf_free(&b);
}

/* ------------------------------------------------------------------------ */
/* validate.c                                                               */

static dg_record_t good_record(void)
{
    dg_record_t r;
    dg_record_init(&r);
    r.lat = 47.0; r.lon = 8.0; r.alt = 400.0; r.ts_ms = NOW_MS;
    return r;
}

static const char *vfield(const dg_record_t *r)
{
    const char *f = NULL;
    char msg[160];
    if (dg_record_validate(r, &f, msg, sizeof msg) == 0) return "ok";
    return f;
}

TEST(validate_ranges)
{
    dg_record_t r = good_record();
    ASSERT_STR_EQ(vfield(&r), "ok");
#define V(field, val, expect) do { dg_record_t x = good_record(); x.field = (val); \
    ASSERT_STR_EQ(vfield(&x), expect); } while (0)
#define VO(field, flag, val, expect) do { dg_record_t x = good_record(); x.field = (val); x.flags |= (flag); \
    ASSERT_STR_EQ(vfield(&x), expect); } while (0)
    V(lat, 90.0, "ok"); V(lat, -90.0, "ok"); V(lat, 90.000001, "latitude"); V(lat, -90.5, "latitude");
    V(lat, NAN, "latitude"); V(lat, INFINITY, "latitude");
    V(lon, 180.0, "ok"); V(lon, -180.0, "ok"); V(lon, 180.1, "longitude"); V(lon, NAN, "longitude");
    V(alt, -1000.0, "ok"); V(alt, 100000.0, "ok"); V(alt, -1000.01, "altitude"); V(alt, 100000.5, "altitude");
    V(alt, -INFINITY, "altitude");
    VO(speed, DG_REC_HAS_SPEED, 0.0, "ok"); VO(speed, DG_REC_HAS_SPEED, -0.0, "ok");
    VO(speed, DG_REC_HAS_SPEED, 1e300, "ok"); VO(speed, DG_REC_HAS_SPEED, -0.1, "speed");
    VO(speed, DG_REC_HAS_SPEED, INFINITY, "speed"); VO(speed, DG_REC_HAS_SPEED, NAN, "speed");
    VO(heading, DG_REC_HAS_HEADING, 0.0, "ok"); VO(heading, DG_REC_HAS_HEADING, 359.999, "ok");
    VO(heading, DG_REC_HAS_HEADING, 360.0, "heading"); VO(heading, DG_REC_HAS_HEADING, -1.0, "heading");
    VO(climb, DG_REC_HAS_CLIMB, -50.0, "ok"); VO(climb, DG_REC_HAS_CLIMB, NAN, "climb");
    VO(climb, DG_REC_HAS_CLIMB, -INFINITY, "climb");
    VO(battery, DG_REC_HAS_BATTERY, 0.0, "ok"); VO(battery, DG_REC_HAS_BATTERY, 100.0, "ok");
    VO(battery, DG_REC_HAS_BATTERY, 100.5, "battery"); VO(battery, DG_REC_HAS_BATTERY, -1.0, "battery");
    /* absent optional fields are not checked */
    V(speed, -5.0, "ok"); V(heading, 999.0, "ok");
    V(ts_ms, INT64_C(-9223286400000), "ok"); V(ts_ms, INT64_C(9223372036854), "ok");
    V(ts_ms, INT64_C(-9223286400001), "timestamp"); V(ts_ms, INT64_C(9223372036855), "timestamp");
    V(ts_ms, INT64_MIN, "timestamp"); V(ts_ms, INT64_MAX, "timestamp");
#undef V
#undef VO
    /* order: first failing field in the documented order */
    r = good_record(); r.lat = 100; r.alt = 1e9;
    ASSERT_STR_EQ(vfield(&r), "latitude");

    /* status */
    r = good_record(); r.flags |= DG_REC_HAS_STATUS;
    memset(r.status, 'a', 32); r.status[32] = 0; r.status_len = 32;
    ASSERT_STR_EQ(vfield(&r), "ok");
    r.status_len = 33;
    ASSERT_STR_EQ(vfield(&r), "status");
    memcpy(r.status, "h\xC3\xA9", 4); r.status_len = 3;
    ASSERT_STR_EQ(vfield(&r), "ok");
    memcpy(r.status, "h\xC3", 3); r.status_len = 2;
    ASSERT_STR_EQ(vfield(&r), "status");
    memcpy(r.status, "a\0b", 4); r.status_len = 3;
    ASSERT_STR_EQ(vfield(&r), "status");

    /* message text and NULL-tolerance */
    r = good_record(); r.lat = 91;
    const char *f = NULL;
    char msg[160];
    ASSERT_EQ(dg_record_validate(&r, &f, msg, sizeof msg), -1);
    ASSERT_STR_EQ(msg, "latitude must be a number in [-90, 90]");
    char tiny[8];
    ASSERT_EQ(dg_record_validate(&r, &f, tiny, sizeof tiny), -1);
    ASSERT_STR_EQ(tiny, "latitud");
    ASSERT_EQ(dg_record_validate(&r, NULL, NULL, 0), -1);
}

/* ------------------------------------------------------------------------ */
/* json_telemetry.c                                                         */

TEST(decode_full_object)
{
    const char *f =
        "{\"seq\": 42, \"timestamp\": \"2026-11-24T10:00:00.123Z\",\n"
        " \"latitude\": 47.397742, \"longitude\": 8.545594, \"altitude\": 488.2,\n"
        " \"speed\": 12.5, \"heading\": 271.0, \"climb\": -0.4, \"battery\": 76.5,\n"
        " \"status\": \"airborne\"}";
    ASSERT_EQ(decode(f), 1);
    ASSERT_EQ(col->nrec, 1);
    ASSERT_EQ(col->nerr, 0);
    dg_record_t *r = &col->rec[0];
    ASSERT_U64_EQ(r->seq, 42);
    ASSERT_EQ(r->ts_ms, INT64_C(1795514400123));
    ASSERT_EQ(r->recv_us, RECV_US);
    ASSERT_DBL_EQ(r->lat, 47.397742);
    ASSERT_DBL_EQ(r->lon, 8.545594);
    ASSERT_DBL_EQ(r->alt, 488.2);
    ASSERT_DBL_EQ(r->speed, 12.5);
    ASSERT_DBL_EQ(r->heading, 271.0);
    ASSERT_DBL_EQ(r->climb, -0.4);
    ASSERT_DBL_EQ(r->battery, 76.5);
    ASSERT_STR_EQ(r->status, "airborne");
    ASSERT_EQ(r->status_len, 8);
    ASSERT_EQ(r->flags, DG_REC_HAS_SEQ | DG_REC_HAS_TS | DG_REC_HAS_SPEED | DG_REC_HAS_HEADING |
                        DG_REC_HAS_CLIMB | DG_REC_HAS_BATTERY | DG_REC_HAS_STATUS);
    /* left as dg_record_init leaves them */
    ASSERT_EQ(r->drone_id_len, 0);
    ASSERT_STR_EQ(r->drone_id, "");
    ASSERT_U64_EQ(r->origin, 0);
}

TEST(decode_minimal_object)
{
    ASSERT_EQ(decode("{" LATLONALT "}"), 1);
    dg_record_t *r = &col->rec[0];
    ASSERT_EQ(r->flags, 0);
    ASSERT_EQ(r->ts_ms, NOW_MS);
    ASSERT(isnan(r->speed) && isnan(r->heading) && isnan(r->climb) && isnan(r->battery));
    ASSERT_STR_EQ(r->status, "");
    ASSERT_EQ(r->status_len, 0);

    /* null = absent for every optional field, incl. seq/timestamp/type */
    ASSERT_EQ(decode("{\"seq\":null,\"timestamp\":null,\"type\":null,\"speed\":null,\"heading\":null,"
                     "\"climb\":null,\"battery\":null,\"status\":null," LATLONALT "}"), 1);
    ASSERT_EQ(col->rec[0].flags, 0);
    ASSERT_EQ(col->rec[0].ts_ms, NOW_MS);

    /* whitespace everywhere, -0, exponents, integers */
    ASSERT_EQ(decode(" \r\n\t{ \"latitude\" :\t-0 , \"longitude\"\n:\n1E1,\"altitude\": -1.5e+2 }\n "), 1);
    ASSERT(signbit(col->rec[0].lat));
    ASSERT_DBL_EQ(col->rec[0].lon, 10.0);
    ASSERT_DBL_EQ(col->rec[0].alt, -150.0);

    /* explicit type telemetry; escaped keys are matched */
    ASSERT_EQ(decode("{\"type\":\"telemetry\",\"lat\\u0069tude\":1,\"\\u006congitude\":2,\"altitude\":3}"), 1);
    ASSERT_DBL_EQ(col->rec[0].lat, 1.0);
    ASSERT_DBL_EQ(col->rec[0].lon, 2.0);
    ASSERT_EQ(decode("{\"type\":\"tele\\u006detry\"," LATLONALT "}"), 1);
}

TEST(decode_batch)
{
    ASSERT_EQ(decode("[{\"seq\":1," LATLONALT "},{\"seq\":2," LATLONALT "},{\"seq\":3," LATLONALT "}]"), 3);
    ASSERT_EQ(col->nrec, 3);
    for (int k = 0; k < 3; k++) ASSERT_U64_EQ(col->rec[k].seq, (uint64_t)k + 1);

    ASSERT_EQ(decode("[]"), 0);
    ASSERT_EQ(col->nrec + col->nerr + col->nack, 0);
    ASSERT_EQ(decode(" [ ] "), 0);

    /* mixed: good, bad field, not an object, command_ack, good */
    ASSERT_EQ(decode("[{\"seq\":1," LATLONALT "},"
                     " {\"seq\":2,\"latitude\":91,\"longitude\":0,\"altitude\":0},"
                     " 5,"
                     " {\"type\":\"command_ack\",\"id\":\"c1\",\"status\":\"done\"},"
                     " [{\"seq\":9}],"
                     " {\"seq\":3," LATLONALT "}]"), 2);
    ASSERT_EQ(col->nrec, 2);
    ASSERT_U64_EQ(col->rec[0].seq, 1);
    ASSERT_U64_EQ(col->rec[1].seq, 3);
    ASSERT_EQ(col->nack, 1);
    ASSERT_EQ(col->nerr, 3);
    ASSERT_STR_EQ(col->err[0].field, "latitude");
    ASSERT(col->err[0].e.has_seq);
    ASSERT_U64_EQ(col->err[0].e.seq, 2);
    /* batch element that is valid JSON but not an object */
    ASSERT_STR_EQ(col->err[1].code, "invalid_field");
    ASSERT_STR_EQ(col->err[1].field, "message");
    ASSERT(!col->err[1].e.has_seq);
    ASSERT_STR_EQ(col->err[1].e.message, "batch element 3 is not a JSON object");
    ASSERT_STR_EQ(col->err[2].e.message, "batch element 5 is not a JSON object");

    /* big batch: token array grows, and is reused */
    static char big[200000];
    size_t n = 0;
    big[n++] = '[';
    for (int k = 0; k < 1000; k++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s{\"seq\":%d,\"timestamp\":%d," LATLONALT
                              ",\"status\":\"s%d\",\"extra\":[1,{\"a\":[]}]}", k ? "," : "", k, k, k);
    big[n++] = ']';
    for (int rep = 0; rep < 3; rep++) {
        ASSERT_EQ(decode_n(big, n, true), 1000);
        ASSERT_EQ(col->nerr, 0);
        ASSERT_U64_EQ(col->rec[999].seq, 999);
        ASSERT_EQ(col->rec[999].ts_ms, 999);
        ASSERT_STR_EQ(col->rec[999].status, "s999");
    }
}

/* Not JSON (mostly things jsmn's strict mode lets through): invalid_json, -1,
 * one error, nothing else reported. */
TEST(decode_invalid_json)
{
    static const char *bad[] = {
        /* primitives jsmn does not check */
        "{\"latitude\":tru}", "{\"a\":nul}", "{\"a\":truex}", "{\"a\":01}", "{\"a\":-}", "{\"a\":1.}",
        "{\"a\":.5}", "{\"a\":1e}", "{\"a\":-01}", "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":-Infinity}",
        "{\"a\":0x10}", "{\"a\":1.5.5}", "{\"a\":t}", "{\"a\":nulll}", "{\"a\":1\"b\"}", "{\"a\":1:2}",
        "{\"a\":1{}}", "{\"a\":true\"x\"}",
        /* separators jsmn ignores */
        "[{} {}]", "[{},]", "[,{}]", "[,]", "[{},,{}]", "{,\"a\":1}", "{\"a\":1,}", "{\"a\"::1}",
        "{\"a\":1 \"b\":2}", "{\"a\" 1}", "{\"a\" \"b\"}", "{\"a\":\"b\":\"c\"}", "[\"a\":1]",
        "{\"a\":[1 2]}", "{\"a\":[1,]}", "{\"a\":[1:2]}", "{\"a\":{\"b\"}}", "{\"a\"}", "{\"a\":}",
        "{\"a\":,\"b\":1}", "{:1}", "{1:1}", "{\"a\":1,,\"b\":2}", "{\"a\":[,1]}", "{\"a\":true false}",
        "{\"a\":{,}}", "{\"a\":[:]}", "[{}:{}]", "{\"a\":1}:", ":{}",
        /* brackets */
        "{\"a\":1}}", "{\"a\":[1}", "{\"a\":[]]}", "[{\"a\":1}", "{\"a\":1", "{\"a\":{}", "[[]", "{]", "[}",
        /* trailing / leading garbage */
        "{}x", "{}{}", "{} {}", "[]]", "{},", "{}\"x\"", "{}1", "x{}", "\xEF\xBB\xBF{}",
        /* strings */
        "{\"a\":\"x\ty\"}", "{\"a\":\"x\ny\"}", "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\u12g4\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\ud800\\u0041\"}",
        "{\"a\":\"\\ud800x\"}", "{\"a\":\"\\udbff\\ud800\"}", "{\"a\":\"\\ud800\\\"}", "{\"\\udfff\":1}",
        "{\"a\":\"\xC3\"}", "{\"a\":\"\xC3x\"}", "{\"a\":\"\xC0\xAF\"}", "{\"a\":\"\xE0\x80\x80\"}",
        "{\"a\":\"\xED\xA0\x80\"}", "{\"a\":\"\xF4\x90\x80\x80\"}", "{\"a\":\"\xF8\x88\x80\x80\x80\"}",
        "{\"a\":\"\xFF\"}", "{\"a\":\"\x80\"}", "{\"a\":\"x}", "{\"a\":'x'}", "{'a':1}", "{a:1}",
        "{\"a\":\"\\U0041\"}", "{\"a\":\"\\\"}", "{\"a\":\"\\ \"}",
        /* not an object or array at top level (valid JSON or not) */
        "", " ", "\n\t ", "42", "\"str\"", "null", "true", "-1", "{", "[",
        /* raw non-ASCII outside strings */
        "{\"a\":1\xC2\xA0}", "{\xC2\xA0\"a\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = decode(bad[i]);
        if (rc != -1 || col->nerr != 1 || col->nrec != 0 || col->nack != 0)
            CHECK__FAIL("accepted non-JSON #%zu '%s' (rc %d, %d errors)", i, bad[i], rc, col->nerr);
        ASSERT_STR_EQ(col->err[0].code, "invalid_json");
        ASSERT(col->err[0].e.field == NULL);
        ASSERT(!col->err[0].e.has_seq);
        ASSERT(strlen(col->err[0].e.message) > 0);
    }
    /* NUL bytes: jsmn stops at NUL */
    ASSERT_EQ(decode_n("{}\0", 3, true), -1);
    ASSERT_EQ(decode_n("{\"a\":\"x\0y\"," LATLONALT "}", 11 + sizeof LATLONALT, true), -1);
    ASSERT_EQ(decode_n("{" LATLONALT "}\0\0", sizeof LATLONALT + 3, true), -1);
    ASSERT_EQ(decode_n("\0{}", 3, true), -1);
    /* the length is honoured: bytes after len are not read */
    ASSERT_EQ(decode_n("{" LATLONALT "}garbage", sizeof LATLONALT + 1, true), 1);

    /* messages are clear and point at the problem */
    decode("{\"a\":[1 2]}");
    ASSERT_STR_EQ(col->err[0].e.message, "invalid JSON near byte 8");
    decode("{\"a\":tru}");
    ASSERT_STR_EQ(col->err[0].e.message, "invalid JSON near byte 5: invalid literal or number");
    decode("{\"a\":\"\\ud800\"}");
    ASSERT(strstr(col->err[0].e.message, "lone surrogate") != NULL);
    decode("{} x");
    ASSERT_STR_EQ(col->err[0].e.message, "invalid JSON near byte 3");
    decode("{}{}");
    ASSERT_STR_EQ(col->err[0].e.message, "invalid JSON near byte 2: unexpected data after the JSON value");
    decode("42");
    ASSERT_STR_EQ(col->err[0].e.message, "frame must be a JSON object or an array of objects");
    decode("{\"a\":1");
    ASSERT_STR_EQ(col->err[0].e.message, "invalid JSON: unexpected end of frame");
}

/* Valid JSON in unknown fields is ignored, whatever it holds. */
TEST(decode_valid_json_edge_cases)
{
    static const char *good[] = {
        "{\"x\":[1,{\"y\":null},\"\\ud83d\\ude00\",-0.0e+5,true,false,[],{}]," LATLONALT "}",
        "{\"x\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\u001F\\uFFFF\\uD7FF\\uE000\\uDBFF\\uDFFF\"," LATLONALT "}",
        "{\"x\":\"h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \xEF\xBF\xBF\"," LATLONALT "}",
        "{\"\":1,\"\\u0000\":2," LATLONALT "}",
        "{\"x\":123456789012345678901234567890e-999999," LATLONALT "}",
        "{\"x\":1e999," LATLONALT "}",
        "{\"x\" : { \"a\" : [ 1 , 2 , { } , [ ] ] } ," LATLONALT "}",
        "{\"x\":\"\x7f\"," LATLONALT "}",
        "{" LATLONALT ",\"nested\":{\"latitude\":\"ignored\",\"seq\":-5}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        int rc = decode(good[i]);
        if (rc != 1) CHECK__FAIL("rejected #%zu '%s': %s", i, good[i], col->nerr ? col->err[0].e.message : "");
    }
    /* nesting: 64 levels deep is the limit */
    char deep[400];
    for (int depth = 60; depth <= 66; depth++) {
        size_t n = 0;
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{" LATLONALT ",\"x\":");
        for (int k = 0; k < depth - 1; k++) deep[n++] = '[';
        for (int k = 0; k < depth - 1; k++) deep[n++] = ']';
        deep[n++] = '}';
        deep[n] = 0;
        int rc = decode(deep);
        ASSERT_EQ(rc, depth <= 64 ? 1 : -1);
        if (rc < 0) ASSERT(strstr(col->err[0].e.message, "nested too deeply") != NULL);
    }
    /* very deep input must not overflow the stack (jsmn itself has no limit) */
    static char abyss[200001];
    memset(abyss, '[', 100000);
    memset(abyss + 100000, ']', 100000);
    ASSERT_EQ(decode_n(abyss, 200000, true), -1);
}

static const char *err_field(const char *frame)
{
    int rc = decode(frame);
    if (rc != 0 || col->nerr != 1 || col->nrec != 0) return "(no single error)";
    if (strcmp(col->err[0].code, "invalid_field")) return "(wrong code)";
    return col->err[0].field;
}

TEST(decode_field_errors)
{
    /* missing required, in order */
    ASSERT_STR_EQ(err_field("{}"), "latitude");
    ASSERT_STR_EQ(col->err[0].e.message, "missing required field latitude");
    ASSERT_STR_EQ(err_field("{\"latitude\":1,\"altitude\":1}"), "longitude");
    ASSERT_STR_EQ(col->err[0].e.message, "missing required field longitude");
    ASSERT_STR_EQ(err_field("{\"latitude\":1,\"longitude\":1}"), "altitude");

    /* ranges */
    ASSERT_STR_EQ(err_field("{\"latitude\":90.0001,\"longitude\":0,\"altitude\":0}"), "latitude");
    ASSERT_STR_EQ(col->err[0].e.message, "latitude must be a number in [-90, 90]");
    ASSERT_STR_EQ(err_field("{\"latitude\":0,\"longitude\":-180.5,\"altitude\":0}"), "longitude");
    ASSERT_STR_EQ(col->err[0].e.message, "longitude must be a number in [-180, 180]");
    ASSERT_STR_EQ(err_field("{\"latitude\":0,\"longitude\":0,\"altitude\":-1001}"), "altitude");
    ASSERT_STR_EQ(col->err[0].e.message, "altitude must be a number in [-1000, 100000]");
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"speed\":-1}"), "speed");
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"heading\":360}"), "heading");
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"battery\":100.01}"), "battery");
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"climb\":1e400}"), "climb");
    ASSERT_STR_EQ(err_field("{\"latitude\":1e400,\"longitude\":0,\"altitude\":0}"), "latitude");
    ASSERT_STR_EQ(err_field("{\"latitude\":-1e400,\"longitude\":0,\"altitude\":0}"), "latitude");

    /* wrong JSON types */
    ASSERT_STR_EQ(err_field("{\"latitude\":\"47\",\"longitude\":0,\"altitude\":0}"), "latitude");
    ASSERT_STR_EQ(col->err[0].e.message, "latitude must be a number in [-90, 90]");
    ASSERT_STR_EQ(err_field("{\"latitude\":null,\"longitude\":0,\"altitude\":0}"), "latitude");
    ASSERT_STR_EQ(err_field("{\"latitude\":true,\"longitude\":0,\"altitude\":0}"), "latitude");
    ASSERT_STR_EQ(err_field("{\"latitude\":[1],\"longitude\":0,\"altitude\":0}"), "latitude");
    ASSERT_STR_EQ(err_field("{\"latitude\":{},\"longitude\":0,\"altitude\":0}"), "latitude");
    ASSERT_STR_EQ(err_field("{\"latitude\":0,\"longitude\":false,\"altitude\":0}"), "longitude");
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"speed\":\"fast\"}"), "speed");
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"heading\":[]}"), "heading");
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"climb\":true}"), "climb");
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"battery\":{}}"), "battery");
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"status\":5}"), "status");
    ASSERT_STR_EQ(col->err[0].e.message, "status must be a string of at most 32 bytes");
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"status\":[\"x\"]}"), "status");

    /* status length: 32 bytes after unescaping */
    ASSERT_EQ(decode("{" LATLONALT ",\"status\":\"0123456789abcdef0123456789abcdef\"}"), 1);
    ASSERT_EQ(col->rec[0].status_len, 32);
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"status\":\"0123456789abcdef0123456789abcdefX\"}"), "status");
    ASSERT_EQ(decode("{" LATLONALT ",\"status\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                     "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}"), 1);    /* 32 bytes */
    ASSERT_EQ(col->rec[0].status_len, 32);
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"status\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                            "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}"), "status");
    ASSERT_EQ(decode("{" LATLONALT ",\"status\":\"a\\\"b\\\\c\\/d\\u00e9\\ud83d\\ude00\\n\"}"), 1);
    ASSERT_STR_EQ(col->rec[0].status, "a\"b\\c/d\xC3\xA9\xF0\x9F\x98\x80\n");
    ASSERT_EQ(decode("{" LATLONALT ",\"status\":\"\"}"), 1);
    ASSERT_EQ(col->rec[0].flags, DG_REC_HAS_STATUS);
    ASSERT_EQ(col->rec[0].status_len, 0);
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"status\":\"a\\u0000b\"}"), "status");

    /* first problem wins: required presence before ranges */
    ASSERT_STR_EQ(err_field("{\"latitude\":100,\"longitude\":0}"), "altitude");
}

TEST(decode_seq)
{
    ASSERT_EQ(decode("{\"seq\":18446744073709551615," LATLONALT "}"), 1);
    ASSERT_U64_EQ(col->rec[0].seq, UINT64_MAX);
    ASSERT_EQ(col->rec[0].flags, DG_REC_HAS_SEQ);
    ASSERT_EQ(decode("{\"seq\":0," LATLONALT "}"), 1);
    ASSERT_EQ(col->rec[0].flags, DG_REC_HAS_SEQ);

    static const char *bad[] = { "-1", "1.5", "1.0", "1e3", "18446744073709551616", "\"42\"", "true", "[]", "{}", "-0" };
    char f[200];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(f, sizeof f, "{\"seq\":%s," LATLONALT "}", bad[i]);
        ASSERT_STR_EQ(err_field(f), "seq");
        ASSERT(!col->err[0].e.has_seq);
        ASSERT_STR_EQ(col->err[0].e.message, "seq must be an unsigned 64-bit integer");
    }

    /* errors carry seq, wherever seq sits in the object */
    ASSERT_STR_EQ(err_field("{\"latitude\":100,\"longitude\":0,\"altitude\":0,\"seq\":77}"), "latitude");
    ASSERT(col->err[0].e.has_seq);
    ASSERT_U64_EQ(col->err[0].e.seq, 77);
    ASSERT_STR_EQ(err_field("{\"seq\":78}"), "latitude");
    ASSERT_U64_EQ(col->err[0].e.seq, 78);
    ASSERT_STR_EQ(err_field("{\"type\":\"bogus\",\"seq\":79}"), "type");
    ASSERT_U64_EQ(col->err[0].e.seq, 79);
    ASSERT_STR_EQ(err_field("{\"timestamp\":\"yesterday\"," LATLONALT ",\"seq\":80}"), "timestamp");
    ASSERT_U64_EQ(col->err[0].e.seq, 80);
    ASSERT_STR_EQ(err_field("{" LATLONALT "}x") , "(no single error)");
    ASSERT_STR_EQ(err_field("{\"latitude\":100,\"longitude\":0,\"altitude\":0}"), "latitude");
    ASSERT(!col->err[0].e.has_seq);

    /* duplicates: the last one wins */
    ASSERT_EQ(decode("{\"seq\":1,\"latitude\":100,\"seq\":2," LATLONALT "}"), 1);
    ASSERT_U64_EQ(col->rec[0].seq, 2);
    ASSERT_DBL_EQ(col->rec[0].lat, 47.397742);
    ASSERT_STR_EQ(err_field("{" LATLONALT ",\"latitude\":100}"), "latitude");
}

TEST(decode_timestamp)
{
    ASSERT_EQ(decode("{\"timestamp\":\"2026-11-24T12:00:00+02:00\"," LATLONALT "}"), 1);
    ASSERT_EQ(col->rec[0].ts_ms, INT64_C(1795514400000));
    ASSERT(col->rec[0].flags & DG_REC_HAS_TS);
    ASSERT_EQ(decode("{\"timestamp\":1795514400123," LATLONALT "}"), 1);
    ASSERT_EQ(col->rec[0].ts_ms, INT64_C(1795514400123));
    ASSERT(col->rec[0].flags & DG_REC_HAS_TS);
    ASSERT_EQ(decode("{\"timestamp\":0," LATLONALT "}"), 1);
    ASSERT_EQ(col->rec[0].ts_ms, 0);
    ASSERT_EQ(decode("{\"timestamp\":-1," LATLONALT "}"), 1);
    ASSERT_EQ(col->rec[0].ts_ms, -1);
    ASSERT_EQ(decode("{\"timestamp\":\"2026-11-24T10:00:00.123\\u005a\"," LATLONALT "}"), 1);  /* escaped Z */
    ASSERT_EQ(col->rec[0].ts_ms, INT64_C(1795514400123));

    static const char *bad[] = {
        "1.5", "1e12", "1795514400123.0", "\"\"", "\"2026-11-24\"", "\"2026-11-24T10:00:00\"",
        "\"2026-02-30T10:00:00Z\"", "\"1795514400123\"", "true", "[]", "{}", "9223372036854775808",
        "\"2026-11-24T10:00:00Z \"",
    };
    char f[200];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(f, sizeof f, "{\"timestamp\":%s," LATLONALT "}", bad[i]);
        if (strcmp(err_field(f), "timestamp")) CHECK__FAIL("timestamp %s accepted", bad[i]);
    }
    ASSERT_STR_EQ(col->err[0].e.message,
                  "timestamp must be an RFC 3339 date-time string or integer milliseconds since the Unix epoch");
    /* out of the representable range: refused by dg_record_validate */
    ASSERT_STR_EQ(err_field("{\"timestamp\":253402300800000," LATLONALT "}"), "timestamp");
    ASSERT_STR_EQ(err_field("{\"timestamp\":-9223372036854775808," LATLONALT "}"), "timestamp");

    /* contract: 1677-09-22 .. 2262-04-11 (int64 ns, what every store holds);
     * edges just inside are records, just outside invalid_field "timestamp" */
    static const struct { const char *ts; int64_t ms; } inside[] = {
        { "\"1677-09-22T00:00:00Z\"", INT64_C(-9223286400000) },
        { "\"1677-09-22T00:00:00.000+00:00\"", INT64_C(-9223286400000) },
        { "\"1677-09-22T01:00:00+01:00\"", INT64_C(-9223286400000) },
        { "-9223286400000", INT64_C(-9223286400000) },
        { "\"2262-04-11T23:47:16.854Z\"", INT64_C(9223372036854) },
        { "\"2262-04-11T23:47:16.854999999Z\"", INT64_C(9223372036854) },
        { "9223372036854", INT64_C(9223372036854) },
        { "\"2262-04-11T00:00:00Z\"", INT64_C(9223286400000) },
    };
    for (size_t i = 0; i < sizeof inside / sizeof *inside; i++) {
        snprintf(f, sizeof f, "{\"timestamp\":%s," LATLONALT "}", inside[i].ts);
        if (decode(f) != 1) { CHECK__FAIL("timestamp %s refused", inside[i].ts); continue; }
        ASSERT_EQ(col->rec[0].ts_ms, inside[i].ms);
    }
    static const char *outside[] = {
        "\"1677-09-21T23:59:59.999Z\"", "\"1677-09-22T00:00:00.000+00:01\"", "-9223286400001",
        "\"2262-04-11T23:47:16.855Z\"", "\"2262-04-11T23:47:16.854-00:01\"", "9223372036855",
        "\"2262-04-12T00:00:00Z\"", "\"0000-01-01T00:00:00Z\"", "\"9999-12-31T23:59:59.999Z\"",
        "253402300799999", "-62167219200000",
    };
    for (size_t i = 0; i < sizeof outside / sizeof *outside; i++) {
        snprintf(f, sizeof f, "{\"seq\":7,\"timestamp\":%s," LATLONALT "}", outside[i]);
        int rc = decode(f);
        if (rc != 0 || col->nerr != 1 || strcmp(col->err[0].field, "timestamp") ||
            strcmp(col->err[0].code, "invalid_field") || !col->err[0].e.has_seq)
            CHECK__FAIL("timestamp %s not refused as invalid_field timestamp", outside[i]);
    }
    ASSERT(strstr(col->err[0].e.message, "1677-09-22") != NULL);
}

TEST(decode_type_and_command_ack)
{
    ASSERT_STR_EQ(err_field("{\"type\":\"ack\"," LATLONALT "}"), "type");
    ASSERT_STR_EQ(col->err[0].e.message, "type must be \"telemetry\" or \"command_ack\"");
    ASSERT_STR_EQ(err_field("{\"type\":5," LATLONALT "}"), "type");
    ASSERT_STR_EQ(err_field("{\"type\":\"Telemetry\"," LATLONALT "}"), "type");
    ASSERT_STR_EQ(err_field("{\"type\":\"telemetryX\"," LATLONALT "}"), "type");
    ASSERT_STR_EQ(err_field("{\"type\":[\"telemetry\"]," LATLONALT "}"), "type");

    ASSERT_EQ(decode("{\"type\":\"command_ack\",\"id\":\"cmd-1\",\"status\":\"accepted\",\"message\":\"on my way\"}"), 0);
    ASSERT_EQ(col->nack, 1);
    ASSERT_EQ(col->nerr, 0);
    ASSERT_STR_EQ(col->ack[0].id, "cmd-1");
    ASSERT_STR_EQ(col->ack[0].status, "accepted");
    ASSERT_STR_EQ(col->ack[0].message, "on my way");

    /* order-independent, escapes, other statuses, message absent/null */
    ASSERT_EQ(decode("{\"status\":\"rejected\",\"message\":\"low \\\"battery\\\" \\u00e9\",\"id\":\"c\\u0032\","
                     "\"type\":\"command_ack\",\"latitude\":\"ignored\"}"), 0);
    ASSERT_STR_EQ(col->ack[0].id, "c2");
    ASSERT_STR_EQ(col->ack[0].status, "rejected");
    ASSERT_STR_EQ(col->ack[0].message, "low \"battery\" \xC3\xA9");
    ASSERT_EQ(col->ack[0].message_len, 16);
    ASSERT_EQ(decode("{\"type\":\"command_ack\",\"id\":\"x\",\"status\":\"done\"}"), 0);
    ASSERT_EQ(col->nack, 1);
    ASSERT_EQ(col->ack[0].message_len, 0);
    ASSERT_EQ(decode("{\"type\":\"command_ack\",\"id\":\"x\",\"status\":\"done\",\"message\":null}"), 0);
    ASSERT_EQ(col->nack, 1);
    /* 64-byte id is fine */
    ASSERT_EQ(decode("{\"type\":\"command_ack\",\"id\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
                     "\"status\":\"done\"}"), 0);
    ASSERT_EQ(col->nack, 1);
    ASSERT_EQ(col->ack[0].id_len, 64);

    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"status\":\"done\"}"), "id");
    ASSERT_STR_EQ(col->err[0].e.message, "missing required field id");
    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"id\":\"\",\"status\":\"done\"}"), "id");
    ASSERT_STR_EQ(col->err[0].e.message, "id must be a non-empty string of at most 64 bytes");
    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"id\":5,\"status\":\"done\"}"), "id");
    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"id\":\"a\\u0000\",\"status\":\"done\"}"), "id");
    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"id\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefX\","
                            "\"status\":\"done\"}"), "id");
    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"id\":\"x\"}"), "status");
    ASSERT_STR_EQ(col->err[0].e.message, "missing required field status");
    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"id\":\"x\",\"status\":\"ok\"}"), "status");
    ASSERT_STR_EQ(col->err[0].e.message, "status must be one of accepted, rejected, done");
    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"id\":\"x\",\"status\":\"Done\"}"), "status");
    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"id\":\"x\",\"status\":\"accepted \"}"), "status");
    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"id\":\"x\",\"status\":null}"), "status");
    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"id\":\"x\",\"status\":\"done\",\"message\":5}"), "message");
    ASSERT_STR_EQ(col->err[0].e.message, "message must be a string");
    /* errors carry a parseable seq if there is one */
    ASSERT_STR_EQ(err_field("{\"type\":\"command_ack\",\"seq\":5,\"id\":\"x\",\"status\":\"no\"}"), "status");
    ASSERT(col->err[0].e.has_seq);
    ASSERT_U64_EQ(col->err[0].e.seq, 5);

    /* no on_command_ack: valid acks are silently ignored, invalid still reported */
    memset(col, 0, sizeof *col);
    const char *f = "{\"type\":\"command_ack\",\"id\":\"x\",\"status\":\"done\"}";
    ASSERT_EQ(decode_n(f, strlen(f), false), 0);
    ASSERT_EQ(col->nack + col->nerr + col->nrec, 0);
    f = "{\"type\":\"command_ack\",\"id\":\"x\",\"status\":\"nope\"}";
    ASSERT_EQ(decode_n(f, strlen(f), false), 0);
    ASSERT_EQ(col->nerr, 1);

    /* long escaped message uses (and grows) the scratch buffer */
    static char big[20000];
    size_t n = (size_t)snprintf(big, sizeof big, "{\"type\":\"command_ack\",\"id\":\"x\",\"status\":\"done\",\"message\":\"");
    for (int k = 0; k < 3000; k++) { memcpy(big + n, "\\n", 2); n += 2; }
    n += (size_t)snprintf(big + n, sizeof big - n, "\"}");
    ASSERT_EQ(decode_n(big, n, true), 0);
    ASSERT_EQ(col->nack, 1);
    ASSERT_EQ(col->ack[0].message_len, 3000);
    ASSERT_EQ(col->ack[0].message[0], '\n');
}

TEST(decode_token_limit)
{
    /* {"latitude":1,"longitude":2,"altitude":3} is 7 tokens */
    const char *f = "{\"latitude\":1,\"longitude\":2,\"altitude\":3}";
    dg_decode_sink_t sink = { .on_record = on_record, .on_error = on_error, .on_command_ack = on_ack, .ud = col };
    for (size_t max = 1; max <= 9; max++) {
        dg_json_decoder_t *d = dg_json_decoder_new(max);
        ASSERT(d != NULL);
        memset(col, 0, sizeof *col);
        int rc = dg_json_decode(d, f, strlen(f), NOW_MS, RECV_US, &sink);
        ASSERT_EQ(rc, max >= 7 ? 1 : -1);
        if (rc < 0) {
            ASSERT_STR_EQ(col->err[0].code, "invalid_json");
            ASSERT(strstr(col->err[0].e.message, "JSON tokens") != NULL);
        }
        /* a smaller frame still works afterwards */
        rc = dg_json_decode(d, "[]", 2, NOW_MS, RECV_US, &sink);
        ASSERT_EQ(rc, 0);
        dg_json_decoder_free(d);
    }
    dg_json_decoder_free(NULL);
    /* 0 means the default limit */
    dg_json_decoder_t *d = dg_json_decoder_new(0);
    ASSERT(d != NULL);
    ASSERT_EQ(dg_json_decode(d, f, strlen(f), NOW_MS, RECV_US, &sink), 1);
    dg_json_decoder_free(d);
}

/* Decode cost is linear in the frame size for every input (issue 8 1.2):
 * jsmn with parent links is quadratic in nesting depth, so depth must be
 * bounded before jsmn runs. Checked with the decoder's deterministic work
 * counter (bytes scanned + a bound on the tokenizer's parent-link steps +
 * tokens validated), never with a clock. */
static long lw_rec, lw_err;
static void lw_on_record(void *ud, const dg_record_t *r) { (void)ud; (void)r; lw_rec++; }
static void lw_on_error(void *ud, const dg_decode_error_t *e) { (void)ud; (void)e; lw_err++; }

#include "../../bench/worst_frames.h"   /* dg_worst_frame: shared with bench_decode */
#define LW_SIZE DG_WORST_SIZE

TEST(decode_work_is_linear)
{
    char *buf = malloc(LW_SIZE + 1);
    ASSERT(buf != NULL);
    dg_json_decoder_t *d = dg_json_decoder_new(0);
    ASSERT(d != NULL);
    dg_decode_sink_t sink = { .on_record = lw_on_record, .on_error = lw_on_error, .on_command_ack = NULL, .ud = NULL };
    for (int kind = 0; kind < DG_WORST_KINDS && buf && d; kind++) {
        size_t n = dg_worst_frame(kind, buf);
        lw_rec = lw_err = 0;
        int rc = dg_json_decode(d, buf, n, NOW_MS, RECV_US, &sink);
        uint64_t work = dg_json_decoder_work(d);
        /* the at-limit case is the worst one: <= 63 parent-link steps per
         * 2 bytes of "[]"; everything else is a few units per byte */
        if (work > 64 * (uint64_t)n)
            CHECK__FAIL("%s: %llu work units for %zu bytes", dg_worst_name[kind], (unsigned long long)work, n);
        switch (kind) {
        case 0:                      /* refused at the 65th '[', not after 1 MB */
            ASSERT_EQ(rc, -1);
            ASSERT_EQ(lw_err, 1);
            ASSERT(work <= 100);
            break;
        case 3: case 4:
            ASSERT_EQ(rc, 1);
            break;
        case 5:
            ASSERT_EQ(rc, 0);
            ASSERT(lw_err > 90000);
            break;
        default:                     /* batch elements that are not objects */
            ASSERT_EQ(rc, 0);
            ASSERT(lw_err > 1000);
            break;
        }
    }
    dg_json_decoder_free(d);
    free(buf);
}

/* Round trip: records written with jsonw decode to the same record. */
TEST(decode_roundtrip_jsonw)
{
    dg_buf_t b = { 0 };
    for (int iter = 0; iter < 20000; iter++) {
        dg_record_t r;
        dg_record_init(&r);
        r.lat = ((double)(rnd() >> 11) / 9007199254740992.0) * 180.0 - 90.0;
        r.lon = ((double)(rnd() >> 11) / 9007199254740992.0) * 360.0 - 180.0;
        r.alt = (double)(int64_t)(rnd() % 1000000) / 10.0 - 1000.0;
        r.seq = rnd();
        r.flags = DG_REC_HAS_SEQ | DG_REC_HAS_TS;
        r.ts_ms = (int64_t)(rnd() % INT64_C(9223372036854));
        if (rnd() & 1) { r.speed = (double)(rnd() % 100000) / 1000.0; r.flags |= DG_REC_HAS_SPEED; }
        if (rnd() & 1) { r.heading = (double)(rnd() % 3600) / 10.0; r.flags |= DG_REC_HAS_HEADING; }
        if (rnd() & 1) { r.climb = ((double)(rnd() >> 11) - 4503599627370496.0) / 1e12; r.flags |= DG_REC_HAS_CLIMB; }
        if (rnd() & 1) { r.battery = (double)(rnd() % 1001) / 10.0; r.flags |= DG_REC_HAS_BATTERY; }
        if (rnd() & 1) {
            r.status_len = (uint8_t)(rnd() % 33);
            for (int k = 0; k < r.status_len; k++) r.status[k] = (char)(1 + rnd() % 127);
            r.status[r.status_len] = 0;
            r.flags |= DG_REC_HAS_STATUS;
        }
        int first = 1;
        b.len = 0;
        dg_buf_append(&b, "{", 1);
        dg_jw_key(&b, &first, "seq"); dg_jw_u64(&b, r.seq);
        dg_jw_key(&b, &first, "latitude"); dg_jw_double(&b, r.lat);
        dg_jw_key(&b, &first, "longitude"); dg_jw_double(&b, r.lon);
        dg_jw_key(&b, &first, "altitude"); dg_jw_double(&b, r.alt);
        if (iter & 1) {
            dg_jw_key(&b, &first, "timestamp"); dg_jw_i64(&b, r.ts_ms);
        } else {
            char ts[32];
            size_t tn = dg_format_rfc3339(r.ts_ms, ts);
            dg_jw_key(&b, &first, "timestamp"); dg_jw_str(&b, ts, tn);
        }
        if (r.flags & DG_REC_HAS_SPEED) { dg_jw_key(&b, &first, "speed"); dg_jw_double(&b, r.speed); }
        if (r.flags & DG_REC_HAS_HEADING) { dg_jw_key(&b, &first, "heading"); dg_jw_double(&b, r.heading); }
        if (r.flags & DG_REC_HAS_CLIMB) { dg_jw_key(&b, &first, "climb"); dg_jw_double(&b, r.climb); }
        if (r.flags & DG_REC_HAS_BATTERY) { dg_jw_key(&b, &first, "battery"); dg_jw_double(&b, r.battery); }
        if (r.flags & DG_REC_HAS_STATUS) { dg_jw_key(&b, &first, "status"); dg_jw_str(&b, r.status, r.status_len); }
        dg_buf_append(&b, "}", 1);
        if (decode_n(b.data, b.len, true) != 1)
            CHECK__FAIL("round trip rejected: %.*s (%s)", (int)b.len, b.data, col->nerr ? col->err[0].e.message : "");
        dg_record_t *o = &col->rec[0];
        ASSERT_EQ(o->flags, r.flags);
        ASSERT_U64_EQ(o->seq, r.seq);
        ASSERT_EQ(o->ts_ms, r.ts_ms);
        ASSERT_U64_EQ(dbits(o->lat), dbits(r.lat));
        ASSERT_U64_EQ(dbits(o->lon), dbits(r.lon));
        ASSERT_U64_EQ(dbits(o->alt), dbits(r.alt));
        if (r.flags & DG_REC_HAS_SPEED) ASSERT_U64_EQ(dbits(o->speed), dbits(r.speed));
        if (r.flags & DG_REC_HAS_CLIMB) ASSERT_U64_EQ(dbits(o->climb), dbits(r.climb));
        if (r.flags & DG_REC_HAS_HEADING) ASSERT_U64_EQ(dbits(o->heading), dbits(r.heading));
        if (r.flags & DG_REC_HAS_BATTERY) ASSERT_U64_EQ(dbits(o->battery), dbits(r.battery));
        ASSERT_EQ(o->status_len, r.status_len);
        ASSERT_MEM_EQ(o->status, r.status, (size_t)r.status_len + 1);
    }
    dg_buf_free(&b);
}

int main(void)
{
    col = malloc(sizeof *col);
    dec = dg_json_decoder_new(1 << 16);
    if (!col || !dec) return 2;

    RUN(number_grammar);
    RUN(number_hard_cases);
    RUN(number_random_vs_strtod);
    RUN(number_integers_vs_strtoull);
    RUN(number_long);
    RUN(number_integers);
    RUN(jsonw_strings);
    RUN(jsonw_doubles);
    RUN(validate_ranges);
    RUN(decode_full_object);
    RUN(decode_minimal_object);
    RUN(decode_batch);
    RUN(decode_invalid_json);
    RUN(decode_valid_json_edge_cases);
    RUN(decode_field_errors);
    RUN(decode_seq);
    RUN(decode_timestamp);
    RUN(decode_type_and_command_ack);
    RUN(decode_token_limit);
    RUN(decode_work_is_linear);
    RUN(decode_roundtrip_jsonw);

    dg_json_decoder_free(dec);
    free(col);
    return check_summary("codec");
}
