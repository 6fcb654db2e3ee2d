/* strutil.h - small string primitives shared by every layer: hex digits,
 * percent-decoding (URL query strings, store URIs) and durations ("500ms",
 * "30s", "5m", ...). One copy each. Pure functions, any thread. */
#ifndef DG_STRUTIL_H
#define DG_STRUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Value of a hex digit (0-9 a-f A-F), or -1. */
static inline int dg_hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

#define DG_PCT_PLUS   1u   /* '+' means ' ' (application/x-www-form-urlencoded) */
#define DG_PCT_STRICT 2u   /* a '%' without two hex digits is an error (else kept as is) */

/* Percent-decode s[0..n) into out[0..cap), NUL-terminated. Returns the
 * decoded length, or -1 when it does not fit (or, with DG_PCT_STRICT, on a
 * bad escape). NUL bytes (%00) are decoded like any other byte: callers
 * that need C strings check the length against strlen(out). */
long dg_percent_decode(const char *s, size_t n, char *out, size_t cap, unsigned flags);

/* A duration "<digits>[unit]", unit ms, s, m, h, d or w, into milliseconds.
 * Without a unit the number counts bare_unit_ms each; bare_unit_ms == 0
 * allows only "0". 0, or -1 (syntax, overflow). */
int dg_parse_duration_ms(const char *s, size_t n, int64_t bare_unit_ms, int64_t *out);

#endif
