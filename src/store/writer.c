/* writer.c - the store writer thread (see writer.h).
 *
 * Group commit: while one transaction runs, workers keep filling and queueing
 * batches; the next transaction takes all of them at once, so the number of
 * transactions adapts to the load (one record per transaction when idle,
 * thousands under load) without a fixed delay.
 *
 * The writer also keeps the last record of every drone it has committed and
 * upserts the `drones` table once a second (only drones that changed), so the
 * registry table costs one row per drone per second, not one per message.
 */
#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/commands.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/timefmt.h"

#define LAST_BUCKETS 4096u

typedef struct cmd_node {
    struct cmd_node *next;
    dg_command_t     c;
} cmd_node_t;

typedef struct last_ent {
    struct last_ent *next, *dirty_next;
    int          dirty;
    dg_record_t  rec;
} last_ent_t;

struct dg_writer {
    const dg_store_ops_t *ops;
    dg_store_t     *store;
    void          (*on_done)(dg_batch_t *, void *);
    void           *ud;
    pthread_t       thread;
    int             started;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    dg_msg_t       *head, *tail;    /* queued batches (FIFO) */
    struct cmd_node *cmd_head, *cmd_tail;  /* queued command rows (FIFO) */
    int             stopping;
    int64_t         deadline_ms;
    atomic_int      failing;
    /* writer-thread only */
    dg_record_t    *merge;          /* contiguous copy when several batches go in one transaction */
    size_t          merge_cap;
    last_ent_t     *last[LAST_BUCKETS];
    last_ent_t     *dirty;
    dg_record_t    *upd;
    size_t          upd_cap;
    int64_t         last_flush_ms;
};

dg_batch_t *dg_batch_new(int worker, size_t cap)
{
    dg_batch_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->recs = malloc(cap * sizeof *b->recs);
    if (!b->recs) { free(b); return NULL; }
    b->worker = worker;
    b->cap = cap;
    return b;
}

void dg_batch_free(dg_batch_t *b)
{
    if (!b) return;
    free(b->recs);
    free(b);
}

dg_writer_t *dg_writer_new(const dg_store_ops_t *ops, dg_store_t *store,
                           void (*on_done)(dg_batch_t *b, void *ud), void *ud)
{
    dg_writer_t *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->ops = ops;
    w->store = store;
    w->on_done = on_done;
    w->ud = ud;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    return w;
}

void dg_writer_submit(dg_writer_t *w, dg_batch_t *b)
{
    b->msg.next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->tail) w->tail->next = &b->msg; else w->head = &b->msg;
    w->tail = &b->msg;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void dg_writer_put_command(dg_writer_t *w, const dg_command_t *c)
{
    if (!w->ops->put_command) return;
    cmd_node_t *n = malloc(sizeof *n);
    if (!n) { dg_error("out of memory: command %s not persisted", c->id); return; }
    n->next = NULL;
    n->c = *c;
    pthread_mutex_lock(&w->mu);
    if (w->cmd_tail) w->cmd_tail->next = n; else w->cmd_head = n;
    w->cmd_tail = n;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void write_commands(dg_writer_t *w, cmd_node_t *n)
{
    while (n) {
        cmd_node_t *next = n->next;
        char err[256];
        if (w->ops->put_command(w->store, &n->c, err, sizeof err) < 0)
            dg_warn("store: could not persist command %s: %s", n->c.id, err);
        free(n);
        n = next;
    }
}

static uint32_t id_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
    return h;
}

/* Remember the newest committed record per drone for the drones table. */
static void note_last(dg_writer_t *w, const dg_record_t *r)
{
    uint32_t b = id_hash(r->drone_id, r->drone_id_len) & (LAST_BUCKETS - 1);
    last_ent_t *e = w->last[b];
    while (e && !(e->rec.drone_id_len == r->drone_id_len && !memcmp(e->rec.drone_id, r->drone_id, r->drone_id_len)))
        e = e->next;
    if (!e) {
        if (!(e = calloc(1, sizeof *e))) return;   /* registry row is derived state: skip on ENOMEM */
        e->next = w->last[b];
        w->last[b] = e;
        e->rec = *r;
    } else if (r->ts_ms > e->rec.ts_ms || (r->ts_ms == e->rec.ts_ms && r->seq >= e->rec.seq)) {
        e->rec = *r;
    }
    if (!e->dirty) { e->dirty = 1; e->dirty_next = w->dirty; w->dirty = e; }
}

static void flush_drones(dg_writer_t *w)
{
    size_t n = 0;
    for (last_ent_t *e = w->dirty; e; e = e->dirty_next) n++;
    if (!n) return;
    if (n > w->upd_cap) {
        dg_record_t *p = realloc(w->upd, n * sizeof *p);
        if (!p) return;
        w->upd = p;
        w->upd_cap = n;
    }
    n = 0;
    for (last_ent_t *e = w->dirty; e; e = e->dirty_next) w->upd[n++] = e->rec;
    char err[256];
    if (w->ops->update_drones && w->ops->update_drones(w->store, w->upd, n, err, sizeof err) < 0) {
        dg_warn("store: updating the drones table failed (will retry): %s", err);
        return;
    }
    for (last_ent_t *e = w->dirty, *nx; e; e = nx) { nx = e->dirty_next; e->dirty = 0; e->dirty_next = NULL; }
    w->dirty = NULL;
}

/* Write the records of `batches` in one transaction, retrying until success
 * or (when stopping) the deadline. Returns 0 when durable. */
static int write_all(dg_writer_t *w, dg_msg_t *batches)
{
    size_t total = 0, nb = 0;
    for (dg_msg_t *m = batches; m; m = m->next) { total += ((dg_batch_t *)m)->n; nb++; }
    if (total == 0) return 0;
    const dg_record_t *recs;
    if (nb == 1) {
        recs = ((dg_batch_t *)batches)->recs;
    } else {
        if (total > w->merge_cap) {
            dg_record_t *p = realloc(w->merge, total * sizeof *p);
            if (!p) { recs = NULL; goto one_by_one; }
            w->merge = p;
            w->merge_cap = total;
        }
        size_t off = 0;
        for (dg_msg_t *m = batches; m; m = m->next) {
            dg_batch_t *b = (dg_batch_t *)m;
            memcpy(w->merge + off, b->recs, b->n * sizeof *b->recs);
            off += b->n;
        }
        recs = w->merge;
    }
one_by_one:;
    int backoff_ms = 50;
    for (;;) {
        char err[512] = "";
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = 0;
        if (recs) {
            rc = w->ops->write_batch(w->store, recs, total, err, sizeof err);
        } else {
            for (dg_msg_t *m = batches; m && rc == 0; m = m->next)
                rc = w->ops->write_batch(w->store, ((dg_batch_t *)m)->recs, ((dg_batch_t *)m)->n, err, sizeof err);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (rc == 0) {
            dg_hist_observe(&dg_metrics.store_batch,
                            (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec)));
            if (atomic_exchange(&w->failing, 0)) dg_info("store: writes succeed again");
            return 0;
        }
        dg_inc(&dg_metrics.store_errors, 1);
        if (!atomic_exchange(&w->failing, 1))
            dg_error("store: writing %zu records failed, retrying with backoff (nothing is acked meanwhile): %s",
                     total, err);
        pthread_mutex_lock(&w->mu);
        int stop = w->stopping && dg_mono_ms() >= w->deadline_ms;
        pthread_mutex_unlock(&w->mu);
        if (stop) return -1;
        struct timespec ts = { backoff_ms / 1000, (long)(backoff_ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        if (backoff_ms < 2000) backoff_ms *= 2;
    }
}

static void *writer_main(void *arg)
{
    dg_writer_t *w = arg;
    w->last_flush_ms = dg_mono_ms();
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->cmd_head && !w->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            if (!w->head && !w->cmd_head) break;   /* periodic wake-up for the drones flush */
        }
        dg_msg_t *batches = w->head;
        w->head = w->tail = NULL;
        cmd_node_t *cmds = w->cmd_head;
        w->cmd_head = w->cmd_tail = NULL;
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->mu);

        if (cmds) write_commands(w, cmds);
        if (batches) {
            int rc = write_all(w, batches);
            int64_t now_us = dg_now_us();
            size_t stored = 0;
            for (dg_msg_t *m = batches, *next; m; m = next) {
                next = m->next;
                dg_batch_t *b = (dg_batch_t *)m;
                b->status = rc;
                if (rc == 0) {
                    for (size_t i = 0; i < b->n; i++) {
                        int64_t lat = now_us - b->recs[i].recv_us;
                        dg_hist_observe(&dg_metrics.ingest_latency, lat > 0 ? (uint64_t)lat * 1000u : 0);
                        note_last(w, &b->recs[i]);
                    }
                    stored += b->n;
                }
                dg_gauge_add(&dg_metrics.queue_depth, -(int64_t)b->n);
                m->next = NULL;
                w->on_done(b, w->ud);
            }
            if (stored) dg_inc(&dg_metrics.stored, stored);
        }
        int64_t now = dg_mono_ms();
        if (now - w->last_flush_ms >= 1000 || (stopping && !batches)) {
            flush_drones(w);
            w->last_flush_ms = now;
        }
        if (stopping && !batches) {
            pthread_mutex_lock(&w->mu);
            int empty = w->head == NULL && w->cmd_head == NULL;
            pthread_mutex_unlock(&w->mu);
            if (empty) break;
        }
    }
    return NULL;
}

int dg_writer_start(dg_writer_t *w)
{
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    if (rc) return -rc;
    w->started = 1;
    return 0;
}

void dg_writer_stop(dg_writer_t *w, int64_t deadline_ms)
{
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    w->deadline_ms = deadline_ms;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started) pthread_join(w->thread, NULL);
    w->started = 0;
}

int dg_writer_failing(dg_writer_t *w) { return atomic_load(&w->failing); }

void dg_writer_free(dg_writer_t *w)
{
    if (!w) return;
    for (unsigned b = 0; b < LAST_BUCKETS; b++)
        for (last_ent_t *e = w->last[b], *n; e; e = n) { n = e->next; free(e); }
    for (cmd_node_t *n = w->cmd_head, *x; n; n = x) { x = n->next; free(n); }
    free(w->merge);
    free(w->upd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
