/* jsonstr.c - JSON string content (RFC 8259 section 7): strict check and
 * unescape, shared by every JSON reader (telemetry frames, command bodies).
 *
 * Check: valid escapes only, no raw control characters, UTF-8 per RFC 3629
 * (no overlongs, no surrogates, <= U+10FFFF), \uD800-\uDFFF only as pairs.
 * An ASCII fast path looks at 8 bytes at a time. Pure, thread-safe.
 */
#include "jsonstr.h"

#include "../core/strutil.h"
#include "../core/utf8.h"

#include <string.h>

/* Bytes allowed verbatim inside a string: >= 0x20, ASCII, not '"' or '\\'.
 * 0 = needs a closer look (control, quote, backslash, non-ASCII). */
static const unsigned char dg__str_plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* '"' */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,   /* '\\' */
    R16(1), R16(1),
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
#undef R16
};

/* Four hex digits at s -> *u. 0 or -1. */
static int hex4(const unsigned char *s, unsigned *u)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = dg_hexval(s[i]);
        if (h < 0) return -1;
        v = v << 4 | (unsigned)h;
    }
    *u = v;
    return 0;
}

/* Check JSON string content s[0..n) (between the quotes).
 * Returns 0 (no escapes), 1 (has escapes) or -1 (invalid; *bad = offset). */
int dg_json_str_check(const unsigned char *s, size_t n, size_t *bad)
{
    int esc = 0;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time (SWAR) while none needs a look:
         * no byte < 0x20, no '"', no '\\', no byte >= 0x80 */
        while (n - i >= 8) {
            uint64_t x;
            memcpy(&x, s + i, 8);
            const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
            uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
            uint64_t special = ((x - ones * 0x20) | (q - ones) | (b - ones) | x) & high;
            if (special) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned char c = s[i];
        if (dg__str_plain[c]) { i++; continue; }
        if (c == '\\') {
            esc = 1;
            if (i + 1 >= n) goto bad;
            switch (s[i + 1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                i += 2;
                continue;
            case 'u': {
                unsigned u, lo;
                if (n - i < 6 || hex4(s + i + 2, &u)) goto bad;
                if (u >= 0xDC00 && u <= 0xDFFF) goto bad;          /* lone low surrogate */
                if (u >= 0xD800 && u <= 0xDBFF) {                   /* needs a low one next */
                    if (n - i < 12 || s[i + 6] != '\\' || s[i + 7] != 'u' ||
                        hex4(s + i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        goto bad;
                    i += 12;
                } else {
                    i += 6;
                }
                continue;
            }
            default:
                goto bad;
            }
        }
        if (c < 0x80) goto bad;          /* control character or raw '"' */
        int len = dg_utf8_seq(s + i, n - i);            /* RFC 3629 */
        if (len < 0) goto bad;
        i += (size_t)len;
    }
    return esc;
bad:
    *bad = i;
    return -1;
}

/* Unescape validated string content s[0..n) into out[0..cap).
 * Returns the length, or -1 when it does not fit. */
long dg_json_str_unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0, i = 0;
    while (i < n) {
        const char *bs = memchr(s + i, '\\', n - i);
        size_t run = bs ? (size_t)(bs - (s + i)) : n - i;
        if (run > cap - o) return -1;
        memcpy(out + o, s + i, run);
        o += run;
        i += run;
        if (i >= n) break;
        char c = s[i + 1];
        i += 2;
        switch (c) {
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': {
            unsigned cp = 0, lo = 0xDC00;
            hex4((const unsigned char *)s + i, &cp);
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {         /* validated: a low surrogate follows */
                hex4((const unsigned char *)s + i + 2, &lo);
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            char u8[4];
            size_t k;
            if (cp < 0x80)       { u8[0] = (char)cp; k = 1; }
            else if (cp < 0x800) { u8[0] = (char)(0xC0 | cp >> 6); u8[1] = (char)(0x80 | (cp & 0x3F)); k = 2; }
            else if (cp < 0x10000) {
                u8[0] = (char)(0xE0 | cp >> 12); u8[1] = (char)(0x80 | (cp >> 6 & 0x3F));
                u8[2] = (char)(0x80 | (cp & 0x3F)); k = 3;
            } else {
                u8[0] = (char)(0xF0 | cp >> 18); u8[1] = (char)(0x80 | (cp >> 12 & 0x3F));
                u8[2] = (char)(0x80 | (cp >> 6 & 0x3F)); u8[3] = (char)(0x80 | (cp & 0x3F)); k = 4;
            }
            if (k > cap - o) return -1;
            memcpy(out + o, u8, k);
            o += k;
            continue;
        }
        default: break;                                  /* '"', '\\', '/' */
        }
        if (o >= cap) return -1;
        out[o++] = c;
    }
    return (long)o;
}

