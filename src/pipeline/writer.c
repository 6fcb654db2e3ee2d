/* writer.c - the store writer thread (see writer.h).
 *
 * Group commit: while one transaction runs, workers keep filling and queueing
 * batches; the next transaction takes all of them at once, so the number of
 * transactions adapts to the load (thousands of records per transaction
 * under load). One delay on top (see "Group commit, precisely" below):
 * --commit-interval lets a small transaction wait to grow.
 *
 * Outage: when a write fails, the batches stay with the writer (the memory
 * backlog) and are retried with backoff (50 ms doubling to 2 s) while new
 * batches keep arriving. Past half of the workers' batch pools, the oldest
 * batches are appended to an on-disk spool (spool.c: --spool-dir, at most
 * --spool-max-mb) and their buffers go back to the workers, so drones keep
 * being served. Order is kept: the spool is replayed (and acked) before
 * anything newer is written. Nothing is acked before its transaction
 * commits. A spool left by a crash (records of an earlier run) is replayed
 * at start and stored but never acked: its origin tokens name connections
 * of the dead process, and slots and generations restart at 1, so acking
 * them would ack a seq to a drone that never sent it. Acks of this run's
 * replayed records only go to workers that submitted batches in this run.
 * When memory and spool are full, workers run out of batches and close
 * drones with 1008 (see worker.c).
 *
 * Group commit, precisely: with --commit-interval > 0 (durable stores only),
 * while little is queued (< COMMIT_EARLY_RECORDS records) and the last
 * transaction started less than that long ago, the writer waits for more
 * before it starts the next one. 0 turns the wait off (one transaction as
 * soon as anything is queued; under load the queue still groups everything
 * that arrived during the previous commit).
 *
 * The writer also keeps the last record of every drone it has committed and
 * upserts the `drones` table once a second (only drones that changed), so the
 * registry table costs one row per drone per second, not one per message.
 */
#include "../core/registry.h"
#include "writer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/commands.h"
#include "../core/hash.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/timefmt.h"
#include "spool.h"

#define LAST_BUCKETS 4096u
#define LAST_KEEP    (8u * LAST_BUCKETS)   /* drones remembered between drones-table flushes */
#define COMMIT_EARLY_RECORDS 16384   /* commit at once when this much waits */

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
    atomic_int      spool_full;     /* a spill found no room (or there is no spool) */
    /* writer-thread only: backlog while the store fails */
    dg_msg_t       *pend_head, *pend_tail;  /* batches waiting for a successful write (FIFO) */
    size_t          pend_batches;
    size_t          spill_at;               /* pend_batches that trigger spooling */
    int             backoff_ms;
    int64_t         next_try_ms;            /* monotonic; 0 = now */
    dg_spool_t     *spool;                  /* NULL = no spool */
    uint64_t        spool_gauge;            /* spool bytes counted in the metric */
    dg_record_t    *replay;
    /* writer-thread only */
    dg_record_t    *merge;          /* contiguous copy when several batches go in one transaction */
    size_t          merge_cap;
    last_ent_t     *last[LAST_BUCKETS];
    size_t          nlast;          /* entries in last[] */
    last_ent_t     *dirty;
    dg_record_t    *upd;
    size_t          upd_cap;
    int64_t         last_flush_ms;
    int64_t         last_commit_ms;   /* when the last transaction's batches were taken */
    long            commit_interval_ms;
    size_t          queued_records;   /* in head..tail (under mu) */
    uint64_t        run_id;           /* random; names this run in the spool */
    atomic_int      workers_seen;     /* 1 + the highest batch owner submitted in this run */
};

dg_writer_t *dg_writer_new(const dg_store_ops_t *ops, dg_store_t *store,
                           void (*on_done)(dg_batch_t *b, void *ud), void *ud)
{
    dg_writer_t *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->spill_at = 16;
    if (getrandom(&w->run_id, sizeof w->run_id, 0) != (ssize_t)sizeof w->run_id) {
        struct timespec ts;   /* no entropy source: time and address still differ between runs */
        clock_gettime(CLOCK_REALTIME, &ts);
        w->run_id = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ (uint64_t)(uintptr_t)w << 17;
    }
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
    int seen = atomic_load(&w->workers_seen);
    while (b->worker >= seen && !atomic_compare_exchange_weak(&w->workers_seen, &seen, b->worker + 1)) {}
    pthread_mutex_lock(&w->mu);
    if (w->tail) w->tail->next = &b->msg; else w->head = &b->msg;
    w->tail = &b->msg;
    w->queued_records += b->n;
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
    return dg_fnv1a32(s, n);
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
        w->nlast++;
        e->rec = *r;
    } else if (dg_registry_supersedes(r, &e->rec)) {   /* the same latest-state rule as the API */
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
    /* Bounded: every entry is clean now; beyond LAST_KEEP drones (a big or
     * churning fleet) they all go, so memory and chain length stay bounded.
     * What is lost is only the guard against an older state of the same
     * drone (a redelivered seq) overwriting its drones row before its next
     * newer message. */
    if (w->nlast > LAST_KEEP) {
        for (size_t b = 0; b < LAST_BUCKETS; b++) {
            for (last_ent_t *e = w->last[b], *nx; e; e = nx) { nx = e->next; free(e); }
            w->last[b] = NULL;
        }
        w->nlast = 0;
    }
}

/* Write the records of `batches` in one transaction (one attempt).
 * Returns 0 when durable. */
static int write_all(dg_writer_t *w, dg_msg_t *batches)
{
    size_t total = 0, nb = 0;
    for (dg_msg_t *m = batches; m; m = m->next) { total += ((dg_batch_t *)m)->n; nb++; }
    if (total == 0) return 0;
    dg_record_t *recs = NULL;
    if (nb == 1) {
        recs = ((dg_batch_t *)batches)->recs;
    } else {
        if (total > w->merge_cap) {
            dg_record_t *p = realloc(w->merge, total * sizeof *p);
            if (p) { w->merge = p; w->merge_cap = total; }
        }
        if (total <= w->merge_cap) {
            size_t off = 0;
            for (dg_msg_t *m = batches; m; m = m->next) {
                dg_batch_t *b = (dg_batch_t *)m;
                memcpy(w->merge + off, b->recs, b->n * sizeof *b->recs);
                off += b->n;
            }
            recs = w->merge;
        }
    }
    char err[512] = "";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = 0;
    if (recs) rc = w->ops->write_batch(w->store, recs, total, err, sizeof err);
    else   /* no memory to merge: one transaction per batch, still in order */
        for (dg_msg_t *m = batches; m && rc == 0; m = m->next)
            rc = w->ops->write_batch(w->store, ((dg_batch_t *)m)->recs, ((dg_batch_t *)m)->n, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc == 0 && recs && recs == w->merge) {   /* the store's per-record verdicts (flags) back to the batches */
        size_t off = 0;
        for (dg_msg_t *m = batches; m; m = m->next) {
            dg_batch_t *b = (dg_batch_t *)m;
            for (size_t i = 0; i < b->n; i++) b->recs[i].flags = recs[off + i].flags;
            off += b->n;
        }
    }
    if (rc == 0) {
        dg_hist_observe(&dg_metrics.store_batch,
                        (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec)));
        return 0;
    }
    dg_inc(&dg_metrics.store_errors, 1);
    if (!atomic_load(&w->failing))
        dg_error("store: writing %zu records failed; keeping them (memory, then spool) and retrying with "
                 "backoff, nothing is acked meanwhile: %s", total, err);
    return rc < 0 ? rc : -1;
}

static void store_ok(dg_writer_t *w)
{
    atomic_store(&w->spool_full, 0);
    if (atomic_exchange(&w->failing, 0)) dg_info("store: writes succeed again");
    w->backoff_ms = 0;
    w->next_try_ms = 0;
}

static void store_failed(dg_writer_t *w)
{
    atomic_store(&w->failing, 1);
    w->backoff_ms = w->backoff_ms ? (w->backoff_ms < 2000 ? w->backoff_ms * 2 : 2000) : 50;
    w->next_try_ms = dg_mono_ms() + w->backoff_ms;
}

/* Hand committed (status 0) or abandoned (< 0) batches back. The metrics
 * of the batches are published first: on_done lets the worker ack, and a
 * drone (or a test) that has its ack must find the messages counted as
 * stored and in the latency histogram (published after on_done, a /metrics
 * read right after the ack saw an empty histogram once under ASan load). */
static void complete(dg_writer_t *w, dg_msg_t *batches, int status)
{
    int64_t now_us = dg_now_us();
    size_t stored = 0, reused = 0;
    dg_hist_acc_t lat_acc = { 0 };
    for (dg_msg_t *m = batches; m; m = m->next) {
        dg_batch_t *b = (dg_batch_t *)m;
        b->status = status;
        if (status == 0) {
            for (size_t i = 0; i < b->n; i++) {
                int64_t lat = now_us - b->recs[i].recv_us;
                dg_hist_acc_observe(&lat_acc, lat > 0 ? (uint64_t)lat * 1000u : 0);
                if (!(b->recs[i].flags & DG_REC_REJECTED_REUSED)) { note_last(w, &b->recs[i]); stored++; }
                else reused++;   /* not stored (store.h): a rejection, not a store */
            }
        }
        dg_gauge_add(&dg_metrics.queue_depth, -(int64_t)b->n);
        dg_gauge_add(&dg_metrics.backlog_records, -(int64_t)b->n);
    }
    dg_hist_acc_flush(&dg_metrics.ingest_latency, &lat_acc);
    if (stored) dg_inc(&dg_metrics.stored, stored);
    if (reused) dg_inc(&dg_metrics.rejected[DG_REJ_SEQ_REUSED], reused);
    for (dg_msg_t *m = batches, *next; m; m = next) {
        next = m->next;
        m->next = NULL;
        w->on_done((dg_batch_t *)m, w->ud);
    }
}

/* ---- spool (spool.c): appended by spill(), replayed by replay() ---- */

#define REPLAY_MAX  4096

static bool spool_pending(const dg_writer_t *w)
{
    return w->spool && dg_spool_pending_records(w->spool) > 0;
}

/* Keep the spool_bytes metric equal to the bytes waiting in the spool. */
static void spool_metric(dg_writer_t *w)
{
    uint64_t now = w->spool ? dg_spool_pending_bytes(w->spool) : 0;
    dg_gauge_add(&dg_metrics.spool_bytes, (int64_t)now - (int64_t)w->spool_gauge);
    w->spool_gauge = now;
}

void dg_writer_set_commit_interval(dg_writer_t *w, long ms) { w->commit_interval_ms = ms; }

int dg_writer_set_spool(dg_writer_t *w, const char *dir, uint64_t max_bytes, size_t spill_batches)
{
    w->spill_at = spill_batches ? spill_batches : 1;
    if (!dir || !dir[0] || !max_bytes) return 0;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) return -errno;
    char path[1100], err[512] = "", note[512] = "";
    if ((size_t)snprintf(path, sizeof path, "%s/backlog.spool", dir) >= sizeof path) return -ENAMETOOLONG;
    int rc = dg_spool_open(path, max_bytes, w->run_id, &w->spool, err, sizeof err, note, sizeof note);
    if (rc < 0) {
        dg_error("store: %s", err);
        return rc;
    }
    if (note[0]) dg_warn("store: %s", note);
    uint64_t n = dg_spool_pending_records(w->spool);
    if (n) {
        dg_warn("store: %" PRIu64 " records found in the spool %s, left by an earlier run (%016" PRIx64
                ") that crashed or stopped while the store failed: storing them, without acks (the "
                "drones resend what they did not get acked; the store ignores duplicates)",
                n, path, dg_spool_file_run(w->spool));
        dg_gauge_add(&dg_metrics.backlog_records, (int64_t)n);
        dg_gauge_add(&dg_metrics.queue_depth, (int64_t)n);
        spool_metric(w);
    }
    return 0;
}

uint64_t dg_writer_run_id(const dg_writer_t *w) { return w->run_id; }

/* Append the oldest pending batches to the spool while memory is over the
 * spill mark (or always, when `all`); their buffers go back unacked. */
static void spill(dg_writer_t *w, bool all)
{
    if (!w->spool) return;
    while (w->pend_head && (all || w->pend_batches > w->spill_at)) {
        dg_batch_t *b = (dg_batch_t *)w->pend_head;
        int rc = dg_spool_append(w->spool, b->recs, b->n);
        if (rc == -ENOSPC) {
            atomic_store(&w->spool_full, 1);
            static int64_t last_warn;
            if (dg_mono_ms() - last_warn > 5000) {
                last_warn = dg_mono_ms();
                dg_error("store: spool %s is full (%" PRIu64 " bytes, --spool-max-mb): drones are told to retry later (1008)",
                         dg_spool_path(w->spool), dg_spool_pending_bytes(w->spool));
            }
            return;
        }
        if (rc < 0) {
            dg_error("store: cannot write the spool %s: %s", dg_spool_path(w->spool), strerror(-rc));
            return;
        }
        atomic_store(&w->spool_full, 0);
        spool_metric(w);
        w->pend_head = b->msg.next;
        if (!w->pend_head) w->pend_tail = NULL;
        w->pend_batches--;
        b->msg.next = NULL;
        b->status = DG_BATCH_SPOOLED;   /* not durable yet: no ack; the buffer is free again */
        w->on_done(b, w->ud);
    }
}

/* Acks for replayed records of this run: one foreign batch per origin
 * worker. Only workers that submitted in this run exist for sure (a token
 * never names another: records of earlier runs are not passed here). */
static void ack_replayed(dg_writer_t *w, const dg_record_t *r, size_t n)
{
    unsigned nworkers = (unsigned)atomic_load(&w->workers_seen);
    for (unsigned wk = 0; wk < nworkers; wk++) {
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++)
            if (dg_origin_worker(r[i].origin) == wk && (r[i].flags & DG_REC_HAS_SEQ)) cnt++;
        if (!cnt) continue;
        dg_batch_t *b = dg_batch_new((int)wk, cnt);
        if (!b) continue;   /* no memory: no acks, the drones resend */
        b->msg.type = 1;   /* DG_MSG_BATCH */
        b->foreign = 1;
        for (size_t i = 0; i < n; i++)
            if (dg_origin_worker(r[i].origin) == wk && (r[i].flags & DG_REC_HAS_SEQ)) b->recs[b->n++] = r[i];
        b->status = 0;
        w->on_done(b, w->ud);
    }
}

/* Replay the spool in order. Returns 0 when it is empty, -1 on a store error. */
static int replay(dg_writer_t *w)
{
    while (spool_pending(w)) {
        if (!w->replay && !(w->replay = malloc(REPLAY_MAX * sizeof *w->replay))) return -1;
        char err[512] = "";
        size_t earlier = 0;
        uint64_t before = dg_spool_pending_records(w->spool);
        long n = dg_spool_read(w->spool, w->replay, REPLAY_MAX, &earlier, err, sizeof err);
        if (n < 0) { dg_error("store: %s", err); return -1; }
        if (err[0]) {   /* a damaged block ended the spool: the records after it are lost (never acked) */
            dg_error("store: %s", err);
            int64_t lost = (int64_t)(before - dg_spool_pending_records(w->spool));
            dg_gauge_add(&dg_metrics.backlog_records, -lost);
            dg_gauge_add(&dg_metrics.queue_depth, -lost);
            spool_metric(w);
        }
        if (n == 0) break;
        if (w->ops->write_batch(w->store, w->replay, (size_t)n, err, sizeof err) < 0) {
            dg_inc(&dg_metrics.store_errors, 1);
            return -1;
        }
        int64_t now_us = dg_now_us();
        uint64_t reused = 0;
        dg_hist_acc_t lat_acc = { 0 };
        for (long i = 0; i < n; i++) {
            int64_t lat = now_us - w->replay[i].recv_us;
            dg_hist_acc_observe(&lat_acc, lat > 0 ? (uint64_t)lat * 1000u : 0);
            if (w->replay[i].flags & DG_REC_REJECTED_REUSED) reused++;
            else note_last(w, &w->replay[i]);
        }
        dg_hist_acc_flush(&dg_metrics.ingest_latency, &lat_acc);
        dg_inc(&dg_metrics.stored, (uint64_t)n - reused);
        if (reused) dg_inc(&dg_metrics.rejected[DG_REJ_SEQ_REUSED], reused);
        dg_gauge_add(&dg_metrics.queue_depth, -(int64_t)n);
        dg_gauge_add(&dg_metrics.backlog_records, -(int64_t)n);
        /* records of an earlier run come first and are never acked */
        ack_replayed(w, w->replay + earlier, (size_t)n - earlier);
        int rc = dg_spool_consume(w->spool);
        if (rc < 0) dg_warn("store: cannot start the spool %s over: %s", dg_spool_path(w->spool), strerror(-rc));
        spool_metric(w);
        if (!spool_pending(w)) dg_info("store: spool replayed completely");
    }
    return 0;
}

/* One round: spool first (order), then the memory backlog. */
static void process(dg_writer_t *w, bool stopping)
{
    /* while failing, keep the memory backlog small before the next attempt
     * (an attempt may block for the store's timeout) */
    if (atomic_load(&w->failing)) spill(w, false);
    if (w->next_try_ms && dg_mono_ms() < w->next_try_ms) return;
    if (replay(w) < 0) { store_failed(w); spill(w, false); return; }
    if (w->pend_head) {
        if (write_all(w, w->pend_head) == 0) {
            dg_msg_t *done = w->pend_head;
            w->pend_head = w->pend_tail = NULL;
            w->pend_batches = 0;
            store_ok(w);
            complete(w, done, 0);
        } else {
            store_failed(w);
            spill(w, stopping);
            return;
        }
    }
    store_ok(w);
}

static void *writer_main(void *arg)
{
    dg_writer_t *w = arg;
    w->last_flush_ms = dg_mono_ms();
    for (;;) {
        pthread_mutex_lock(&w->mu);
        for (;;) {
            int64_t now = dg_mono_ms();
            if (w->head && !w->pend_head && !w->stopping && w->commit_interval_ms > 0 &&
                now - w->last_commit_ms < w->commit_interval_ms && w->queued_records < COMMIT_EARLY_RECORDS) {
                /* Small transactions cost nearly as much as big ones (each
                 * rewrites an index page per drone): collect for up to
                 * --commit-interval since the last commit, unless plenty is
                 * queued already. */
                int64_t wait_ms = w->commit_interval_ms - (now - w->last_commit_ms);
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += wait_ms * 1000000L;
                while (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
                pthread_cond_timedwait(&w->cv, &w->mu, &ts);
                continue;
            }
            if (w->head || w->cmd_head) break;
            bool backlog = w->pend_head || spool_pending(w);
            if (backlog && now >= w->next_try_ms) break;
            if (w->stopping && (!backlog || now >= w->deadline_ms)) break;
            int64_t wait_ms = 1000;
            if (backlog && w->next_try_ms - now < wait_ms) wait_ms = w->next_try_ms - now;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT && !backlog) break;  /* drones flush */
        }
        dg_msg_t *batches = w->head;
        w->head = w->tail = NULL;
        w->queued_records = 0;
        if (batches) w->last_commit_ms = dg_mono_ms();
        cmd_node_t *cmds = w->cmd_head;
        w->cmd_head = w->cmd_tail = NULL;
        int stopping = w->stopping;
        int64_t deadline = w->deadline_ms;
        pthread_mutex_unlock(&w->mu);

        if (cmds) write_commands(w, cmds);
        for (dg_msg_t *m = batches, *next; m; m = next) {   /* append to the backlog, in order */
            next = m->next;
            m->next = NULL;
            dg_gauge_add(&dg_metrics.backlog_records, (int64_t)((dg_batch_t *)m)->n);
            if (w->pend_tail) w->pend_tail->next = m; else w->pend_head = m;
            w->pend_tail = m;
            w->pend_batches++;
        }
        if (w->pend_head || spool_pending(w)) process(w, stopping);

        int64_t now = dg_mono_ms();
        if (!atomic_load(&w->failing) && (now - w->last_flush_ms >= 1000 || stopping)) {
            flush_drones(w);
            w->last_flush_ms = now;
        }
        if (stopping) {
            bool failing = atomic_load(&w->failing);
            if (failing && now >= deadline) {
                /* give up: what cannot go to the spool is handed back unacked */
                spill(w, true);
                dg_msg_t *left = w->pend_head;
                w->pend_head = w->pend_tail = NULL;
                w->pend_batches = 0;
                if (left) dg_error("store: still failing at shutdown; unacked records stay with the drones "
                                   "(they resend)%s", w->spool ? ", spooled ones are replayed at next start" : "");
                complete(w, left, -1);
            }
            pthread_mutex_lock(&w->mu);
            int empty = w->head == NULL && w->cmd_head == NULL;
            pthread_mutex_unlock(&w->mu);
            if (empty && !w->pend_head && (failing || !spool_pending(w))) {
                if (!failing || now >= deadline) break;
            }
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

int dg_writer_backlog_full(dg_writer_t *w)
{
    return atomic_load(&w->failing) && (!w->spool || atomic_load(&w->spool_full));
}

void dg_writer_free(dg_writer_t *w)
{
    if (!w) return;
    for (unsigned b = 0; b < LAST_BUCKETS; b++)
        for (last_ent_t *e = w->last[b], *n; e; e = n) { n = e->next; free(e); }
    for (cmd_node_t *n = w->cmd_head, *x; n; n = x) { x = n->next; free(n); }
    dg_spool_close(w->spool);
    free(w->replay);
    free(w->merge);
    free(w->upd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

/* ---- the writer as a sink (sink.h) ---- */

static int  sink_start(void *s)                 { return dg_writer_start(s); }
static void sink_submit(void *s, dg_batch_t *b) { dg_writer_submit(s, b); }
static int  sink_backlog_full(void *s)          { return dg_writer_backlog_full(s); }
static int  sink_failing(void *s)               { return dg_writer_failing(s); }
static void sink_stop(void *s, int64_t dl)      { dg_writer_stop(s, dl); }
static void sink_free(void *s)                  { dg_writer_free(s); }

const dg_sink_ops_t dg_writer_sink_ops = {
    .name = "store",
    .start = sink_start,
    .submit = sink_submit,
    .backlog_full = sink_backlog_full,
    .failing = sink_failing,
    .stop = sink_stop,
    .free = sink_free,
};
