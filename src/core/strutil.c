/* strutil.c - see strutil.h. */
#include "strutil.h"

#include <string.h>

long dg_percent_decode(const char *s, size_t n, char *out, size_t cap, unsigned flags)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '+' && (flags & DG_PCT_PLUS)) {
            ch = ' ';
        } else if (ch == '%') {
            int h = i + 2 < n ? dg_hexval(s[i + 1]) : -1, l = i + 2 < n ? dg_hexval(s[i + 2]) : -1;
            if (h >= 0 && l >= 0) {
                ch = h * 16 + l;
                i += 2;
            } else if (flags & DG_PCT_STRICT) {
                return -1;
            }
        }
        if (o + 1 >= cap) return -1;
        out[o++] = (char)ch;
    }
    if (cap == 0) return -1;
    out[o] = '\0';
    return (long)o;
}

int dg_parse_duration_ms(const char *s, size_t n, int64_t bare_unit_ms, int64_t *out)
{
    size_t i = 0;
    int64_t v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (v > INT64_MAX / 10 - 9) return -1;
        v = v * 10 + (s[i++] - '0');
    }
    if (i == 0) return -1;
    size_t ul = n - i;
    const char *u = s + i;
    int64_t mul;
    if (ul == 0) {
        if (bare_unit_ms == 0) { if (v != 0) return -1; mul = 1; }
        else mul = bare_unit_ms;
    }
    else if (ul == 2 && !memcmp(u, "ms", 2)) mul = 1;
    else if (ul == 1 && *u == 's') mul = 1000;
    else if (ul == 1 && *u == 'm') mul = 60000;
    else if (ul == 1 && *u == 'h') mul = 3600000;
    else if (ul == 1 && *u == 'd') mul = 86400000;
    else if (ul == 1 && *u == 'w') mul = 7 * INT64_C(86400000);
    else return -1;
    if (v > INT64_MAX / mul) return -1;
    *out = v * mul;
    return 0;
}
