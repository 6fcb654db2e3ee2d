/* worker.c - event loop thread: accept, read, write, timers, inbox, batches.
 *
 * Thread: each dg_worker_t runs its own libev loop on its own thread; the
 * kernel spreads new connections over the workers' SO_REUSEPORT sockets.
 * Reads go into one shared per-worker buffer and are parsed in place (HTTP
 * and WebSocket parsers are streaming), so a connection holds no input
 * buffer of its own.
 *
 * The loop knows no protocol: a connection's handler table (conn.h,
 * dg_conn_ops_t) parses its input, ticks its timeouts, closes it politely on
 * drain; inbox messages carry their handler (dg_msg_t.handle); the layers
 * above hook the loop's fixed points (dg_worker_hooks_t) and keep their
 * per-worker state in slots they register (dg_worker_ext_t); a connection's
 * protocol state is its opaque pstate. A new transport is a new table, not
 * an edit here.
 *
 * Closing is deferred (libuv's uv_close): dg_conn_close(c, true) marks the
 * connection dead; its teardown, close(fd) and free run in the prepare step,
 * never under one of its own callbacks.
 *
 * Known limits: the per-connection output buffer is capped (ops->out_max,
 * default DG_OUT_MAX); a client that does not read its acks for that long is
 * dropped.
 */
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/timefmt.h"

#define DG_RBUF_SIZE (256 * 1024)
#define DG_OUT_MAX   (8 * 1024 * 1024)
#define DG_ACCEPT_PAUSE_MS 100   /* out of file descriptors: retry accept after this */

/* The layers above, as hooks (server.h): the loop calls them, never them by name. */
#define H(w) ((w)->srv->worker_hooks)

/* ---- listening ---- */

int dg_listen_probe(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1, ok = fd >= 0;
    if (ok) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);   /* TIME_WAIT is fine */
    if (ok && bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s (is another process using the port? choose one with --listen HOST:PORT)",
                 host, port, strerror(errno));
        ok = 0;
    }
    if (fd >= 0) close(fd);
    freeaddrinfo(res);
    return ok ? 0 : -1;
}

int dg_listen(const char *host, int port, int *bound, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s (is another process using the port? choose one with --listen HOST:PORT)",
                 host, port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    if (listen(fd, 4096) < 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (bound) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return fd;
}

/* ---- connections ---- */

void dg_conn_update_events(dg_conn_t *c)
{
    if (c->dead) return;
    int ev = 0;
    if (c->lingering) ev = EV_READ;
    else if (!c->paused && !c->closing && !(c->w->draining && c->ops->store_fed)) ev |= EV_READ;
    if (c->out.len) ev |= EV_WRITE;
    if (ev == 0) {
        ev_io_stop(c->w->loop, &c->io);
        return;
    }
    if (ev_is_active(&c->io) && (c->io.events & (EV_READ | EV_WRITE)) == ev) return;
    ev_io_stop(c->w->loop, &c->io);
    ev_io_set(&c->io, c->fd, ev);
    ev_io_start(c->w->loop, &c->io);
}

static void conn_destroy_now(dg_conn_t *c);

void dg_conn_set_ops(dg_conn_t *c, const dg_conn_ops_t *ops)
{
    dg_gauge_add(&dg_metrics.connections[c->ops->transport], -1);
    dg_gauge_add(&dg_metrics.connections[ops->transport], 1);
    c->ops = ops;
}

/* Closing is two-phase (libuv's uv_close): dg_conn_close(c, true) only takes
 * the connection out of service (dead: no more events, lookups by slot miss,
 * sends fail) and queues it on w->dead. The protocol teardown (which frees
 * session buffers and the HTTP request), close(fd) and free() run in
 * conn_destroy_now() from the loop's prepare step, after every callback that
 * may still hold pointers into the connection (a decoder walking the
 * reassembled message, http_parser in a callback) has returned. */
void dg_conn_close(dg_conn_t *c, bool now)
{
    if (c->dead) return;
    if (!now) {
        if (c->closing) return;
        c->closing = 1;
        if (!c->cork) dg_conn_flush(c);   /* corked: flushed after processing */
        return;
    }
    dg_worker_t *w = c->w;
    c->dead = 1;
    c->closing = 1;
    ev_io_stop(w->loop, &c->io);
    /* unlink from the worker's list; torn down and freed in prep */
    if (c->prev) c->prev->next = c->next; else w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->slots[c->slot] = NULL;
    w->nconns--;
    atomic_fetch_sub(&w->srv->nconns, 1);
    dg_gauge_add(&dg_metrics.connections[c->ops->transport], -1);
    c->next = w->dead;
    w->dead = c;
}

/* Second phase of a close: no callback of c is running any more. */
static void conn_destroy_now(dg_conn_t *c)
{
    if (c->ops->on_close) c->ops->on_close(c);
    if (c->fd >= 0) close(c->fd);
    dg_buf_free(&c->out);
    free(c);
}

void dg_conn_flush(dg_conn_t *c)
{
    bool wrote = false;
again:
    while (c->out.len && !c->dead) {
        ssize_t n = write(c->fd, c->out.data, c->out.len);
        if (n > 0) {
            dg_buf_consume(&c->out, (size_t)n);
            wrote = true;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        /* peer gone */
        c->out.len = 0;
        dg_conn_close(c, true);
        return;
    }
    if (c->dead) return;
    if (c->ops->on_writable && !c->closing && (wrote || !c->out.len)) {
        /* the protocol may queue more now (conflated live states, the
         * next pipelined HTTP requests): corked, written here */
        size_t before = c->out.len;
        uint8_t was = c->cork;
        c->cork = 1;
        c->ops->on_writable(c);
        c->cork = was;
        if (c->dead) return;
        if (c->out.len != before && c->out.len && !c->cork) { wrote = false; goto again; }
    }
    if (c->out.len == 0) {
        if (c->out.cap > 4096) dg_buf_free(&c->out);   /* idle connections hold no buffer */
        if (c->closing && !c->lingering) {
            /* Lingering close: shut our write side and read until the peer
             * closes, so the peer sees our last bytes (a close frame, an
             * error response) instead of a reset caused by unread input. */
            c->lingering = 1;
            c->deadline_ms = dg_mono_ms() + 5000;
            if (!c->ops->on_linger || c->ops->on_linger(c, NULL, 0)) {
                c->wr_shut = 1;
                if (shutdown(c->fd, SHUT_WR) < 0) { dg_conn_close(c, true); return; }
            }
        }
    }
    dg_conn_update_events(c);
}

int dg_conn_send(dg_conn_t *c, const void *p, size_t n)
{
    /* Nothing more once closing: our last bytes (a close frame) are queued
     * or sent, and a write after shutdown(SHUT_WR) would fail and close the
     * socket with unread input (a reset that can destroy that close frame). */
    if (c->dead || c->closing) return -1;
    if (!c->cork && c->out.len == 0) {
        ssize_t k = write(c->fd, p, n);
        if (k == (ssize_t)n) return 0;
        if (k < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                dg_conn_close(c, true);
                return -1;
            }
            k = 0;
        }
        p = (const uint8_t *)p + k;
        n -= (size_t)k;
    }
    /* A streaming peer (drone, watcher) that stops reading is cut off; an
     * HTTP response is written whole (its size is bounded by the API's
     * limits: history at most 100,000 rows). */
    size_t cap = c->ops->out_max ? c->ops->out_max : DG_OUT_MAX;
    if (c->out.len + n > cap) {
        dg_warn("connection fd %d does not read its output (over %zu bytes pending): closing", c->fd, cap);
        c->out.len = 0;
        dg_conn_close(c, true);
        return -1;
    }
    if (dg_buf_append(&c->out, p, n)) {
        dg_conn_close(c, true);
        return -1;
    }
    if (!c->cork) dg_conn_update_events(c);
    return 0;
}

dg_conn_t *dg_worker_conn(dg_worker_t *w, uint32_t slot, uint32_t gen)
{
    if (slot >= w->slot_cap) return NULL;
    dg_conn_t *c = w->slots[slot];
    return c && c->gen == gen && !c->dead ? c : NULL;
}

static int slot_alloc(dg_worker_t *w, uint32_t *slot)
{
    for (uint32_t i = 0; i < w->slot_cap; i++) {
        uint32_t s = (w->slot_hint + i) % w->slot_cap;
        if (!w->slots[s]) { *slot = s; w->slot_hint = s + 1; return 0; }
    }
    uint32_t ncap = w->slot_cap ? w->slot_cap * 2 : 1024;
    dg_conn_t **ns = realloc(w->slots, ncap * sizeof *ns);
    if (!ns) return -1;
    w->slots = ns;
    uint32_t *ng = realloc(w->gens, ncap * sizeof *ng);
    if (!ng) return -1;
    w->gens = ng;
    memset(w->slots + w->slot_cap, 0, (ncap - w->slot_cap) * sizeof *ns);
    memset(w->gens + w->slot_cap, 0, (ncap - w->slot_cap) * sizeof *ng);
    *slot = w->slot_cap;
    w->slot_hint = w->slot_cap + 1;
    w->slot_cap = ncap;
    return 0;
}

static void conn_read(dg_conn_t *c, int rounds);

static void on_conn_io(struct ev_loop *loop, ev_io *io, int revents)
{
    dg_conn_t *c = (dg_conn_t *)io;
    dg_worker_t *w = c->w;
    if (revents & EV_WRITE) {
        dg_conn_flush(c);
        if (c->dead) return;
    }
    if ((revents & EV_READ) && c->lingering) {
        /* before our FIN: the protocol reads the peer's end of the close
         * (on_linger); after: discard. Close on EOF or error (or at the
         * linger deadline). */
        for (int i = 0; i < 8; i++) {
            ssize_t n = read(c->fd, w->rbuf, w->rbuf_cap);
            if (n > 0) {
                if (!c->wr_shut && c->ops->on_linger(c, w->rbuf, (size_t)n)) {
                    c->wr_shut = 1;
                    if (shutdown(c->fd, SHUT_WR) < 0) { dg_conn_close(c, true); return; }
                }
                if (c->dead) return;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
            dg_conn_close(c, true);
            return;
        }
        return;
    }
    if (!(revents & EV_READ) || c->paused || c->closing) return;
    if (c->ops->store_fed && w->paused) {
        if (w->srv->sink_ops->backlog_full(w->srv->sink)) {
            /* memory and spool are full while the store is down: say so */
            if (c->ops->on_backlog_full) c->ops->on_backlog_full(c);
            else dg_conn_close(c, false);
        } else
            dg_worker_pause_conn(w, c);   /* the store is just slower: TCP backpressure */
        return;
    }
    conn_read(c, 4);
}

/* Read and process up to `rounds` buffers of input (until EAGAIN). */
static void conn_read(dg_conn_t *c, int rounds)
{
    dg_worker_t *w = c->w;
    /* draining: only what the kernel held when the drain began */
    bool budget = w->draining && c->ops->store_fed;
    for (int round = 0; round < rounds && !c->dead && !c->closing && !c->paused; round++) {
        size_t cap = w->rbuf_cap;
        if (budget) {
            if (!c->drain_left) break;
            if (c->drain_left < cap) cap = c->drain_left;
        }
        ssize_t n = read(c->fd, w->rbuf, cap);
        if (n == 0) { dg_conn_close(c, true); return; }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) dg_conn_close(c, true);
            if (budget) c->drain_left = 0;
            break;
        }
        if (budget) c->drain_left = (size_t)n >= c->drain_left ? 0 : c->drain_left - (uint32_t)n;
        c->last_rx_ms = dg_mono_ms();
        c->cork = 1;
        c->ops->on_data(c, w->rbuf, (size_t)n);
        if (c->dead) return;
        c->cork = 0;
        dg_conn_flush(c);
        if ((size_t)n < cap) break;
        if (c->ops->store_fed && w->paused) break;
    }
}

static void listeners_stop(dg_worker_t *w, bool close_them)
{
    for (int i = 0; i < w->nlst; i++) {
        if (w->lst[i].fd < 0) continue;
        ev_io_stop(w->loop, &w->lst[i].io);
        if (close_them) { close(w->lst[i].fd); w->lst[i].fd = -1; }
    }
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    dg_worker_t *w = io->data;
    struct dg_listener *l = (struct dg_listener *)io;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: the pending connection stays in the
                 * backlog and the listening socket stays readable, so
                 * accepting again at once is a busy loop. Stop accepting
                 * for a moment; warn at most every 10 s. */
                int64_t now = dg_mono_ms();
                if (now - w->emfile_warned_ms >= 10000) {
                    w->emfile_warned_ms = now;
                    dg_warn("accept: %s: not accepting for %d ms (raise the limit with ulimit -n or lower --max-connections)",
                            strerror(errno), DG_ACCEPT_PAUSE_MS);
                }
                listeners_stop(w, false);
                ev_timer_set(&w->accept_timer, DG_ACCEPT_PAUSE_MS / 1000.0, 0.0);
                ev_timer_start(loop, &w->accept_timer);
            }
            return;
        }
        if (atomic_load(&w->srv->nconns) >= w->srv->cfg->max_connections) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                       "Content-Length: 42\r\nConnection: close\r\n\r\n"
                                       "{\"error\":\"too many connections, try later\"}";
            ssize_t wr = write(fd, busy, sizeof busy - 1);
            (void)wr;
            close(fd);
            dg_inc(&dg_metrics.conn_rejected[DG_CREJ_MAX_CONN], 1);
            continue;
        }
        uint32_t slot;
        dg_conn_t *c = calloc(1, sizeof *c);
        if (!c || slot_alloc(w, &slot)) { free(c); close(fd); continue; }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->w = w;
        c->fd = fd;
        c->slot = slot;
        c->gen = ++w->gens[slot];
        c->ops = l->ops;
        int64_t now = dg_mono_ms();
        c->last_rx_ms = now;
        c->deadline_ms = now + w->srv->cfg->handshake_timeout_ms;
        w->slots[slot] = c;
        c->next = w->conns;
        if (w->conns) w->conns->prev = c;
        w->conns = c;
        w->nconns++;
        atomic_fetch_add(&w->srv->nconns, 1);
        dg_gauge_add(&dg_metrics.connections[c->ops->transport], 1);
        ev_io_init(&c->io, on_conn_io, fd, EV_READ);
        ev_io_start(loop, &c->io);
        if (c->ops->on_open) c->ops->on_open(c);   /* may already send (HTTP/2 SETTINGS) */
    }
}

static void on_accept_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    dg_worker_t *w = t->data;
    if (w->draining) return;
    for (int i = 0; i < w->nlst; i++)
        if (w->lst[i].fd >= 0) ev_io_start(loop, &w->lst[i].io);
}

/* ---- store pipeline ---- */

static dg_batch_t *batch_get(dg_worker_t *w)
{
    /* Pool exhausted: it allocates one over budget (bounded by what one
     * read can carry) and we stop reading drones until batches come back. */
    bool over;
    dg_batch_t *b = dg_batch_pool_get(&w->pool, &over);
    if (over && !w->paused) {
        w->paused = true;
        dg_inc(&dg_metrics.pipeline_paused, 1);
    }
    return b;
}

/* Records appended since the last call go into dronegate_queue_depth now:
 * one locked add per loop iteration or batch, not one per record (the gauge
 * is shared with the other workers and the writer; per record it cost ~12%
 * of a worker's CPU on the null store). Called before a batch leaves, so the
 * writer's subtraction never comes first, and before the loop sleeps, so a
 * scrape sees every record read in an earlier iteration. */
static void depth_flush(dg_worker_t *w)
{
    if (!w->depth_pending) return;
    dg_gauge_add(&dg_metrics.queue_depth, w->depth_pending);
    w->depth_pending = 0;
}

static void batch_submit(dg_worker_t *w)
{
    depth_flush(w);
    dg_batch_t *b = w->open;
    if (!b || b->n == 0) return;
    w->open = NULL;
    w->inflight++;
    w->srv->sink_ops->submit(w->srv->sink, b);
}

void dg_worker_append(dg_worker_t *w, const dg_record_t *rec)
{
    if (w->open && w->open->n == w->open->cap) batch_submit(w);
    if (!w->open && !(w->open = batch_get(w))) {
        dg_error("out of memory for a store batch: record dropped (not acked)");
        return;
    }
    w->open->recs[w->open->n++] = *rec;
    w->depth_pending++;
}

void dg_worker_pause_conn(dg_worker_t *w, dg_conn_t *c)
{
    if (c->paused) return;
    c->paused = 1;
    c->pause_next = w->paused_list;
    w->paused_list = c;
    dg_conn_update_events(c);
}

static void resume_all(dg_worker_t *w)
{
    w->paused = false;
    dg_conn_t *c = w->paused_list;
    w->paused_list = NULL;
    while (c) {
        dg_conn_t *n = c->pause_next;
        c->pause_next = NULL;
        c->paused = 0;
        dg_conn_update_events(c);   /* level-triggered: pending input fires again */
        c = n;
    }
}

static void batch_returned(dg_worker_t *w, dg_batch_t *b)
{
    H(w)->batch_done(w, b);
    if (b->foreign) {   /* acks for records replayed from the spool */
        dg_batch_free(b);
        return;
    }
    w->inflight--;
    if (dg_batch_pool_put(&w->pool, b) && w->paused) resume_all(w);
}

/* ---- inbox, timers ---- */

void dg_worker_post(dg_worker_t *w, dg_msg_t *m)
{
    m->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->inbox_tail) w->inbox_tail->next = m; else w->inbox = m;
    w->inbox_tail = m;
    pthread_mutex_unlock(&w->mu);
    ev_async_send(w->loop, &w->wake);
}

static void drain_step(dg_worker_t *w);
static void conn_read(dg_conn_t *c, int rounds);

static void on_drain_msg(dg_worker_t *w, dg_msg_t *m, bool deliver)
{
    free(m);
    if (!deliver || w->draining) return;
    w->draining = true;
    w->drain_deadline_ms = dg_mono_ms() + w->srv->cfg->shutdown_timeout_ms;
    ev_timer_stop(w->loop, &w->accept_timer);
    listeners_stop(w, true);
    /* "what was received": take in what the kernel already holds for each
     * store-fed connection (counted now; read now, or in drain_step once
     * the batch pool has room again), then stop reading */
    for (dg_conn_t *c = w->conns, *n; c; c = n) {
        n = c->next;
        if (!c->ops->store_fed || c->dead || c->closing) continue;
        int q = 0;
        c->drain_left = ioctl(c->fd, FIONREAD, &q) == 0 && q > 0 ? (uint32_t)q : 0;
        if (!c->paused && !w->paused) conn_read(c, 16);
    }
    for (dg_conn_t *c = w->conns; c; c = c->next) dg_conn_update_events(c);
}

int dg_worker_drain(dg_worker_t *w)
{
    dg_msg_t *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->type = DG_MSG_DRAIN;
    m->handle = on_drain_msg;
    dg_worker_post(w, m);
    return 0;
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    dg_worker_t *w = a->data;
    pthread_mutex_lock(&w->mu);
    dg_msg_t *m = w->inbox;
    w->inbox = w->inbox_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (m) {
        dg_msg_t *next = m->next;
        /* each message carries its handler; those without one are our own
         * store batches coming back from the writer */
        if (m->handle) m->handle(w, m, true);
        else batch_returned(w, (dg_batch_t *)m);
        m = next;
    }
    H(w)->after_inbox(w, w->draining);
    if (w->draining) drain_step(w);
}

/* Drain: stop reading drones, get everything received durable and acked,
 * then close drones with 1001 and HTTP connections, then leave the loop. */
static void drain_step(dg_worker_t *w)
{
    /* the rest of what the kernel held at the drain, as the pool allows */
    for (dg_conn_t *c = w->conns, *n; c && !w->paused && !w->closing_sent; c = n) {
        n = c->next;
        if (c->drain_left && !c->dead && !c->closing && !c->paused) conn_read(c, 16);
    }
    batch_submit(w);
    int64_t now = dg_mono_ms();
    bool expired = now >= w->drain_deadline_ms;
    if (w->inflight > 0 && !expired) return;
    H(w)->after_inbox(w, true);
    if (!w->closing_sent) {
        w->closing_sent = true;
        for (dg_conn_t *c = w->conns, *n; c; c = n) {
            n = c->next;
            if (c->ops->on_drain) c->ops->on_drain(c);
            else dg_conn_close(c, false);
        }
    }
    /* wait (bounded) for close frames/responses to be written and read */
    bool pending = false;
    for (dg_conn_t *c = w->conns; c; c = c->next) if (c->out.len || c->lingering) pending = true;
    if (!pending || expired || now >= w->drain_deadline_ms) {
        for (dg_conn_t *c = w->conns, *n; c; c = n) {
            n = c->next;
            /* read what is pending first: close() with unread input sends a
             * reset, which can discard our close frame at the peer */
            if (c->fd >= 0 && !c->dead) while (read(c->fd, w->rbuf, w->rbuf_cap) > 0) {}
            dg_conn_close(c, true);
        }
        if (w->inflight == 0) ev_break(w->loop, EVBREAK_ALL);
    }
}

static void on_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
    dg_worker_t *w = t->data;
    int64_t now = dg_mono_ms();
    for (dg_conn_t *c = w->conns, *n; c; c = n) {
        n = c->next;
        if (c->lingering) {
            if (now >= c->deadline_ms) {
                /* read what is pending first: close() with unread input
                 * sends a reset, which can discard our close frame */
                while (read(c->fd, w->rbuf, w->rbuf_cap) > 0) {}
                dg_conn_close(c, true);
            }
        } else if (c->ops->on_tick) {
            c->ops->on_tick(c, now);
        }
    }
    if (w->paused && w->paused_list && w->srv->sink_ops->backlog_full(w->srv->sink)) {
        /* the store is down and the backlog is full: tell the waiting drones */
        while (w->paused_list) {
            dg_conn_t *c = w->paused_list;
            w->paused_list = c->pause_next;
            c->pause_next = NULL;
            c->paused = 0;
            if (c->ops->on_backlog_full) c->ops->on_backlog_full(c);
            else dg_conn_close(c, false);
        }
    }
    if (H(w)->tick) H(w)->tick(w);
    if (w->draining) drain_step(w);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    dg_worker_t *w = p->data;
    /* Second phase of the closes of this iteration first: their teardown
     * may publish (a drone going offline) before the hooks flush. */
    bool closed = w->dead != NULL;
    while (w->dead) {
        dg_conn_t *c = w->dead;
        w->dead = c->next;
        conn_destroy_now(c);
    }
    /* draining and waiting for the last close handshakes: the one that just
     * ended may have been the last (else the next sweep tick would notice) */
    if (closed && w->draining && w->closing_sent) drain_step(w);
    /* Group commit: submit the open batch when nothing of ours is queued
     * behind the writer's current transaction; otherwise keep filling it. */
    if (w->open && w->open->n && w->inflight < 2) batch_submit(w);
    depth_flush(w);
    if (H(w)->before_sleep) H(w)->before_sleep(w);
}

static void *worker_main(void *arg)
{
    dg_worker_t *w = arg;
    ev_run(w->loop, 0);
    return NULL;
}

/* A listener entry watching fd with cb; NULL when the table is full. */
static struct dg_listener *listener_add(dg_worker_t *w, int fd, void (*cb)(struct ev_loop *, ev_io *, int))
{
    if (w->nlst == DG_MAX_LISTENERS) return NULL;
    struct dg_listener *l = &w->lst[w->nlst++];
    memset(l, 0, sizeof *l);
    l->fd = fd;
    ev_io_init(&l->io, cb, fd, EV_READ);
    l->io.data = w;
    ev_io_start(w->loop, &l->io);
    return l;
}

int dg_worker_listen(dg_worker_t *w, int fd, const dg_conn_ops_t *ops)
{
    struct dg_listener *l = listener_add(w, fd, on_accept);
    if (!l) return -1;
    l->ops = ops;
    return 0;
}

static void on_dgram_ready(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop; (void)revents;
    struct dg_listener *l = (struct dg_listener *)io;
    l->on_dgram(io->data, l->fd, l->ud);
}

int dg_worker_listen_dgram(dg_worker_t *w, int fd, void (*on_dgram)(dg_worker_t *w, int fd, void *ud), void *ud)
{
    struct dg_listener *l = listener_add(w, fd, on_dgram_ready);
    if (!l) return -1;
    l->on_dgram = on_dgram;
    l->ud = ud;
    return 0;
}

/* ---- the layers' per-worker state ---- */

static const dg_worker_ext_t *ext_types[DG_WORKER_EXT_MAX];
static int ext_ntypes;

int dg_worker_ext_register(const dg_worker_ext_t *t)
{
    for (int i = 0; i < ext_ntypes; i++)
        if (ext_types[i] == t) return i;
    if (ext_ntypes == DG_WORKER_EXT_MAX) return -1;
    ext_types[ext_ntypes] = t;
    return ext_ntypes++;
}

int dg_worker_ext_init(dg_worker_t *w)
{
    for (int i = 0; i < ext_ntypes; i++) {
        if (w->ext[i]) continue;
        if (!(w->ext[i] = ext_types[i]->init(w))) {
            dg_worker_ext_free(w);
            return -1;
        }
    }
    return 0;
}

void dg_worker_ext_free(dg_worker_t *w)
{
    for (int i = ext_ntypes - 1; i >= 0; i--) {
        if (!w->ext[i]) continue;
        ext_types[i]->free(w, w->ext[i]);
        w->ext[i] = NULL;
    }
}

dg_worker_t *dg_worker_new(dg_server_t *srv, int id, int lfd)
{
    dg_worker_t *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->id = id;
    w->srv = srv;
    for (int i = 0; i < DG_MAX_LISTENERS; i++) w->lst[i].fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    w->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    w->rbuf_cap = DG_RBUF_SIZE;
    w->rbuf = malloc(w->rbuf_cap);
    if (!w->loop || !w->rbuf || dg_worker_ext_init(w)) { dg_worker_free(w); return NULL; }
    if (dg_batch_pool_init(&w->pool, id, DG_MSG_BATCH, (size_t)srv->cfg->batch_records, srv->cfg->batch_pool) < 0) {
        dg_worker_free(w);
        return NULL;
    }
    dg_worker_listen(w, lfd, srv->accept_ops);
    ev_async_init(&w->wake, on_wake);
    w->wake.data = w;
    ev_async_start(w->loop, &w->wake);
    long shortest = srv->cfg->handshake_timeout_ms;
    if (srv->cfg->idle_timeout_ms < shortest) shortest = srv->cfg->idle_timeout_ms;
    if (srv->cfg->http_idle_timeout_ms < shortest) shortest = srv->cfg->http_idle_timeout_ms;
    if (srv->cfg->ping_interval_ms < shortest) shortest = srv->cfg->ping_interval_ms;
    double iv = (double)shortest / 4000.0;
    if (iv > 1.0) iv = 1.0;
    if (iv < 0.005) iv = 0.005;
    ev_timer_init(&w->sweep, on_sweep, iv, iv);
    w->sweep.data = w;
    ev_timer_start(w->loop, &w->sweep);
    ev_timer_init(&w->accept_timer, on_accept_timer, DG_ACCEPT_PAUSE_MS / 1000.0, 0.0);
    w->accept_timer.data = w;
    ev_prepare_init(&w->prep, on_prepare);
    w->prep.data = w;
    ev_prepare_start(w->loop, &w->prep);
    return w;
}

int dg_worker_start(dg_worker_t *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    return rc ? -rc : 0;
}

void dg_worker_join(dg_worker_t *w) { pthread_join(w->thread, NULL); }

void dg_worker_free(dg_worker_t *w)
{
    if (!w) return;
    for (dg_conn_t *c = w->conns, *n; c; c = n) { n = c->next; dg_conn_close(c, true); }
    while (w->dead) { dg_conn_t *c = w->dead; w->dead = c->next; conn_destroy_now(c); }
    dg_batch_pool_free(&w->pool);
    dg_batch_free(w->open);
    for (dg_msg_t *m = w->inbox, *n; m; m = n) {
        n = m->next;
        if (m->handle) m->handle(w, m, false);   /* frees it */
        else dg_batch_free((dg_batch_t *)m);
    }
    dg_worker_ext_free(w);   /* the loop still exists (a state may hold watchers) */
    for (int i = 0; i < w->nlst; i++)
        if (w->lst[i].fd >= 0) close(w->lst[i].fd);
    if (w->loop) ev_loop_destroy(w->loop);
    free(w->rbuf);
    dg_buf_free(&w->scratch);
    free(w->slots);
    free(w->gens);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
