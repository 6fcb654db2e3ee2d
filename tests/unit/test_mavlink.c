/* test_mavlink.c - src/mavlink framing codec: CRC known vector, v1/v2 decode,
 * zero-trim round trip, several frames per buffer, resync after garbage, bad
 * CRC, truncation, unknown incompat flags, signed frames and their signature
 * (signing.h). */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "mavlink/mavlink.h"
#include "mavlink/signing.h"
#include "mavlink/vehicle.h"

TEST(crc_known_vector)
{
    /* CRC-16/MCRF4XX (MAVLink's X.25 variant) check value */
    ASSERT_EQ(dg_mav_crc((const uint8_t *)"123456789", 9, 0xffff), 0x6F91);
}

static int nframes;
static dg_mav_frame_t last;
static void on_frame(const dg_mav_frame_t *f, void *ud) { (void)ud; nframes++; last = *f; }

static int heartbeat(uint8_t *out, uint8_t seq, uint8_t sysid)
{
    uint8_t p[9] = { 0, 0, 0, 0, 2 /* QUADROTOR */, 3, 0x81, 4, 3 };
    return dg_mav_encode_v2(out, seq, sysid, 1, 0, p, sizeof p);
}

TEST(v2_roundtrip_and_trim)
{
    uint8_t out[300];
    uint8_t p[28] = { 0 };      /* GLOBAL_POSITION_INT, only time_boot_ms set */
    p[0] = 7;
    int n = dg_mav_encode_v2(out, 5, 42, 1, 33, p, sizeof p);
    ASSERT_EQ(n, 12 + 1);       /* trimmed to 1 byte */
    dg_mav_frame_t f; size_t used;
    ASSERT_EQ(dg_mav_decode(out, (size_t)n, &f, &used), DG_MAV_OK);
    ASSERT_EQ(used, n);
    ASSERT_EQ(f.sysid, 42); ASSERT_EQ(f.msgid, 33); ASSERT_EQ(f.seq, 5);
    ASSERT_MEM_EQ(f.payload, p, sizeof p);
}

TEST(v1_decode)
{
    uint8_t b[6 + 9 + 2] = { 0xFE, 9, 1, 7, 1, 0, 0, 0, 0, 0, 2, 3, 0x81, 4, 3 };
    uint16_t crc = dg_mav_crc(b + 1, 5 + 9, 0xffff);
    uint8_t e = 50;
    crc = dg_mav_crc(&e, 1, crc);
    b[15] = (uint8_t)crc; b[16] = (uint8_t)(crc >> 8);
    dg_mav_frame_t f; size_t used;
    ASSERT_EQ(dg_mav_decode(b, sizeof b, &f, &used), DG_MAV_OK);
    ASSERT_EQ(f.version, 1); ASSERT_EQ(f.sysid, 7); ASSERT_EQ(f.payload[4], 2);
    b[12] ^= 1;
    ASSERT_EQ(dg_mav_decode(b, sizeof b, &f, &used), DG_MAV_BAD_CRC);
}

TEST(several_frames_and_resync)
{
    uint8_t buf[200];
    size_t n = 0;
    buf[n++] = 0x00; buf[n++] = 0xFD; buf[n++] = 0x55;      /* garbage with a fake STX */
    n += (size_t)heartbeat(buf + n, 1, 10);
    memcpy(buf + n, "\xFE\x01\x02", 3); n += 3;              /* garbage */
    n += (size_t)heartbeat(buf + n, 2, 11);
    nframes = 0;
    unsigned bad = 0;
    ASSERT_EQ(dg_mav_scan(buf, n, on_frame, NULL, &bad), 2);
    ASSERT_EQ(nframes, 2);
    ASSERT_EQ(last.sysid, 11);
    ASSERT(bad >= 1);
}

TEST(bad_crc_truncated_flags)
{
    uint8_t b[64]; dg_mav_frame_t f; size_t used;
    int n = heartbeat(b, 1, 1);
    for (int cut = 0; cut < n; cut++)
        ASSERT_EQ(dg_mav_decode(b, (size_t)cut, &f, &used), DG_MAV_NEED_MORE);
    b[n - 1] ^= 0xff;
    ASSERT_EQ(dg_mav_decode(b, (size_t)n, &f, &used), DG_MAV_BAD_CRC);
    b[n - 1] ^= 0xff;
    b[2] = 0x02;
    ASSERT_EQ(dg_mav_decode(b, (size_t)n, &f, &used), DG_MAV_BAD_INCOMPAT);
    b[2] = 0x01;                       /* signed: needs 13 more bytes */
    {
        uint16_t crc = dg_mav_crc(b + 1, 9 + b[1], 0xffff);
        uint8_t e = 50;
        crc = dg_mav_crc(&e, 1, crc);
        b[n - 2] = (uint8_t)crc; b[n - 1] = (uint8_t)(crc >> 8);
    }
    ASSERT_EQ(dg_mav_decode(b, (size_t)n, &f, &used), DG_MAV_NEED_MORE);
    uint8_t big[80] = { 0 };
    memcpy(big, b, (size_t)n);
    big[n] = 3;                        /* link id, then timestamp 0x0102030405 LE */
    big[n + 1] = 5; big[n + 2] = 4; big[n + 3] = 3; big[n + 4] = 2; big[n + 5] = 1;
    ASSERT_EQ(dg_mav_decode(big, (size_t)n + 13, &f, &used), DG_MAV_OK);
    ASSERT_EQ(f.is_signed, 1); ASSERT_EQ(f.link_id, 3); ASSERT_EQ(f.sig_ts, 0x0102030405ull);
    ASSERT_EQ(used, (size_t)n + 13); ASSERT_EQ(f.raw_len, (size_t)n + 13);
}

TEST(unknown_msg)
{
    uint8_t out[64], p[1] = { 1 };
    ASSERT_EQ(dg_mav_encode_v2(out, 0, 1, 1, 9999, p, 1), -1);
    uint8_t b[13] = { 0xFD, 1, 0, 0, 0, 1, 1, 0x0F, 0x27, 0, 1, 0, 0 };
    dg_mav_frame_t f; size_t used;
    ASSERT_EQ(dg_mav_decode(b, sizeof b, &f, &used), DG_MAV_UNKNOWN_MSG);
    ASSERT_EQ(used, 13);
}

TEST(message_fields)
{
    uint8_t p[28] = { 0 }, out[64];
    /* GLOBAL_POSITION_INT: lat 47.3977419 deg (473977419), hdg 9000 */
    int32_t lat = 473977419, lon = -85455938;
    memcpy(p + 4, &lat, 4); memcpy(p + 8, &lon, 4);   /* host is little-endian */
    p[26] = 9000 & 0xff; p[27] = 9000 >> 8;
    int n = dg_mav_encode_v2(out, 0, 1, 1, DG_MAV_MSG_GLOBAL_POSITION_INT, p, sizeof p);
    dg_mav_frame_t f; size_t used; dg_mav_gpi_t g;
    ASSERT_EQ(dg_mav_decode(out, (size_t)n, &f, &used), DG_MAV_OK);
    dg_mav_get_gpi(&f, &g);
    ASSERT_EQ(g.lat, lat); ASSERT_EQ(g.lon, lon); ASSERT_EQ(g.hdg, 9000); ASSERT_EQ(g.vz, 0);

    dg_mav_command_long_t c = { .param = { 1 }, .command = 400 /* ARM_DISARM */, .target_system = 1,
                                .target_component = 1, .confirmation = 0 };
    uint8_t cp[33];
    dg_mav_put_command_long(cp, &c);
    ASSERT_EQ(cp[3], 0x3f); ASSERT_EQ(cp[2], 0x80);   /* 1.0f = 0x3f800000, LE */
    ASSERT_EQ(cp[28], 400 & 0xff); ASSERT_EQ(cp[29], 400 >> 8); ASSERT_EQ(cp[30], 1);

    uint8_t ap[3] = { 400 & 0xff, 400 >> 8, 0 };
    n = dg_mav_encode_v2(out, 0, 1, 1, DG_MAV_MSG_COMMAND_ACK, ap, 3);
    ASSERT_EQ(n, 12 + 2);                                /* result 0 trimmed */
    dg_mav_command_ack_t a;
    ASSERT_EQ(dg_mav_decode(out, (size_t)n, &f, &used), DG_MAV_OK);
    dg_mav_get_command_ack(&f, &a);
    ASSERT_EQ(a.command, 400); ASSERT_EQ(a.result, 0);
}

TEST(scan_stats_counts_each_outcome)
{
    uint8_t buf[1024];
    size_t n = 0;
    buf[n++] = 0x11; buf[n++] = 0x22;                 /* garbage */
    n += (size_t)heartbeat(buf + n, 0, 1);           /* ok */
    int k = heartbeat(buf + n, 1, 1);                 /* bad CRC */
    buf[n + (size_t)k - 1] ^= 0xff;
    n += (size_t)k;
    /* an unknown message (id 150) followed by an STX: skipped whole */
    uint8_t unk[] = { 0xFD, 4, 0, 0, 0, 1, 1, 150, 0, 0, 1, 2, 3, 4, 0xAA, 0xBB };
    memcpy(buf + n, unk, sizeof unk);
    n += sizeof unk;
    n += (size_t)heartbeat(buf + n, 2, 1);           /* ok */
    k = heartbeat(buf + n, 3, 1);                     /* truncated at the end */
    n += (size_t)k - 3;
    dg_mav_stats_t st;
    nframes = 0;
    ASSERT_EQ(dg_mav_scan_stats(buf, n, on_frame, NULL, &st), 2);
    ASSERT_EQ(nframes, 2);
    ASSERT_EQ(st.ok, 2);
    ASSERT_EQ(st.unknown, 1);
    ASSERT(st.bad_crc >= 1);
    ASSERT(st.truncated >= 1);
    ASSERT(st.garbage >= 1);
}

TEST(unknown_mid_garbage_is_resynced)
{
    /* an unknown id whose frame is followed by neither STX nor the end:
     * taken for garbage, so the heartbeat hidden inside it is found */
    uint8_t buf[64] = { 0xFD, 20, 0, 0, 0, 1, 1, 150, 0, 0 };
    int k = heartbeat(buf + 10, 0, 4);
    size_t n = 10 + (size_t)k + 20;
    dg_mav_stats_t st;
    nframes = 0;
    ASSERT_EQ(dg_mav_scan_stats(buf, n, on_frame, NULL, &st), 1);
    ASSERT_EQ(last.sysid, 4);
    ASSERT_EQ(st.unknown, 0);
}

TEST(getters_and_putters)
{
    dg_mav_command_int_t ci = { .param = { 1, 2, 3, 4 }, .x = 473977420, .y = -85455940, .z = 500.5f,
                                .command = 192, .target_system = 7, .target_component = 1, .frame = 6,
                                .current = 0, .autocontinue = 0 };
    uint8_t p[35] = { 0 };
    dg_mav_put_command_int(p, &ci);
    uint8_t out[300];
    int n = dg_mav_encode_v2(out, 0, 255, 190, DG_MAV_MSG_COMMAND_INT, p, sizeof p);
    dg_mav_frame_t f; size_t used;
    ASSERT_EQ(dg_mav_decode(out, (size_t)n, &f, &used), DG_MAV_OK);
    dg_mav_command_int_t g;
    dg_mav_get_command_int(&f, &g);
    ASSERT_EQ(g.x, 473977420); ASSERT_EQ(g.y, -85455940); ASSERT(g.z == 500.5f);
    ASSERT_EQ(g.command, 192); ASSERT_EQ(g.frame, 6); ASSERT(g.param[3] == 4.0f);
    /* SYS_STATUS: battery_remaining at offset 30 */
    uint8_t ss[31] = { 0 };
    ss[30] = (uint8_t)(int8_t)-1; ss[14] = 0xE0; ss[15] = 0x2E;
    n = dg_mav_encode_v2(out, 0, 1, 1, DG_MAV_MSG_SYS_STATUS, ss, sizeof ss);
    ASSERT_EQ(dg_mav_decode(out, (size_t)n, &f, &used), DG_MAV_OK);
    dg_mav_sys_status_t st;
    dg_mav_get_sys_status(&f, &st);
    ASSERT_EQ(st.battery_remaining, -1); ASSERT_EQ(st.voltage_battery, 12000);
    /* STATUSTEXT: 50 characters without a NUL stay bounded */
    uint8_t tx[51];
    tx[0] = 6; memset(tx + 1, 'x', 50);
    n = dg_mav_encode_v2(out, 0, 1, 1, DG_MAV_MSG_STATUSTEXT, tx, sizeof tx);
    ASSERT_EQ(dg_mav_decode(out, (size_t)n, &f, &used), DG_MAV_OK);
    dg_mav_statustext_t t;
    dg_mav_get_statustext(&f, &t);
    ASSERT_EQ(strlen(t.text), 50); ASSERT_EQ(t.severity, 6);
}

static void frame_of(dg_mav_frame_t *f, uint32_t msgid, const uint8_t *p, size_t len)
{
    uint8_t out[300]; size_t used;
    int n = dg_mav_encode_v2(out, 0, 1, 1, msgid, p, len);
    ASSERT(n > 0);
    ASSERT_EQ(dg_mav_decode(out, (size_t)n, f, &used), DG_MAV_OK);
}

TEST(vehicle_state_merges_rows)
{
    dg_mav_state_t s;
    dg_mav_state_init(&s);
    dg_mav_frame_t f;
    dg_record_t r;
    uint8_t hb[9] = { 0, 0, 0, 0, 2, 12, 0x81, 4, 3 };           /* armed, ACTIVE */
    frame_of(&f, DG_MAV_MSG_HEARTBEAT, hb, sizeof hb);
    ASSERT(!dg_mav_state_apply(&s, &f, 1000, 0, &r));
    uint8_t bs[36] = { 0 };
    bs[35] = 64;                                                  /* BATTERY_STATUS id 0: 64 % */
    frame_of(&f, DG_MAV_MSG_BATTERY_STATUS, bs, sizeof bs);
    dg_mav_state_apply(&s, &f, 1000, 0, &r);
    dg_mav_gpi_t g = { 0 };
    uint8_t gp[28] = { 0 };
    int32_t lat = 473977420, lon = 85455940, alt = 488250;
    memcpy(gp + 4, &lat, 4); memcpy(gp + 8, &lon, 4); memcpy(gp + 12, &alt, 4);
    int16_t vx = 300, vy = -400, vz = 50;
    memcpy(gp + 20, &vx, 2); memcpy(gp + 22, &vy, 2); memcpy(gp + 24, &vz, 2);
    gp[26] = 0xff; gp[27] = 0xff;                                 /* hdg unknown */
    (void)g;
    frame_of(&f, DG_MAV_MSG_GLOBAL_POSITION_INT, gp, sizeof gp);
    ASSERT(dg_mav_state_apply(&s, &f, 1000, 0, &r));
    ASSERT(r.lat == 47.397742); ASSERT(r.alt == 488.25);
    ASSERT(r.speed == 5.0); ASSERT(r.climb == -0.5);
    ASSERT(!(r.flags & DG_REC_HAS_HEADING));
    ASSERT(r.battery == 64.0);
    ASSERT(!strcmp(r.status, "airborne"));
    ASSERT(!(r.flags & DG_REC_HAS_SEQ));
    /* the rate: at most one row per 500 ms */
    ASSERT(!dg_mav_state_apply(&s, &f, 1200, 500, &r));
    ASSERT(dg_mav_state_apply(&s, &f, 1500, 500, &r));
    ASSERT(!strcmp(dg_mav_status_word(0, 3), "standby"));
    ASSERT(!strcmp(dg_mav_status_word(0x80, 3), "armed"));
    ASSERT(!strcmp(dg_mav_status_word(0, 200), "unknown"));
}

TEST(signing_roundtrip_and_tamper)
{
    uint8_t key[DG_MAV_KEY_LEN], other[DG_MAV_KEY_LEN];
    memset(key, 0x6b, sizeof key);
    memset(other, 0x07, sizeof other);
    ASSERT_EQ(dg_mav_key_parse("6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b", 64, other), 0);
    ASSERT_MEM_EQ(key, other, sizeof key);
    ASSERT_EQ(dg_mav_key_parse("6b", 2, other), -1);
    ASSERT_EQ(dg_mav_key_parse("zz6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b", 64, other), -1);
    memset(other, 0x07, sizeof other);
    uint8_t hb[9] = { 0, 0, 0, 0, 2, 12, 0x81, 4, 3 }, out[64];
    int n = dg_mav_encode_v2_signed(out, 9, 7, 1, 0, hb, sizeof hb, key, 2, 0x123456789aull);
    ASSERT_EQ(n, 12 + 9 + 13);
    dg_mav_frame_t f; size_t used;
    ASSERT_EQ(dg_mav_decode(out, (size_t)n, &f, &used), DG_MAV_OK);
    ASSERT_EQ(f.is_signed, 1); ASSERT_EQ(f.link_id, 2); ASSERT_EQ(f.sig_ts, 0x123456789aull);
    ASSERT(dg_mav_sig_ok(&f, key));
    ASSERT(!dg_mav_sig_ok(&f, other));
    out[n - 8] ^= 1;                    /* the timestamp is signed too */
    ASSERT_EQ(dg_mav_decode(out, (size_t)n, &f, &used), DG_MAV_OK);
    ASSERT(!dg_mav_sig_ok(&f, key));
    ASSERT(dg_mav_sign_now() > 28000000000000ull);   /* after late 2023, in 10 us units */
}

int main(void)
{
    RUN(signing_roundtrip_and_tamper);
    RUN(scan_stats_counts_each_outcome);
    RUN(unknown_mid_garbage_is_resynced);
    RUN(getters_and_putters);
    RUN(vehicle_state_merges_rows);
    RUN(message_fields);
    RUN(crc_known_vector);
    RUN(v2_roundtrip_and_trim);
    RUN(v1_decode);
    RUN(several_frames_and_resync);
    RUN(bad_crc_truncated_flags);
    RUN(unknown_msg);
    return check_summary("test_mavlink");
}
