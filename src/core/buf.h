/* buf.h - growable byte buffer with explicit capacity.
 *
 * Owned by whoever embeds it. A zeroed dg_buf_t is a valid empty buffer that
 * holds no memory; dg_buf_free() returns it to that state. Not thread-safe.
 */
#ifndef DG_BUF_H
#define DG_BUF_H

#include <stddef.h>
#include <stdarg.h>

typedef struct dg_buf {
    char  *data;
    size_t len;  /* bytes used */
    size_t cap;  /* bytes allocated */
} dg_buf_t;

/* Ensure room for `extra` more bytes. 0 or -ENOMEM. */
int  dg_buf_reserve(dg_buf_t *b, size_t extra);
/* Append bytes. 0 or -ENOMEM. */
int  dg_buf_append(dg_buf_t *b, const void *p, size_t n);
static inline int dg_buf_puts(dg_buf_t *b, const char *s);
/* Append formatted text (vsnprintf). 0 or -ENOMEM. */
int  dg_buf_printf(dg_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (memmove of the rest). */
void dg_buf_consume(dg_buf_t *b, size_t n);
/* Release memory; the buffer is empty and holds nothing afterwards. */
void dg_buf_free(dg_buf_t *b);

#include <string.h>
static inline int dg_buf_puts(dg_buf_t *b, const char *s) { return dg_buf_append(b, s, strlen(s)); }

#endif
