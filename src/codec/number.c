/* number.c - strict JSON number parsing (see number.h).
 *
 * Grammar (RFC 8259 section 6), checked byte by byte:
 *
 *     number = [ "-" ] int [ frac ] [ exp ]
 *     int    = "0" / ( digit1-9 *DIGIT )
 *     frac   = "." 1*DIGIT
 *     exp    = ( "e" / "E" ) [ "-" / "+" ] 1*DIGIT
 *
 * Conversion, dg_parse_double():
 *
 *   fast path  the significant digits (at most 19, leading zeros skipped) are
 *              accumulated in a uint64_t mantissa m and the decimal exponent e
 *              is adjusted for the fraction digits. When m <= 2^53 and
 *              |e| <= 22 both m and 10^|e| are exact doubles, so one IEEE
 *              multiplication or division gives the correctly rounded result
 *              (Clinger 1990). Telemetry values such as 47.397742 or 488.2
 *              always take this path. A zero mantissa gives +-0 directly.
 *   slow path  anything else (more than 19 significant digits, large
 *              exponents, m > 2^53) is copied NUL-terminated onto the stack
 *              and handed to strtod(), which is correctly rounded in glibc.
 *              Numbers longer than DG__NUM_MAX_LEN bytes are refused (-1):
 *              no real telemetry value needs them and it bounds the copy.
 *
 * Out-of-range magnitudes behave like strtod: overflow gives +-inf (callers
 * that need finite values check isfinite()), underflow gives 0 or a
 * subnormal. strtod() honours LC_NUMERIC; dronegate never calls setlocale(),
 * so the "C" locale is in effect.
 *
 * Integers, dg_parse_u64() / dg_parse_i64(): JSON integer grammar only (no
 * fraction, no exponent), with overflow checks. dg_parse_u64 refuses any
 * leading '-', including "-0".
 *
 * Pure functions, thread-safe, no allocation.
 */
#include "number.h"

#include <float.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define DG__NUM_MAX_LEN 1024

/* The fast path needs plain IEEE double arithmetic (no x87 excess precision). */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define DG__NUM_FAST 1
#else
#define DG__NUM_FAST 0
#endif

static const double dg__pow10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static inline bool is_digit(char c) { return (unsigned char)(c - '0') < 10; }

static int parse_double_slow(const char *s, size_t n, double *out)
{
    char buf[DG__NUM_MAX_LEN + 1];
    if (n > DG__NUM_MAX_LEN) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + n) return -1;   /* cannot happen after the grammar check */
    *out = v;
    return 0;
}

/* The JSON number at s, parsed greedily: stops at the first byte that
 * cannot continue it (or at end). Returns that position, or NULL when s
 * does not start with a valid number (also "1.", "1e", "-"). */
static const char *scan_double(const char *s, const char *end, double *out)
{
    const char *p = s;
    bool neg = false, slow = false;
    uint64_t m = 0;       /* significant digits */
    int ndig = 0;         /* digits in m, leading zeros excluded */
    long e10 = 0;         /* decimal exponent applied to m */

    if (p < end && *p == '-') { neg = true; p++; }
    if (p == end) return NULL;

    /* int */
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        do {
            if (ndig < 19) { m = m * 10 + (uint64_t)(*p - '0'); ndig++; }
            else           { slow = true; }
            p++;
        } while (p < end && is_digit(*p));
    } else {
        return NULL;
    }

    /* frac */
    if (p < end && *p == '.') {
        p++;
        if (p == end || !is_digit(*p)) return NULL;
        do {
            unsigned d = (unsigned)(*p - '0');
            if (m == 0 && d == 0) {
                e10--;                       /* leading zero: not significant */
            } else if (ndig < 19) {
                m = m * 10 + d; ndig++; e10--;
            } else {
                slow = true;
            }
            p++;
        } while (p < end && is_digit(*p));
    }

    /* exp */
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-')) { eneg = (*p == '-'); p++; }
        if (p == end || !is_digit(*p)) return NULL;
        long x = 0;
        do {
            if (x < 100000) x = x * 10 + (*p - '0');  /* clamp: the result is 0 or inf anyway */
            p++;
        } while (p < end && is_digit(*p));
        e10 += eneg ? -x : x;
    }

    if (m == 0 && !slow) {                  /* 0, 0.000, 0e999, -0.0 ... */
        *out = neg ? -0.0 : 0.0;
        return p;
    }
    if (DG__NUM_FAST && !slow && m <= (UINT64_C(1) << 53) && e10 >= -22 && e10 <= 22) {
        double v = (double)m;
        if (e10 < 0) v /= dg__pow10[-e10];
        else         v *= dg__pow10[e10];
        *out = neg ? -v : v;
        return p;
    }
    return parse_double_slow(s, (size_t)(p - s), out) ? NULL : p;
}

int dg_parse_double(const char *s, size_t n, double *out)
{
    double v;
    const char *q = scan_double(s, s + n, &v);
    if (!q || q != s + n) return -1;
    *out = v;
    return 0;
}

const char *dg_scan_double(const char *s, const char *end, double *out)
{
    return scan_double(s, end, out);
}

/* 8 ASCII digits at a time (little-endian loads; as fast_float and simdjson
 * do): one check that all 8 bytes are digits, three multiplications for
 * their value. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define DG__SWAR 1
#else
#define DG__SWAR 0
#endif

static inline bool eight_digits(uint64_t x)
{
    return !(((x + UINT64_C(0x4646464646464646)) | (x - UINT64_C(0x3030303030303030)))
             & UINT64_C(0x8080808080808080));
}

static inline uint64_t eight_value(uint64_t x)   /* first byte = most significant */
{
    x = (x & UINT64_C(0x0F0F0F0F0F0F0F0F)) * 2561 >> 8;
    x = (x & UINT64_C(0x00FF00FF00FF00FF)) * 6553601 >> 16;
    return (x & UINT64_C(0x0000FFFF0000FFFF)) * UINT64_C(42949672960001) >> 32;
}

/* The JSON integer at p without sign, parsed greedily (scan_double's
 * contract): the end of its digits, or NULL (no digit, over max). "0"
 * stops after the zero (a digit after it is the caller's error). Up to 19
 * digits cannot overflow a uint64_t (10^19 - 1 < 2^64): accumulated
 * unchecked, 8 at a time where possible, then compared once with max; a
 * longer run is checked digit by digit (13-digit ms timestamps: a check
 * per digit was 5 % of the gateway's CPU at window 256). */
static const char *scan_uint(const char *p, const char *end, uint64_t max, uint64_t *out)
{
    const char *q = p;
    uint64_t v = 0;
    if (q == end || !is_digit(*q)) return NULL;
    if (*q == '0') { *out = 0; return q + 1; }
#if DG__SWAR
    while (end - q >= 8 && q - p <= 8) {             /* up to 16 digits in blocks */
        uint64_t x;
        memcpy(&x, q, 8);
        if (!eight_digits(x)) break;
        v = v * 100000000 + eight_value(x);
        q += 8;
    }
#endif
    while (q < end && is_digit(*q) && q - p < 20) { v = v * 10 + (uint64_t)(*q - '0'); q++; }
    if (q - p > 19) {                                /* 20 digits or more: checked */
        v = 0;
        for (q = p; q < end && is_digit(*q); q++) {
            unsigned d = (unsigned)(*q - '0');
            if (v > (max - d) / 10) return NULL;
            v = v * 10 + d;
        }
        *out = v;
        return q;
    }
    if (v > max) return NULL;                        /* <= 19 digits: no wrap */
    *out = v;
    return q;
}

const char *dg_scan_u64(const char *s, const char *end, uint64_t *out)
{
    return scan_uint(s, end, UINT64_MAX, out);
}

const char *dg_scan_i64(const char *s, const char *end, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    if (p < end && *p == '-') { neg = true; p++; }
    uint64_t v;
    const char *q = scan_uint(p, end, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v);
    if (!q) return NULL;
    if (neg) *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else     *out = (int64_t)v;
    return q;
}

/* The exact forms: the greedy parse must take the whole text. */
int dg_parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (dg_scan_u64(s, s + n, &v) != s + n) return -1;
    *out = v;
    return 0;
}

int dg_parse_i64(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    if (dg_scan_i64(s, s + n, &v) != s + n) return -1;
    *out = v;
    return 0;
}

int dg_number_valid(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    if (p < end && *p == '-') p++;
    if (p == end) return 0;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') { do p++; while (p < end && is_digit(*p)); }
    else return 0;
    if (p < end && *p == '.') {
        p++;
        if (p == end || !is_digit(*p)) return 0;
        do p++; while (p < end && is_digit(*p));
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p == end || !is_digit(*p)) return 0;
        do p++; while (p < end && is_digit(*p));
    }
    return p == end;
}
