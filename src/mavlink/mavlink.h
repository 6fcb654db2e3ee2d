/* mavlink.h - MAVLink v1/v2 framing codec (issue 11, first part only).
 *
 * Parses frames out of a byte buffer (several per datagram, resync after
 * garbage), checks the X.25 CRC with the per-message CRC_EXTRA from
 * common.xml, restores zero-trimmed v2 payloads to full length, and encodes
 * v2 frames (with trimming). Signing is NOT implemented: a signed frame
 * (incompat flag 0x01) is reported as DG_MAV_SIGNED_UNSUPPORTED.
 */
#ifndef DG_MAVLINK_H
#define DG_MAVLINK_H

#include <stddef.h>
#include <stdint.h>

#define DG_MAV_STX_V1 0xFE
#define DG_MAV_STX_V2 0xFD
#define DG_MAV_MAX_PAYLOAD 255
#define DG_MAV_IFLAG_SIGNED 0x01

typedef struct dg_mav_frame {
    int version;            /* 1 or 2 */
    uint8_t incompat, compat, seq, sysid, compid;
    uint32_t msgid;
    uint8_t len;            /* wire length (maybe trimmed) */
    uint8_t payload[DG_MAV_MAX_PAYLOAD]; /* zero-extended to 255 bytes */
} dg_mav_frame_t;

typedef enum {
    DG_MAV_OK = 0,
    DG_MAV_NEED_MORE,       /* truncated: not enough bytes for the frame */
    DG_MAV_BAD_CRC,
    DG_MAV_UNKNOWN_MSG,     /* CRC_EXTRA unknown: CRC cannot be checked */
    DG_MAV_BAD_INCOMPAT,    /* unknown incompat flag bits */
    DG_MAV_SIGNED_UNSUPPORTED,
} dg_mav_rc_t;

uint16_t dg_mav_crc(const uint8_t *p, size_t n, uint16_t crc);
/* CRC_EXTRA and minimum (v1 / base) payload length; -1 if msgid unknown. */
int dg_mav_crc_extra(uint32_t msgid, uint8_t *min_len);

/* Decode one frame at buf[0] (which must be an STX byte). On DG_MAV_OK and on
 * errors other than NEED_MORE, *used is the frame length. */
dg_mav_rc_t dg_mav_decode(const uint8_t *buf, size_t n, dg_mav_frame_t *f, size_t *used);

/* Scan buf for frames: calls cb for each valid frame; skips garbage one byte
 * at a time after a bad or truncated frame (resync: the buffer is a whole
 * datagram, so a frame that does not fit is garbage). Returns the number of valid frames;
 * *bad counts rejected frames/bytes-runs. */
typedef void (*dg_mav_frame_cb)(const dg_mav_frame_t *f, void *ud);
int dg_mav_scan(const uint8_t *buf, size_t n, dg_mav_frame_cb cb, void *ud, unsigned *bad);

/* Encode a v2 frame (unsigned, payload trimmed of trailing zeros, at least 1
 * byte). out must hold 12 + len bytes. Returns the frame length, -1 if msgid
 * unknown or len > 255. */
int dg_mav_encode_v2(uint8_t *out, uint8_t seq, uint8_t sysid, uint8_t compid,
                     uint32_t msgid, const uint8_t *payload, size_t len);


/* ---- message fields (from a decoded, zero-extended payload) ---- */
typedef struct { uint32_t custom_mode; uint8_t type, autopilot, base_mode, system_status, mavlink_version; } dg_mav_heartbeat_t;
typedef struct { uint32_t time_boot_ms; int32_t lat, lon, alt, relative_alt; int16_t vx, vy, vz; uint16_t hdg; } dg_mav_gpi_t;
typedef struct { uint16_t command; uint8_t result; } dg_mav_command_ack_t;
typedef struct { float param[7]; uint16_t command; uint8_t target_system, target_component, confirmation; } dg_mav_command_long_t;

#define DG_MAV_MSG_HEARTBEAT 0
#define DG_MAV_MSG_GLOBAL_POSITION_INT 33
#define DG_MAV_MSG_COMMAND_LONG 76
#define DG_MAV_MSG_COMMAND_ACK 77

void dg_mav_get_heartbeat(const dg_mav_frame_t *f, dg_mav_heartbeat_t *m);
void dg_mav_get_gpi(const dg_mav_frame_t *f, dg_mav_gpi_t *m);
void dg_mav_get_command_ack(const dg_mav_frame_t *f, dg_mav_command_ack_t *m);
/* Writes the 33-byte COMMAND_LONG payload (wire order) into p. */
void dg_mav_put_command_long(uint8_t p[33], const dg_mav_command_long_t *m);

#endif
