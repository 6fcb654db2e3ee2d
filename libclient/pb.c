/* pb.c - the protobuf messages of proto/dronegate/v1/telemetry.proto that
 * the grpc:// transport needs, by hand (no protobuf runtime in the drone's
 * library): DroneMessage{telemetry} and DroneMessage{command_ack} out,
 * ServerMessage (ack, error, command, session) in. The decoder takes
 * untrusted bytes: every length is checked against the end, unknown fields
 * are skipped by wire type, strings are truncated into dgc_msg_t's fixed
 * fields (fuzz/fuzz_client_msg.c feeds it too). */
#include "internal.h"

#include <string.h>

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) { *p++ = (uint8_t)(v | 0x80); v >>= 7; }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_fixed(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *put_double(uint8_t *p, int field, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    *p++ = (uint8_t)(field << 3 | 1);
    return put_fixed(p, v, 8);
}

static uint8_t *put_float(uint8_t *p, int field, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    *p++ = (uint8_t)(field << 3 | 5);
    return put_fixed(p, v, 4);
}

static uint8_t *put_bytes(uint8_t *p, int field, const void *s, size_t n)
{
    *p++ = (uint8_t)(field << 3 | 2);
    p = put_varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

/* Written in place: a TelemetryFrame is at most 105 bytes (seq and
 * timestamp 11 each, position 29, four floats 20, status 34), so its length
 * is one varint byte, and Position is always three doubles (27 bytes). */
size_t dgc_rec_pb(uint8_t *out, const dgc_rec_t *r, uint64_t seq)
{
    uint8_t *q = out + 2;                            /* DroneMessage.telemetry: tag, 1-byte length */
    *q++ = 1 << 3;
    q = put_varint(q, seq);
    *q++ = 2 << 3;
    q = put_varint(q, (uint64_t)r->ts_ms);           /* int64: two's complement varint */
    *q++ = 3 << 3 | 2;
    *q++ = 27;
    q = put_double(q, 1, r->lat);
    q = put_double(q, 2, r->lon);
    q = put_double(q, 3, r->alt);
    if (r->has & DG_HAS_SPEED) q = put_float(q, 4, r->speed);
    if (r->has & DG_HAS_HEADING) q = put_float(q, 5, r->heading);
    if (r->has & DG_HAS_CLIMB) q = put_float(q, 6, r->climb);
    if (r->has & DG_HAS_BATTERY) q = put_float(q, 7, r->battery);
    if (r->status_len) q = put_bytes(q, 8, r->status, r->status_len);
    out[0] = 1 << 3 | 2;
    out[1] = (uint8_t)(q - out - 2);                 /* < 128 (see above) */
    return (size_t)(q - out);
}

size_t dgc_cmd_ack_pb(uint8_t *out, size_t cap, const char *id, const char *status, const char *message)
{
    size_t il = strlen(id), sl = strlen(status), ml = message ? strlen(message) : 0;
    size_t inner = il + sl + ml + 3 * 11;
    if (inner + 12 > cap) return 0;
    uint8_t *a = out + 12, *p = a;   /* the body first, then its header in front */
    p = put_bytes(p, 1, id, il);
    p = put_bytes(p, 2, status, sl);
    if (ml) p = put_bytes(p, 3, message, ml);
    size_t n = (size_t)(p - a);
    uint8_t hdr[12], *h = hdr;
    *h++ = 2 << 3 | 2;
    h = put_varint(h, n);
    size_t hl = (size_t)(h - hdr);
    memmove(out + hl, a, n);
    memcpy(out, hdr, hl);
    return hl + n;
}

/* ---- decoding ---- */

typedef struct rd { const uint8_t *p, *e; } rd_t;

static int get_varint(rd_t *r, uint64_t *v)
{
    *v = 0;
    for (int s = 0; s < 64; s += 7) {
        if (r->p >= r->e) return -1;
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

/* Next field: its number, wire type, and for LEN its span; varints in *v;
 * fixed fields skipped. 1 = a field, 0 = the end, -1 = malformed. */
static int next_field(rd_t *r, int *field, int *wt, uint64_t *v, rd_t *sub)
{
    if (r->p >= r->e) return 0;
    uint64_t tag;
    if (get_varint(r, &tag) || (tag >> 3) == 0 || (tag >> 3) > 536870911u) return -1;
    *field = (int)(tag >> 3);
    *wt = (int)(tag & 7);
    switch (*wt) {
    case 0: return get_varint(r, v) ? -1 : 1;
    case 1: if (r->e - r->p < 8) return -1; r->p += 8; return 1;
    case 5: if (r->e - r->p < 4) return -1; r->p += 4; return 1;
    case 2:
        if (get_varint(r, v) || *v > (uint64_t)(r->e - r->p)) return -1;
        sub->p = r->p;
        sub->e = r->p + *v;
        r->p += *v;
        return 1;
    default: return -1;
    }
}

static void copy_str(char *dst, size_t cap, const rd_t *s)
{
    size_t n = (size_t)(s->e - s->p);
    if (n >= cap) n = cap - 1;
    memcpy(dst, s->p, n);
    dst[n] = '\0';
}

int dgc_parse_server_pb(const uint8_t *data, size_t n, void (*cb)(void *ud, const dgc_msg_t *m), void *ud)
{
    rd_t r = { data, data + n }, body = { 0 }, s;
    int field, wt, body_field = 0, rc;
    uint64_t v;
    while ((rc = next_field(&r, &field, &wt, &v, &s)) == 1)
        if (wt == 2 && field >= 1 && field <= 4) { body_field = field; body = s; }   /* oneof: the last wins */
    if (rc < 0) return -1;
    dgc_msg_t m;
    memset(&m, 0, sizeof m);
    static const int type_of[5] = { DGC_MSG_OTHER, DGC_MSG_ACK, DGC_MSG_ERROR, DGC_MSG_COMMAND, DGC_MSG_SESSION };
    m.type = type_of[body_field];
    if (body_field == 1 || body_field == 4) m.has_seq = 0;
    while (body_field && (rc = next_field(&body, &field, &wt, &v, &s)) == 1) {
        switch (body_field) {
        case 1: case 4:                       /* Ack.seq, Session.last_seq */
            if (field == 1 && wt == 0) { m.seq = v; m.has_seq = 1; }
            break;
        case 2:                               /* Error */
            if (field == 1 && wt == 0) { m.seq = v; m.has_seq = 1; }
            else if (field == 2 && wt == 2) copy_str(m.code, sizeof m.code, &s);
            else if (field == 3 && wt == 2) copy_str(m.field, sizeof m.field, &s);
            else if (field == 4 && wt == 2) copy_str(m.message, sizeof m.message, &s);
            break;
        case 3:                               /* Command */
            if (field == 1 && wt == 2) copy_str(m.id, sizeof m.id, &s);
            else if (field == 2 && wt == 2) copy_str(m.name, sizeof m.name, &s);
            else if (field == 3 && wt == 2) { m.args = (const char *)s.p; m.args_len = (size_t)(s.e - s.p); }
            break;
        }
    }
    if (body_field && rc < 0) return -1;
    if (m.type == DGC_MSG_ACK && !m.has_seq) m.type = DGC_MSG_OTHER;   /* an ack without a seq says nothing */
    cb(ud, &m);
    return 1;
}
