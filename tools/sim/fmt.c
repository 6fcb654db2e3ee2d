/* fmt.c - quantised samples and masked client frames (--transport ws-pb).
 *
 * Samples are kept quantised (sim_sample_t: lat/lon in 1e-7 degrees, the
 * rest in hundredths), so a resend after a reconnect carries exactly the
 * values of the first send. A frame is written straight into the
 * connection's output buffer after room for the header has been reserved,
 * then masked in place 8 bytes at a time. (The telemetry JSON of ws-json is
 * libdronegate's: tools/sim/drive.c.)
 *
 * Pure functions on caller-owned memory; any thread.
 */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <string.h>


static int32_t q(double v, double scale, double lo, double hi)
{
    if (!isfinite(v)) v = 0;
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return (int32_t)lround(v * scale);
}

void sim_sample_from_mission(sim_sample_t *s, const sim_mission_t *m,
                             int64_t wall_ms, bool rfc3339)
{
    s->ts_ms = wall_ms;
    s->lat_e7 = q(m->lat, 1e7, -90, 90);
    s->lon_e7 = q(m->lon, 1e7, -180, 180);
    s->alt_cm = q(m->alt, 100, -1000, 100000);
    s->speed_cm = (uint16_t)q(m->speed, 100, 0, 600);
    int32_t h = q(m->heading, 100, 0, 360);
    s->heading_cd = (uint16_t)(h >= 36000 ? h - 36000 : h);   /* [0, 360) */
    s->climb_cm = (int16_t)q(m->climb, 100, -300, 300);
    s->battery_cp = (uint16_t)q(m->battery, 100, 0, 100);
    s->status = (uint8_t)sim_mission_status(m);
    s->ts_rfc3339 = rfc3339;
}

/* ------------------------------------------------------------------ frames */

void sim_mask(uint8_t *p, size_t n, uint32_t mask)
{
    uint8_t mb[4];
    memcpy(mb, &mask, 4);           /* mask is stored exactly as on the wire */
    uint64_t m8;
    uint8_t mm[8] = { mb[0], mb[1], mb[2], mb[3], mb[0], mb[1], mb[2], mb[3] };
    memcpy(&m8, mm, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= m8;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++) p[i] ^= mb[i & 3];
}

/* Frames are built with a 4-byte-length header guess (126 + 16-bit length,
 * the size of any single telemetry object and most batches): 2 + 2 + 4 mask. */
#define GUESS_HDR 8

uint8_t *sim_frame_begin(dg_buf_t *b, size_t max_payload)
{
    if (dg_buf_reserve(b, max_payload + 14)) return NULL;
    return (uint8_t *)b->data + b->len + GUESS_HDR;
}

void sim_frame_end(dg_buf_t *b, int opcode, size_t n, uint32_t mask)
{
    uint8_t *start = (uint8_t *)b->data + b->len;
    size_t hdr = n < 126 ? 6 : n < 65536 ? 8 : 14;
    if (hdr != GUESS_HDR) memmove(start + hdr, start + GUESS_HDR, n);
    start[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (n < 126) {
        start[1] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        start[1] = 0x80 | 126;
        start[2] = (uint8_t)(n >> 8);
        start[3] = (uint8_t)n;
    } else {
        start[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) start[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    }
    memcpy(start + hdr - 4, &mask, 4);
    sim_mask(start + hdr, n, mask);
    b->len += hdr + n;
}

int sim_frame_append(dg_buf_t *b, int opcode, const void *p, size_t n, uint32_t mask)
{
    uint8_t *dst = sim_frame_begin(b, n);
    if (!dst) return -ENOMEM;
    if (n) memcpy(dst, p, n);
    sim_frame_end(b, opcode, n, mask);
    return 0;
}
