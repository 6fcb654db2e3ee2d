/* mavlink.c - MAVLink v1/v2 framing: see mavlink.h.
 *
 * Field layouts (wire order: sorted by type size, extensions last), from
 * common.xml, for the messages we know (msgid: CRC_EXTRA, base length):
 *   0 HEARTBEAT           50, 9:  u32 custom_mode, u8 type, autopilot,
 *                                 base_mode, system_status, mavlink_version
 *   1 SYS_STATUS         124, 31: u32 sensors x3, u16 load, u16 voltage_battery,
 *                                 i16 current_battery, u16 drop_rate_comm,
 *                                 errors_comm, errors_count1..4, i8 battery_remaining
 *  24 GPS_RAW_INT         24, 30: u64 time_usec, i32 lat, lon, alt, u16 eph, epv,
 *                                 vel, cog, u8 fix_type, satellites_visible
 *  30 ATTITUDE            39, 28: u32 time_boot_ms, f32 roll, pitch, yaw,
 *                                 rollspeed, pitchspeed, yawspeed
 *  33 GLOBAL_POSITION_INT 104, 28: u32 time_boot_ms, i32 lat, lon, alt,
 *                                 relative_alt, i16 vx, vy, vz, u16 hdg
 *  74 VFR_HUD             20, 20: f32 airspeed, groundspeed, alt, climb,
 *                                 i16 heading, u16 throttle
 *  75 COMMAND_INT        158, 35: f32 param1..4, i32 x, y, f32 z, u16 command,
 *                                 u8 target_system, target_component, frame,
 *                                 current, autocontinue
 *  76 COMMAND_LONG       152, 33: f32 param1..7, u16 command, u8 target_system,
 *                                 target_component, confirmation
 *  77 COMMAND_ACK        143, 3:  u16 command, u8 result; extensions: u8 progress,
 *                                 i32 result_param2, u8 target_system,
 *                                 target_component (10 bytes in all)
 * 147 BATTERY_STATUS     154, 36: i32 current_consumed, energy_consumed,
 *                                 i16 temperature, u16 voltages[10],
 *                                 i16 current_battery, u8 id, battery_function,
 *                                 type, i8 battery_remaining
 * 242 HOME_POSITION      104, 52: i32 lat, lon, alt, f32 x, y, z, q[4],
 *                                 approach_x, approach_y, approach_z
 * 253 STATUSTEXT          83, 51: u8 severity, char text[50]
 * Extensions (after the base length) that we read: SYS_STATUS +12 (u32
 * sensors *_extended x3), GPS_RAW_INT +22, BATTERY_STATUS +18, HOME_POSITION
 * +8 (u64 time_usec), STATUSTEXT +3 (u16 id, u8 chunk_seq): not used.
 * CRC_EXTRA, offsets and base lengths were checked against node-mavlink 2.3 /
 * mavlink-mappings 1.0.21 (tests/mavlink/layout.mjs prints them).
 */
#include <string.h>

#include "mavlink/mavlink.h"

uint16_t dg_mav_crc(const uint8_t *p, size_t n, uint16_t crc)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t t = p[i] ^ (uint8_t)(crc & 0xff);
        t ^= (uint8_t)(t << 4);
        crc = (uint16_t)((crc >> 8) ^ ((uint16_t)t << 8) ^ ((uint16_t)t << 3) ^ (t >> 4));
    }
    return crc;
}

static const struct { uint32_t id; uint8_t extra, min_len; } known[] = {
    { 0, 50, 9 }, { 1, 124, 31 }, { 24, 24, 30 }, { 30, 39, 28 },
    { 33, 104, 28 }, { 74, 20, 20 }, { 75, 158, 35 }, { 76, 152, 33 },
    { 77, 143, 3 }, { 147, 154, 36 }, { 242, 104, 52 }, { 253, 83, 51 },
};

int dg_mav_crc_extra(uint32_t msgid, uint8_t *min_len)
{
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].id == msgid) {
            if (min_len) *min_len = known[i].min_len;
            return known[i].extra;
        }
    return -1;
}

dg_mav_rc_t dg_mav_decode(const uint8_t *b, size_t n, dg_mav_frame_t *f, size_t *used)
{
    size_t hdr, total;
    memset(f, 0, sizeof *f);
    if (n < 2) return DG_MAV_NEED_MORE;
    if (b[0] == DG_MAV_STX_V2) {
        hdr = 10;
        if (n < hdr) return DG_MAV_NEED_MORE;
        f->version = 2;
        f->len = b[1]; f->incompat = b[2]; f->compat = b[3]; f->seq = b[4];
        f->sysid = b[5]; f->compid = b[6];
        f->msgid = (uint32_t)b[7] | ((uint32_t)b[8] << 8) | ((uint32_t)b[9] << 16);
        total = hdr + f->len + 2 + ((f->incompat & DG_MAV_IFLAG_SIGNED) ? 13 : 0);
    } else if (b[0] == DG_MAV_STX_V1) {
        hdr = 6;
        if (n < hdr) return DG_MAV_NEED_MORE;
        f->version = 1;
        f->len = b[1]; f->seq = b[2]; f->sysid = b[3]; f->compid = b[4]; f->msgid = b[5];
        total = hdr + f->len + 2;
    } else {
        *used = 1;
        return DG_MAV_BAD_CRC;
    }
    if (n < total) return DG_MAV_NEED_MORE;
    *used = total;
    if (f->incompat & ~DG_MAV_IFLAG_SIGNED) return DG_MAV_BAD_INCOMPAT;
    int extra = dg_mav_crc_extra(f->msgid, NULL);
    if (extra < 0) return DG_MAV_UNKNOWN_MSG;
    uint16_t crc = dg_mav_crc(b + 1, hdr - 1 + f->len, 0xffff);
    uint8_t e = (uint8_t)extra;
    crc = dg_mav_crc(&e, 1, crc);
    uint16_t wire = (uint16_t)(b[hdr + f->len] | (b[hdr + f->len + 1] << 8));
    if (crc != wire) return DG_MAV_BAD_CRC;
    if (f->incompat & DG_MAV_IFLAG_SIGNED) {
        const uint8_t *sg = b + hdr + f->len + 2;
        f->is_signed = 1;
        f->link_id = sg[0];
        f->sig_ts = 0;
        for (int i = 5; i >= 0; i--) f->sig_ts = (f->sig_ts << 8) | sg[1 + i];
    }
    f->raw = b;
    f->raw_len = total;
    memcpy(f->payload, b + hdr, f->len); /* rest stays zero: un-trimming */
    return DG_MAV_OK;
}

int dg_mav_scan(const uint8_t *buf, size_t n, dg_mav_frame_cb cb, void *ud, unsigned *bad)
{
    int ok = 0;
    size_t i = 0;
    dg_mav_frame_t f;
    if (bad) *bad = 0;
    while (i < n) {
        if (buf[i] != DG_MAV_STX_V1 && buf[i] != DG_MAV_STX_V2) { i++; continue; }
        size_t used = 0;
        dg_mav_rc_t rc = dg_mav_decode(buf + i, n - i, &f, &used);
        if (rc == DG_MAV_OK) { if (cb) cb(&f, ud); ok++; i += used; continue; }
        if (bad) (*bad)++;
        i++; /* resync: the STX may have been garbage */
    }
    return ok;
}

int dg_mav_scan_stats(const uint8_t *buf, size_t n, dg_mav_frame_cb cb, void *ud, dg_mav_stats_t *st)
{
    size_t i = 0, junk = 0;   /* junk: bytes skipped since the last counted event */
    dg_mav_frame_t f;
    memset(st, 0, sizeof *st);
    while (i < n) {
        if (buf[i] != DG_MAV_STX_V1 && buf[i] != DG_MAV_STX_V2) { i++; junk++; continue; }
        size_t used = 0;
        dg_mav_rc_t rc = dg_mav_decode(buf + i, n - i, &f, &used);
        if (rc == DG_MAV_OK) {
            if (junk) { st->garbage++; junk = 0; }
            st->ok++;
            if (f.is_signed) st->signed_frames++;
            if (cb) cb(&f, ud);
            i += used;
            continue;
        }
        if (rc == DG_MAV_UNKNOWN_MSG && (i + used == n || buf[i + used] == DG_MAV_STX_V1 || buf[i + used] == DG_MAV_STX_V2)) {
            if (junk) { st->garbage++; junk = 0; }
            st->unknown++;
            i += used;
            continue;
        }
        /* a candidate that fails: counted once per kind, then resync */
        switch (rc) {
        case DG_MAV_NEED_MORE:          st->truncated++; break;
        case DG_MAV_BAD_CRC:            st->bad_crc++; break;
        case DG_MAV_BAD_INCOMPAT:       st->bad_incompat++; break;
        default:                        junk++; i++; continue;   /* unknown id mid-garbage */
        }
        junk = 0;
        i++;
    }
    if (junk) st->garbage++;
    return (int)st->ok;
}

int dg_mav_encode_v2(uint8_t *out, uint8_t seq, uint8_t sysid, uint8_t compid,
                     uint32_t msgid, const uint8_t *payload, size_t len)
{
    int extra = dg_mav_crc_extra(msgid, NULL);
    if (extra < 0 || len > DG_MAV_MAX_PAYLOAD || msgid > 0xffffff) return -1;
    while (len > 1 && payload[len - 1] == 0) len--;
    uint8_t l = (uint8_t)len;
    if (len == 0) l = 1;
    out[0] = DG_MAV_STX_V2; out[1] = l; out[2] = 0; out[3] = 0; out[4] = seq;
    out[5] = sysid; out[6] = compid;
    out[7] = (uint8_t)msgid; out[8] = (uint8_t)(msgid >> 8); out[9] = (uint8_t)(msgid >> 16);
    if (len) memcpy(out + 10, payload, len); else out[10] = 0;
    uint16_t crc = dg_mav_crc(out + 1, 9 + l, 0xffff);
    uint8_t e = (uint8_t)extra;
    crc = dg_mav_crc(&e, 1, crc);
    out[10 + l] = (uint8_t)crc; out[11 + l] = (uint8_t)(crc >> 8);
    return 12 + l;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

void dg_mav_get_heartbeat(const dg_mav_frame_t *f, dg_mav_heartbeat_t *m)
{
    const uint8_t *p = f->payload;
    m->custom_mode = rd32(p); m->type = p[4]; m->autopilot = p[5];
    m->base_mode = p[6]; m->system_status = p[7]; m->mavlink_version = p[8];
}

static float rdf(const uint8_t *p) { uint32_t u = rd32(p); float f; memcpy(&f, &u, 4); return f; }
static void wrf(uint8_t *p, float f) { uint32_t u; memcpy(&u, &f, 4); wr32(p, u); }

void dg_mav_get_sys_status(const dg_mav_frame_t *f, dg_mav_sys_status_t *m)
{
    const uint8_t *p = f->payload;
    m->load = rd16(p + 12); m->voltage_battery = rd16(p + 14);
    m->current_battery = (int16_t)rd16(p + 16); m->battery_remaining = (int8_t)p[30];
}

void dg_mav_get_gps_raw(const dg_mav_frame_t *f, dg_mav_gps_raw_t *m)
{
    const uint8_t *p = f->payload;
    m->time_usec = (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
    m->lat = (int32_t)rd32(p + 8); m->lon = (int32_t)rd32(p + 12); m->alt = (int32_t)rd32(p + 16);
    m->eph = rd16(p + 20); m->epv = rd16(p + 22); m->vel = rd16(p + 24); m->cog = rd16(p + 26);
    m->fix_type = p[28]; m->satellites_visible = p[29];
}

void dg_mav_get_attitude(const dg_mav_frame_t *f, dg_mav_attitude_t *m)
{
    const uint8_t *p = f->payload;
    m->time_boot_ms = rd32(p);
    m->roll = rdf(p + 4); m->pitch = rdf(p + 8); m->yaw = rdf(p + 12);
    m->rollspeed = rdf(p + 16); m->pitchspeed = rdf(p + 20); m->yawspeed = rdf(p + 24);
}

void dg_mav_get_vfr_hud(const dg_mav_frame_t *f, dg_mav_vfr_hud_t *m)
{
    const uint8_t *p = f->payload;
    m->airspeed = rdf(p); m->groundspeed = rdf(p + 4); m->alt = rdf(p + 8); m->climb = rdf(p + 12);
    m->heading = (int16_t)rd16(p + 16); m->throttle = rd16(p + 18);
}

void dg_mav_get_battery_status(const dg_mav_frame_t *f, dg_mav_battery_status_t *m)
{
    const uint8_t *p = f->payload;
    m->current_consumed = (int32_t)rd32(p); m->energy_consumed = (int32_t)rd32(p + 4);
    m->temperature = (int16_t)rd16(p + 8);
    for (int i = 0; i < 10; i++) m->voltages[i] = rd16(p + 10 + 2 * i);
    m->current_battery = (int16_t)rd16(p + 30);
    m->id = p[32]; m->battery_function = p[33]; m->type = p[34]; m->battery_remaining = (int8_t)p[35];
}

void dg_mav_get_home_position(const dg_mav_frame_t *f, dg_mav_home_position_t *m)
{
    const uint8_t *p = f->payload;
    m->lat = (int32_t)rd32(p); m->lon = (int32_t)rd32(p + 4); m->alt = (int32_t)rd32(p + 8);
    m->x = rdf(p + 12); m->y = rdf(p + 16); m->z = rdf(p + 20);
    for (int i = 0; i < 4; i++) m->q[i] = rdf(p + 24 + 4 * i);
    m->approach_x = rdf(p + 40); m->approach_y = rdf(p + 44); m->approach_z = rdf(p + 48);
}

void dg_mav_get_statustext(const dg_mav_frame_t *f, dg_mav_statustext_t *m)
{
    m->severity = f->payload[0];
    memcpy(m->text, f->payload + 1, 50);   /* not NUL-terminated when 50 long */
    m->text[50] = '\0';
}

void dg_mav_get_command_long(const dg_mav_frame_t *f, dg_mav_command_long_t *m)
{
    const uint8_t *p = f->payload;
    for (int i = 0; i < 7; i++) m->param[i] = rdf(p + 4 * i);
    m->command = rd16(p + 28); m->target_system = p[30]; m->target_component = p[31]; m->confirmation = p[32];
}

void dg_mav_get_command_int(const dg_mav_frame_t *f, dg_mav_command_int_t *m)
{
    const uint8_t *p = f->payload;
    for (int i = 0; i < 4; i++) m->param[i] = rdf(p + 4 * i);
    m->x = (int32_t)rd32(p + 16); m->y = (int32_t)rd32(p + 20); m->z = rdf(p + 24);
    m->command = rd16(p + 28); m->target_system = p[30]; m->target_component = p[31];
    m->frame = p[32]; m->current = p[33]; m->autocontinue = p[34];
}

void dg_mav_put_heartbeat(uint8_t p[9], const dg_mav_heartbeat_t *m)
{
    wr32(p, m->custom_mode); p[4] = m->type; p[5] = m->autopilot;
    p[6] = m->base_mode; p[7] = m->system_status; p[8] = m->mavlink_version;
}

void dg_mav_put_command_int(uint8_t p[35], const dg_mav_command_int_t *m)
{
    for (int i = 0; i < 4; i++) wrf(p + 4 * i, m->param[i]);
    wr32(p + 16, (uint32_t)m->x); wr32(p + 20, (uint32_t)m->y); wrf(p + 24, m->z);
    wr16(p + 28, m->command); p[30] = m->target_system; p[31] = m->target_component;
    p[32] = m->frame; p[33] = m->current; p[34] = m->autocontinue;
}

void dg_mav_put_command_ack(uint8_t p[10], const dg_mav_command_ack_t *m)
{
    wr16(p, m->command); p[2] = m->result; p[3] = m->progress;
    wr32(p + 4, (uint32_t)m->result_param2); p[8] = m->target_system; p[9] = m->target_component;
}

void dg_mav_get_gpi(const dg_mav_frame_t *f, dg_mav_gpi_t *m)
{
    const uint8_t *p = f->payload;
    m->time_boot_ms = rd32(p);
    m->lat = (int32_t)rd32(p + 4); m->lon = (int32_t)rd32(p + 8);
    m->alt = (int32_t)rd32(p + 12); m->relative_alt = (int32_t)rd32(p + 16);
    m->vx = (int16_t)rd16(p + 20); m->vy = (int16_t)rd16(p + 22); m->vz = (int16_t)rd16(p + 24);
    m->hdg = rd16(p + 26);
}

void dg_mav_get_command_ack(const dg_mav_frame_t *f, dg_mav_command_ack_t *m)
{
    const uint8_t *p = f->payload;
    m->command = rd16(p); m->result = p[2]; m->progress = p[3];
    m->result_param2 = (int32_t)rd32(p + 4); m->target_system = p[8]; m->target_component = p[9];
}

void dg_mav_put_command_long(uint8_t p[33], const dg_mav_command_long_t *m)
{
    for (int i = 0; i < 7; i++) wrf(p + 4 * i, m->param[i]);
    wr16(p + 28, m->command);
    p[30] = m->target_system; p[31] = m->target_component; p[32] = m->confirmation;
}
