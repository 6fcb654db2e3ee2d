/* utf8.h - the one UTF-8 validator (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), used by WebSocket text frames, JSON strings, the
 * JSON writer and record validation. Pure functions, any thread. */
#ifndef DG_UTF8_H
#define DG_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Incremental validation (Hoehrmann-style DFA). state starts at
 * DG_UTF8_ACCEPT. Returns the new state: DG_UTF8_ACCEPT (complete code points
 * so far), DG_UTF8_REJECT (invalid; sticky), or another value (in the middle
 * of a code point). */
#define DG_UTF8_ACCEPT 0
#define DG_UTF8_REJECT 1
uint32_t dg_utf8_update(uint32_t state, const uint8_t *p, size_t n);

/* s[0..n) is complete, valid UTF-8. */
bool dg_utf8_valid(const void *s, size_t n);

/* The sequence starting at s[0] (n >= 1, s[0] >= 0x80): its length (2-4)
 * when valid, else minus the length of its maximal ill-formed subpart
 * (Unicode 15 section 3.9; -1 .. -3), which a writer replaces by one U+FFFD. */
int dg_utf8_seq(const unsigned char *s, size_t n);

#endif
