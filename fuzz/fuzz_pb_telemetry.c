/* fuzz_pb_telemetry.c - libFuzzer target for the protobuf DroneMessage
 * decoder (codec/pb_telemetry.c, the dronegate.pb.v1 subprotocol and the
 * gRPC stream) and for the ServerMessage encoders.
 *
 *   make build/fuzz/fuzz_pb_telemetry && build/fuzz/fuzz_pb_telemetry CORPUS_COPY/
 *
 * Invariants on arbitrary bytes:
 *   - exactly one callback per DroneMessage: rc 1 <=> one record,
 *     rc -1 <=> one invalid_protobuf error, rc 0 <=> one error or one ack;
 *   - every record passes dg_record_validate(), has a seq, carries recv_us,
 *     now_ms when timestamp_ms is absent, a NUL-terminated status <= 32 B;
 *   - round trip: the record packed again with protobuf-c decodes to the
 *     identical record;
 *   - every command ack has a 1-64 byte id and a known status;
 *   - the encoders: an Error / Command built from the input's bytes unpacks
 *     (protobuf-c) to the same strings.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/pb_telemetry.h"
#include "codec/validate.h"
#include "core/buf.h"
#include "dronegate/v1/telemetry.pb-c.h"

#define NOW_MS  INT64_C(1795514400000)
#define RECV_US INT64_C(1795514400000777)

#define FZ_ASSERT(c) do { if (!(c)) { fprintf(stderr, "invariant failed: %s (%s:%d)\n", \
    #c, __FILE__, __LINE__); abort(); } } while (0)

typedef struct run {
    int records, errors, acks, invalid;
    dg_record_t last;
} run_t;

static uint64_t bits(double v) { uint64_t u; memcpy(&u, &v, sizeof u); return u; }

static void on_record(void *ud, const dg_record_t *r)
{
    run_t *x = ud;
    x->records++;
    const char *field = NULL;
    char msg[160];
    FZ_ASSERT(dg_record_validate(r, &field, msg, sizeof msg) == 0);
    FZ_ASSERT(r->flags & DG_REC_HAS_SEQ);
    FZ_ASSERT(r->recv_us == RECV_US);
    if (!(r->flags & DG_REC_HAS_TS)) FZ_ASSERT(r->ts_ms == NOW_MS);
    FZ_ASSERT(r->status_len <= DG_STATUS_MAX && r->status[r->status_len] == '\0');
    x->last = *r;
}

static void on_error(void *ud, const dg_decode_error_t *e)
{
    run_t *x = ud;
    x->errors++;
    size_t ml = strnlen(e->message, sizeof e->message);
    FZ_ASSERT(ml > 0 && ml < sizeof e->message);
    if (!strcmp(e->code, "invalid_protobuf")) x->invalid++;
    else FZ_ASSERT(!strcmp(e->code, "invalid_field") && e->field);
}

static void on_ack(void *ud, const dg_command_ack_t *a)
{
    run_t *x = ud;
    x->acks++;
    FZ_ASSERT(a->id && a->id_len >= 1 && a->id_len <= 64);
    FZ_ASSERT((a->status_len == 8 && (!memcmp(a->status, "accepted", 8) || !memcmp(a->status, "rejected", 8))) ||
              (a->status_len == 4 && !memcmp(a->status, "done", 4)));
}

static void roundtrip(const dg_record_t *r)
{
    Dronegate__V1__Position pos = DRONEGATE__V1__POSITION__INIT;
    Dronegate__V1__TelemetryFrame t = DRONEGATE__V1__TELEMETRY_FRAME__INIT;
    Dronegate__V1__DroneMessage m = DRONEGATE__V1__DRONE_MESSAGE__INIT;
    pos.has_latitude = pos.has_longitude = pos.has_altitude = 1;
    pos.latitude = r->lat; pos.longitude = r->lon; pos.altitude = r->alt;
    t.has_seq = 1; t.seq = r->seq;
    if (r->flags & DG_REC_HAS_TS) { t.has_timestamp_ms = 1; t.timestamp_ms = r->ts_ms; }
    t.position = &pos;
    if (r->flags & DG_REC_HAS_SPEED)   { t.has_speed = 1;   t.speed = (float)r->speed; }
    if (r->flags & DG_REC_HAS_HEADING) { t.has_heading = 1; t.heading = (float)r->heading; }
    if (r->flags & DG_REC_HAS_CLIMB)   { t.has_climb = 1;   t.climb = (float)r->climb; }
    if (r->flags & DG_REC_HAS_BATTERY) { t.has_battery = 1; t.battery = (float)r->battery; }
    if (r->flags & DG_REC_HAS_STATUS) t.status = (char *)r->status;
    m.body_case = DRONEGATE__V1__DRONE_MESSAGE__BODY_TELEMETRY;
    m.telemetry = &t;
    size_t n = dronegate__v1__drone_message__get_packed_size(&m);
    uint8_t *b = malloc(n ? n : 1);
    FZ_ASSERT(b);
    dronegate__v1__drone_message__pack(&m, b);
    run_t y = { 0 };
    dg_decode_sink_t sink = { on_record, on_error, on_ack, &y };
    FZ_ASSERT(dg_pb_decode(b, n, NOW_MS, RECV_US, &sink) == 1 && y.records == 1);
    const dg_record_t *o = &y.last;
    FZ_ASSERT(o->flags == r->flags && o->seq == r->seq && o->ts_ms == r->ts_ms);
    FZ_ASSERT(bits(o->lat) == bits(r->lat) && bits(o->lon) == bits(r->lon) && bits(o->alt) == bits(r->alt));
    /* the floats were floats on the wire: the same float again */
    FZ_ASSERT(bits(o->speed) == bits(r->speed) || (isnan(o->speed) && isnan(r->speed)));
    FZ_ASSERT(bits(o->heading) == bits(r->heading) || (isnan(o->heading) && isnan(r->heading)));
    FZ_ASSERT(bits(o->climb) == bits(r->climb) || (isnan(o->climb) && isnan(r->climb)));
    FZ_ASSERT(bits(o->battery) == bits(r->battery) || (isnan(o->battery) && isnan(r->battery)));
    FZ_ASSERT(o->status_len == r->status_len && !memcmp(o->status, r->status, r->status_len));
    free(b);
}

static void encoders(const uint8_t *data, size_t size)
{
    /* split the input into three NUL-free strings */
    char s[3][256];
    size_t k = 0, pos = 0;
    memset(s, 0, sizeof s);
    for (size_t i = 0; i < size && k < 3; i++) {
        if (data[i] == 0 || pos == sizeof s[0] - 1) { k++; pos = 0; continue; }
        s[k][pos++] = (char)data[i];
    }
    dg_buf_t out = { 0 };
    if (dg_pb_error(&out, true, 42, s[0], s[1], s[2]) == 0) {
        Dronegate__V1__ServerMessage *m = dronegate__v1__server_message__unpack(NULL, out.len, (const uint8_t *)out.data);
        FZ_ASSERT(m && m->body_case == DRONEGATE__V1__SERVER_MESSAGE__BODY_ERROR);
        FZ_ASSERT(m->error->seq == 42 && !strcmp(m->error->code, s[0]) &&
                  !strcmp(m->error->field, s[1]) && !strcmp(m->error->message, s[2]));
        dronegate__v1__server_message__free_unpacked(m, NULL);
    }
    if (dg_pb_command(&out, s[0], s[1], s[2]) == 0) {
        Dronegate__V1__ServerMessage *m = dronegate__v1__server_message__unpack(NULL, out.len, (const uint8_t *)out.data);
        FZ_ASSERT(m && m->body_case == DRONEGATE__V1__SERVER_MESSAGE__BODY_COMMAND);
        FZ_ASSERT(!strcmp(m->command->id, s[0]) && !strcmp(m->command->name, s[1]) &&
                  !strcmp(m->command->args_json, s[2]));
        dronegate__v1__server_message__free_unpacked(m, NULL);
    }
    dg_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);   /* ASan catches reads past size */
    FZ_ASSERT(buf);
    memcpy(buf, data, size);
    run_t a = { 0 };
    dg_decode_sink_t sink = { on_record, on_error, on_ack, &a };
    int rc = dg_pb_decode(buf, size, NOW_MS, RECV_US, &sink);
    FZ_ASSERT(a.records + a.errors + a.acks == 1);
    if (rc == 1) FZ_ASSERT(a.records == 1);
    else if (rc == -1) FZ_ASSERT(a.invalid == 1);
    else FZ_ASSERT(rc == 0 && a.records == 0 && a.invalid == 0);
    if (rc == 1) roundtrip(&a.last);
    encoders(buf, size);
    free(buf);
    return 0;
}
