/* endpoint.c - MAVLink over UDP: see endpoint.h.
 *
 * Everything here runs on worker 0's thread (the datagram listener and a
 * 250 ms timer on its loop), so the vehicle table needs no lock. Rows go
 * through dg_record_validate (the one validation path) into the worker's
 * open batch (dg_worker_append), like a WebSocket drone's, with an origin
 * that matches no connection: nobody is acked.
 *
 * Memory: the table holds at most --mavlink-max-vehicles vehicles (fixed
 * array, allocated at start), a vehicle only exists while it is online, and
 * only a CRC-checked HEARTBEAT from an autopilot creates one. A datagram is
 * decoded straight from one 64 KiB buffer. While the worker's batch pool is
 * out (store behind), datagrams are read and dropped (counted): the kernel's
 * socket buffer is the only queue.
 */
#include "endpoint.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "command.h"
#include "mavlink.h"
#include "signing.h"
#include "vehicle.h"
#include "../core/ingest.h"
#include "../codec/validate.h"
#include "../core/hash.h"
#include "../core/live.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/registry.h"
#include "../core/server.h"
#include "../core/timefmt.h"
#include "../fleet/fleet.h"
#include "../net/worker.h"
#include "../pipeline/batch.h"

#define DG_MAV_GCS_SYSID  255
#define DG_MAV_GCS_COMPID 190   /* MAV_COMP_ID_MISSIONPLANNER */
#define DG_MAV_TICK_MS    250
#define DG_MAV_HB_MS      1000
#define DG_MAV_DGRAM_MAX  65536
#define DG_MAV_READS      64    /* datagrams per readiness callback */
#define DG_MAV_RCVBUF     (4 << 20)   /* SO_RCVBUF asked for (the kernel caps it at rmem_max) */
#define DG_MAV_CMD_SLOTS  4     /* commands in flight per vehicle (more wait as pending) */
#define DG_MAV_CMD_RETRY_MS 1000
#define DG_MAV_CMD_TRIES  5     /* then no more retransmits: the command expires unanswered */

#define DG_MAV_STREAMS    8     /* signed (compid, link id) streams remembered per vehicle */

#define DG_MAV_FWD_MAX    8

typedef struct cmd_slot {
    bool             used;
    bool             in_progress;  /* MAV_RESULT_IN_PROGRESS: no more retransmits */
    uint8_t          tries;
    int64_t          next_ms, sent_ms;
    char             id[DG_CMD_ID_LEN + 1];
    dg_mav_cmd_out_t out;
} cmd_slot_t;

typedef struct vehicle {
    struct sockaddr_storage addr;
    socklen_t      alen;
    uint8_t        sysid, compid;
    bool           used;
    int32_t        next;        /* hash chain (index), -1 = end */
    uint32_t       gen;         /* registry ref generation */
    dg_drone_t    *drone;       /* pinned while the vehicle is in the table */
    int64_t        last_hb_ms;  /* monotonic */
    int64_t        last_gcs_hb_ms;
    dg_mav_state_t st;
    cmd_slot_t     cmd[DG_MAV_CMD_SLOTS];
    struct { uint8_t used, compid, link_id; uint64_t ts; } streams[DG_MAV_STREAMS];   /* signing: replay state */
} vehicle_t;

struct dg_mav_ep {
    dg_server_t   *srv;
    dg_worker_t   *w;
    int            fd;
    ev_timer       tick;
    vehicle_t     *v;
    size_t         cap, n;
    int32_t       *buckets;     /* cap rounded up to a power of two */
    size_t         nbuckets;
    int32_t        free_head;   /* free slots chained through next */
    uint32_t       gen;
    uint8_t        out_seq;
    uint8_t       *buf;
    long           store_every_ms;
    long           offline_ms;
    char           ids[256][DG_DRONE_ID_MAX + 1];   /* --mavlink-ids: sysid -> drone id ("" = mav-N) */
    /* signing */
    bool           signing, signing_required;
    bool           has_key[256];                      /* per sysid (a "*" key fills the rest) */
    uint8_t        keys[256][DG_MAV_KEY_LEN];
    uint64_t       newest_ts;                         /* newest accepted signature timestamp */
    uint64_t       out_ts;                            /* our last signature timestamp */
    /* --mavlink-forward: ground stations */
    int            fwd_fd;
    size_t         nfwd;
    struct { struct sockaddr_storage a; socklen_t alen; } fwd[DG_MAV_FWD_MAX];
};

static uint32_t key_hash(const struct sockaddr_storage *a, socklen_t alen, uint8_t sysid)
{
    uint32_t h = dg_fnv1a32(a, alen);
    return (h ^ sysid) * 16777619u;
}

static int32_t find(dg_mav_ep_t *ep, const struct sockaddr_storage *a, socklen_t alen, uint8_t sysid)
{
    int32_t i = ep->buckets[key_hash(a, alen, sysid) & (ep->nbuckets - 1)];
    while (i >= 0) {
        vehicle_t *v = &ep->v[i];
        if (v->sysid == sysid && v->alen == alen && !memcmp(&v->addr, a, alen)) return i;
        i = v->next;
    }
    return -1;
}

static void publish_presence(dg_mav_ep_t *ep, vehicle_t *v, bool online)
{
    const char *id = dg_drone_id(v->drone, NULL);
    dg_live_publish_presence(ep->w, id, online, dg_now_ms());
    dg_fleet_presence(ep->srv->fleet, id, online);
}

static void send_frame(dg_mav_ep_t *ep, vehicle_t *v, uint32_t msgid, const uint8_t *payload, size_t len)
{
    uint8_t out[25 + DG_MAV_MAX_PAYLOAD];
    int n;
    if (ep->signing && ep->has_key[v->sysid]) {
        uint64_t ts = dg_mav_sign_now();
        ep->out_ts = ts > ep->out_ts ? ts : ep->out_ts + 1;
        n = dg_mav_encode_v2_signed(out, ep->out_seq++, DG_MAV_GCS_SYSID, DG_MAV_GCS_COMPID, msgid, payload, len,
                                    ep->keys[v->sysid], 0, ep->out_ts);
    } else {
        n = dg_mav_encode_v2(out, ep->out_seq++, DG_MAV_GCS_SYSID, DG_MAV_GCS_COMPID, msgid, payload, len);
    }
    if (n > 0) (void)sendto(ep->fd, out, (size_t)n, MSG_DONTWAIT, (const struct sockaddr *)&v->addr, v->alen);
}

static void send_gcs_heartbeat(dg_mav_ep_t *ep, vehicle_t *v, int64_t now)
{
    dg_mav_heartbeat_t hb = { .custom_mode = 0, .type = 6 /* MAV_TYPE_GCS */, .autopilot = 8 /* INVALID */,
                              .base_mode = 0, .system_status = 4 /* ACTIVE */, .mavlink_version = 3 };
    uint8_t p[9];
    dg_mav_put_heartbeat(p, &hb);
    send_frame(ep, v, DG_MAV_MSG_HEARTBEAT, p, sizeof p);
    v->last_gcs_hb_ms = now;
}

static dg_mav_ep_t *the_ep;   /* the process' endpoint: the ingest command hook has no user data */

static void command_set(dg_mav_ep_t *ep, vehicle_t *v, const char *id, int status, const char *msg)
{
    dg_command_t st;
    if (dg_commands_set(ep->srv->commands, id, strlen(id), dg_drone_id(v->drone, NULL), status,
                        msg, msg ? strlen(msg) : 0, dg_now_ms(), &st) == 0)
        dg_ingest_command_changed(ep->w, &st);
}

static void command_transmit(dg_mav_ep_t *ep, vehicle_t *v, cmd_slot_t *k, int64_t now)
{
    if (k->out.msgid == DG_MAV_MSG_COMMAND_LONG) k->out.payload[32] = k->tries;   /* confirmation counter */
    send_frame(ep, v, k->out.msgid, k->out.payload, k->out.len);
    k->tries++;
    k->next_ms = now + DG_MAV_CMD_RETRY_MS;
}

/* Send cmd to the vehicle (a free slot), or leave it pending. */
static void command_start(dg_mav_ep_t *ep, vehicle_t *v, const dg_command_t *cmd)
{
    for (int i = 0; i < DG_MAV_CMD_SLOTS; i++)
        if (v->cmd[i].used && !strcmp(v->cmd[i].id, cmd->id)) return;   /* in flight already */
    cmd_slot_t *k = NULL;
    for (int i = 0; i < DG_MAV_CMD_SLOTS && !k; i++)
        if (!v->cmd[i].used) k = &v->cmd[i];
    if (!k) return;   /* stays pending: sent when a slot frees */
    char err[200];
    dg_mav_cmd_out_t out;
    if (dg_mav_command_build(cmd, v->sysid, v->compid, &out, err, sizeof err)) {
        command_set(ep, v, cmd->id, DG_CMD_REJECTED, err);
        return;
    }
    /* a COMMAND_ACK names only the MAV_CMD: one command per MAV_CMD in
     * flight, the next waits (pending) until that one is answered */
    for (int i = 0; i < DG_MAV_CMD_SLOTS; i++)
        if (v->cmd[i].used && v->cmd[i].out.command == out.command) return;
    memset(k, 0, sizeof *k);
    k->used = true;
    snprintf(k->id, sizeof k->id, "%s", cmd->id);
    k->out = out;
    int64_t now = dg_mono_ms();
    k->sent_ms = now;
    command_transmit(ep, v, k, now);
    command_set(ep, v, cmd->id, DG_CMD_SENT, NULL);
}

static void send_pending(dg_mav_ep_t *ep, vehicle_t *v)
{
    dg_command_t pend[DG_MAV_CMD_SLOTS];
    size_t np = dg_commands_pending(ep->srv->commands, dg_drone_id(v->drone, NULL), pend, DG_MAV_CMD_SLOTS);
    for (size_t i = 0; i < np; i++) command_start(ep, v, &pend[i]);
}

/* ingest's hook: a command for one of our vehicles (registry gen). */
static void on_command(dg_worker_t *w, uint32_t gen, const dg_command_t *cmd)
{
    dg_mav_ep_t *ep = the_ep;
    if (!ep || w != ep->w) return;
    for (size_t i = 0; i < ep->cap; i++)
        if (ep->v[i].used && ep->v[i].gen == gen) {
            command_start(ep, &ep->v[i], cmd);
            return;
        }
    /* gone meanwhile: stays pending, sent if it comes back before expiring */
}

static void on_command_ack(dg_mav_ep_t *ep, vehicle_t *v, const dg_mav_frame_t *f)
{
    dg_mav_command_ack_t a;
    dg_mav_get_command_ack(f, &a);
    for (int i = 0; i < DG_MAV_CMD_SLOTS; i++) {
        cmd_slot_t *k = &v->cmd[i];
        if (!k->used || k->out.command != a.command) continue;
        const char *name;
        int st = dg_mav_result_status(a.result, &name);
        char id[DG_CMD_ID_LEN + 1];
        snprintf(id, sizeof id, "%s", k->id);
        if (st == DG_CMD_ACCEPTED) k->in_progress = true;
        else k->used = false;
        command_set(ep, v, id, st, name);
        if (!k->used) send_pending(ep, v);
        return;
    }
}

static void command_tick(dg_mav_ep_t *ep, vehicle_t *v, int64_t now)
{
    bool freed = false;
    for (int i = 0; i < DG_MAV_CMD_SLOTS; i++) {
        cmd_slot_t *k = &v->cmd[i];
        if (!k->used) continue;
        if (k->in_progress) {
            if (now - k->sent_ms >= ep->srv->cfg->command_timeout_ms) { k->used = false; freed = true; }
            continue;
        }
        if (now < k->next_ms) continue;
        if (k->tries >= DG_MAV_CMD_TRIES) {   /* unanswered: it expires at --command-timeout */
            dg_warn("MAVLink drone %s: no COMMAND_ACK for command %s after %d transmissions",
                    dg_drone_id(v->drone, NULL), k->id, (int)k->tries);
            k->used = false;
            freed = true;
            continue;
        }
        command_transmit(ep, v, k, now);
    }
    if (freed) send_pending(ep, v);
}

static void vehicle_remove(dg_mav_ep_t *ep, int32_t idx)
{
    vehicle_t *v = &ep->v[idx];
    int32_t *pp = &ep->buckets[key_hash(&v->addr, v->alen, v->sysid) & (ep->nbuckets - 1)];
    while (*pp != idx) pp = &ep->v[*pp].next;
    *pp = v->next;
    dg_conn_ref_t ref = { ep->w->id, DG_INGEST_SLOT_NOCONN, v->gen };
    if (dg_registry_detach(ep->srv->registry, v->drone, ref, dg_now_ms())) publish_presence(ep, v, false);
    dg_registry_release(ep->srv->registry, v->drone);
    dg_gauge_add(&dg_metrics.mav_vehicles, -1);
    memset(v, 0, sizeof *v);
    v->next = ep->free_head;
    ep->free_head = idx;
    ep->n--;
}

/* A CRC-checked HEARTBEAT from a source we do not know: a new vehicle. */
static vehicle_t *vehicle_add(dg_mav_ep_t *ep, const struct sockaddr_storage *a, socklen_t alen,
                              const dg_mav_frame_t *f, int64_t now)
{
    if (ep->free_head < 0) {
        dg_inc(&dg_metrics.mav_packets[DG_MAVP_VEHICLES_FULL], 1);
        return NULL;
    }
    char id[DG_DRONE_ID_MAX + 1];
    if (ep->ids[f->sysid][0]) snprintf(id, sizeof id, "%s", ep->ids[f->sysid]);
    else snprintf(id, sizeof id, "mav-%u", (unsigned)f->sysid);
    dg_drone_t *d = dg_registry_get(ep->srv->registry, id, strlen(id), true);
    if (!d) return NULL;
    int32_t idx = ep->free_head;
    vehicle_t *v = &ep->v[idx];
    ep->free_head = v->next;
    memset(v, 0, sizeof *v);
    memcpy(&v->addr, a, alen);
    v->alen = alen;
    v->sysid = f->sysid;
    v->compid = f->compid;
    v->used = true;
    v->drone = d;
    v->gen = ++ep->gen;
    v->last_hb_ms = now;
    dg_mav_state_init(&v->st);
    uint32_t b = key_hash(a, alen, f->sysid) & (ep->nbuckets - 1);
    v->next = ep->buckets[b];
    ep->buckets[b] = idx;
    ep->n++;
    dg_gauge_add(&dg_metrics.mav_vehicles, 1);
    dg_conn_ref_t ref = { ep->w->id, DG_INGEST_SLOT_NOCONN, v->gen }, old;
    int replaced = dg_registry_attach(ep->srv->registry, d, ref, &old, dg_now_ms());
    if (!replaced) publish_presence(ep, v, true);
    char host[INET6_ADDRSTRLEN + 8] = "?", port[8] = "?";
    getnameinfo((const struct sockaddr *)a, alen, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
    dg_info("MAVLink vehicle sysid %u at %s:%s is drone %s (online)", (unsigned)f->sysid, host, port, id);
    send_gcs_heartbeat(ep, v, now);
    send_pending(ep, v);   /* commands created while it was offline (until they expire) */
    return v;
}

typedef struct dgram_ctx {
    dg_mav_ep_t *ep;
    const struct sockaddr_storage *addr;
    socklen_t alen;
    int64_t now;
    vehicle_t *last;   /* the vehicle of the previous frame (usually the same) */
} dgram_ctx_t;

static void take_row(dg_mav_ep_t *ep, vehicle_t *v, dg_record_t *r)
{
    size_t idlen;
    const char *id = dg_drone_id(v->drone, &idlen);
    memcpy(r->drone_id, id, idlen + 1);
    r->drone_id_len = (uint8_t)idlen;
    r->recv_us = dg_now_us();
    r->origin = dg_origin_pack((unsigned)ep->w->id, DG_ORIGIN_SLOT_MAX, 0);   /* matches no connection */
    const char *field = NULL;
    char msg[160];
    if (dg_record_validate(r, &field, msg, sizeof msg)) {
        dg_inc(&dg_metrics.rejected[DG_REJ_INVALID_FIELD], 1);
        dg_debug("MAVLink row of %s rejected: %s", id, msg);
        return;
    }
    dg_inc(&dg_metrics.received_udp_mav, 1);
    dg_worker_append(ep->w, r);
    if (dg_live_active(ep->w)) dg_live_publish_record(ep->w, r);
    dg_registry_update(ep->srv->registry, v->drone, r);
}

/* Signing: the signature with the sysid's key, then the replay rules
 * (signing.h). v may be NULL (a new vehicle's first packet). */
static bool signature_ok(dg_mav_ep_t *ep, vehicle_t *v, const dg_mav_frame_t *f)
{
    if (!f->is_signed) {
        if (!ep->signing_required) return true;
        dg_inc(&dg_metrics.mav_packets[DG_MAVP_UNSIGNED], 1);
        return false;
    }
    if (!ep->has_key[f->sysid] || !dg_mav_sig_ok(f, ep->keys[f->sysid])) {
        dg_inc(&dg_metrics.mav_packets[DG_MAVP_BAD_SIGNATURE], 1);
        return false;
    }
    if (f->sig_ts + DG_MAV_REPLAY_WINDOW < ep->newest_ts) goto replayed;
    if (v)
        for (int i = 0; i < DG_MAV_STREAMS; i++)
            if (v->streams[i].used && v->streams[i].compid == f->compid && v->streams[i].link_id == f->link_id) {
                if (f->sig_ts <= v->streams[i].ts) goto replayed;
                break;
            }
    return true;
replayed:
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_REPLAYED], 1);
    return false;
}

static void signature_note(dg_mav_ep_t *ep, vehicle_t *v, const dg_mav_frame_t *f)
{
    if (!f->is_signed) return;
    if (f->sig_ts > ep->newest_ts) ep->newest_ts = f->sig_ts;
    int k = -1, oldest = 0;
    for (int i = 0; i < DG_MAV_STREAMS; i++) {
        if (v->streams[i].used && v->streams[i].compid == f->compid && v->streams[i].link_id == f->link_id) { k = i; break; }
        if (k < 0 && !v->streams[i].used) k = i;
        if (v->streams[i].ts < v->streams[oldest].ts) oldest = i;
    }
    if (k < 0) k = oldest;
    v->streams[k].used = 1;
    v->streams[k].compid = f->compid;
    v->streams[k].link_id = f->link_id;
    v->streams[k].ts = f->sig_ts;
}

static void on_frame(const dg_mav_frame_t *f, void *ud)
{
    dgram_ctx_t *c = ud;
    dg_mav_ep_t *ep = c->ep;
    vehicle_t *v = c->last;
    if (!v || v->sysid != f->sysid) {
        int32_t i = find(ep, c->addr, c->alen, f->sysid);
        v = i >= 0 ? &ep->v[i] : NULL;
    }
    if (ep->signing && !signature_ok(ep, v, f)) return;
    if (f->msgid == DG_MAV_MSG_HEARTBEAT) {
        dg_mav_heartbeat_t hb;
        dg_mav_get_heartbeat(f, &hb);
        /* a ground station or a component without an autopilot (camera,
         * gimbal, another GCS) does not make a vehicle */
        bool autopilot = hb.type != 6 && hb.autopilot != 8;
        if (!v && autopilot && !(v = vehicle_add(ep, c->addr, c->alen, f, c->now))) return;   /* counted: vehicles_full */
        if (v && autopilot) v->last_hb_ms = c->now;
    }
    if (!v) {
        dg_inc(&dg_metrics.mav_packets[DG_MAVP_NO_VEHICLE], 1);
        return;
    }
    c->last = v;
    if (ep->signing) signature_note(ep, v, f);
    if (f->msgid == DG_MAV_MSG_COMMAND_ACK) {
        on_command_ack(ep, v, f);
        return;
    }
    dg_record_t r;
    if (dg_mav_state_apply(&v->st, f, dg_now_ms(), ep->store_every_ms, &r)) take_row(ep, v, &r);
}

static void count_stats(const dg_mav_stats_t *st)
{
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_OK], st->ok);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_BAD_CRC], st->bad_crc);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_UNKNOWN], st->unknown);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_TRUNCATED], st->truncated);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_BAD_INCOMPAT], st->bad_incompat);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_SIGNED], st->signed_frames);
    dg_inc(&dg_metrics.mav_packets[DG_MAVP_GARBAGE], st->garbage);
}

/* Read up to DG_MAV_READS datagrams from fd into ep->buf, each handed to fn
 * (stops at EAGAIN, or an ICMP error of an earlier send). */
typedef void (*dgram_fn)(dg_mav_ep_t *ep, dg_worker_t *w, struct sockaddr_storage *a, socklen_t alen, size_t n);
static void read_datagrams(dg_mav_ep_t *ep, dg_worker_t *w, int fd, dgram_fn fn)
{
    for (int k = 0; k < DG_MAV_READS; k++) {
        struct sockaddr_storage a;
        socklen_t alen = sizeof a;
        ssize_t n = recvfrom(fd, ep->buf, DG_MAV_DGRAM_MAX, MSG_DONTWAIT, (struct sockaddr *)&a, &alen);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (alen > sizeof a) continue;
        if (alen < sizeof a) memset((char *)&a + alen, 0, sizeof a - alen);
        fn(ep, w, &a, alen, (size_t)n);
    }
}

/* A vehicle's datagram. */
static void vehicle_datagram(dg_mav_ep_t *ep, dg_worker_t *w, struct sockaddr_storage *a, socklen_t alen, size_t n)
{
    if (w->paused || w->draining) {   /* store behind: the kernel buffer is the queue; beyond, drops */
        dg_inc(&dg_metrics.mav_packets[DG_MAVP_PAUSED], 1);
        return;
    }
    dgram_ctx_t c = { ep, a, alen, dg_mono_ms(), NULL };
    dg_mav_stats_t st;
    dg_mav_scan_stats(ep->buf, n, on_frame, &c, &st);
    count_stats(&st);
    if (c.last && ep->nfwd) {   /* a known vehicle's datagram: to the ground stations, as it came */
        for (size_t i = 0; i < ep->nfwd; i++)
            if (sendto(ep->fwd_fd, ep->buf, n, MSG_DONTWAIT, (struct sockaddr *)&ep->fwd[i].a, ep->fwd[i].alen) == (ssize_t)n)
                dg_inc(&dg_metrics.mav_forwarded[0], 1);
    }
}

static void on_readable(dg_worker_t *w, int fd, void *ud)
{
    read_datagrams(ud, w, fd, vehicle_datagram);
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t al, const struct sockaddr_storage *b, socklen_t bl);

/* The forward socket: a ground station's datagram goes to every vehicle
 * online (MAVLink routing without a routing table: the vehicles ignore
 * what is not for their sysid). Datagrams from other addresses are dropped. */
static void gcs_datagram(dg_mav_ep_t *ep, dg_worker_t *w, struct sockaddr_storage *a, socklen_t alen, size_t n)
{
    (void)w;
    bool known = false;
    for (size_t i = 0; i < ep->nfwd && !known; i++)
        known = same_addr(a, alen, &ep->fwd[i].a, ep->fwd[i].alen);
    if (!known) return;
    for (size_t i = 0; i < ep->cap; i++) {
        vehicle_t *v = &ep->v[i];
        if (v->used && sendto(ep->fd, ep->buf, n, MSG_DONTWAIT, (struct sockaddr *)&v->addr, v->alen) == (ssize_t)n)
            dg_inc(&dg_metrics.mav_forwarded[1], 1);
    }
}

static void on_gcs_readable(dg_worker_t *w, int fd, void *ud)
{
    read_datagrams(ud, w, fd, gcs_datagram);
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop; (void)revents;
    dg_mav_ep_t *ep = t->data;
    if (ep->w->draining) return;
    int64_t now = dg_mono_ms();
    for (size_t i = 0; i < ep->cap; i++) {
        vehicle_t *v = &ep->v[i];
        if (!v->used) continue;
        if (now - v->last_hb_ms >= ep->offline_ms) {
            dg_info("MAVLink drone %s: no heartbeat for %ld ms (offline)", dg_drone_id(v->drone, NULL), ep->offline_ms);
            vehicle_remove(ep, (int32_t)i);
            continue;
        }
        if (now - v->last_gcs_hb_ms >= DG_MAV_HB_MS) send_gcs_heartbeat(ep, v, now);
        command_tick(ep, v, now);
    }
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t al, const struct sockaddr_storage *b, socklen_t bl)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr);
    }
    return al == bl && !memcmp(a, b, al);
}

/* --mavlink-forward udp:HOST:PORT[,udp:HOST:PORT...]: one socket (the
 * family of the first target; every target must share it). */
static int parse_forward(dg_mav_ep_t *ep, const char *spec, char *err, size_t errlen)
{
    const char *s = spec;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char item[300], host[256];
        int port;
        if (len >= sizeof item || len < 5 || strncmp(s, "udp:", 4)) goto bad;
        memcpy(item, s + 4, len - 4);
        item[len - 4] = '\0';
        if (dg_split_hostport(item, host, sizeof host, &port) || port <= 0 || !host[0]) goto bad;
        if (ep->nfwd == DG_MAV_FWD_MAX) {
            snprintf(err, errlen, "--mavlink-forward: at most %d ground stations", DG_MAV_FWD_MAX);
            return -1;
        }
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM }, *ai = NULL;
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port);
        int rc = getaddrinfo(host, ps, &hints, &ai);
        if (rc) { snprintf(err, errlen, "--mavlink-forward: cannot resolve %s: %s", host, gai_strerror(rc)); return -1; }
        if (ep->nfwd && ai->ai_family != ep->fwd[0].a.ss_family) {
            freeaddrinfo(ai);
            snprintf(err, errlen, "--mavlink-forward: every ground station must be IPv4, or every one IPv6");
            return -1;
        }
        memcpy(&ep->fwd[ep->nfwd].a, ai->ai_addr, ai->ai_addrlen);
        ep->fwd[ep->nfwd].alen = ai->ai_addrlen;
        ep->nfwd++;
        freeaddrinfo(ai);
        s = comma ? comma + 1 : s + len;
        continue;
    bad:
        snprintf(err, errlen, "--mavlink-forward must be udp:HOST:PORT[,udp:HOST:PORT...] (got \"%s\")", spec);
        return -1;
    }
    if (!ep->nfwd) return 0;
    ep->fwd_fd = socket(ep->fwd[0].a.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ep->fwd_fd < 0) { snprintf(err, errlen, "--mavlink-forward: socket: %s", strerror(errno)); return -1; }
    return 0;
}

/* --mavlink-ids "1=alpha,2=beta" */
static int parse_ids(dg_mav_ep_t *ep, const char *s, char *err, size_t errlen)
{
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char item[128];
        if (len >= sizeof item) goto bad;
        memcpy(item, s, len);
        item[len] = '\0';
        char *eq = strchr(item, '=');
        if (!eq) goto bad;
        *eq = '\0';
        char *end;
        long sys = strtol(item, &end, 10);
        if (end == item || *end || sys < 1 || sys > 255) goto bad;
        if (!dg_drone_id_valid(eq + 1, strlen(eq + 1))) {
            snprintf(err, errlen, "--mavlink-ids: \"%s\" is not a valid drone id", eq + 1);
            return -1;
        }
        snprintf(ep->ids[sys], sizeof ep->ids[sys], "%s", eq + 1);
        s = comma ? comma + 1 : NULL;
        continue;
    bad:
        snprintf(err, errlen, "--mavlink-ids must be SYSID=DRONE_ID[,SYSID=DRONE_ID...] with SYSID 1-255 (got \"%.*s\")",
                 (int)len, s);
        return -1;
    }
    return 0;
}

/* --mavlink-signing-key HEX64 | file:PATH ("SYSID HEX64" or "* HEX64" per line, # comments) */
static int load_keys(dg_mav_ep_t *ep, const char *spec, char *err, size_t errlen)
{
    ep->signing = true;
    if (strncmp(spec, "file:", 5) != 0) {
        uint8_t key[DG_MAV_KEY_LEN];
        if (dg_mav_key_parse(spec, strlen(spec), key)) {
            snprintf(err, errlen, "--mavlink-signing-key must be 64 hex digits (a 32-byte key) or file:PATH");
            return -1;
        }
        for (int i = 0; i < 256; i++) { memcpy(ep->keys[i], key, sizeof key); ep->has_key[i] = true; }
        return 0;
    }
    FILE *fp = fopen(spec + 5, "r");
    if (!fp) { snprintf(err, errlen, "--mavlink-signing-key: cannot open %s: %s", spec + 5, strerror(errno)); return -1; }
    char line[256];
    int ln = 0, n = 0;
    bool explicit_key[256] = { false };
    while (fgets(line, sizeof line, fp)) {
        ln++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || !*p) continue;
        char who[16], hex[80];
        uint8_t key[DG_MAV_KEY_LEN];
        if (sscanf(p, "%15s %79s", who, hex) != 2 || dg_mav_key_parse(hex, strlen(hex), key)) goto bad;
        if (!strcmp(who, "*")) {
            for (int i = 0; i < 256; i++)
                if (!explicit_key[i]) { memcpy(ep->keys[i], key, sizeof key); ep->has_key[i] = true; }
        } else {
            char *end;
            long sys = strtol(who, &end, 10);
            if (*end || sys < 1 || sys > 255) goto bad;
            memcpy(ep->keys[sys], key, sizeof key);
            ep->has_key[sys] = explicit_key[sys] = true;
        }
        n++;
        continue;
    bad:
        fclose(fp);
        snprintf(err, errlen, "--mavlink-signing-key %s line %d: expected \"SYSID HEX64\" or \"* HEX64\"", spec + 5, ln);
        return -1;
    }
    fclose(fp);
    if (!n) { snprintf(err, errlen, "--mavlink-signing-key %s holds no key", spec + 5); return -1; }
    return 0;
}

dg_mav_ep_t *dg_mav_ep_start(dg_server_t *srv, const char *hostport, int *bound_port, char *err, size_t errlen)
{
    const dg_config_t *cfg = srv->cfg;
    char host[256];
    int port;
    if (dg_split_hostport(hostport, host, sizeof host, &port)) {
        snprintf(err, errlen, "--mavlink-listen must be HOST:PORT (got \"%s\")", hostport);
        return NULL;
    }
    dg_mav_ep_t *ep = calloc(1, sizeof *ep);
    if (!ep) { snprintf(err, errlen, "out of memory"); return NULL; }
    ep->srv = srv;
    ep->w = srv->workers[0];
    ep->fd = -1;
    ep->store_every_ms = cfg->mavlink_store_every_ms;
    ep->offline_ms = cfg->mavlink_offline_timeout_ms;
    ep->cap = (size_t)cfg->mavlink_max_vehicles;
    if (parse_ids(ep, cfg->mavlink_ids, err, errlen)) { free(ep); return NULL; }
    if (cfg->mavlink_signing_key[0] && load_keys(ep, cfg->mavlink_signing_key, err, errlen)) { free(ep); return NULL; }
    ep->signing_required = ep->signing && !cfg->mavlink_signing_optional;
    ep->nbuckets = 1;
    while (ep->nbuckets < ep->cap) ep->nbuckets <<= 1;
    ep->v = calloc(ep->cap, sizeof *ep->v);
    ep->buckets = malloc(ep->nbuckets * sizeof *ep->buckets);
    ep->buf = malloc(DG_MAV_DGRAM_MAX);
    if (!ep->v || !ep->buckets || !ep->buf) { snprintf(err, errlen, "out of memory"); goto fail; }
    for (size_t i = 0; i < ep->nbuckets; i++) ep->buckets[i] = -1;
    for (size_t i = 0; i < ep->cap; i++) ep->v[i].next = i + 1 < ep->cap ? (int32_t)(i + 1) : -1;
    ep->free_head = 0;

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host[0] ? host : NULL, ps, &hints, &ai);
    if (rc) { snprintf(err, errlen, "--mavlink-listen: cannot resolve %s: %s", host, gai_strerror(rc)); goto fail; }
    ep->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ep->fd < 0 || bind(ep->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        snprintf(err, errlen, "--mavlink-listen: cannot bind udp %s:%d: %s (is another process using the port?)",
                 host, port, strerror(errno));
        freeaddrinfo(ai);
        goto fail;
    }
    freeaddrinfo(ai);
    /* bursts of many vehicles: a larger kernel queue (bounded by net.core.rmem_max) */
    int rcv = DG_MAV_RCVBUF;
    setsockopt(ep->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    if (getsockname(ep->fd, (struct sockaddr *)&sa, &sl) == 0)
        *bound_port = sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port)
                                                : ntohs(((struct sockaddr_in *)&sa)->sin_port);
    if (dg_worker_listen_dgram(ep->w, ep->fd, on_readable, ep)) {
        snprintf(err, errlen, "--mavlink-listen: the worker's listener table is full");
        goto fail;
    }
    ep->fwd_fd = -1;
    if (cfg->mavlink_forward[0]) {
        /* on failure main exits; the worker owns (and closes) the sockets already registered */
        if (parse_forward(ep, cfg->mavlink_forward, err, errlen)) { ep->fd = -1; goto fail; }
        if (dg_worker_listen_dgram(ep->w, ep->fwd_fd, on_gcs_readable, ep)) {
            snprintf(err, errlen, "--mavlink-forward: the worker's listener table is full");
            close(ep->fwd_fd);
            ep->fd = -1;
            goto fail;
        }
    }
    ev_timer_init(&ep->tick, on_tick, DG_MAV_TICK_MS / 1000.0, DG_MAV_TICK_MS / 1000.0);
    ep->tick.data = ep;
    ev_timer_start(ep->w->loop, &ep->tick);   /* the worker has not started: its loop is ours to touch */
    the_ep = ep;
    dg_ingest_set_noconn_command(on_command);
    return ep;
fail:
    if (ep->fd >= 0) close(ep->fd);
    free(ep->v);
    free(ep->buckets);
    free(ep->buf);
    free(ep);
    return NULL;
}

void dg_mav_ep_free(dg_mav_ep_t *ep)
{
    if (!ep) return;
    dg_ingest_set_noconn_command(NULL);
    the_ep = NULL;
    for (size_t i = 0; i < ep->cap; i++)
        if (ep->v[i].used) dg_registry_release(ep->srv->registry, ep->v[i].drone);
    OPENSSL_cleanse(ep->keys, sizeof ep->keys);
    free(ep->v);
    free(ep->buckets);
    free(ep->buf);
    free(ep);
}
