/* writer.c - the store writer thread (see writer.h).
 *
 * Group commit: while one transaction runs, workers keep filling and queueing
 * batches; the next transaction takes all of them at once, so the number of
 * transactions adapts to the load (one record per transaction when idle,
 * thousands under load) without a fixed delay.
 *
 * Outage: when a write fails, the batches stay with the writer (the memory
 * backlog) and are retried with backoff (50 ms doubling to 2 s) while new
 * batches keep arriving. Past half of the workers' batch pools, the oldest
 * batches are appended to an on-disk spool (--spool-dir, at most
 * --spool-max-bytes) and their buffers go back to the workers, so drones
 * keep being served. Order is kept: the spool is replayed (and acked) before
 * anything newer is written. Nothing is acked before its transaction
 * commits. A spool left by a crash is replayed at start (without acks: the
 * connections are gone). When memory and spool are full, workers run out of
 * batches and close drones with 1008 (see worker.c).
 *
 * The writer also keeps the last record of every drone it has committed and
 * upserts the `drones` table once a second (only drones that changed), so the
 * registry table costs one row per drone per second, not one per message.
 */
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
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

#define LAST_BUCKETS 4096u
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
    int             spool_fd;               /* -1 = no spool */
    char            spool_path[1100];
    uint64_t        spool_rd, spool_wr;     /* byte offsets (after the header) */
    uint64_t        spool_max;
    dg_record_t    *replay;
    /* writer-thread only */
    dg_record_t    *merge;          /* contiguous copy when several batches go in one transaction */
    size_t          merge_cap;
    last_ent_t     *last[LAST_BUCKETS];
    last_ent_t     *dirty;
    dg_record_t    *upd;
    size_t          upd_cap;
    int64_t         last_flush_ms;
    int64_t         last_commit_ms;   /* when the last transaction's batches were taken */
    long            commit_interval_ms;
    size_t          queued_records;   /* in head..tail (under mu) */
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
    w->spool_fd = -1;
    w->spill_at = 16;
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

/* Write the records of `batches` in one transaction (one attempt).
 * Returns 0 when durable. */
static int write_all(dg_writer_t *w, dg_msg_t *batches)
{
    size_t total = 0, nb = 0;
    for (dg_msg_t *m = batches; m; m = m->next) { total += ((dg_batch_t *)m)->n; nb++; }
    if (total == 0) return 0;
    const dg_record_t *recs = NULL;
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

/* Hand committed (status 0) or abandoned (< 0) batches back. */
static void complete(dg_writer_t *w, dg_msg_t *batches, int status)
{
    int64_t now_us = dg_now_us();
    size_t stored = 0;
    for (dg_msg_t *m = batches, *next; m; m = next) {
        next = m->next;
        dg_batch_t *b = (dg_batch_t *)m;
        b->status = status;
        if (status == 0) {
            for (size_t i = 0; i < b->n; i++) {
                int64_t lat = now_us - b->recs[i].recv_us;
                dg_hist_observe(&dg_metrics.ingest_latency, lat > 0 ? (uint64_t)lat * 1000u : 0);
                note_last(w, &b->recs[i]);
            }
            stored += b->n;
        }
        dg_gauge_add(&dg_metrics.queue_depth, -(int64_t)b->n);
        dg_gauge_add(&dg_metrics.backlog_records, -(int64_t)b->n);
        m->next = NULL;
        w->on_done(b, w->ud);
    }
    if (stored) dg_inc(&dg_metrics.stored, stored);
}

/* ---- spool: a file of raw dg_record_t, appended at spool_wr, replayed from spool_rd ---- */

#define SPOOL_MAGIC "dronegate-spool-1"
#define SPOOL_HDR   64
#define REPLAY_MAX  4096

static int spool_open(dg_writer_t *w)
{
    int fd = open(w->spool_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    char hdr[SPOOL_HDR] = { 0 };
    snprintf(hdr, sizeof hdr, "%s %zu", SPOOL_MAGIC, sizeof(dg_record_t));
    struct stat st;
    if (fstat(fd, &st) < 0) { close(fd); return -1; }
    char have[SPOOL_HDR] = { 0 };
    if (st.st_size >= SPOOL_HDR && pread(fd, have, SPOOL_HDR, 0) == SPOOL_HDR && !memcmp(have, hdr, SPOOL_HDR)) {
        uint64_t data = (uint64_t)st.st_size - SPOOL_HDR;
        w->spool_wr = data - data % sizeof(dg_record_t);
        w->spool_rd = 0;
        if (w->spool_wr) {
            dg_warn("store: %" PRIu64 " records found in the spool %s (not acked before a crash or stop): "
                    "replaying them", w->spool_wr / sizeof(dg_record_t), w->spool_path);
            dg_gauge_add(&dg_metrics.backlog_records, (int64_t)(w->spool_wr / sizeof(dg_record_t)));
            dg_gauge_add(&dg_metrics.queue_depth, (int64_t)(w->spool_wr / sizeof(dg_record_t)));
            dg_gauge_add(&dg_metrics.spool_bytes, (int64_t)w->spool_wr);
        }
        w->spool_fd = fd;
        return 0;
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, hdr, SPOOL_HDR, 0) != SPOOL_HDR) { close(fd); return -1; }
    w->spool_fd = fd;
    w->spool_rd = w->spool_wr = 0;
    return 0;
}

void dg_writer_set_commit_interval(dg_writer_t *w, long ms) { w->commit_interval_ms = ms; }

int dg_writer_set_spool(dg_writer_t *w, const char *dir, uint64_t max_bytes, size_t spill_batches)
{
    w->spill_at = spill_batches ? spill_batches : 1;
    if (!dir || !dir[0] || !max_bytes) return 0;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) return -errno;
    if ((size_t)snprintf(w->spool_path, sizeof w->spool_path, "%s/backlog.spool", dir) >= sizeof w->spool_path)
        return -ENAMETOOLONG;
    w->spool_max = max_bytes;
    if (spool_open(w) < 0) return -errno;
    return 0;
}

/* Append the oldest pending batches to the spool while memory is over the
 * spill mark (or always, when `all`); their buffers go back unacked. */
static void spill(dg_writer_t *w, bool all)
{
    if (w->spool_fd < 0) return;
    while (w->pend_head && (all || w->pend_batches > w->spill_at)) {
        dg_batch_t *b = (dg_batch_t *)w->pend_head;
        size_t bytes = b->n * sizeof(dg_record_t);
        if (w->spool_wr + bytes > w->spool_max) {
            atomic_store(&w->spool_full, 1);
            static int64_t last_warn;
            if (dg_mono_ms() - last_warn > 5000) {
                last_warn = dg_mono_ms();
                dg_error("store: spool %s is full (%" PRIu64 " bytes, --spool-max-bytes): drones are told to retry later (1008)",
                         w->spool_path, w->spool_wr);
            }
            return;
        }
        ssize_t n = pwrite(w->spool_fd, b->recs, bytes, (off_t)(SPOOL_HDR + w->spool_wr));
        if (n != (ssize_t)bytes) {
            dg_error("store: cannot write the spool %s: %s", w->spool_path, strerror(errno));
            return;
        }
        w->spool_wr += bytes;
        atomic_store(&w->spool_full, 0);
        dg_gauge_add(&dg_metrics.spool_bytes, (int64_t)bytes);
        w->pend_head = b->msg.next;
        if (!w->pend_head) w->pend_tail = NULL;
        w->pend_batches--;
        b->msg.next = NULL;
        b->status = DG_BATCH_SPOOLED;   /* not durable yet: no ack; the buffer is free again */
        w->on_done(b, w->ud);
    }
}

/* Acks for replayed records: one foreign batch per origin worker. */
static void ack_replayed(dg_writer_t *w, const dg_record_t *r, size_t n)
{
    for (int wk = 0; wk < 256; wk++) {
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++)
            if (r[i].origin_worker == wk && (r[i].flags & DG_REC_HAS_SEQ)) cnt++;
        if (!cnt) continue;
        dg_batch_t *b = dg_batch_new(wk, cnt);
        if (!b) continue;
        b->msg.type = 1;   /* DG_MSG_BATCH */
        b->foreign = 1;
        for (size_t i = 0; i < n; i++)
            if (r[i].origin_worker == wk && (r[i].flags & DG_REC_HAS_SEQ)) b->recs[b->n++] = r[i];
        b->status = 0;
        w->on_done(b, w->ud);
    }
}

/* Replay the spool in order. Returns 0 when it is empty, -1 on a store error. */
static int replay(dg_writer_t *w)
{
    while (w->spool_fd >= 0 && w->spool_rd < w->spool_wr) {
        if (!w->replay && !(w->replay = malloc(REPLAY_MAX * sizeof *w->replay))) return -1;
        uint64_t left = (w->spool_wr - w->spool_rd) / sizeof(dg_record_t);
        size_t n = left < REPLAY_MAX ? (size_t)left : REPLAY_MAX;
        ssize_t got = pread(w->spool_fd, w->replay, n * sizeof(dg_record_t), (off_t)(SPOOL_HDR + w->spool_rd));
        if (got != (ssize_t)(n * sizeof(dg_record_t))) {
            dg_error("store: cannot read the spool %s: %s", w->spool_path, strerror(errno));
            return -1;
        }
        char err[512] = "";
        if (w->ops->write_batch(w->store, w->replay, n, err, sizeof err) < 0) {
            dg_inc(&dg_metrics.store_errors, 1);
            return -1;
        }
        int64_t now_us = dg_now_us();
        for (size_t i = 0; i < n; i++) {
            int64_t lat = now_us - w->replay[i].recv_us;
            dg_hist_observe(&dg_metrics.ingest_latency, lat > 0 ? (uint64_t)lat * 1000u : 0);
            note_last(w, &w->replay[i]);
        }
        dg_inc(&dg_metrics.stored, n);
        dg_gauge_add(&dg_metrics.queue_depth, -(int64_t)n);
        dg_gauge_add(&dg_metrics.backlog_records, -(int64_t)n);
        dg_gauge_add(&dg_metrics.spool_bytes, -(int64_t)(n * sizeof(dg_record_t)));
        ack_replayed(w, w->replay, n);
        w->spool_rd += n * sizeof(dg_record_t);
    }
    if (w->spool_fd >= 0 && w->spool_wr) {
        /* drained: start the file over */
        if (ftruncate(w->spool_fd, SPOOL_HDR) == 0) {
            w->spool_rd = w->spool_wr = 0;
            dg_info("store: spool replayed completely");
        }
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
            bool backlog = w->pend_head || (w->spool_fd >= 0 && w->spool_rd < w->spool_wr);
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
        if (w->pend_head || (w->spool_fd >= 0 && w->spool_rd < w->spool_wr)) process(w, stopping);

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
                                   "(they resend)%s", w->spool_fd >= 0 ? ", spooled ones are replayed at next start" : "");
                complete(w, left, -1);
            }
            pthread_mutex_lock(&w->mu);
            int empty = w->head == NULL && w->cmd_head == NULL;
            pthread_mutex_unlock(&w->mu);
            if (empty && !w->pend_head && (failing || w->spool_fd < 0 || w->spool_rd >= w->spool_wr)) {
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
    return atomic_load(&w->failing) && (w->spool_fd < 0 || atomic_load(&w->spool_full));
}

void dg_writer_free(dg_writer_t *w)
{
    if (!w) return;
    for (unsigned b = 0; b < LAST_BUCKETS; b++)
        for (last_ent_t *e = w->last[b], *n; e; e = n) { n = e->next; free(e); }
    for (cmd_node_t *n = w->cmd_head, *x; n; n = x) { x = n->next; free(n); }
    if (w->spool_fd >= 0) close(w->spool_fd);
    free(w->replay);
    free(w->merge);
    free(w->upd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
