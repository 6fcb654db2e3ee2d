/* number.h - strict JSON number parsing, fast.
 *
 * The common telemetry case (<= 19 significant digits, small exponent) is
 * converted exactly without strtod (Clinger's fast path); everything else
 * falls back to strtod on a NUL-terminated copy. */
#ifndef DG_NUMBER_H
#define DG_NUMBER_H

#include <stddef.h>
#include <stdint.h>

/* Parse s[0..n) as a complete JSON number (RFC 8259 grammar; no leading '+',
 * no leading zeros, no hex, no inf/nan). 0 on success, -1 otherwise. */
int dg_parse_double(const char *s, size_t n, double *out);
/* 1 when s[0..n) matches the JSON number grammar exactly, else 0. Grammar
 * only (no conversion, no length limit): used to validate numbers in fields
 * the caller does not read. */
int dg_number_valid(const char *s, size_t n);
/* Parse a JSON integer in [0, 2^64-1] (no fraction/exponent). 0 or -1. */
int dg_parse_u64(const char *s, size_t n, uint64_t *out);
/* Parse a JSON integer in int64 range (no fraction/exponent). 0 or -1. */
int dg_parse_i64(const char *s, size_t n, int64_t *out);
/* Greedy forms for a parser that is already at a number inside a larger
 * text (json_fast.c): parse the number starting at s, stop at the first
 * byte that cannot continue it (or at end) and return that position; NULL
 * when s does not start with a valid number of the type. The caller must
 * check the byte at the returned position: when it is one of 0-9 . e E + -
 * the whole run is not a number ("1.2.3", "01", "1e5e5"; json_fast.c
 * accepts only whitespace, ',' or '}' there). Same values as the dg_parse_*
 * functions on the same bytes. */
const char *dg_scan_double(const char *s, const char *end, double *out);
const char *dg_scan_u64(const char *s, const char *end, uint64_t *out);
const char *dg_scan_i64(const char *s, const char *end, int64_t *out);

#endif
