/* jsmn_util.h - the jsmn token helpers every jsmn user needs. Include after
 * <jsmn.h> (with the including file's JSMN_* options: jsmntok_t's layout
 * depends on JSMN_PARENT_LINKS, so these are static inline, per file). */
#ifndef DG_JSMN_UTIL_H
#define DG_JSMN_UTIL_H

#include <string.h>

/* Token t is the string s (compared raw, escapes not decoded). */
static inline int dg_jsmn_eq(const char *js, const jsmntok_t *t, const char *s)
{
    size_t n = strlen(s);
    return t->type == JSMN_STRING && (size_t)(t->end - t->start) == n && !memcmp(js + t->start, s, n);
}

/* Index after token i and all its children (by offsets: O(subtree)). */
static inline int dg_jsmn_skip(const jsmntok_t *t, int n, int i)
{
    int end = t[i].end;
    for (i++; i < n && t[i].start < end; i++) {}
    return i;
}

#endif
