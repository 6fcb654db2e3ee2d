/* signing.h - MAVLink 2 message signing (mavlink.io "Message Signing"):
 *
 *   signature = SHA-256(secret_key[32] + header + payload + CRC + link_id
 *                       + timestamp[6])[0..6)
 *
 * The 13-byte block after the CRC is link_id (1), timestamp (6, little
 * endian, 10 us units since 2015-01-01T00:00:00Z), signature (6). Replay
 * protection: per (system, component, link) stream a timestamp must be
 * higher than the last accepted one; a new stream must not be more than
 * 60 s older than the newest timestamp seen.
 */
#ifndef DG_MAVLINK_SIGNING_H
#define DG_MAVLINK_SIGNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mavlink.h"

#define DG_MAV_KEY_LEN 32
#define DG_MAV_REPLAY_WINDOW (60ull * 100000ull)   /* 60 s in 10 us units */

/* Now in signing units (10 us since 2015-01-01). */
uint64_t dg_mav_sign_now(void);
/* The frame (f->raw) is signed with key. */
bool dg_mav_sig_ok(const dg_mav_frame_t *f, const uint8_t key[DG_MAV_KEY_LEN]);
/* Encode a signed v2 frame (as dg_mav_encode_v2, plus the 13-byte block).
 * out must hold 25 + len bytes. Length or -1. */
int dg_mav_encode_v2_signed(uint8_t *out, uint8_t seq, uint8_t sysid, uint8_t compid, uint32_t msgid,
                            const uint8_t *payload, size_t len, const uint8_t key[DG_MAV_KEY_LEN],
                            uint8_t link_id, uint64_t ts);
/* 64 hex characters -> key. 0 or -1. */
int dg_mav_key_parse(const char *hex, size_t n, uint8_t key[DG_MAV_KEY_LEN]);

#endif
