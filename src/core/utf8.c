/* utf8.c - UTF-8 validation (see utf8.h): incremental for WebSocket text
 * messages, whole buffers, and one sequence at a time for writers.
 *
 * Bjoern Hoehrmann's DFA ("Flexible and Economical UTF-8 Decoder",
 * http://bjoern.hoehrmann.de/utf-8/decoder/dfa/, MIT licence; table below
 * is his first version, states 0 = accept, 1 = reject, 2..8 = inside a code
 * point). The first 256 entries map a byte to a character class, the rest is
 * the transition table indexed by state*16 + class; its entries are the next
 * state premultiplied by 16 (so a step is one add and one load), converted
 * back at the boundary. It rejects overlong forms, UTF-16 surrogates
 * (U+D800..U+DFFF) and code points above U+10FFFF, byte by byte:
 * the state becomes REJECT at the first byte that cannot start or continue
 * a valid sequence, which is what WebSocket fail-fast needs.
 *
 * Fast path: while the state is ACCEPT, 8 bytes are tested at once and
 * skipped when none has its top bit set (pure ASCII, the usual case for JSON
 * telemetry).
 *
 * Pure function, any thread. REJECT is sticky.
 */
#include "utf8.h"

#include <string.h>

static const uint8_t utf8d[] = {
    /* byte -> character class */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 00..1f */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 20..3f */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 40..5f */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 60..7f */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9, /* 80..9f */
    7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7, /* a0..bf */
    8,8,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2, /* c0..df */
    10,3,3,3,3,3,3,3,3,3,3,3,3,4,3,3,                                 /* e0..ef */
    11,6,6,6,5,8,8,8,8,8,8,8,8,8,8,8,                                 /* f0..ff */
    /* state*16 + class -> next state*16 (premultiplied: one add per byte) */
    0,16,32,48,80,128,112,16,16,16,64,96,16,16,16,16, /* s0 accept */
    16,16,16,16,16,16,16,16,16,16,16,16,16,16,16,16, /* s1 reject */
    16,0,16,16,16,16,16,0,16,0,16,16,16,16,16,16,    /* s2 one continuation byte left */
    16,32,16,16,16,16,16,32,16,32,16,16,16,16,16,16, /* s3 two left */
    16,16,16,16,16,16,16,32,16,16,16,16,16,16,16,16, /* s4 after e0: a0..bf (no overlong) */
    16,32,16,16,16,16,16,16,16,32,16,16,16,16,16,16, /* s5 after ed: 80..9f (no surrogate) */
    16,16,16,16,16,16,16,48,16,48,16,16,16,16,16,16, /* s6 after f0: 90..bf (no overlong) */
    16,48,16,16,16,16,16,48,16,48,16,16,16,16,16,16, /* s7 three left */
    16,48,16,16,16,16,16,16,16,16,16,16,16,16,16,16, /* s8 after f4: 80..8f (<= U+10FFFF) */
};

#define ASCII_MASK 0x8080808080808080ull

uint32_t dg_utf8_update(uint32_t state, const uint8_t *p, size_t n)
{
    const uint8_t *trans = utf8d + 256;
    uint32_t s16;   /* state * 16, as stored in the table */
    size_t i = 0;

    if (state > 8) return DG_UTF8_REJECT;  /* not a state of this DFA */
    s16 = state * 16;
    while (i < n) {
        if (s16 == DG_UTF8_ACCEPT) {
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & ASCII_MASK) break;
                i += 8;
            }
            /* skip ASCII bytes of the tail or before the first high byte */
            while (i < n && p[i] < 0x80) i++;
            if (i == n) break;
        }
        /* inside a code point (or at its first byte): plain DFA steps */
        do {
            s16 = trans[s16 + utf8d[p[i++]]];
        } while (s16 > DG_UTF8_REJECT * 16 && i < n);
        if (s16 == DG_UTF8_REJECT * 16) break;
    }
    return s16 / 16;
}

bool dg_utf8_valid(const void *s, size_t n)
{
    return dg_utf8_update(DG_UTF8_ACCEPT, s, n) == DG_UTF8_ACCEPT;
}

int dg_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    int len;
    if (c >= 0xC2 && c <= 0xDF)      len = 2;
    else if (c == 0xE0)              { len = 3; lo = 0xA0; }
    else if (c == 0xED)              { len = 3; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0)              { len = 4; lo = 0x90; }
    else if (c == 0xF4)              { len = 4; hi = 0x8F; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else return -1;
    int i = 1;
    for (; i < len; i++) {
        if ((size_t)i >= n) return -i;
        unsigned char b = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) return -i;
    }
    return len;
}
