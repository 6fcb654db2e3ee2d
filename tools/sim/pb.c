/* pb.c - protobuf messages for --transport ws-pb and grpc, with the code
 * protoc-c generates from proto/dronegate/v1/telemetry.proto (mk/grpc.mk):
 *
 *   sample -> DroneMessage{telemetry}        sim_pb_sample (hot path: packs
 *                                            into the caller's stack buffer)
 *   command_ack -> DroneMessage{command_ack} sim_pb_cmd_ack
 *   ServerMessage -> ack / error / command / session   sim_pb_message
 *
 * The timestamp always travels as timestamp_ms (protobuf has no RFC 3339
 * form); the values are the same quantised ones the JSON path formats.
 * Runs on the drone's worker thread.
 */
#include "sim.h"

#include <errno.h>
#include <string.h>

#include "dronegate/v1/telemetry.pb-c.h"

static const char *const STATUS[SIM_ST__N] = {
    [SIM_ST_LANDED] = "landed", [SIM_ST_TAKEOFF] = "takeoff", [SIM_ST_AIRBORNE] = "airborne",
    [SIM_ST_RETURNING] = "returning", [SIM_ST_LANDING] = "landing",
};

const char *sim_status_name(int st)
{
    return st >= 0 && st < SIM_ST__N ? STATUS[st] : "landed";
}

size_t sim_pb_sample(uint8_t *out, const sim_sample_t *s, uint64_t seq)
{
    Dronegate__V1__Position pos = DRONEGATE__V1__POSITION__INIT;
    pos.has_latitude = pos.has_longitude = pos.has_altitude = 1;
    pos.latitude = s->lat_e7 / 1e7;
    pos.longitude = s->lon_e7 / 1e7;
    pos.altitude = s->alt_cm / 100.0;
    Dronegate__V1__TelemetryFrame f = DRONEGATE__V1__TELEMETRY_FRAME__INIT;
    f.has_seq = f.has_timestamp_ms = 1;
    f.seq = seq;
    f.timestamp_ms = s->ts_ms;
    f.position = &pos;
    f.has_speed = f.has_heading = f.has_climb = f.has_battery = 1;
    f.speed = s->speed_cm / 100.0f;
    f.heading = s->heading_cd / 100.0f;
    f.climb = s->climb_cm / 100.0f;
    f.battery = s->battery_cp / 100.0f;
    f.status = (char *)STATUS[s->status < SIM_ST__N ? s->status : SIM_ST_AIRBORNE];
    Dronegate__V1__DroneMessage m = DRONEGATE__V1__DRONE_MESSAGE__INIT;
    m.body_case = DRONEGATE__V1__DRONE_MESSAGE__BODY_TELEMETRY;
    m.telemetry = &f;
    /* at most 11 + 11 + 29 + 4 * 5 + 11 + 3 bytes: < SIM_PB_SAMPLE_MAX */
    return dronegate__v1__drone_message__pack(&m, out);
}

size_t sim_pb_cmd_ack(uint8_t *out, size_t cap, const char *id, const char *status, const char *message)
{
    Dronegate__V1__CommandAck a = DRONEGATE__V1__COMMAND_ACK__INIT;
    a.id = (char *)id;
    a.status = (char *)status;
    a.message = (char *)(message ? message : "");
    Dronegate__V1__DroneMessage m = DRONEGATE__V1__DRONE_MESSAGE__INIT;
    m.body_case = DRONEGATE__V1__DRONE_MESSAGE__BODY_COMMAND_ACK;
    m.command_ack = &a;
    if (dronegate__v1__drone_message__get_packed_size(&m) > cap) return 0;
    return dronegate__v1__drone_message__pack(&m, out);
}

void sim_pb_message(sim_worker_t *w, sim_drone_t *d, const uint8_t *p, size_t n)
{
    Dronegate__V1__ServerMessage *m = dronegate__v1__server_message__unpack(NULL, n, p);
    if (!m) {
        sim_add(&w->st.unknown_msgs, 1);
        return;
    }
    switch (m->body_case) {
    case DRONEGATE__V1__SERVER_MESSAGE__BODY_ACK:
        if (m->ack->has_seq) sim_on_ack(w, d, m->ack->seq);
        else sim_add(&w->st.unknown_msgs, 1);
        break;
    case DRONEGATE__V1__SERVER_MESSAGE__BODY_ERROR: {
        const Dronegate__V1__Error *e = m->error;
        const char *code = e->code && *e->code ? e->code : "unknown";
        sim_add(&w->st.errors, 1);
        sim_code_inc(w->error_codes, code, strlen(code));
        if (e->message && *e->message && w->err_log_budget > 0 && w->err_log_budget--)
            sim_log(w, "%s: server error %s: %.200s", d->id, code, e->message);
        break;
    }
    case DRONEGATE__V1__SERVER_MESSAGE__BODY_COMMAND: {
        const Dronegate__V1__Command *c = m->command;
        const char *id = c->id ? c->id : "", *name = c->name ? c->name : "", *args = c->args_json ? c->args_json : "";
        sim_proto_command(w, d, id, strlen(id), name, strlen(name), args, strlen(args));
        break;
    }
    case DRONEGATE__V1__SERVER_MESSAGE__BODY_SESSION:
        break;   /* last_seq: this simulator keeps its own counter */
    default:
        sim_add(&w->st.unknown_msgs, 1);
        break;
    }
    dronegate__v1__server_message__free_unpacked(m, NULL);
}

int sim_send_pb(sim_worker_t *w, sim_drone_t *d, const uint8_t *p, size_t n)
{
    if (d->state != SIM_D_OPEN || d->close_sent) return -1;
    if (sim_frame_append(&d->out, 0x2 /* binary */, p, n, (uint32_t)sim_rand(&w->rng))) return -ENOMEM;
    sim_mark_dirty(w, d);
    return 0;
}
