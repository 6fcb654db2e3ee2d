/* hash.h - the one FNV-1a string hash (32 and 64 bit) every table uses.
 *
 * Not cryptographic: tables keyed by client-chosen strings (drone ids,
 * command ids) must bound their chains by other means (growth, caps).
 * Header-only, pure, thread-safe.
 */
#ifndef DG_HASH_H
#define DG_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a, 32 bit, over s[0..n). */
static inline uint32_t dg_fnv1a32(const void *s, size_t n)
{
    const unsigned char *p = s;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 16777619u; }
    return h;
}

/* FNV-1a, 32 bit, over a NUL-terminated string (at most max bytes). */
static inline uint32_t dg_fnv1a32_str(const char *s, size_t max)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < max && s[i]; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
    return h;
}

/* FNV-1a, 64 bit, over s[0..n). */
static inline uint64_t dg_fnv1a64(const void *s, size_t n)
{
    const unsigned char *p = s;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ull; }
    return h;
}

#endif
