/* jsonw.c - small JSON writer into a dg_buf_t (see jsonw.h).
 *
 * Strings: '"' and '\' are escaped, control characters U+0000-U+001F become
 * \b \f \n \r \t or \u00XX, everything else (including non-ASCII UTF-8) is
 * copied as is. Invalid UTF-8 is replaced by U+FFFD, one per maximal
 * ill-formed subsequence (Unicode 15, section 3.9, "U+FFFD substitution of
 * maximal subparts"), so the output is always valid UTF-8 JSON.
 *
 * Doubles: the shortest text that strtod() reads back to the same bits.
 *   fast path  |v| < 2^53: find the smallest k <= 17 such that r = round(v *
 *              10^k) satisfies r / 10^k == v, with r < 2^53 and 10^k exact
 *              (k <= 22), so the division is correctly rounded, i.e. equals
 *              strtod("r e-k"). The digits of r are printed with k decimals.
 *              Typical telemetry (47.397742, 488.2, 76) ends here with no
 *              snprintf/strtod.
 *   slow path  "%.15g", "%.16g", then "%.17g" (always exact), keeping the
 *              first one strtod() reads back to the same value.
 *   NaN and +-inf are written as null (JSON has no such numbers).
 * Output relies on LC_NUMERIC being "C" (dronegate never calls setlocale).
 *
 * Each helper reserves room first, then writes directly: 0 or -ENOMEM, and
 * on -ENOMEM nothing was appended. Not thread-safe per buffer.
 */
#include "jsonw.h"

#include "../core/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes that can be copied verbatim: printable ASCII other than '"' and '\\'. */
static const unsigned char dg__jw_plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),                                          /* 0x00-0x1F */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,          /* 0x20-0x2F, '"' */
    R16(1), R16(1),                                          /* 0x30-0x4F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,          /* 0x50-0x5F, '\\' */
    R16(1), R16(1),                                          /* 0x60-0x7F */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* 0x80-0xFF */
#undef R16
};

int dg_jw_str(dg_buf_t *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    /* worst case: every byte a control char (6 bytes) or an invalid byte (3) */
    if (n > ((size_t)-1 - 2) / 6) return -ENOMEM;
    if (dg_buf_reserve(b, n * 6 + 2)) return -ENOMEM;
    char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && dg__jw_plain[s[j]]) j++;
        if (j > i) { memcpy(o, s + i, j - i); o += j - i; i = j; }
        if (i == n) break;
        unsigned char c = s[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            *o++ = '\\';
            switch (c) {
            case '"':  *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = hex[c >> 4]; *o++ = hex[c & 15];
            }
            i++;
        } else {
            int l = dg_utf8_seq(s + i, n - i);
            if (l > 0) {
                memcpy(o, s + i, (size_t)l); o += l; i += (size_t)l;
            } else {
                memcpy(o, "\xEF\xBF\xBD", 3); o += 3; i += (size_t)-l;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

int dg_jw_key(dg_buf_t *b, int *first, const char *key)
{
    if (!*first && dg_buf_append(b, ",", 1)) return -ENOMEM;
    *first = 0;
    if (dg_jw_str(b, key, strlen(key))) return -ENOMEM;
    return dg_buf_append(b, ":", 1);
}

/* Decimal digits of v into the end of tmp[24]; returns the start. */
static char *u64_digits(uint64_t v, char *end)
{
    char *p = end;
    do { *--p = (char)('0' + v % 10); v /= 10; } while (v);
    return p;
}

int dg_jw_u64(dg_buf_t *b, uint64_t v)
{
    char tmp[24], *e = tmp + sizeof tmp, *p = u64_digits(v, e);
    return dg_buf_append(b, p, (size_t)(e - p));
}

int dg_jw_i64(dg_buf_t *b, int64_t v)
{
    char tmp[24], *e = tmp + sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *p = u64_digits(u, e);
    if (v < 0) *--p = '-';
    return dg_buf_append(b, p, (size_t)(e - p));
}

static const double dg__jw_pow10[18] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
    1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
};

/* Fast path (see file header). Writes into out (>= 48 bytes); length or 0. */
static size_t double_fast(double v, char *out)
{
    double a = fabs(v);
    if (!(a < 9007199254740992.0)) return 0;         /* 2^53 */
    for (int k = 0; k <= 17; k++) {
        double x = a * dg__jw_pow10[k];
        if (!(x < 9007199254740992.0)) return 0;
        double r = nearbyint(x);
        if (r / dg__jw_pow10[k] != a) continue;
        uint64_t u = (uint64_t)r;
        char tmp[24], *e = tmp + sizeof tmp, *p = u64_digits(u, e);
        size_t nd = (size_t)(e - p);
        char *o = out;
        if (signbit(v)) *o++ = '-';
        if (k == 0) {
            memcpy(o, p, nd); o += nd;
        } else if (nd > (size_t)k) {                 /* 123.45 */
            memcpy(o, p, nd - (size_t)k); o += nd - (size_t)k;
            *o++ = '.';
            memcpy(o, p + nd - (size_t)k, (size_t)k); o += k;
        } else {                                     /* 0.00123 */
            *o++ = '0'; *o++ = '.';
            for (size_t z = nd; z < (size_t)k; z++) *o++ = '0';
            memcpy(o, p, nd); o += nd;
        }
        return (size_t)(o - out);
    }
    return 0;
}

int dg_jw_double(dg_buf_t *b, double v)
{
    if (!isfinite(v)) return dg_buf_append(b, "null", 4);
    char tmp[48];
    size_t n = double_fast(v, tmp);
    if (n) return dg_buf_append(b, tmp, n);
    static const char *const fmts[] = { "%.15g", "%.16g", "%.17g" };
    int w = 0;
    for (int i = 0; i < 3; i++) {
        w = snprintf(tmp, sizeof tmp, fmts[i], v);
        if (w <= 0 || (size_t)w >= sizeof tmp) return -EINVAL;   /* cannot happen */
        if (i == 2 || strtod(tmp, NULL) == v) break;
    }
    return dg_buf_append(b, tmp, (size_t)w);
}
