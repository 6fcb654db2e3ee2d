/* frame.c - RFC 6455 frame level: header parsing and writing, unmasking,
 * close-code validation, and the handshake's Sec-WebSocket-Accept value.
 *
 * Every function here is pure (no state, no allocation) and may be called
 * from any thread.
 *
 * Frame header layout (section 5.2):
 *
 *   byte 0          byte 1            then                      then
 *   +-+-+-+-+------+-+-------------+ +-----------------------+ +---------+
 *   |F|R|R|R|opcode|M| payload len | | extended length:      | | mask    |
 *   |I|S|S|S|  4   |A|     7       | |  len7 == 126: 16 bit  | | 4 bytes |
 *   |N|1|2|3|      |S|             | |  len7 == 127: 64 bit  | | if MASK |
 *   +-+-+-+-+------+-+-------------+ +-----------------------+ +---------+
 *
 * so a header is 2..14 bytes. Lengths are big-endian. Non-minimal length
 * encodings (e.g. 5 written in the 16-bit form) are accepted, as RFC 6455
 * only says "the minimal number of bytes MUST be used" for senders and
 * common servers accept them; a 64-bit length with its top bit set is
 * malformed.
 *
 * Limits: dg_ws_accept_key refuses keys longer than 128 bytes (a valid key
 * is 24 characters); it does not check that the key is well-formed base64
 * of 16 bytes, which is the HTTP layer's job.
 */
#include "ws.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

int dg_ws_parse_header(const uint8_t *p, size_t n, dg_ws_frame_t *f)
{
    if (n < 2) return DG_WS_INCOMPLETE;

    uint8_t len7 = p[1] & 0x7f;
    uint8_t masked = p[1] >> 7;
    size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    if (n < need) return DG_WS_INCOMPLETE;

    uint64_t len = len7;
    size_t off = 2;
    if (len7 == 126) {
        len = ((uint64_t)p[2] << 8) | p[3];
        off = 4;
    } else if (len7 == 127) {
        if (p[2] & 0x80) return -1;
        len = 0;
        for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
        off = 10;
    }

    f->fin = p[0] >> 7;
    f->rsv = (p[0] >> 4) & 0x7;
    f->opcode = p[0] & 0x0f;
    f->masked = masked;
    if (masked) memcpy(f->mask, p + off, 4);
    else memset(f->mask, 0, 4);
    f->hdr_len = (uint8_t)need;
    f->len = len;
    return (int)need;
}

/* XOR 8 bytes at a time with the mask rotated to `offset` and repeated
 * twice (the mask period, 4, divides 8, so the rotation holds for the whole
 * run). memcpy loads and stores compile to plain unaligned moves on x86-64
 * and arm64, so no alignment prologue is needed; the 32-byte inner loop is
 * a shape compilers vectorise at -O2. */
void dg_ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    /* the key for 8 bytes from offset, built in a register: 8 byte stores
     * then one 8-byte load stalled on store forwarding (most of this
     * function's time with ~200-byte frames, perf) */
    uint64_t m = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (int k = 0; k < 8; k++) m = (m << 8) | mask[(offset + (uint64_t)k) & 3];
#else
    for (int k = 0; k < 8; k++) m |= (uint64_t)mask[(offset + (uint64_t)k) & 3] << (8 * k);
#endif
    uint8_t mk[8];
    memcpy(mk, &m, 8);   /* the same key as bytes, for the tail */

    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        w[0] ^= m; w[1] ^= m; w[2] ^= m; w[3] ^= m;
        memcpy(p + i, w, 32);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= m;
        memcpy(p + i, &w, 8);
    }
    for (size_t k = 0; i < n; i++, k++) p[i] ^= mk[k];
}

size_t dg_ws_write_header(uint8_t *out, int opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

bool dg_ws_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) ||
           (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_MAX 128

int dg_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    uint8_t buf[WS_KEY_MAX + sizeof(WS_GUID) - 1];
    uint8_t digest[SHA_DIGEST_LENGTH];

    if (!key || key_len == 0 || key_len > WS_KEY_MAX) return -1;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, WS_GUID, sizeof(WS_GUID) - 1);
    if (!SHA1(buf, key_len + sizeof(WS_GUID) - 1, digest)) return -1;
    /* 20 bytes -> 28 base64 characters + NUL. */
    if (EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH) != 28) return -1;
    return 0;
}
