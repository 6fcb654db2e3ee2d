/* worker.c - one worker thread: an epoll loop over its share of the drones.
 *
 * One iteration:
 *   1. epoll_wait (timeout 0 while drones are ready or have output, else
 *      until the next timer, at most 100 ms);
 *   2. socket events: dg_client_process of the drone's libdronegate client
 *      (drive.c: read, acks, commands, pings, writes);
 *   3. expired timers from a binary heap (connect ramp, timeouts, reconnect
 *      backoff, and with --rate > 0 each drone's next sample);
 *   4. with --rate 0, every "ready" drone (open, window not full, output
 *      below the high-water mark) generates as much as it may;
 *   5. every "dirty" drone (samples handed over, a timeout of 0) gets one
 *      more dg_client_process: the library frames and writes what this
 *      iteration produced, one write for all of it.
 *   6. shutdown: when main sets SIM_STOP, partial batches are sent, sampling
 *      stops, the worker waits up to 5 s until all sent messages are acked,
 *      then closes every connection with 1000 and waits up to 2 s for the
 *      answers. SIM_ABORT (second signal) drops everything at once.
 *
 * Level-triggered epoll on each client's fd, for the events the library
 * asks for (drive.c follows them). epoll data = (socket generation << 32 |
 * drone slot), so an event that belongs to an earlier socket of the same
 * drone is ignored.
 *
 * Timer heap: O(log n) set/cancel; each drone has two timers (connection and
 * sample), so the heap holds at most 2 * drones entries.
 */
#include "sim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/hash.h"

#define MAX_EVENTS  1024
#define CLOSE_US    2500000   /* wait for close answers (per-drone timeout is 2 s) */
#define LOG_BUDGET  10

int64_t sim_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64* */
uint64_t sim_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x2545f4914f6cdd1dull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Diagnostics: "drone-id: what happened". The same "what" (after the id) is
 * printed once per worker, and at most LOG_BUDGET lines in all, so that
 * 10,000 drones failing the same way give one line, not 10,000. */
void sim_log(sim_worker_t *w, const char *fmt, ...)
{
    if (w->cfg->quiet || w->log_budget <= 0) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    const char *what = strstr(line, ": ");
    what = what ? what + 2 : line;
    uint64_t h = dg_fnv1a64(what, strlen(what));
    for (int i = 0; i < LOG_BUDGET; i++)
        if (w->log_seen[i] == h) return;
    w->log_seen[LOG_BUDGET - w->log_budget] = h;
    if (--w->log_budget == 0)
        fprintf(stderr, "dronegate-sim: %s\ndronegate-sim: (worker %u: further messages suppressed)\n",
                line, w->id);
    else
        fprintf(stderr, "dronegate-sim: %s\n", line);
}

/* ------------------------------------------------------------ timer heap */

static inline void heap_put(sim_worker_t *w, uint32_t i, sim_timer_t *t)
{
    w->heap[i] = t;
    t->idx = (int32_t)i;
}

static void heap_up(sim_worker_t *w, uint32_t i)
{
    sim_timer_t *t = w->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (w->heap[p]->at <= t->at) break;
        heap_put(w, i, w->heap[p]);
        i = p;
    }
    heap_put(w, i, t);
}

static void heap_down(sim_worker_t *w, uint32_t i)
{
    sim_timer_t *t = w->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= w->heap_len) break;
        if (c + 1 < w->heap_len && w->heap[c + 1]->at < w->heap[c]->at) c++;
        if (t->at <= w->heap[c]->at) break;
        heap_put(w, i, w->heap[c]);
        i = c;
    }
    heap_put(w, i, t);
}

void sim_timer_cancel(sim_worker_t *w, sim_timer_t *t)
{
    if (t->idx < 0) return;
    uint32_t i = (uint32_t)t->idx;
    t->idx = -1;
    sim_timer_t *last = w->heap[--w->heap_len];
    if (i == w->heap_len) return;
    heap_put(w, i, last);
    heap_down(w, i);
    heap_up(w, (uint32_t)last->idx);
}

void sim_timer_set(sim_worker_t *w, sim_timer_t *t, int64_t at)
{
    if (t->idx >= 0) {
        int64_t old = t->at;
        t->at = at;
        if (at < old) heap_up(w, (uint32_t)t->idx);
        else heap_down(w, (uint32_t)t->idx);
        return;
    }
    t->at = at;
    heap_put(w, w->heap_len++, t);   /* capacity 2 * n: each drone owns 2 timers */
    heap_up(w, w->heap_len - 1);
}

/* ----------------------------------------------------------- work lists */

void sim_mark_dirty(sim_worker_t *w, sim_drone_t *d)
{
    if (d->in_dirty) return;
    d->in_dirty = 1;
    w->dirty[w->dirty_n++] = d;
}

void sim_mark_ready(sim_worker_t *w, sim_drone_t *d)
{
    if (d->in_ready) return;
    d->in_ready = 1;
    w->ready[w->ready_n++] = d;
}

/* ------------------------------------------------------------ lifecycle */

int sim_worker_init(sim_worker_t *w, uint32_t id, const sim_config_t *cfg, sim_shared_t *sh)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->cfg = cfg;
    w->sh = sh;
    w->ep = -1;
    w->log_budget = LOG_BUDGET;
    w->err_log_budget = 3;
    w->n = cfg->drones / cfg->threads + (id < cfg->drones % cfg->threads ? 1 : 0);
    w->drones = calloc(w->n ? w->n : 1, sizeof *w->drones);
    w->heap = calloc(2 * (size_t)w->n + 1, sizeof *w->heap);
    w->ready = calloc(w->n + 1, sizeof *w->ready);
    w->dirty = calloc(w->n + 1, sizeof *w->dirty);
    if (!w->drones || !w->heap || !w->ready || !w->dirty) return -ENOMEM;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (w->ep < 0) return -errno;
    if (getrandom(&w->rng, sizeof w->rng, 0) != (ssize_t)sizeof w->rng)
        w->rng = (uint64_t)sim_mono_us();
    w->rng ^= (uint64_t)(id + 1) * 0x9e3779b97f4a7c15ull;
    for (uint32_t j = 0; j < w->n; j++) {
        int rc = sim_drone_init(&w->drones[j], w, id + j * cfg->threads);
        if (rc) return rc;
    }
    w->live = w->n;
    sim_add(&w->st.live, w->n);
    return 0;
}

void sim_worker_free(sim_worker_t *w)
{
    if (w->drones)
        for (uint32_t j = 0; j < w->n; j++) sim_drone_free(&w->drones[j]);
    free(w->drones);
    free(w->heap);
    free(w->ready);
    free(w->dirty);
    if (w->ep >= 0) close(w->ep);
    w->drones = NULL;
    w->heap = NULL;
    w->ready = w->dirty = NULL;
    w->ep = -1;
}

static bool all_drained(sim_worker_t *w)
{
    for (uint32_t j = 0; j < w->n; j++)
        if (!sim_drone_drained(&w->drones[j])) return false;
    return true;
}

static void on_stop(sim_worker_t *w)
{
    w->phase = SIM_STOP;
    w->drain_until = w->now + (int64_t)(w->cfg->drain * 1e6);
    for (uint32_t j = 0; j < w->n; j++) {
        sim_drone_t *d = &w->drones[j];
        sim_timer_cancel(w, &d->t_sample);
        if (d->state == SIM_D_OPEN) sim_flush_partial_batch(w, d);
        else if (d->ever_open && d->state != SIM_D_DONE) {
            /* the partial batch is queued too, and a drone that is
             * reconnecting delivers what its library holds within --drain */
            sim_flush_partial_batch(w, d);
            if (sim_drone_drained(d)) sim_lib_abort(w, d);
        } else if (d->state != SIM_D_CLOSING && d->state != SIM_D_DONE) sim_lib_abort(w, d);
    }
}

static void start_closing(sim_worker_t *w)
{
    w->closing = 1;
    w->close_until = w->now + CLOSE_US;
    for (uint32_t j = 0; j < w->n; j++) sim_lib_close(w, &w->drones[j]);
}

void *sim_worker_main(void *arg)
{
    sim_worker_t *w = arg;
    const sim_config_t *cfg = w->cfg;
    struct epoll_event *evs = calloc(MAX_EVENTS, sizeof *evs);
    if (!evs) {
        fprintf(stderr, "dronegate-sim: worker %u: out of memory\n", w->id);
        atomic_store(&w->finished, 1);
        return NULL;
    }
    w->now = sim_mono_us();
    w->wall_ms = wall_ms_now();

    /* The connect ramp: drone i starts at i / ramp seconds. */
    for (uint32_t j = 0; j < w->n; j++) {
        sim_drone_t *d = &w->drones[j];
        int64_t at = w->sh->start_us + (int64_t)((double)d->idx * 1e6 / cfg->ramp);
        sim_timer_set(w, &d->t_conn, at);
    }

    int64_t next_drain_check = 0;
    for (;;) {
        int timeout = 100;
        if (w->ready_n || w->dirty_n) {
            timeout = 0;
        } else if (w->heap_len) {
            int64_t dt = w->heap[0]->at - sim_mono_us();
            timeout = dt <= 0 ? 0 : dt >= 100000 ? 100 : (int)((dt + 999) / 1000);
        }
        int nev = epoll_wait(w->ep, evs, MAX_EVENTS, timeout);
        if (nev < 0 && errno != EINTR) {
            fprintf(stderr, "dronegate-sim: epoll_wait: %s\n", strerror(errno));
            break;
        }
        w->now = sim_mono_us();
        w->wall_ms = wall_ms_now();

        for (int i = 0; i < nev; i++) {
            uint32_t slot = (uint32_t)evs[i].data.u64;
            uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
            if (slot >= w->n) continue;
            sim_drone_t *d = &w->drones[slot];
            if (d->gen != gen || d->lfd < 0) continue;
            sim_lib_run(w, d, evs[i].events);
        }

        for (int budget = 65536; w->heap_len && w->heap[0]->at <= w->now && budget > 0; budget--) {
            sim_timer_t *t = w->heap[0];
            sim_timer_cancel(w, t);
            if (t->kind == SIM_T_CONN) sim_lib_timer(w, t->d);
            else sim_sample_timer(w, t->d);
        }

        if (w->ready_n) {
            uint32_t n = w->ready_n;
            w->ready_n = 0;
            for (uint32_t i = 0; i < n; i++) {
                sim_drone_t *d = w->ready[i];
                d->in_ready = 0;
                sim_fill(w, d);
            }
        }

        if (w->dirty_n) {
            uint32_t n = w->dirty_n;
            w->dirty_n = 0;
            for (uint32_t i = 0; i < n; i++) {
                sim_drone_t *d = w->dirty[i];
                d->in_dirty = 0;
                sim_lib_run(w, d, 0);
            }
        }

        /* Shutdown phases. */
        int ph = atomic_load_explicit(&w->sh->phase, memory_order_relaxed);
        if (ph == SIM_ABORT) break;
        if (ph == SIM_STOP && w->phase == SIM_RUN) on_stop(w);
        if (w->phase == SIM_STOP && !w->closing && w->now >= next_drain_check) {
            next_drain_check = w->now + 10000;
            if (w->now >= w->drain_until || all_drained(w)) start_closing(w);
        }
        if (w->closing && (w->live == 0 || w->now >= w->close_until)) break;
    }

    for (uint32_t j = 0; j < w->n; j++) sim_lib_abort(w, &w->drones[j]);
    free(evs);
    atomic_store(&w->finished, 1);
    return NULL;
}
