/* jsonw.h - small JSON writer into a dg_buf_t (for acks, errors, REST bodies).
 *
 * Helpers append to the buffer; callers handle commas themselves or use
 * the dg_jw_key() helper that prefixes a comma when `first` is false.
 * Return 0 or -ENOMEM.
 */
#ifndef DG_JSONW_H
#define DG_JSONW_H

#include <stddef.h>
#include <stdint.h>
#include "../core/buf.h"

/* Append a JSON string literal with quotes, escaping ", \, control chars;
 * invalid UTF-8 bytes are replaced by U+FFFD. */
int dg_jw_str(dg_buf_t *b, const char *s, size_t n);
/* Append `"key":` preceded by ',' unless *first; clears *first. */
int dg_jw_key(dg_buf_t *b, int *first, const char *key);
int dg_jw_u64(dg_buf_t *b, uint64_t v);
int dg_jw_i64(dg_buf_t *b, int64_t v);
/* Shortest round-trip representation ("%.17g" fallback); non-finite -> null. */
int dg_jw_double(dg_buf_t *b, double v);

#endif
