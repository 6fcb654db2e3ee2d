/* drive.c - --transport ws-json (default), ws-pb and grpc: every simulated
 * drone is a libdronegate client (include/dronegate/client.h), driven from the
 * worker's own epoll loop. The library is the project's one implementation
 * of the client protocol (upgrade or gRPC call, framing, session message,
 * acks, store-and-forward queue, resend after a reconnect, backoff); this
 * file only drives many clients from one loop and keeps the simulator's
 * figures:
 *
 * - fd/events: after every dg_client_process() the client's fd and events
 *   are read again and the epoll registration follows them. The fd changes
 *   across reconnects (a closed fd leaves epoll by itself; the new one is
 *   added, a new socket number or not: stats.connects tells), and the
 *   drone's generation in the epoll data makes a stale event harmless.
 * - timeout: dg_client_timeout_ms() arms the drone's connection timer in
 *   the worker's heap; 0 puts the drone on the dirty list (processed in the
 *   same iteration's flush phase).
 * - samples: the mission makes them into the drone's ring as before
 *   (drone.c: generate, window, --batch, --tick); sim_lib_transmit hands
 *   them to dg_client_send, --batch at a time, and remembers the seq the
 *   library gave each one. The library keeps them until acked (they survive
 *   reconnects: store-and-forward), the ring keeps their due/send time, so
 *   the cumulative on_ack gives each one's latency (sim_on_ack).
 * - refusals retrying cannot fix (HTTP 4xx but 408/429, close 4409, gRPC
 *   UNAUTHENTICATED/INVALID_ARGUMENT/UNIMPLEMENTED/ABORTED): the library
 *   would retry with backoff; the simulator gives the drone up
 *   (dg_client_shutdown), as it always did.
 * - shutdown: samples handed over are waited for (--drain), then
 *   dg_client_shutdown() (close 1000 / half-close of the call) and the loop
 *   runs until each client is CLOSED; dg_client_close(c, 0) frees it.
 */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "dronegate/client.h"

/* ---------------------------------------------------------- callbacks */

static void lib_on_ack(void *user, uint64_t lseq)
{
    sim_drone_t *d = user;
    if (d->lgiveup == 2) return;
    /* the highest sample handed over whose library seq is covered */
    uint64_t s = d->acked_seq;
    while (s < d->tx_seq && d->ring[(s + 1) & (d->ring_cap - 1)].lseq <= lseq) s++;
    if (s > d->acked_seq) sim_on_ack(d->w, d, s);
}

static void lib_on_error(void *user, const dg_client_error_t *e)
{
    sim_drone_t *d = user;
    sim_worker_t *w = d->w;
    if (d->lgiveup == 2) return;
    if (e->from_server) {
        sim_add(&w->st.errors, 1);
        sim_code_inc(w->error_codes, e->code, strlen(e->code));
        if (e->message[0] && w->err_log_budget > 0 && w->err_log_budget--)
            sim_log(w, "%s: server error %s: %.200s", d->id, e->code, e->message);
        return;
    }
    /* refusals of the upgrade or the call: counted like the HTTP status */
    int st = 0;
    if (!strncmp(e->code, "http_", 5)) {
        st = atoi(e->code + 5);
        sim_code_inc(w->http_codes, e->code + 5, strlen(e->code + 5));
        if (st >= 400 && st < 500 && st != 408 && st != 429) d->lgiveup = 1;
    } else if (!strncmp(e->code, "grpc_", 5)) {
        char c[16];
        st = atoi(e->code + 5);
        int n = snprintf(c, sizeof c, "grpc-%d", st);
        sim_code_inc(w->http_codes, c, (size_t)n);
        if (st == 16 || st == 3 || st == 12 || st == 10) d->lgiveup = 1;
    }
    if (strcmp(e->code, "closed") && strcmp(e->code, "connection_lost"))
        sim_log(w, "%s: %s", d->id, e->message);
}

static void lib_on_command(void *user, const dg_client_command_t *cmd)
{
    sim_drone_t *d = user;
    if (d->lgiveup == 2) return;
    sim_proto_command(d->w, d, cmd->id, strlen(cmd->id), cmd->name, strlen(cmd->name),
                      cmd->args_json, strlen(cmd->args_json));
}

/* A connection that was open went down: count it like the old client did
 * (close code of the gateway, grpc-N for an ended call, 1006 for a drop). */
static void count_close(sim_worker_t *w, sim_drone_t *d, const char *why)
{
    char code[32];
    int n;
    unsigned v;
    if (sscanf(why, "gateway closed %u", &v) == 1) {
        n = snprintf(code, sizeof code, "%u", v);
        if (v == 4409) {
            d->lgiveup = 1;
            sim_log(w, "%s: server closed the connection: 4409 (replaced by another connection of this "
                       "drone; not reconnecting)", d->id);
        }
    } else if (sscanf(why, "gateway ended the call: grpc-status %u", &v) == 1) {
        n = snprintf(code, sizeof code, "grpc-%u", v);
        if (v == 10) d->lgiveup = 1;
    } else {
        n = snprintf(code, sizeof code, "1006");
        sim_add(&w->st.drops, 1);
        sim_log(w, "%s: connection lost without a close frame (%s)", d->id, why);
    }
    sim_code_inc(w->close_codes, code, (size_t)n);
    sim_add(&w->st.closes, 1);
}

static void lib_on_state(void *user, dg_client_state_t s, const char *why)
{
    sim_drone_t *d = user;
    sim_worker_t *w = d->w;
    if (d->lgiveup == 2) return;   /* detached (sim_lib_abort) */
    dg_client_state_t prev = (dg_client_state_t)d->lprev;
    d->lprev = (uint8_t)s;
    if (s == DG_STATE_OPEN) {
        sim_opened(w, d);
        /* the library resends what it holds; new samples follow */
        sim_lib_transmit(w, d, w->cfg->rate == 0);
        sim_proto_check_cmd(w, d);
        sim_mark_ready(w, d);
        return;
    }
    if (prev == DG_STATE_OPEN) {
        sim_sub(&w->st.open, 1);
        if (!d->closing_for_good && s != DG_STATE_CLOSING) count_close(w, d, why);
    } else if (prev == DG_STATE_CONNECTING && s == DG_STATE_BACKOFF) {
        sim_add(&w->st.connect_failures, 1);
    }
    switch (s) {
    case DG_STATE_CONNECTING: d->state = SIM_D_CONNECTING; break;
    case DG_STATE_BACKOFF:    d->state = SIM_D_BACKOFF; break;
    case DG_STATE_CLOSING:    d->state = SIM_D_CLOSING; break;
    default: break;   /* CLOSED: sim_lib_run ends the drone */
    }
}

/* ---------------------------------------------------------- lifecycle */

int sim_lib_init(sim_worker_t *w, sim_drone_t *d)
{
    const sim_config_t *cfg = w->cfg;
    char src[INET_ADDRSTRLEN] = "";
    if (cfg->nsrc) inet_ntop(AF_INET, &cfg->src[d->idx % cfg->nsrc], src, sizeof src);
    dg_client_config_t lc;
    dg_client_config_init(&lc);
    lc.url = cfg->lib_url;
    lc.format = cfg->transport == SIM_TR_WS_PB ? DG_FORMAT_PROTOBUF : DG_FORMAT_JSON;
    lc.drone_id = d->id;
    lc.token = d->token[0] ? d->token : NULL;
    lc.source_addr = src[0] ? src : NULL;
    /* the simulator never hands over more than --window samples (drone.c:
     * generate), so the queue holds at most that; it grows on demand */
    lc.queue_max = cfg->window;
    lc.window = cfg->window;
    lc.batch_max = cfg->batch;
    lc.max_rate = 0;              /* the simulator's own --rate paces it */
    lc.backoff_min_ms = 100;      /* as before: 0.1 s doubling to 5 s */
    lc.backoff_max_ms = 5000;
    lc.connect_timeout_ms = 10000;
    lc.cb.on_ack = lib_on_ack;
    lc.cb.on_error = lib_on_error;
    lc.cb.on_command = lib_on_command;
    lc.cb.on_state = lib_on_state;
    lc.user = d;
    char err[256];
    d->lfd = -1;
    d->lc = dg_client_open(&lc, err, sizeof err);
    if (!d->lc) {
        fprintf(stderr, "dronegate-sim: %s: %s\n", d->id, err);
        return -EINVAL;
    }
    return 0;
}

void sim_lib_free(sim_drone_t *d)
{
    if (d->lc) dg_client_close(d->lc, 0);
    d->lc = NULL;
    d->lfd = -1;
}

void sim_lib_start(sim_worker_t *w, sim_drone_t *d)
{
    if (w->phase != SIM_RUN || !d->lc) { sim_lib_abort(w, d); return; }
    d->state = SIM_D_CONNECTING;
    sim_lib_run(w, d, 0);
}

/* Counters the library keeps, added to the worker's since the last look. */
static void sync_stats(sim_worker_t *w, sim_drone_t *d, dg_client_stats_t *st)
{
#define DELTA(ctr, field, mine) do { if (st->field != d->mine) { \
        sim_add(&w->st.ctr, st->field - d->mine); d->mine = st->field; } } while (0)
    DELTA(sent, sent, lsent);
    DELTA(resent, resent, lresent);
    DELTA(frames, frames, lframes);
    DELTA(bytes_in, bytes_received, lbin);
    DELTA(bytes_out, bytes_sent, lbout);
    DELTA(pings, pings, lpings);
#undef DELTA
}

/* The drone's connection timer: its ramp slot (first start), or the
 * library's timeout. */
void sim_lib_timer(sim_worker_t *w, sim_drone_t *d)
{
    if (d->state == SIM_D_IDLE) sim_lib_start(w, d);
    else sim_lib_run(w, d, 0);
}

void sim_lib_run(sim_worker_t *w, sim_drone_t *d, uint32_t ev)
{
    if (!d->lc || d->state == SIM_D_DONE) return;
    int rev = (ev & EPOLLIN ? POLLIN : 0) | (ev & EPOLLOUT ? POLLOUT : 0) |
              (ev & (EPOLLERR | EPOLLRDHUP) ? POLLERR : 0) | (ev & EPOLLHUP ? POLLHUP : 0);
    dg_client_process(d->lc, rev);
    if (d->lgiveup == 1 && d->state != SIM_D_CLOSING) dg_client_shutdown(d->lc);
    dg_client_stats_t st;
    dg_client_stats(d->lc, &st);
    sync_stats(w, d, &st);
    if (dg_client_state(d->lc) == DG_STATE_CLOSED) {
        sim_lib_abort(w, d);
        return;
    }
    /* follow the fd: a new socket (another number, or the same number
     * reused by a reconnect inside this call) gets a new generation */
    int fd = dg_client_fd(d->lc);
    int want = fd >= 0 ? dg_client_events(d->lc) & (POLLIN | POLLOUT) : 0;
    if (fd != d->lfd || st.connects != d->lconnects) {
        d->gen++;
        d->lfd = -1;
        d->lconnects = st.connects;
        if (fd >= 0) {
            struct epoll_event e = {
                .events = EPOLLRDHUP | (want & POLLIN ? EPOLLIN : 0) | (want & POLLOUT ? EPOLLOUT : 0),
                .data.u64 = ((uint64_t)d->gen << 32) | (uint32_t)(d - w->drones),
            };
            int rc = epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e);
            if (rc < 0 && errno == EEXIST) rc = epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &e);
            if (rc < 0) {
                sim_log(w, "%s: epoll_ctl: %s", d->id, strerror(errno));
                dg_client_shutdown(d->lc);
                sim_mark_dirty(w, d);
                return;
            }
            d->lfd = fd;
            d->lev = (uint8_t)want;
        }
    } else if (fd >= 0 && want != d->lev) {
        struct epoll_event e = {
            .events = EPOLLRDHUP | (want & POLLIN ? EPOLLIN : 0) | (want & POLLOUT ? EPOLLOUT : 0),
            .data.u64 = ((uint64_t)d->gen << 32) | (uint32_t)(d - w->drones),
        };
        if (epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &e) == 0) d->lev = (uint8_t)want;
    }
    int to = dg_client_timeout_ms(d->lc);
    if (to == 0) {
        sim_timer_cancel(w, &d->t_conn);
        sim_mark_dirty(w, d);
    } else if (to > 0) {
        sim_timer_set(w, &d->t_conn, w->now + (int64_t)to * 1000);
    } else {
        sim_timer_cancel(w, &d->t_conn);
    }
}

void sim_lib_transmit(sim_worker_t *w, sim_drone_t *d, bool force)
{
    /* before the first session the library's seqs are provisional (it
     * renumbers after a gateway's last_seq): hand nothing over until then */
    if (!d->lc || !d->ever_open || d->state == SIM_D_DONE || d->closing_for_good) return;
    const uint32_t K = w->cfg->batch;
    uint64_t handed = 0;
    while (d->tx_seq < d->gen_seq) {
        uint64_t avail = d->gen_seq - d->tx_seq;
        if (avail < K && !force) break;
        uint32_t k = avail < K ? (uint32_t)avail : K;
        for (uint32_t i = 0; i < k; i++) {
            uint64_t seq = d->tx_seq + 1;
            sim_sample_t *s = &d->ring[seq & (d->ring_cap - 1)];
            dg_sample_t ds = {
                .timestamp_ms = s->ts_ms,
                .latitude = s->lat_e7 / 1e7, .longitude = s->lon_e7 / 1e7, .altitude = s->alt_cm / 100.0,
                .speed = s->speed_cm / 100.0, .heading = s->heading_cd / 100.0,
                .climb = s->climb_cm / 100.0, .battery = s->battery_cp / 100.0,
                .has = DG_HAS_SPEED | DG_HAS_HEADING | DG_HAS_CLIMB | DG_HAS_BATTERY,
                .status = sim_status_name(s->status),
            };
            uint64_t lseq = 0;
            int rc = dg_client_send(d->lc, &ds, &lseq);
            if (rc != DG_CLIENT_OK) {
                sim_log(w, "%s: dg_client_send: %s", d->id, dg_client_strerror(rc));
                goto out;
            }
            s->lseq = lseq;
            /* latency counts from when the sample was due (rate mode) or
             * handed over (rate 0); a resend after a reconnect keeps it */
            s->send_us = w->cfg->rate > 0 ? s->due_us : w->now;
            s->frame_us = w->cfg->rate > 0 ? d->ring[(d->tx_seq + k - i) & (d->ring_cap - 1)].due_us
                                           : s->send_us;
            d->tx_seq = seq;
            d->hi_sent = seq;
            handed++;
        }
    }
out:
    if (handed) sim_mark_dirty(w, d);
}

void sim_lib_close(sim_worker_t *w, sim_drone_t *d)
{
    if (!d->lc || d->state == SIM_D_DONE) return;
    d->closing_for_good = 1;
    dg_client_shutdown(d->lc);
    sim_mark_dirty(w, d);
}

void sim_lib_abort(sim_worker_t *w, sim_drone_t *d)
{
    if (d->lc) {
        if (d->lprev == DG_STATE_OPEN) sim_sub(&w->st.open, 1);
        d->lgiveup = 2;   /* detached: the callbacks of the close count nothing */
        dg_client_shutdown(d->lc);   /* no blocking close handshake in dg_client_close */
        dg_client_close(d->lc, 0);   /* closes the fd: it leaves epoll by itself */
        d->lc = NULL;
        d->lfd = -1;
        d->gen++;
    }
    sim_set_done(w, d);
}
