/* pb_telemetry.c - see pb_telemetry.h.
 *
 * protobuf-c (Debian libprotobuf-c) parses the wire format; its unpacker
 * rejects truncated fields, bad wire types for known fields, overlong
 * varints and lengths past the end, and skips unknown fields (proto3 rule).
 * What it cannot know is ours: proto3 strings must be UTF-8, status is at
 * most 32 bytes, the contract's ranges (dg_record_validate), command ack
 * fields. Memory: protobuf-c allocates the decoded message (one allocation
 * per submessage and string, bounded by the input size, which the caller
 * bounds: 1 MiB by default) and frees it before returning.
 *
 * proto3 has no presence for plain scalars: seq 0 is seq 0 (every protobuf
 * record has a seq), timestamp_ms 0 means "absent" (receive time is used),
 * a missing `position` is reported as invalid_field "position". The
 * optional floats have presence (has_*), so absent != 0 as in JSON.
 */
#include "pb_telemetry.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dronegate/v1/telemetry.pb-c.h"

#include "../core/commands.h"
#include "../core/utf8.h"
#include "validate.h"

#define DG_PB_ACK_ID_MAX 64

static bool utf8_ok(const char *s, size_t n)
{
    return dg_utf8_update(DG_UTF8_ACCEPT, (const uint8_t *)s, n) == DG_UTF8_ACCEPT;
}

static void report(const dg_decode_sink_t *sink, bool has_seq, uint64_t seq, const char *code,
                   const char *field, const char *msg)
{
    dg_decode_error_t e = { .seq = seq, .has_seq = has_seq, .code = code, .field = field };
    snprintf(e.message, sizeof e.message, "%s", msg);
    sink->on_error(sink->ud, &e);
}

static int telemetry(const Dronegate__V1__TelemetryFrame *t, int64_t now_ms, int64_t recv_us,
                     const dg_decode_sink_t *sink)
{
    dg_record_t r;
    dg_record_init(&r);
    r.seq = t->seq;
    r.flags |= DG_REC_HAS_SEQ;
    r.recv_us = recv_us;
    if (t->has_timestamp_ms && t->timestamp_ms != 0) {
        r.ts_ms = t->timestamp_ms;
        r.flags |= DG_REC_HAS_TS;
    } else {
        r.ts_ms = now_ms;
    }
    if (!t->position) {
        report(sink, true, t->seq, "invalid_field", "position", "position (latitude, longitude, altitude) is required");
        return 0;
    }
    r.lat = t->position->latitude;
    r.lon = t->position->longitude;
    r.alt = t->position->altitude;
    if (t->has_speed)   { r.speed = t->speed;     r.flags |= DG_REC_HAS_SPEED; }
    if (t->has_heading) { r.heading = t->heading; r.flags |= DG_REC_HAS_HEADING; }
    if (t->has_climb)   { r.climb = t->climb;     r.flags |= DG_REC_HAS_CLIMB; }
    if (t->has_battery) { r.battery = t->battery; r.flags |= DG_REC_HAS_BATTERY; }
    const char *st = t->status ? t->status : "";
    size_t sl = strlen(st);
    if (sl) {
        if (sl > DG_STATUS_MAX || !utf8_ok(st, sl)) {
            report(sink, true, t->seq, "invalid_field", "status", "status must be UTF-8 of at most 32 bytes");
            return 0;
        }
        memcpy(r.status, st, sl + 1);
        r.status_len = (uint8_t)sl;
        r.flags |= DG_REC_HAS_STATUS;
    }
    const char *field = NULL;
    char msg[160];
    if (dg_record_validate(&r, &field, msg, sizeof msg)) {
        report(sink, true, t->seq, "invalid_field", field, msg);
        return 0;
    }
    sink->on_record(sink->ud, &r);
    return 1;
}

static void command_ack(const Dronegate__V1__CommandAck *a, const dg_decode_sink_t *sink)
{
    const char *id = a->id ? a->id : "", *st = a->status ? a->status : "", *m = a->message ? a->message : "";
    size_t il = strlen(id), sl = strlen(st), ml = strlen(m);
    if (il == 0 || il > DG_PB_ACK_ID_MAX || !utf8_ok(id, il)) {
        report(sink, false, 0, "invalid_field", "id", "command_ack id must be 1-64 bytes of UTF-8");
        return;
    }
    if (dg_command_status_parse(st, sl) < 0 || (strcmp(st, "accepted") && strcmp(st, "rejected") && strcmp(st, "done"))) {
        report(sink, false, 0, "invalid_field", "status", "command_ack status must be accepted, rejected or done");
        return;
    }
    if (!utf8_ok(m, ml)) {
        report(sink, false, 0, "invalid_field", "message", "command_ack message must be UTF-8");
        return;
    }
    if (!sink->on_command_ack) return;
    dg_command_ack_t ack = { id, il, st, sl, m, ml };
    sink->on_command_ack(sink->ud, &ack);
}

int dg_pb_decode(const uint8_t *p, size_t n, int64_t now_ms, int64_t recv_us, const dg_decode_sink_t *sink)
{
    Dronegate__V1__DroneMessage *m = dronegate__v1__drone_message__unpack(NULL, n, p);
    if (!m) {
        report(sink, false, 0, "invalid_protobuf", NULL, "not a dronegate.v1.DroneMessage (protobuf wire format)");
        return -1;
    }
    int rc = 0;
    switch (m->body_case) {
    case DRONEGATE__V1__DRONE_MESSAGE__BODY_TELEMETRY:
        rc = telemetry(m->telemetry, now_ms, recv_us, sink);
        break;
    case DRONEGATE__V1__DRONE_MESSAGE__BODY_COMMAND_ACK:
        command_ack(m->command_ack, sink);
        break;
    default:
        report(sink, false, 0, "invalid_field", "body", "DroneMessage has neither telemetry nor command_ack");
        break;
    }
    dronegate__v1__drone_message__free_unpacked(m, NULL);
    return rc;
}

static int pack(dg_buf_t *out, const Dronegate__V1__ServerMessage *m)
{
    size_t need = dronegate__v1__server_message__get_packed_size(m);
    out->len = 0;
    if (dg_buf_reserve(out, need + 1)) return -1;
    out->len = dronegate__v1__server_message__pack(m, (uint8_t *)out->data);
    return 0;
}

int dg_pb_ack(dg_buf_t *out, uint64_t seq)
{
    Dronegate__V1__Ack a = DRONEGATE__V1__ACK__INIT;
    a.has_seq = 1;
    a.seq = seq;
    Dronegate__V1__ServerMessage m = DRONEGATE__V1__SERVER_MESSAGE__INIT;
    m.body_case = DRONEGATE__V1__SERVER_MESSAGE__BODY_ACK;
    m.ack = &a;
    return pack(out, &m);
}

int dg_pb_error(dg_buf_t *out, bool has_seq, uint64_t seq, const char *code, const char *field, const char *message)
{
    Dronegate__V1__Error e = DRONEGATE__V1__ERROR__INIT;
    e.has_seq = has_seq;
    e.seq = seq;
    e.code = (char *)code;
    e.field = field ? (char *)field : NULL;
    e.message = (char *)message;
    Dronegate__V1__ServerMessage m = DRONEGATE__V1__SERVER_MESSAGE__INIT;
    m.body_case = DRONEGATE__V1__SERVER_MESSAGE__BODY_ERROR;
    m.error = &e;
    return pack(out, &m);
}

int dg_pb_command(dg_buf_t *out, const char *id, const char *name, const char *args_json)
{
    Dronegate__V1__Command c = DRONEGATE__V1__COMMAND__INIT;
    c.id = (char *)id;
    c.name = (char *)name;
    c.args_json = (char *)args_json;
    Dronegate__V1__ServerMessage m = DRONEGATE__V1__SERVER_MESSAGE__INIT;
    m.body_case = DRONEGATE__V1__SERVER_MESSAGE__BODY_COMMAND;
    m.command = &c;
    return pack(out, &m);
}

int dg_pb_session(dg_buf_t *out, int known, uint64_t last_seq)
{
    Dronegate__V1__Session s = DRONEGATE__V1__SESSION__INIT;
    s.has_last_seq = known == 1;
    s.last_seq = last_seq;
    Dronegate__V1__ServerMessage m = DRONEGATE__V1__SERVER_MESSAGE__INIT;
    m.body_case = DRONEGATE__V1__SERVER_MESSAGE__BODY_SESSION;
    m.session = &s;
    return pack(out, &m);
}
