/* mavlink.h - MAVLink v1/v2 framing codec and the fields of the messages the
 * gateway uses (issue 11).
 *
 * Parses frames out of a byte buffer (several per datagram, resync after
 * garbage), checks the X.25 CRC with the per-message CRC_EXTRA from
 * common.xml, restores zero-trimmed v2 payloads to full length, and encodes
 * v2 frames (with trimming). A signed frame (incompat flag 0x01) decodes with
 * its link id, timestamp and signature; checking it is signing.h's job.
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
    uint8_t is_signed;      /* incompat & DG_MAV_IFLAG_SIGNED */
    uint8_t link_id;        /* signed: the signature block */
    uint64_t sig_ts;        /* signed: 48-bit timestamp, 10 us units since 2015-01-01 */
    const uint8_t *raw;     /* the whole frame on the wire (valid during decode's caller / the scan callback) */
    size_t raw_len;
} dg_mav_frame_t;

typedef enum {
    DG_MAV_OK = 0,
    DG_MAV_NEED_MORE,       /* truncated: not enough bytes for the frame */
    DG_MAV_BAD_CRC,
    DG_MAV_UNKNOWN_MSG,     /* CRC_EXTRA unknown: CRC cannot be checked */
    DG_MAV_BAD_INCOMPAT,    /* unknown incompat flag bits */
    DG_MAV_SIGNED_UNSUPPORTED,  /* no longer returned: signed frames decode (is_signed) */
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

/* The same with the outcome of every rejected candidate counted by kind.
 * A frame of an unknown message (its CRC_EXTRA is not known, so its CRC
 * cannot be checked) is counted in `unknown` and skipped whole when it ends
 * the buffer or is followed by another STX; otherwise its STX is taken for
 * garbage (one byte skipped). */
typedef struct dg_mav_stats {
    unsigned ok, bad_crc, unknown, truncated, bad_incompat, signed_frames /* ok and signed */, garbage;
} dg_mav_stats_t;
int dg_mav_scan_stats(const uint8_t *buf, size_t n, dg_mav_frame_cb cb, void *ud, dg_mav_stats_t *st);

/* Encode a v2 frame (unsigned, payload trimmed of trailing zeros, at least 1
 * byte). out must hold 12 + len bytes. Returns the frame length, -1 if msgid
 * unknown or len > 255. */
int dg_mav_encode_v2(uint8_t *out, uint8_t seq, uint8_t sysid, uint8_t compid,
                     uint32_t msgid, const uint8_t *payload, size_t len);


/* ---- message fields (from a decoded, zero-extended payload) ----
 * Layouts: the table at the top of mavlink.c (common.xml; checked against
 * node-mavlink's generated definitions, tests/mavlink/layout.mjs). */
typedef struct { uint32_t custom_mode; uint8_t type, autopilot, base_mode, system_status, mavlink_version; } dg_mav_heartbeat_t;
typedef struct { uint16_t voltage_battery; int16_t current_battery; int8_t battery_remaining; uint16_t load; } dg_mav_sys_status_t;
typedef struct { uint64_t time_usec; int32_t lat, lon, alt; uint16_t eph, epv, vel, cog; uint8_t fix_type, satellites_visible; } dg_mav_gps_raw_t;
typedef struct { uint32_t time_boot_ms; float roll, pitch, yaw, rollspeed, pitchspeed, yawspeed; } dg_mav_attitude_t;
typedef struct { uint32_t time_boot_ms; int32_t lat, lon, alt, relative_alt; int16_t vx, vy, vz; uint16_t hdg; } dg_mav_gpi_t;
typedef struct { float airspeed, groundspeed, alt, climb; int16_t heading; uint16_t throttle; } dg_mav_vfr_hud_t;
typedef struct { int32_t current_consumed, energy_consumed; int16_t temperature; uint16_t voltages[10];
                 int16_t current_battery; uint8_t id, battery_function, type; int8_t battery_remaining; } dg_mav_battery_status_t;
typedef struct { int32_t lat, lon, alt; float x, y, z, q[4], approach_x, approach_y, approach_z; } dg_mav_home_position_t;
typedef struct { uint8_t severity; char text[51]; /* NUL-terminated */ } dg_mav_statustext_t;
typedef struct { uint16_t command; uint8_t result; uint8_t progress; int32_t result_param2;
                 uint8_t target_system, target_component; } dg_mav_command_ack_t;
typedef struct { float param[7]; uint16_t command; uint8_t target_system, target_component, confirmation; } dg_mav_command_long_t;
typedef struct { float param[4]; int32_t x, y; float z; uint16_t command;
                 uint8_t target_system, target_component, frame, current, autocontinue; } dg_mav_command_int_t;

#define DG_MAV_MSG_HEARTBEAT 0
#define DG_MAV_MSG_SYS_STATUS 1
#define DG_MAV_MSG_GPS_RAW_INT 24
#define DG_MAV_MSG_ATTITUDE 30
#define DG_MAV_MSG_GLOBAL_POSITION_INT 33
#define DG_MAV_MSG_VFR_HUD 74
#define DG_MAV_MSG_COMMAND_INT 75
#define DG_MAV_MSG_COMMAND_LONG 76
#define DG_MAV_MSG_COMMAND_ACK 77
#define DG_MAV_MSG_BATTERY_STATUS 147
#define DG_MAV_MSG_HOME_POSITION 242
#define DG_MAV_MSG_STATUSTEXT 253

void dg_mav_get_heartbeat(const dg_mav_frame_t *f, dg_mav_heartbeat_t *m);
void dg_mav_get_sys_status(const dg_mav_frame_t *f, dg_mav_sys_status_t *m);
void dg_mav_get_gps_raw(const dg_mav_frame_t *f, dg_mav_gps_raw_t *m);
void dg_mav_get_attitude(const dg_mav_frame_t *f, dg_mav_attitude_t *m);
void dg_mav_get_gpi(const dg_mav_frame_t *f, dg_mav_gpi_t *m);
void dg_mav_get_vfr_hud(const dg_mav_frame_t *f, dg_mav_vfr_hud_t *m);
void dg_mav_get_battery_status(const dg_mav_frame_t *f, dg_mav_battery_status_t *m);
void dg_mav_get_home_position(const dg_mav_frame_t *f, dg_mav_home_position_t *m);
void dg_mav_get_statustext(const dg_mav_frame_t *f, dg_mav_statustext_t *m);
void dg_mav_get_command_ack(const dg_mav_frame_t *f, dg_mav_command_ack_t *m);
void dg_mav_get_command_long(const dg_mav_frame_t *f, dg_mav_command_long_t *m);
void dg_mav_get_command_int(const dg_mav_frame_t *f, dg_mav_command_int_t *m);
/* Payload writers (wire order; the encoder trims trailing zeros). */
void dg_mav_put_heartbeat(uint8_t p[9], const dg_mav_heartbeat_t *m);
void dg_mav_put_command_long(uint8_t p[33], const dg_mav_command_long_t *m);
void dg_mav_put_command_int(uint8_t p[35], const dg_mav_command_int_t *m);
void dg_mav_put_command_ack(uint8_t p[10], const dg_mav_command_ack_t *m);

#endif
