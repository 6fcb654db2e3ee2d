/* fmt.c - the simulator's hot path: telemetry JSON and masked client frames.
 *
 * No snprintf here. Samples are kept quantised (sim_sample_t: lat/lon in
 * 1e-7 degrees, the rest in hundredths), so formatting is integer to decimal
 * with a two-digits-at-a-time table, and a resend after a reconnect produces
 * exactly the bytes of the first send. A frame is formatted straight into the
 * connection's output buffer after room for the header has been reserved, then
 * masked in place 8 bytes at a time. RFC 3339 timestamps reuse a per-worker
 * cache of the "YYYY-MM-DDTHH:MM:SS." prefix, rebuilt once per second.
 *
 * Pure functions on caller-owned memory; any thread.
 */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "core/timefmt.h"

static const char DIGITS2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

char *sim_fmt_u64(char *p, uint64_t v)
{
    char tmp[24];
    char *t = tmp + sizeof tmp;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        t -= 2;
        memcpy(t, DIGITS2 + 2 * r, 2);
    }
    if (v >= 10) {
        t -= 2;
        memcpy(t, DIGITS2 + 2 * v, 2);
    } else {
        *--t = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof tmp - t);
    memcpy(p, t, n);
    return p + n;
}

static const uint64_t POW10[10] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000
};

char *sim_fmt_fixed(char *p, int64_t v, int dec)
{
    uint64_t u;
    if (v < 0) {
        *p++ = '-';
        u = (uint64_t)0 - (uint64_t)v;
    } else {
        u = (uint64_t)v;
    }
    uint64_t ip = u / POW10[dec], fp = u % POW10[dec];
    p = sim_fmt_u64(p, ip);
    *p++ = '.';
    for (int i = dec - 1; i >= 0; i--) {
        p[i] = (char)('0' + fp % 10);
        fp /= 10;
    }
    return p + dec;
}

/* Specialised for the two precisions the hot path uses (constant divisors). */
static inline char *fmt_e7(char *p, int32_t v)
{
    uint32_t u;
    if (v < 0) { *p++ = '-'; u = (uint32_t)0 - (uint32_t)v; } else u = (uint32_t)v;
    uint32_t ip = u / 10000000u, fp = u % 10000000u;
    p = sim_fmt_u64(p, ip);
    *p++ = '.';
    /* 7 digits: 3 pairs + 1 */
    p[6] = (char)('0' + fp % 10); fp /= 10;
    memcpy(p + 4, DIGITS2 + 2 * (fp % 100), 2); fp /= 100;
    memcpy(p + 2, DIGITS2 + 2 * (fp % 100), 2); fp /= 100;
    memcpy(p, DIGITS2 + 2 * fp, 2);
    return p + 7;
}

static inline char *fmt_c2(char *p, int32_t v)
{
    uint32_t u;
    if (v < 0) { *p++ = '-'; u = (uint32_t)0 - (uint32_t)v; } else u = (uint32_t)v;
    p = sim_fmt_u64(p, u / 100);
    *p++ = '.';
    memcpy(p, DIGITS2 + 2 * (u % 100), 2);
    return p + 2;
}

#define PUT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

static const struct { const char *s; size_t n; } STATUS[SIM_ST__N] = {
    [SIM_ST_LANDED]    = { "landed\"}",    8 },
    [SIM_ST_TAKEOFF]   = { "takeoff\"}",   9 },
    [SIM_ST_AIRBORNE]  = { "airborne\"}",  10 },
    [SIM_ST_RETURNING] = { "returning\"}", 11 },
    [SIM_ST_LANDING]   = { "landing\"}",   9 },
};

static char *fmt_ts(char *p, int64_t ms, bool rfc, sim_tscache_t *tc)
{
    if (!rfc || ms < 0) return sim_fmt_u64(p, (uint64_t)(ms < 0 ? 0 : ms));
    int64_t sec = ms / 1000;
    if (sec != tc->sec) {
        char full[32];
        dg_format_rfc3339(sec * 1000, full);  /* "YYYY-MM-DDTHH:MM:SS.000Z" */
        memcpy(tc->prefix, full, 20);         /* through the '.' */
        tc->sec = sec;
    }
    *p++ = '"';
    memcpy(p, tc->prefix, 20);
    p += 20;
    unsigned f = (unsigned)(ms % 1000);
    *p++ = (char)('0' + f / 100);
    memcpy(p, DIGITS2 + 2 * (f % 100), 2);
    p += 2;
    *p++ = 'Z';
    *p++ = '"';
    return p;
}

char *sim_fmt_sample(char *p, const sim_sample_t *s, uint64_t seq, sim_tscache_t *tc)
{
    p = PUT(p, "{\"seq\":");
    p = sim_fmt_u64(p, seq);
    p = PUT(p, ",\"timestamp\":");
    p = fmt_ts(p, s->ts_ms, s->ts_rfc3339, tc);
    p = PUT(p, ",\"latitude\":");
    p = fmt_e7(p, s->lat_e7);
    p = PUT(p, ",\"longitude\":");
    p = fmt_e7(p, s->lon_e7);
    p = PUT(p, ",\"altitude\":");
    p = fmt_c2(p, s->alt_cm);
    p = PUT(p, ",\"speed\":");
    p = fmt_c2(p, s->speed_cm);
    p = PUT(p, ",\"heading\":");
    p = fmt_c2(p, s->heading_cd);
    p = PUT(p, ",\"climb\":");
    p = fmt_c2(p, s->climb_cm);
    p = PUT(p, ",\"battery\":");
    p = fmt_c2(p, s->battery_cp);
    p = PUT(p, ",\"status\":\"");
    unsigned st = s->status < SIM_ST__N ? s->status : SIM_ST_AIRBORNE;
    memcpy(p, STATUS[st].s, STATUS[st].n);
    return p + STATUS[st].n;
}

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
