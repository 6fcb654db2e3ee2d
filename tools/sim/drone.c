/* drone.c - one simulated drone's telemetry: the samples its mission makes,
 * kept quantised in a ring until acked, handed to its libdronegate client
 * (drive.c) --batch at a time, and the ack latency of each.
 *
 * - Generation: with --rate > 0 a per-drone timer takes the samples that
 *   are due (--tick coalesces the timers); with --rate 0 a drone generates
 *   whenever its window (--window samples unacked) has room.
 * - Every sample gets the next seq and stays in the drone's ring until the
 *   library's cumulative on_ack covers it; the ring keeps when it was due or
 *   handed over, so each ack gives the sample's latency. The ring grows by
 *   doubling up to --window entries, so memory follows what is in flight.
 *   The library keeps its own copy (its store-and-forward queue): resends
 *   after a reconnect are its business.
 * - Samples are quantised (lat/lon in 1e-7 degrees, the rest in hundredths),
 *   the values every transport sends.
 *
 * The connection itself (WebSocket with dronegate.json.v1 or dronegate.pb.v1,
 * or gRPC) is libdronegate's. Everything here runs on the drone's worker
 * thread.
 */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/record.h"

/* ------------------------------------------------------------------ setup */

int sim_drone_init(sim_drone_t *d, sim_worker_t *w, uint32_t idx)
{
    const sim_config_t *cfg = w->cfg;
    memset(d, 0, sizeof *d);
    d->w = w;
    d->idx = idx;
    d->lfd = -1;
    d->t_conn = (sim_timer_t){ .idx = -1, .kind = SIM_T_CONN, .d = d };
    d->t_sample = (sim_timer_t){ .idx = -1, .kind = SIM_T_SAMPLE, .d = d };
    int n = snprintf(d->id, sizeof d->id, "%s%0*u", cfg->prefix, (int)cfg->id_width, idx);
    if (n < 0 || (size_t)n >= sizeof d->id || !dg_drone_id_valid(d->id, (size_t)n))
        return -EINVAL;
    d->id_len = (uint8_t)n;
    if (cfg->auth_secret) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        if (!HMAC(EVP_sha256(), cfg->auth_secret, (int)strlen(cfg->auth_secret),
                  (const unsigned char *)d->id, d->id_len, mac, &ml) || ml != 32)
            return -EIO;
        static const char hex[] = "0123456789abcdef";
        for (unsigned i = 0; i < ml; i++) {
            d->token[2 * i] = hex[mac[i] >> 4];
            d->token[2 * i + 1] = hex[mac[i] & 15];
        }
        d->token[64] = '\0';
    }
    d->ts_rfc3339 = cfg->ts_mode == SIM_TS_RFC3339 || (cfg->ts_mode == SIM_TS_MIX && (idx & 1));
    sim_mission_init(&d->m, idx, cfg->seed);
    if (cfg->airborne) sim_mission_airborne(&d->m);
    return sim_lib_init(w, d);
}

void sim_drone_free(sim_drone_t *d)
{
    sim_lib_free(d);
    free(d->ring);
    d->ring = NULL;
}

/* ------------------------------------------------------------- the ring */

static inline sim_sample_t *ring_at(sim_drone_t *d, uint64_t seq)
{
    return &d->ring[seq & (d->ring_cap - 1)];
}

/* Room for one more sample ((acked, gen+1] must fit). 0 or -ENOMEM. */
static int ring_reserve(sim_drone_t *d)
{
    uint64_t need = d->gen_seq + 1 - d->acked_seq;
    if (need <= d->ring_cap) return 0;
    uint32_t cap = d->ring_cap ? d->ring_cap * 2 : 8;
    sim_sample_t *r = malloc((size_t)cap * sizeof *r);
    if (!r) return -ENOMEM;
    for (uint64_t s = d->acked_seq + 1; s <= d->gen_seq; s++)
        r[s & (cap - 1)] = *ring_at(d, s);
    free(d->ring);
    d->ring = r;
    d->ring_cap = cap;
    return 0;
}

/* Take one sample of the current flight state. false when the window is full. */
static bool generate(sim_worker_t *w, sim_drone_t *d, int64_t wall_ms, int64_t due_us)
{
    if (d->gen_seq - d->acked_seq >= w->cfg->window) {
        sim_add(&w->st.window_stalls, 1);
        return false;
    }
    if (ring_reserve(d)) {
        sim_log(w, "%s: out of memory for the telemetry ring", d->id);
        return false;
    }
    uint64_t seq = ++d->gen_seq;
    sim_sample_from_mission(ring_at(d, seq), &d->m, wall_ms, d->ts_rfc3339);
    ring_at(d, seq)->due_us = due_us;
    sim_add(&w->st.generated, 1);
    return true;
}

/* Rate 0: may this drone generate more right now? */
static bool can_fill(const sim_worker_t *w, const sim_drone_t *d)
{
    return w->cfg->rate == 0 && w->phase == SIM_RUN && d->state == SIM_D_OPEN &&
           !d->closing_for_good && d->gen_seq - d->acked_seq < w->cfg->window;
}

void sim_fill(sim_worker_t *w, sim_drone_t *d)
{
    if (!can_fill(w, d)) return;
    sim_mission_step(&d->m, w->now);
    sim_proto_check_cmd(w, d);
    const uint32_t K = w->cfg->batch;
    for (;;) {
        uint32_t k = 0;
        while (k < K && generate(w, d, w->wall_ms, w->now)) k++;
        if (!k) break;
        sim_lib_transmit(w, d, true);
        if (k < K) break;
    }
}

void sim_sample_timer(sim_worker_t *w, sim_drone_t *d)
{
    if (w->phase != SIM_RUN || d->state == SIM_D_DONE) return;
    int64_t period = (int64_t)(1e6 / w->cfg->rate);
    if (period < 1) period = 1;
    int64_t at = d->t_sample_due;
    if (w->now - at > 1000000) at = w->now;   /* more than 1 s behind: skip, don't burst */
    for (int n = 0; at <= w->now && n < 4096; n++) {
        sim_mission_step(&d->m, at);
        generate(w, d, w->wall_ms - (w->now - at) / 1000, at);
        at += period;
    }
    sim_proto_check_cmd(w, d);
    sim_lib_transmit(w, d, false);
    d->t_sample_due = at;
    int64_t fire = at;
    int64_t tk = w->cfg->tick_us;
    if (tk > period) {   /* the next tick boundary (this drone's phase) at or after `at` */
        int64_t k = (at - d->tick_phase + tk - 1) / tk;
        fire = d->tick_phase + k * tk;
    }
    sim_timer_set(w, &d->t_sample, fire);
}

void sim_flush_partial_batch(sim_worker_t *w, sim_drone_t *d)
{
    sim_lib_transmit(w, d, true);
}

bool sim_drone_drained(const sim_drone_t *d)
{
    /* the library keeps what it was given across reconnects */
    return d->state == SIM_D_DONE || d->acked_seq >= d->tx_seq;
}

/* ------------------------------------------------------------------- acks */

void sim_on_ack(sim_worker_t *w, sim_drone_t *d, uint64_t seq)
{
    if (seq > d->hi_sent) {
        sim_add(&w->st.unknown_msgs, 1);   /* ack for something never sent */
        seq = d->hi_sent;
    }
    if (seq <= d->acked_seq) return;
    uint64_t n = seq - d->acked_seq, sum = 0, mx = 0;
    for (uint64_t s = d->acked_seq + 1; s <= seq; s++) {
        int64_t lat = w->now - ring_at(d, s)->send_us;
        uint64_t v = lat > 0 ? (uint64_t)lat : 0;
        sim_add(&w->hist.b[sim_hist_index(v)], 1);
        int64_t flat = w->now - ring_at(d, s)->frame_us;
        sim_hist_add(&w->hist_frame, flat > 0 ? (uint64_t)flat : 0);
        sum += v;
        if (v > mx) mx = v;
    }
    sim_add(&w->hist.count, n);
    sim_add(&w->hist.sum, sum);
    if (mx > sim_get(&w->hist.max)) atomic_store_explicit(&w->hist.max, mx, memory_order_relaxed);
    sim_add(&w->st.acked, n);
    d->acked_seq = seq;
    if (d->tx_seq < seq) d->tx_seq = seq;   /* acked from a previous connection: no resend */
    if (can_fill(w, d)) sim_mark_ready(w, d);
}

/* ----------------------------------------------------------- lifecycle */

void sim_set_done(sim_worker_t *w, sim_drone_t *d)
{
    if (d->state == SIM_D_DONE) return;
    d->state = SIM_D_DONE;
    sim_timer_cancel(w, &d->t_conn);
    sim_timer_cancel(w, &d->t_sample);
    w->live--;
    sim_sub(&w->st.live, 1);
}

/* A connection opened (any transport): counters; the first one starts
 * sampling (--rate > 0) at a random phase of the period. */
void sim_opened(sim_worker_t *w, sim_drone_t *d)
{
    const sim_config_t *cfg = w->cfg;
    d->state = SIM_D_OPEN;
    sim_add(&w->st.open, 1);
    sim_add(&w->st.handshakes, 1);
    if (d->ever_open) return;
    d->ever_open = 1;
    sim_add(&w->st.ever_open, 1);
    if (cfg->rate <= 0) return;
    int64_t period = (int64_t)(1e6 / cfg->rate);
    if (period < 1) period = 1;
    sim_mission_step(&d->m, w->now);
    int64_t first = w->now + (int64_t)(sim_rand(&w->rng) % (uint64_t)period);
    d->t_sample_due = first;
    if (cfg->tick_us > period) d->tick_phase = w->now + (int64_t)(sim_rand(&w->rng) % (uint64_t)cfg->tick_us);
    sim_timer_set(w, &d->t_sample, first);
}

/* ---------------------------------------------------------------- samples */

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

static const char *const STATUS[SIM_ST__N] = {
    [SIM_ST_LANDED] = "landed", [SIM_ST_TAKEOFF] = "takeoff", [SIM_ST_AIRBORNE] = "airborne",
    [SIM_ST_RETURNING] = "returning", [SIM_ST_LANDING] = "landing",
};

const char *sim_status_name(int st)
{
    return st >= 0 && st < SIM_ST__N ? STATUS[st] : "landed";
}
