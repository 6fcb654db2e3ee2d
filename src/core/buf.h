/* buf.h - growable byte buffer with explicit capacity and O(1) consumption.
 *
 * Owned by whoever embeds it. A zeroed dg_buf_t is a valid empty buffer that
 * holds no memory; dg_buf_free() returns it to that state. Not thread-safe.
 *
 * `data` always points at the first live byte, so readers use data/len as
 * before. Consuming from the front (an output buffer drained by partial
 * writes) only advances `data` (`head` counts the bytes skipped before it):
 * no memmove per write. The dead prefix is reclaimed when the buffer empties
 * (free) or, when room is needed, by one memmove of the live bytes if they are
 * no more than the dead prefix (so each byte is moved O(1) times amortised),
 * else by growing. Whoever takes ownership of `data` (free()) must only do so
 * when head == 0 (never consumed).
 */
#ifndef DG_BUF_H
#define DG_BUF_H

#include <stddef.h>
#include <stdarg.h>

typedef struct dg_buf {
    char  *data;  /* first live byte */
    size_t len;   /* live bytes */
    size_t cap;   /* bytes allocated from data on */
    size_t head;  /* consumed bytes before data (allocation = data - head) */
} dg_buf_t;

/* Ensure room for `extra` more bytes. 0 or -ENOMEM. */
int  dg_buf_reserve(dg_buf_t *b, size_t extra);
/* Append bytes. 0 or -ENOMEM. */
int  dg_buf_append(dg_buf_t *b, const void *p, size_t n);
static inline int dg_buf_puts(dg_buf_t *b, const char *s);
/* Append formatted text (vsnprintf). 0 or -ENOMEM. */
int  dg_buf_printf(dg_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes: O(1) (advances data; see above). */
void dg_buf_consume(dg_buf_t *b, size_t n);
/* Release memory; the buffer is empty and holds nothing afterwards. */
void dg_buf_free(dg_buf_t *b);

#include <string.h>
static inline int dg_buf_puts(dg_buf_t *b, const char *s) { return dg_buf_append(b, s, strlen(s)); }

#endif
