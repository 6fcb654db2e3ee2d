/* test_mavlink.c - src/mavlink framing codec: CRC known vector, v1/v2 decode,
 * zero-trim round trip, several frames per buffer, resync after garbage, bad
 * CRC, truncation, unknown incompat flags, signed frames refused. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "mavlink/mavlink.h"

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
    ASSERT_EQ(dg_mav_decode(big, (size_t)n + 13, &f, &used), DG_MAV_SIGNED_UNSUPPORTED);
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

int main(void)
{
    RUN(message_fields);
    RUN(crc_known_vector);
    RUN(v2_roundtrip_and_trim);
    RUN(v1_decode);
    RUN(several_frames_and_resync);
    RUN(bad_crc_truncated_flags);
    RUN(unknown_msg);
    return check_summary("test_mavlink");
}
