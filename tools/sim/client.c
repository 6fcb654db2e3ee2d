/* client.c - one simulated drone's WebSocket connection (RFC 6455, client).
 *
 * Life of a connection:
 *
 *   IDLE/BACKOFF --timer--> CONNECTING --writable--> HANDSHAKE --101--> OPEN
 *        ^                      |  (timeout 10 s)        |                |
 *        +----- backoff <-------+------------------------+------<---------+ drop
 *   OPEN --(shutdown) close 1000--> CLOSING --server's close / 2 s--> DONE
 *
 * - connect(): non-blocking, TCP_NODELAY, optionally bind()ing a chosen local
 *   source address first with IP_BIND_ADDRESS_NO_PORT, so the kernel picks
 *   the port per 4-tuple at connect() time and each source address gives its
 *   own ephemeral port range (that is how 10,000+ connections fit).
 * - Handshake: GET {path}/ws/{id}, random 16-byte Sec-WebSocket-Key (from
 *   getrandom), subprotocol dronegate.json.v1, optional Authorization: Bearer;
 *   the 101 answer must carry Upgrade/Connection and the right
 *   Sec-WebSocket-Accept (dg_ws_accept_key), and no subprotocol other than ours.
 * - Frames from the server are parsed with dg_ws_parse_header; they must be
 *   unmasked. Pings are answered, fragmented messages reassembled (1 MiB max),
 *   a close frame is echoed and ends the connection. Our frames are masked
 *   with a fresh mask each (xorshift PRNG seeded from getrandom: fine for a
 *   simulator; RFC 6455 asks for unpredictable masks against proxy-cache
 *   poisoning, which does not apply on loopback).
 * - Input is read into the worker's shared scratch buffer and parsed there;
 *   only a split frame's tail is copied into the drone's own `in` buffer.
 *   Output is appended to `out` and flushed once per loop iteration (many
 *   frames, one send()); a partial send keeps the rest and waits for EPOLLOUT.
 * - Telemetry: every sample gets the next seq and is kept quantised in the
 *   drone's ring until acked, so after a reconnect (tx_seq = acked_seq) the
 *   unacked ones are sent again byte for byte, and the ack of each seq gives
 *   its latency (ack arrival - last transmission). The ring grows by doubling
 *   up to --window entries, so memory follows what is really in flight.
 *
 * Everything here runs on the drone's worker thread.
 */
#include "sim.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/record.h"
#include "ws/ws.h"

#define CONNECT_TIMEOUT_US 10000000    /* TCP connect + upgrade */
#define CLOSE_TIMEOUT_US    2000000    /* waiting for the server's close frame */
#define MAX_MESSAGE        (1u << 20)  /* server -> drone message limit */
#define HANDSHAKE_MAX      16384
#define BACKOFF_MIN_US      100000
#define BACKOFF_MAX_US     5000000

static void conn_down(sim_worker_t *w, sim_drone_t *d);

/* ------------------------------------------------------------------ setup */

int sim_drone_init(sim_drone_t *d, sim_worker_t *w, uint32_t idx)
{
    const sim_config_t *cfg = w->cfg;
    memset(d, 0, sizeof *d);
    d->w = w;
    d->idx = idx;
    d->fd = -1;
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
    return cfg->lib ? sim_lib_init(w, d) : 0;
}

void sim_drone_free(sim_drone_t *d)
{
    sim_lib_free(d);
    if (d->fd >= 0) close(d->fd);
    d->fd = -1;
    dg_buf_free(&d->out);
    dg_buf_free(&d->in);
    dg_buf_free(&d->msg);
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

static inline uint32_t new_mask(sim_worker_t *w) { return (uint32_t)sim_rand(&w->rng); }

/* Frame samples (tx_seq, gen_seq] into `out`, cfg->batch per frame; a last
 * partial batch only when `force`. */
static void transmit(sim_worker_t *w, sim_drone_t *d, bool force)
{
    if (w->cfg->lib) { sim_lib_transmit(w, d, force); return; }
    if (d->state != SIM_D_OPEN || d->close_sent) return;
    const uint32_t K = w->cfg->batch;
    uint64_t fresh = 0, again = 0, frames = 0;
    /* protobuf: one DroneMessage per frame; --batch K only groups K of
     * them into one write */
    uint64_t avail = d->gen_seq - d->tx_seq;
    if (avail < K && !force) return;
    while (d->tx_seq < d->gen_seq) {
        uint64_t seq = d->tx_seq + 1;
        sim_sample_t *s = ring_at(d, seq);
        uint8_t buf[SIM_PB_SAMPLE_MAX];
        size_t len = sim_pb_sample(buf, s, seq);
        if (sim_send_pb(w, d, buf, len)) {
            sim_log(w, "%s: out of memory for the output buffer", d->id);
            break;
        }
        d->tx_seq = seq;
        /* latency of a first send counts from when the sample was due
         * (timer lateness and --tick coalescing included); of a resend,
         * from the resend */
        s->send_us = seq > d->hi_sent && w->cfg->rate > 0 ? s->due_us : w->now;
        if (seq > d->hi_sent) { d->hi_sent = seq; fresh++; }
        else again++;
        frames++;
    }
    if (frames) {
        sim_add(&w->st.sent, fresh);
        if (again) sim_add(&w->st.resent, again);
        sim_add(&w->st.frames, frames);
        sim_mark_dirty(w, d);
    }
}

#define out_pending sim_out_pending

/* Rate 0: may this drone generate more right now? */
static bool can_fill(const sim_worker_t *w, const sim_drone_t *d)
{
    return w->cfg->rate == 0 && w->phase == SIM_RUN && d->state == SIM_D_OPEN &&
           !d->close_sent && d->gen_seq - d->acked_seq < w->cfg->window &&
           out_pending(d) < w->cfg->out_hwm;
}

void sim_fill(sim_worker_t *w, sim_drone_t *d)
{
    if (!can_fill(w, d)) return;
    sim_mission_step(&d->m, w->now);
    sim_proto_check_cmd(w, d);
    const uint32_t K = w->cfg->batch;
    while (out_pending(d) < w->cfg->out_hwm) {
        uint32_t k = 0;
        while (k < K && generate(w, d, w->wall_ms, w->now)) k++;
        if (!k) break;
        transmit(w, d, true);
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
    transmit(w, d, false);
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
    transmit(w, d, true);
}

bool sim_drone_drained(const sim_drone_t *d)
{
    /* a libdronegate drone keeps what it was given across reconnects */
    if (d->w->cfg->lib) return d->state == SIM_D_DONE || d->acked_seq >= d->tx_seq;
    if (d->state != SIM_D_OPEN) return true;
    return d->acked_seq >= d->tx_seq && sim_out_pending(d) == 0;
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

/* -------------------------------------------------------------- sending */

static void set_interest(sim_worker_t *w, sim_drone_t *d)
{
    if (d->fd < 0) return;
    uint8_t want = 1 | ((out_pending(d) || d->state == SIM_D_CONNECTING) ? 2 : 0);
    if (want == d->ev) return;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLRDHUP | ((want & 2) ? EPOLLOUT : 0),
        .data.u64 = ((uint64_t)d->gen << 32) | (uint32_t)(d - w->drones),
    };
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, d->fd, &ev) == 0) d->ev = want;
}

static void send_close_frame(sim_worker_t *w, sim_drone_t *d, uint16_t code,
                             const char *reason)
{
    if (d->close_sent) return;
    uint8_t pl[125];
    size_t n = 0;
    if (code != 1005) {        /* 1005 = the peer sent no code: echo an empty close */
        pl[0] = (uint8_t)(code >> 8);
        pl[1] = (uint8_t)code;
        size_t rl = strlen(reason);
        if (rl > 123) rl = 123;
        memcpy(pl + 2, reason, rl);
        n = 2 + rl;
    }
    sim_frame_append(&d->out, DG_WS_OP_CLOSE, pl, n, new_mask(w));
    d->close_sent = 1;
    sim_mark_dirty(w, d);
}

void sim_flush(sim_worker_t *w, sim_drone_t *d)
{
    if (w->cfg->lib) { sim_lib_run(w, d, 0); return; }
    if (d->fd < 0 || d->state == SIM_D_CONNECTING) return;
    while (d->out_off < d->out.len) {
        ssize_t n = send(d->fd, d->out.data + d->out_off, d->out.len - d->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            d->out_off += (size_t)n;
            sim_add(&w->st.bytes_out, (uint64_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (d->state == SIM_D_OPEN) {
            sim_log(w, "%s: send: %s", d->id, strerror(errno));
            sim_add(&w->st.closes, 1);
            sim_code_inc(w->close_codes, "1006", 4);
        }
        conn_down(w, d);
        return;
    }
    if (d->out_off == d->out.len) {
        d->out.len = d->out_off = 0;
        if (d->out.cap > (1u << 20)) dg_buf_free(&d->out);   /* a burst is over */
    } else if (d->out_off >= 65536 && d->out_off * 2 >= d->out.len) {
        dg_buf_consume(&d->out, d->out_off);
        d->out_off = 0;
    }
    set_interest(w, d);
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

/* Close the socket; reconnect later unless shutting down or told not to. */
static void conn_down(sim_worker_t *w, sim_drone_t *d)
{
    if (d->fd >= 0) {
        close(d->fd);
        d->fd = -1;
    }
    if (d->state == SIM_D_OPEN || d->state == SIM_D_CLOSING) sim_sub(&w->st.open, 1);
    d->ev = 0;
    d->out.len = d->out_off = 0;
    d->in.len = 0;
    d->msg.len = 0;
    d->msg_op = 0;
    if (d->out.cap > 65536) dg_buf_free(&d->out);
    if (d->in.cap > 65536) dg_buf_free(&d->in);
    dg_buf_free(&d->msg);
    d->tx_seq = d->acked_seq;                 /* resend the unacked ones */
    sim_timer_cancel(w, &d->t_conn);
    d->close_sent = 0;
    d->close_rcvd = 0;
    if (w->phase != SIM_RUN || d->no_reconnect || d->closing_for_good) {
        sim_set_done(w, d);
        return;
    }
    d->state = SIM_D_BACKOFF;
    /* A connection that lived 10 s resets the backoff; one that the server
     * keeps closing at once (rate limit, overload) does not. */
    if (d->open_at && w->now - d->open_at > 10000000) d->fails = 0;
    d->open_at = 0;
    if (d->fails < 30) d->fails++;
    int64_t delay = BACKOFF_MIN_US << (d->fails < 6 ? d->fails - 1 : 5);
    if (delay > BACKOFF_MAX_US) delay = BACKOFF_MAX_US;
    delay = delay / 2 + (int64_t)(sim_rand(&w->rng) % (uint64_t)delay);   /* jitter 0.5x-1.5x */
    sim_timer_set(w, &d->t_conn, w->now + delay);
}

static void attempt_failed(sim_worker_t *w, sim_drone_t *d, const char *what)
{
    sim_add(&w->st.connect_failures, 1);
    if (what) sim_log(w, "%s: %s", d->id, what);
    conn_down(w, d);
}

void sim_conn_start(sim_worker_t *w, sim_drone_t *d)
{
    const sim_config_t *cfg = w->cfg;
    char why[512];
    if (w->phase != SIM_RUN) { sim_set_done(w, d); return; }
    int fd = socket(cfg->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, sizeof why, "socket: %s%s", strerror(errno),
                 errno == EMFILE ? " (raise the open files limit: ulimit -n)" : "");
        attempt_failed(w, d, why);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg->nsrc) {
        struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = 0,
                                   .sin_addr = cfg->src[d->idx % cfg->nsrc] };
#ifdef IP_BIND_ADDRESS_NO_PORT
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            char a[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &src.sin_addr, a, sizeof a);
            snprintf(why, sizeof why, "bind to source address %s: %s", a, strerror(errno));
            close(fd);
            attempt_failed(w, d, why);
            return;
        }
    }
    if (connect(fd, (const struct sockaddr *)&cfg->dst, cfg->dst_len) < 0 && errno != EINPROGRESS) {
        snprintf(why, sizeof why, "connect to %s: %s%s", cfg->hosthdr, strerror(errno),
                 errno == EADDRNOTAVAIL ? " (out of local ports: use --source-addrs)" : "");
        close(fd);
        attempt_failed(w, d, why);
        return;
    }
    d->gen++;
    d->fd = fd;
    d->state = SIM_D_CONNECTING;
    d->close_sent = 0;
    d->close_rcvd = 0;
    d->closing_for_good = 0;
    d->out.len = d->out_off = 0;
    d->in.len = 0;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP,
        .data.u64 = ((uint64_t)d->gen << 32) | (uint32_t)(d - w->drones),
    };
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        snprintf(why, sizeof why, "epoll_ctl: %s", strerror(errno));
        attempt_failed(w, d, why);
        return;
    }
    d->ev = 3;
    sim_timer_set(w, &d->t_conn, w->now + CONNECT_TIMEOUT_US);
}

static void send_handshake(sim_worker_t *w, sim_drone_t *d)
{
    const sim_config_t *cfg = w->cfg;
    unsigned char raw[16];
    if (getrandom(raw, sizeof raw, GRND_NONBLOCK) != (ssize_t)sizeof raw) {
        for (int i = 0; i < 16; i += 8) {
            uint64_t r = sim_rand(&w->rng);
            memcpy(raw + i, &r, 8);
        }
    }
    EVP_EncodeBlock((unsigned char *)d->key, raw, sizeof raw);   /* 24 chars + NUL */
    int rc = dg_buf_printf(&d->out,
        "GET %s/ws/%s%s%s HTTP/1.1\r\n"
        "Host: %s\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: %s\r\n"
        "User-Agent: dronegate-sim\r\n"
        "%s%s%s"
        "\r\n",
        cfg->path, d->id, cfg->query[0] ? "?" : "", cfg->query, cfg->hosthdr, d->key,
        "dronegate.pb.v1",
        d->token[0] ? "Authorization: Bearer " : "", d->token, d->token[0] ? "\r\n" : "");
    if (rc) {
        attempt_failed(w, d, "out of memory");
        return;
    }
    d->state = SIM_D_HANDSHAKE;
    sim_flush(w, d);
}

/* Does a comma-separated header value contain token `tok` (case-insensitive)? */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0) return true;
    }
    return false;
}

static void on_open(sim_worker_t *w, sim_drone_t *d);
void sim_conn_opened(sim_worker_t *w, sim_drone_t *d) { on_open(w, d); }
void sim_conn_down(sim_worker_t *w, sim_drone_t *d) { conn_down(w, d); }
void sim_conn_failed(sim_worker_t *w, sim_drone_t *d, const char *why) { attempt_failed(w, d, why); }

/* Parse the upgrade answer in d->in. 1 = open (the header is consumed),
 * 0 = need more bytes, -1 = failed (the connection is gone). */
static int handle_handshake(sim_worker_t *w, sim_drone_t *d)
{
    char why[512];
    const char *b = d->in.data;
    const char *end = memmem(b, d->in.len, "\r\n\r\n", 4);
    if (!end) {
        if (d->in.len > HANDSHAKE_MAX) {
            attempt_failed(w, d, "handshake answer too long");
            return -1;
        }
        return 0;
    }
    size_t hlen = (size_t)(end - b) + 4;
    const char *eol = memmem(b, hlen, "\r\n", 2);
    int status = 0;
    if (hlen > 12 && memcmp(b, "HTTP/1.", 7) == 0 && b[8] == ' ')
        status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    if (status != 101) {
        char code[8];
        snprintf(code, sizeof code, "%d", status);
        sim_code_inc(w->http_codes, code, strlen(code));
        const char *hint = status == 401 || status == 403 ? " (check --auth-secret)"
                         : status == 400 ? " (invalid drone id? check --prefix)"
                         : status == 404 ? " (is this a dronegate server? check --url)" : "";
        snprintf(why, sizeof why, "upgrade refused: %.*s%s",
                 (int)(eol && eol - b < 100 ? eol - b : 0), b, hint);
        /* A refusal that retrying cannot fix: give this drone up. */
        if (status >= 400 && status < 500 && status != 408 && status != 429)
            d->no_reconnect = 1;
        attempt_failed(w, d, status ? why : "not an HTTP answer");
        return -1;
    }
    bool up = false, conn = false, acc_ok = false, proto_ok = true, seen_proto = false;
    char expect[29];
    if (dg_ws_accept_key(d->key, strlen(d->key), expect) != 0) expect[0] = '\0';
    const char *p = eol + 2;
    while (p < end) {
        const char *le = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        if (!le) break;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon) {
            size_t nl = (size_t)(colon - p);
            const char *v = colon + 1;
            while (v < le && (*v == ' ' || *v == '\t')) v++;
            size_t vl = (size_t)(le - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
#define HDR(name) (nl == sizeof(name) - 1 && strncasecmp(p, name, nl) == 0)
            if (HDR("upgrade")) up = vl == 9 && strncasecmp(v, "websocket", 9) == 0;
            else if (HDR("connection")) conn = has_token(v, vl, "upgrade");
            else if (HDR("sec-websocket-accept"))
                acc_ok = expect[0] && vl == 28 && memcmp(v, expect, 28) == 0;
            else if (HDR("sec-websocket-protocol") && (seen_proto = true))
                proto_ok = vl == 15 && memcmp(v, "dronegate.pb.v1", 15) == 0;
            else if (HDR("sec-websocket-extensions") && vl)
                proto_ok = false;   /* we offered none */
#undef HDR
        }
        p = le + 2;
    }
    if (!seen_proto) proto_ok = false;   /* the gateway speaks JSON by default */
    if (!up || !conn || !acc_ok || !proto_ok) {
        snprintf(why, sizeof why, "bad upgrade answer:%s%s%s%s", up ? "" : " no Upgrade: websocket",
                 conn ? "" : " no Connection: upgrade", acc_ok ? "" : " wrong Sec-WebSocket-Accept",
                 proto_ok ? "" : " unexpected subprotocol/extension");
        attempt_failed(w, d, why);
        return -1;
    }
    dg_buf_consume(&d->in, hlen);
    on_open(w, d);
    return 1;
}

/* A connection opened (any transport): counters; the first one starts
 * sampling (--rate > 0) at a random phase of the period. */
void sim_opened(sim_worker_t *w, sim_drone_t *d)
{
    const sim_config_t *cfg = w->cfg;
    d->state = SIM_D_OPEN;
    d->open_at = w->now;
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

static void on_open(sim_worker_t *w, sim_drone_t *d)
{
    const sim_config_t *cfg = w->cfg;
    sim_timer_cancel(w, &d->t_conn);
    sim_opened(w, d);
    d->tx_seq = d->acked_seq;
    transmit(w, d, cfg->rate == 0);
    sim_proto_check_cmd(w, d);
    if (can_fill(w, d)) sim_mark_ready(w, d);
    sim_mark_dirty(w, d);
}

/* ------------------------------------------------------------- receiving */

/* Fail the connection: close frame with `code`, then drop it. */
static void protocol_fail(sim_worker_t *w, sim_drone_t *d, uint16_t code, const char *why)
{
    sim_log(w, "%s: %s, closing with %u", d->id, why, code);
    send_close_frame(w, d, code, why);
    sim_flush(w, d);                   /* best effort */
    if (d->fd >= 0) conn_down(w, d);   /* reconnects (not a shutdown close) */
}

static void on_close_frame(sim_worker_t *w, sim_drone_t *d, const uint8_t *p, size_t n)
{
    uint16_t code = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
    d->close_rcvd = 1;
    if (d->close_sent) {
        /* The answer to our close: the handshake is complete. RFC 6455 7.1.1:
         * the server closes TCP first; we wait for its EOF (or the timer). */
        return;
    }
    char c[8];
    snprintf(c, sizeof c, "%u", code);
    sim_code_inc(w->close_codes, c, strlen(c));
    sim_add(&w->st.closes, 1);
    sim_log(w, "%s: server closed the connection: %u %.*s%s", d->id, code,
            (int)(n > 2 ? (n - 2 > 100 ? 100 : n - 2) : 0), (const char *)p + 2,
            code == 4409 ? " (replaced by another connection of this drone; not reconnecting)" : "");
    /* Echo the code (RFC 6455 5.5.1); the server then closes TCP. */
    send_close_frame(w, d, code == 1005 || dg_ws_close_code_valid(code) ? code : DG_WS_CLOSE_PROTOCOL, "");
    if (code == DG_WS_CLOSE_REPLACED) d->no_reconnect = 1;
    d->state = SIM_D_CLOSING;
    sim_timer_set(w, &d->t_conn, w->now + CLOSE_TIMEOUT_US);
    sim_flush(w, d);   /* then wait for the server's EOF, as above */
}

static void on_message(sim_worker_t *w, sim_drone_t *d, int op, uint8_t *p, size_t n)
{
    if (op == DG_WS_OP_BINARY) sim_pb_message(w, d, p, n);
    else sim_add(&w->st.unknown_msgs, 1);
}

/* Parse whole frames in p[0..n). Returns bytes consumed, or -1 when the
 * connection went down (then p must not be touched again). */
static ssize_t on_frames(sim_worker_t *w, sim_drone_t *d, uint8_t *p, size_t n)
{
    size_t off = 0;
    if (d->close_rcvd) return (ssize_t)n;
    while (off < n) {
        if (d->state != SIM_D_OPEN && d->state != SIM_D_CLOSING) return -1;
        dg_ws_frame_t f;
        int h = dg_ws_parse_header(p + off, n - off, &f);
        if (h == DG_WS_INCOMPLETE) break;
        if (h < 0 || f.rsv || f.masked) {
            protocol_fail(w, d, DG_WS_CLOSE_PROTOCOL,
                          h < 0 ? "malformed frame header" : f.rsv ? "reserved bits set"
                                                                   : "masked server frame");
            return -1;
        }
        if (f.len > MAX_MESSAGE) {
            protocol_fail(w, d, DG_WS_CLOSE_TOO_BIG, "server frame over 1 MiB");
            return -1;
        }
        if (n - off - (size_t)h < f.len) break;
        uint8_t *pl = p + off + h;
        size_t len = (size_t)f.len;
        off += (size_t)h + len;
        if (f.opcode >= 0x8) {
            if (!f.fin || len > 125) {
                protocol_fail(w, d, DG_WS_CLOSE_PROTOCOL, "bad control frame");
                return -1;
            }
            switch (f.opcode) {
            case DG_WS_OP_PING:
                sim_add(&w->st.pings, 1);
                if (!d->close_sent) {
                    sim_frame_append(&d->out, DG_WS_OP_PONG, pl, len, new_mask(w));
                    sim_mark_dirty(w, d);
                }
                break;
            case DG_WS_OP_PONG:
                break;
            case DG_WS_OP_CLOSE:
                on_close_frame(w, d, pl, len);
                if (d->fd < 0 || d->state != SIM_D_CLOSING) return -1;
                return (ssize_t)n;   /* nothing after a close frame counts */
            default:
                protocol_fail(w, d, DG_WS_CLOSE_PROTOCOL, "unknown control opcode");
                return -1;
            }
            continue;
        }
        if (f.opcode == DG_WS_OP_CONT) {
            if (!d->msg_op) {
                protocol_fail(w, d, DG_WS_CLOSE_PROTOCOL, "continuation without a message");
                return -1;
            }
            if (d->msg.len + len > MAX_MESSAGE) {
                protocol_fail(w, d, DG_WS_CLOSE_TOO_BIG, "server message over 1 MiB");
                return -1;
            }
            if (dg_buf_append(&d->msg, pl, len)) {
                protocol_fail(w, d, DG_WS_CLOSE_INTERNAL, "out of memory");
                return -1;
            }
            if (f.fin) {
                int op = d->msg_op;
                d->msg_op = 0;
                on_message(w, d, op, (uint8_t *)d->msg.data, d->msg.len);
                d->msg.len = 0;
            }
        } else if (f.opcode == DG_WS_OP_TEXT || f.opcode == DG_WS_OP_BINARY) {
            if (d->msg_op) {
                protocol_fail(w, d, DG_WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
                return -1;
            }
            if (f.fin) {
                on_message(w, d, f.opcode, pl, len);
            } else {
                d->msg_op = f.opcode;
                d->msg.len = 0;
                if (dg_buf_append(&d->msg, pl, len)) {
                    protocol_fail(w, d, DG_WS_CLOSE_INTERNAL, "out of memory");
                    return -1;
                }
            }
        } else {
            protocol_fail(w, d, DG_WS_CLOSE_PROTOCOL, "unknown data opcode");
            return -1;
        }
    }
    return (ssize_t)off;
}

static void on_eof(sim_worker_t *w, sim_drone_t *d, int err)
{
    if (d->state == SIM_D_HANDSHAKE) {
        char why[512];
        snprintf(why, sizeof why, "connection lost during the upgrade%s%s",
                 err ? ": " : "", err ? strerror(err) : "");
        attempt_failed(w, d, why);
        return;
    }
    if (d->state == SIM_D_OPEN) {
        sim_code_inc(w->close_codes, "1006", 4);
        sim_add(&w->st.closes, 1);
        sim_add(&w->st.drops, 1);
        sim_log(w, "%s: connection lost without a close frame%s%s", d->id,
                err ? ": " : "", err ? strerror(err) : "");
    }
    conn_down(w, d);
}

static void on_readable(sim_worker_t *w, sim_drone_t *d)
{
    for (int round = 0; round < 8; round++) {
        bool use_in = d->state == SIM_D_HANDSHAKE || d->in.len > 0;
        uint8_t *buf;
        size_t cap;
        if (use_in) {
            if (dg_buf_reserve(&d->in, 16384)) {
                protocol_fail(w, d, DG_WS_CLOSE_INTERNAL, "out of memory");
                return;
            }
            buf = (uint8_t *)d->in.data + d->in.len;
            cap = d->in.cap - d->in.len;
        } else {
            buf = w->rbuf;
            cap = w->rbuf_cap;
        }
        ssize_t r = recv(d->fd, buf, cap, 0);
        if (r == 0) { on_eof(w, d, 0); return; }
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            on_eof(w, d, errno);
            return;
        }
        sim_add(&w->st.bytes_in, (uint64_t)r);
        uint8_t *data = buf;
        size_t len = (size_t)r;
        if (use_in) {
            d->in.len += (size_t)r;
            data = (uint8_t *)d->in.data;
            len = d->in.len;
        }
        if (d->state == SIM_D_HANDSHAKE) {
            int hs = handle_handshake(w, d);
            if (hs < 0) return;
            if (hs == 0) continue;
            data = (uint8_t *)d->in.data;   /* what followed the 101 */
            len = d->in.len;
        }
        if (len) {
            ssize_t used = on_frames(w, d, data, len);
            if (used < 0) return;
            if (use_in) {
                dg_buf_consume(&d->in, (size_t)used);
            } else if ((size_t)used < len && dg_buf_append(&d->in, data + used, len - (size_t)used)) {
                protocol_fail(w, d, DG_WS_CLOSE_INTERNAL, "out of memory");
                return;
            }
        }
        if ((size_t)r < cap) return;   /* socket drained */
    }
}

void sim_conn_event(sim_worker_t *w, sim_drone_t *d, uint32_t events)
{
    if (w->cfg->lib) { sim_lib_run(w, d, events); return; }
    if (d->state == SIM_D_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) err = errno;
        if (err) {
            char why[512];
            snprintf(why, sizeof why, "connect to %s: %s", w->cfg->hosthdr, strerror(err));
            attempt_failed(w, d, why);
            return;
        }
        send_handshake(w, d);
        return;
    }
    uint32_t gen = d->gen;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        on_readable(w, d);
        if (d->fd < 0 || d->gen != gen) return;
    }
    if (events & EPOLLOUT) sim_flush(w, d);
}

void sim_conn_timer(sim_worker_t *w, sim_drone_t *d)
{
    if (w->cfg->lib) { if (d->state == SIM_D_IDLE) sim_lib_start(w, d); else sim_lib_run(w, d, 0); return; }
    switch (d->state) {
    case SIM_D_IDLE:
    case SIM_D_BACKOFF:
        sim_conn_start(w, d);
        break;
    case SIM_D_CONNECTING:
    case SIM_D_HANDSHAKE:
        attempt_failed(w, d, d->state == SIM_D_CONNECTING ? "connect timed out"
                                                          : "no upgrade answer within 10 s");
        break;
    case SIM_D_CLOSING:
        conn_down(w, d);   /* no close answer, or no EOF after the close handshake */
        break;
    default:
        break;
    }
}

void sim_conn_close(sim_worker_t *w, sim_drone_t *d, uint16_t code)
{
    if (w->cfg->lib) { sim_lib_close(w, d); return; }
    switch (d->state) {
    case SIM_D_OPEN:
        send_close_frame(w, d, code, "simulation over");
        d->closing_for_good = 1;
        d->state = SIM_D_CLOSING;
        sim_timer_set(w, &d->t_conn, w->now + CLOSE_TIMEOUT_US);
        break;
    case SIM_D_CLOSING:
    case SIM_D_DONE:
        break;
    default:
        sim_conn_abort(w, d);
        break;
    }
}

void sim_conn_abort(sim_worker_t *w, sim_drone_t *d)
{
    if (w->cfg->lib) { sim_lib_abort(w, d); return; }
    if (d->fd >= 0) {
        close(d->fd);
        d->fd = -1;
    }
    if (d->state == SIM_D_OPEN || d->state == SIM_D_CLOSING) sim_sub(&w->st.open, 1);
    sim_set_done(w, d);
}
