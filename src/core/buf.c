/* buf.c - growable byte buffer (see buf.h). Any thread (the owner's). */
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Move the live bytes back to the start of the allocation. */
static void compact(dg_buf_t *b)
{
    if (!b->head) return;
    char *base = b->data - b->head;
    if (b->len) memmove(base, b->data, b->len);
    b->data = base;
    b->cap += b->head;
    b->head = 0;
}

int dg_buf_reserve(dg_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    /* cheap compaction: the live part is no bigger than the dead prefix */
    if (b->head && b->len <= b->head && b->cap + b->head - b->len >= extra) {
        compact(b);
        return 0;
    }
    compact(b);
    size_t need = b->len + extra;
    if (need < b->len) return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > ((size_t)-1) / 2) { cap = need; break; }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int dg_buf_append(dg_buf_t *b, const void *p, size_t n)
{
    if (n == 0) return 0;
    int rc = dg_buf_reserve(b, n);
    if (rc) return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int dg_buf_printf(dg_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) return -EINVAL;
        if ((size_t)n < room) { b->len += (size_t)n; return 0; }
        if (dg_buf_reserve(b, (size_t)n + 1)) return -ENOMEM;
    }
    return -ENOMEM;
}

void dg_buf_consume(dg_buf_t *b, size_t n)
{
    if (n >= b->len) n = b->len;
    b->data += n;
    b->len -= n;
    b->cap -= n;
    b->head += n;
    if (b->len == 0) {   /* empty: back to the start, O(1) */
        b->data -= b->head;
        b->cap += b->head;
        b->head = 0;
    }
}

void dg_buf_free(dg_buf_t *b)
{
    free(b->data ? b->data - b->head : NULL);
    b->data = NULL;
    b->len = b->cap = b->head = 0;
}
