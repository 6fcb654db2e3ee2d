/* signing.c - see signing.h. SHA-256 from OpenSSL libcrypto. */
#include "signing.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>
#include <time.h>

#include "../core/strutil.h"

#define DG_MAV_EPOCH_2015 1420070400ull   /* 2015-01-01T00:00:00Z */

uint64_t dg_mav_sign_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_sec > DG_MAV_EPOCH_2015 ? (uint64_t)ts.tv_sec - DG_MAV_EPOCH_2015 : 0;
    return s * 100000ull + (uint64_t)ts.tv_nsec / 10000ull;
}

static void sig48(const uint8_t *frame, size_t signed_len, const uint8_t key[DG_MAV_KEY_LEN], uint8_t out[6])
{
    uint8_t buf[DG_MAV_KEY_LEN + 12 + DG_MAV_MAX_PAYLOAD + 7], md[SHA256_DIGEST_LENGTH];
    if (signed_len > sizeof buf - DG_MAV_KEY_LEN) { memset(out, 0, 6); return; }
    memcpy(buf, key, DG_MAV_KEY_LEN);
    memcpy(buf + DG_MAV_KEY_LEN, frame, signed_len);
    SHA256(buf, DG_MAV_KEY_LEN + signed_len, md);
    OPENSSL_cleanse(buf, DG_MAV_KEY_LEN);
    memcpy(out, md, 6);
}

bool dg_mav_sig_ok(const dg_mav_frame_t *f, const uint8_t key[DG_MAV_KEY_LEN])
{
    if (!f->is_signed || !f->raw || f->raw_len < 13 + 12) return false;
    uint8_t s[6];
    sig48(f->raw, f->raw_len - 6, key, s);
    /* not secret-dependent timing worth hiding: the signature is public on the wire */
    return memcmp(s, f->raw + f->raw_len - 6, 6) == 0;
}

int dg_mav_encode_v2_signed(uint8_t *out, uint8_t seq, uint8_t sysid, uint8_t compid, uint32_t msgid,
                            const uint8_t *payload, size_t len, const uint8_t key[DG_MAV_KEY_LEN],
                            uint8_t link_id, uint64_t ts)
{
    int n = dg_mav_encode_v2(out, seq, sysid, compid, msgid, payload, len);
    if (n < 0) return -1;
    /* the incompat flag is covered by the CRC: set it and recompute */
    out[2] |= DG_MAV_IFLAG_SIGNED;
    int extra = dg_mav_crc_extra(msgid, NULL);
    uint8_t l = out[1], e = (uint8_t)extra;
    uint16_t crc = dg_mav_crc(out + 1, 9 + l, 0xffff);
    crc = dg_mav_crc(&e, 1, crc);
    out[10 + l] = (uint8_t)crc; out[11 + l] = (uint8_t)(crc >> 8);
    uint8_t *sg = out + n;
    sg[0] = link_id;
    for (int i = 0; i < 6; i++) sg[1 + i] = (uint8_t)(ts >> (8 * i));
    sig48(out, (size_t)n + 7, key, sg + 7);
    return n + 13;
}

int dg_mav_key_parse(const char *hex, size_t n, uint8_t key[DG_MAV_KEY_LEN])
{
    if (n != 2 * DG_MAV_KEY_LEN) return -1;
    for (size_t i = 0; i < DG_MAV_KEY_LEN; i++) {
        int hi = dg_hexval(hex[2 * i]), lo = dg_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
