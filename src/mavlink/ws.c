/* ws.c - see ws.h. Per connection (c->proto, allocated at the first
 * message, freed by the io's release): the merged vehicle state, the
 * vehicle's system id (from its first autopilot HEARTBEAT; until then the
 * first frame's), our packet sequence and the commands awaiting an ack. */
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "mavlink.h"
#include "vehicle.h"
#include "../codec/json_telemetry.h"
#include "../codec/validate.h"
#include "../core/live.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/timefmt.h"
#include "../net/worker.h"
#include "../pipeline/batch.h"
#include "../ws/ws.h"

#define DG_MAV_WS_CMDS 8

typedef struct mav_ws {
    dg_mav_state_t st;
    uint8_t        sysid, compid;
    bool           has_sysid, sysid_from_hb;
    uint8_t        out_seq;
    struct { bool used; uint16_t command; char id[DG_CMD_ID_LEN + 1]; } cmd[DG_MAV_WS_CMDS];
} mav_ws_t;

static mav_ws_t *S(dg_conn_t *c)
{
    if (!c->proto) {
        mav_ws_t *m = calloc(1, sizeof *m);
        if (!m) return NULL;
        dg_mav_state_init(&m->st);
        c->proto = m;
    }
    return c->proto;
}

static void send_packet(dg_conn_t *c, mav_ws_t *m, uint32_t msgid, const uint8_t *p, size_t len)
{
    uint8_t out[12 + DG_MAV_MAX_PAYLOAD];
    int n = dg_mav_encode_v2(out, m->out_seq++, 255, 190, msgid, p, len);
    if (n > 0) dg_ingest_ws_send(c, DG_WS_OP_BINARY, out, (size_t)n);
}

typedef struct frame_ctx { dg_conn_t *c; mav_ws_t *m; } frame_ctx_t;

static void on_ack(dg_conn_t *c, mav_ws_t *m, const dg_mav_frame_t *f)
{
    dg_mav_command_ack_t a;
    dg_mav_get_command_ack(f, &a);
    for (int i = 0; i < DG_MAV_WS_CMDS; i++) {
        if (!m->cmd[i].used || m->cmd[i].command != a.command) continue;
        const char *name;
        int st = dg_mav_result_status(a.result, &name);
        if (st != DG_CMD_ACCEPTED) m->cmd[i].used = false;
        dg_command_t out;
        if (dg_commands_set(c->w->srv->commands, m->cmd[i].id, strlen(m->cmd[i].id),
                            dg_drone_id(dg_drone_chan(c)->drone, NULL), st, name, strlen(name), dg_now_ms(), &out) == 0)
            dg_ingest_command_changed(c->w, &out);
        return;
    }
}

static void on_frame(const dg_mav_frame_t *f, void *ud)
{
    frame_ctx_t *x = ud;
    dg_conn_t *c = x->c;
    mav_ws_t *m = x->m;
    if (c->dead || c->closing) return;
    if (f->msgid == DG_MAV_MSG_HEARTBEAT) {
        dg_mav_heartbeat_t hb;
        dg_mav_get_heartbeat(f, &hb);
        if (hb.type != 6 && hb.autopilot != 8 && !m->sysid_from_hb) {
            m->sysid = f->sysid; m->compid = f->compid;
            m->has_sysid = m->sysid_from_hb = true;
        }
    }
    if (!m->has_sysid) { m->sysid = f->sysid; m->compid = f->compid; m->has_sysid = true; }
    if (f->sysid != m->sysid) {   /* another system on the same link: not this drone */
        dg_inc(&dg_metrics.mav_packets[DG_MAVP_NO_VEHICLE], 1);
        return;
    }
    if (f->msgid == DG_MAV_MSG_COMMAND_ACK) { on_ack(c, m, f); return; }
    dg_record_t r;
    if (!dg_mav_state_apply(&m->st, f, dg_now_ms(), c->w->srv->cfg->mavlink_store_every_ms, &r)) return;
    size_t idlen;
    const char *id = dg_drone_id(dg_drone_chan(c)->drone, &idlen);
    memcpy(r.drone_id, id, idlen + 1);
    r.drone_id_len = (uint8_t)idlen;
    r.recv_us = dg_now_us();
    r.origin = dg_origin_pack((unsigned)c->w->id, c->slot, c->gen);
    const char *field = NULL;
    char msg[160];
    if (dg_record_validate(&r, &field, msg, sizeof msg)) {
        dg_inc(&dg_metrics.rejected[DG_REJ_INVALID_FIELD], 1);
        return;
    }
    dg_inc(&dg_metrics.received_ws_mav, 1);
    dg_worker_append(c->w, &r);
    if (dg_live_active(c->w)) dg_live_publish_record(c->w, &r);
    dg_registry_update(c->w->srv->registry, dg_drone_chan(c)->drone, &r);
}

static int mav_message(dg_conn_t *c, int opcode, uint8_t *data, size_t len)
{
    if (opcode != DG_WS_OP_BINARY) {
        dg_inc(&dg_metrics.rejected[DG_REJ_BINARY], 1);   /* the frame type this subprotocol does not carry */
        return DG_WS_CLOSE_UNSUPPORTED;
    }
    mav_ws_t *m = S(c);
    if (!m) return 1011;
    frame_ctx_t x = { c, m };
    dg_mav_stats_t st;
    dg_mav_scan_stats(data, len, on_frame, &x, &st);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_OK], st.ok);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_BAD_CRC], st.bad_crc);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_UNKNOWN], st.unknown);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_TRUNCATED], st.truncated);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_BAD_INCOMPAT], st.bad_incompat);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_SIGNED], st.signed_frames);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_GARBAGE], st.garbage);
    return 0;
}

static void mav_session(dg_conn_t *c, int known, uint64_t seq)
{
    (void)known; (void)seq;   /* MAVLink has no session message: our GCS heartbeat says hello */
    mav_ws_t *m = S(c);
    if (!m) return;
    dg_mav_heartbeat_t hb = { .type = 6, .autopilot = 8, .system_status = 4, .mavlink_version = 3 };
    uint8_t p[9];
    dg_mav_put_heartbeat(p, &hb);
    send_packet(c, m, DG_MAV_MSG_HEARTBEAT, p, sizeof p);
}

static void mav_ack(dg_conn_t *c, uint64_t seq) { (void)c; (void)seq; }   /* rows carry no seq */

static void mav_error(dg_conn_t *c, const dg_decode_error_t *e, uint64_t suppressed)
{
    (void)c; (void)e; (void)suppressed;   /* no MAVLink message for it: counted in the metrics */
}

static void mav_command(dg_conn_t *c, const dg_command_t *cmd)
{
    mav_ws_t *m = S(c);
    if (!m) return;
    char err[200];
    dg_mav_cmd_out_t out;
    if (dg_mav_command_build(cmd, m->has_sysid ? m->sysid : 1, m->has_sysid ? m->compid : 1, &out, err, sizeof err)) {
        dg_command_t st;
        if (dg_commands_set(c->w->srv->commands, cmd->id, strlen(cmd->id), NULL, DG_CMD_REJECTED, err, strlen(err),
                            dg_now_ms(), &st) == 0)
            dg_ingest_command_changed(c->w, &st);
        return;
    }
    int k = -1;
    for (int i = 0; i < DG_MAV_WS_CMDS && k < 0; i++)
        if (!m->cmd[i].used) k = i;
    if (k < 0) k = 0;   /* the oldest slot: its command then expires unanswered */
    m->cmd[k].used = true;
    m->cmd[k].command = out.command;
    snprintf(m->cmd[k].id, sizeof m->cmd[k].id, "%s", cmd->id);
    send_packet(c, m, out.msgid, out.payload, out.len);
}

static void mav_release(dg_conn_t *c)
{
    free(c->proto);
    c->proto = NULL;
}

const dg_drone_io_t dg_mav_ws_io = {
    .name = DG_MAV_WS_PROTOCOL, .transport = DG_TR_WEBSOCKET, .ws = true,
    .session = mav_session, .ack = mav_ack, .error = mav_error, .command = mav_command,
    .close = dg_ingest_ws_close, .closed = dg_ingest_ws_closed,
    .message = mav_message, .release = mav_release,
};
