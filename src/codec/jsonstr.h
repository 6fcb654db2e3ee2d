/* jsonstr.h - JSON string content: strict validation and unescaping. */
#ifndef DG_JSONSTR_H
#define DG_JSONSTR_H

#include <stddef.h>
#include <stdint.h>

/* Check JSON string content s[0..n) (between the quotes): valid escapes, no
 * raw control characters, valid UTF-8, surrogate escapes only in pairs.
 * Returns 0 (valid, no escapes), 1 (valid, has escapes) or -1 (invalid;
 * *bad = offset of the offending byte). */
int dg_json_str_check(const unsigned char *s, size_t n, size_t *bad);

/* Unescape string content s[0..n) that dg_json_str_check() accepted into
 * out[0..cap) (UTF-8, not NUL-terminated). The result is never longer than
 * the input. Returns its length, or -1 when it does not fit. */
long dg_json_str_unescape(const char *s, size_t n, char *out, size_t cap);

#endif
