/* test_pipeline_writer.c - unit tests of the store writer
 * (src/pipeline/writer.c) against a test double of our store interface
 * (dg_store_ops_t): group commit, --commit-interval, retry with backoff on
 * a failing store, spill to the spool and in-order replay with acks,
 * records of an earlier run's spool stored without acks, nothing reported
 * durable (status 0) before the store has it, backlog_full.
 *
 * Synchronisation is on events (condition variables signalled by the double
 * and by on_done), never on sleeps. Runs plain and under ASan+UBSan.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "pipeline/spool.h"
#include "pipeline/writer.h"

#define MAXREC 4096
#define MAXCALL 256

/* ---- the store double ---- */

struct dg_store {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int      fail_left;        /* next write_batch calls that fail; < 0 = fail until changed */
    int      gate;             /* while set, write_batch waits (after counting the call) */
    int      calls, failed_calls;
    size_t   call_n[MAXCALL];  /* records per successful call */
    uint64_t seqs[MAXREC];     /* committed, in commit order */
    size_t   n;
    int64_t  call_ms[MAXCALL]; /* monotonic time of every call */
};

static int t_write(dg_store_t *s, dg_record_t *recs, size_t n, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    if (s->calls < MAXCALL) s->call_ms[s->calls] = dg_mono_ms();
    s->calls++;
    pthread_cond_broadcast(&s->cv);
    while (s->gate) pthread_cond_wait(&s->cv, &s->mu);
    int rc = 0;
    if (s->fail_left != 0) {
        if (s->fail_left > 0) s->fail_left--;
        s->failed_calls++;
        snprintf(err, errlen, "test store: failing on purpose");
        rc = -EIO;
    } else {
        if (s->calls - s->failed_calls - 1 < MAXCALL) s->call_n[s->calls - s->failed_calls - 1] = n;
        for (size_t i = 0; i < n && s->n < MAXREC; i++) s->seqs[s->n++] = recs[i].seq;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int t_update_drones(dg_store_t *s, const dg_record_t *last, size_t n, char *err, size_t errlen)
{
    return 0;
}

static const dg_store_ops_t test_ops = {
    .scheme = "test", .durable = true, .write_batch = t_write, .update_drones = t_update_drones,
};

static int committed(dg_store_t *s, uint64_t seq)   /* under s->mu */
{
    for (size_t i = 0; i < s->n; i++) if (s->seqs[i] == seq) return 1;
    return 0;
}

/* ---- what the writer hands back ---- */

typedef struct done_log {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    dg_store_t *store;
    int      events, ok, spooled, abandoned, foreign;
    int      early;            /* status 0 for a record the store does not have */
    int      acked[MAXREC];    /* times each seq was reported durable */
    int      returned[64];     /* own batches handed back, by index in `own` */
    dg_batch_t *own[64];
    int      nown;
} done_log_t;

static void on_done(dg_batch_t *b, void *ud)
{
    done_log_t *d = ud;
    pthread_mutex_lock(&d->store->mu);
    int early = 0;
    if (b->status == 0)
        for (size_t i = 0; i < b->n; i++) if (!committed(d->store, b->recs[i].seq)) early++;
    pthread_mutex_unlock(&d->store->mu);
    pthread_mutex_lock(&d->mu);
    d->events++;
    d->early += early;
    if (b->status == 0) {
        d->ok++;
        for (size_t i = 0; i < b->n; i++) if (b->recs[i].seq < MAXREC) d->acked[b->recs[i].seq]++;
    } else if (b->status == DG_BATCH_SPOOLED) {
        d->spooled++;
    } else {
        d->abandoned++;
    }
    if (b->foreign) {
        d->foreign++;
        dg_batch_free(b);
    } else {
        for (int i = 0; i < d->nown; i++) if (d->own[i] == b) d->returned[i]++;
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

typedef struct fixture {
    dg_store_t   store;
    done_log_t   done;
    dg_writer_t *w;
    char         dir[64];
} fixture_t;

static void fx_init(fixture_t *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->store.mu, NULL);
    pthread_cond_init(&f->store.cv, NULL);
    pthread_mutex_init(&f->done.mu, NULL);
    pthread_cond_init(&f->done.cv, NULL);
    f->done.store = &f->store;
    f->w = dg_writer_new(&test_ops, &f->store, on_done, &f->done);
}

static void fx_spool_dir(fixture_t *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/dg-writer-XXXXXX");
    if (!mkdtemp(f->dir)) { perror("mkdtemp"); exit(1); }
}

static void fx_free(fixture_t *f)
{
    dg_writer_stop(f->w, dg_mono_ms() + 100);
    dg_writer_free(f->w);
    for (int i = 0; i < f->done.nown; i++) dg_batch_free(f->done.own[i]);
    if (f->dir[0]) {
        char p[128];
        snprintf(p, sizeof p, "%s/backlog.spool", f->dir);
        unlink(p);
        rmdir(f->dir);
    }
    pthread_mutex_destroy(&f->store.mu);
    pthread_cond_destroy(&f->store.cv);
    pthread_mutex_destroy(&f->done.mu);
    pthread_cond_destroy(&f->done.cv);
}

/* A batch of worker 0 with seqs from..to (kept by the fixture). */
static dg_batch_t *batch(fixture_t *f, uint64_t from, uint64_t to)
{
    dg_batch_t *b = dg_batch_new(0, (size_t)(to - from + 1));
    for (uint64_t q = from; q <= to; q++) {
        dg_record_t *r = &b->recs[b->n++];
        dg_record_init(r);
        r->seq = q;
        r->flags = DG_REC_HAS_SEQ;
        r->ts_ms = 1700000000000;
        r->drone_id_len = (uint8_t)snprintf(r->drone_id, sizeof r->drone_id, "d-1");
        r->origin = dg_origin_pack(0, 5, 1);
    }
    b->msg.type = 1;
    f->done.own[f->done.nown++] = b;
    return b;
}

static void wait_until(pthread_mutex_t *mu, pthread_cond_t *cv, int (*pred)(void *), void *arg, const char *what)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;   /* a hang is a failure, not a timing assumption */
    pthread_mutex_lock(mu);
    while (!pred(arg))
        if (pthread_cond_timedwait(cv, mu, &ts) == ETIMEDOUT) {
            fprintf(stderr, "timed out waiting for %s\n", what);
            abort();
        }
    pthread_mutex_unlock(mu);
}

static int want_n;
static int returned_all(void *a) { done_log_t *d = a; for (int i = 0; i < d->nown; i++) if (!d->returned[i]) return 0; return 1; }
static int calls_at_least(void *a) { return ((dg_store_t *)a)->calls >= want_n; }
static int spooled_at_least(void *a) { return ((done_log_t *)a)->spooled >= want_n; }
static int acked_upto(void *a) { done_log_t *d = a; for (int q = 1; q <= want_n; q++) if (!d->acked[q]) return 0; return 1; }
static int committed_at_least(void *a) { return (int)((dg_store_t *)a)->n >= want_n; }
static int ok_at_least(void *a) { return ((done_log_t *)a)->ok >= want_n; }

/* ---- tests ---- */

TEST(group_commit_takes_everything_queued)
{
    fixture_t f;
    fx_init(&f);
    dg_writer_set_commit_interval(f.w, 0);
    ASSERT_EQ(dg_writer_start(f.w), 0);
    f.store.gate = 1;                          /* hold the first transaction open */
    dg_writer_submit(f.w, batch(&f, 1, 1));
    want_n = 1;
    wait_until(&f.store.mu, &f.store.cv, calls_at_least, &f.store, "first write");
    dg_writer_submit(f.w, batch(&f, 2, 3));    /* arrive while it commits */
    dg_writer_submit(f.w, batch(&f, 4, 4));
    dg_writer_submit(f.w, batch(&f, 5, 9));
    pthread_mutex_lock(&f.store.mu);
    f.store.gate = 0;
    pthread_cond_broadcast(&f.store.cv);
    pthread_mutex_unlock(&f.store.mu);
    wait_until(&f.done.mu, &f.done.cv, returned_all, &f.done, "all batches back");
    ASSERT_EQ(f.store.calls, 2);               /* 1, then 2..9 in one transaction */
    ASSERT_EQ(f.store.call_n[0], 1);
    ASSERT_EQ(f.store.call_n[1], 8);
    for (size_t i = 0; i < f.store.n; i++) ASSERT_U64_EQ(f.store.seqs[i], i + 1);
    ASSERT_EQ(f.done.ok, 4);
    ASSERT_EQ(f.done.early, 0);
    fx_free(&f);
}

TEST(commit_interval_collects_small_batches)
{
    fixture_t f;
    fx_init(&f);
    dg_writer_set_commit_interval(f.w, 3000);  /* long enough that nothing else decides */
    ASSERT_EQ(dg_writer_start(f.w), 0);
    dg_writer_submit(f.w, batch(&f, 1, 1));
    want_n = 1;
    wait_until(&f.done.mu, &f.done.cv, ok_at_least, &f.done, "first commit");
    dg_writer_submit(f.w, batch(&f, 2, 2));
    dg_writer_submit(f.w, batch(&f, 3, 3));
    wait_until(&f.done.mu, &f.done.cv, returned_all, &f.done, "all batches back");
    ASSERT_EQ(f.store.calls, 2);
    ASSERT_EQ(f.store.call_n[1], 2);
    ASSERT(f.store.call_ms[1] - f.store.call_ms[0] >= 2900);   /* it did wait */
    fx_free(&f);
}

TEST(retries_with_backoff_and_acks_only_when_durable)
{
    fixture_t f;
    fx_init(&f);
    f.store.fail_left = 3;
    ASSERT_EQ(dg_writer_start(f.w), 0);
    dg_writer_submit(f.w, batch(&f, 1, 4));
    want_n = 1;
    wait_until(&f.store.mu, &f.store.cv, calls_at_least, &f.store, "first attempt");
    wait_until(&f.done.mu, &f.done.cv, returned_all, &f.done, "batch back");
    ASSERT_EQ(f.store.calls, 4);               /* 3 failures, then the commit */
    ASSERT_EQ(f.store.failed_calls, 3);
    /* backoff 50, 100, 200 ms between the attempts */
    ASSERT(f.store.call_ms[1] - f.store.call_ms[0] >= 50);
    ASSERT(f.store.call_ms[2] - f.store.call_ms[1] >= 100);
    ASSERT(f.store.call_ms[3] - f.store.call_ms[2] >= 200);
    ASSERT_EQ(f.done.events, 1);               /* handed back once, when durable */
    ASSERT_EQ(f.done.ok, 1);
    ASSERT_EQ(f.done.early, 0);
    ASSERT_EQ(dg_writer_failing(f.w), 0);
    fx_free(&f);
}

TEST(stop_while_failing_hands_back_unacked)
{
    fixture_t f;
    fx_init(&f);
    f.store.fail_left = -1;
    ASSERT_EQ(dg_writer_start(f.w), 0);
    dg_writer_submit(f.w, batch(&f, 1, 2));
    want_n = 1;
    wait_until(&f.store.mu, &f.store.cv, calls_at_least, &f.store, "first attempt");
    dg_writer_stop(f.w, dg_mono_ms() + 100);
    ASSERT_EQ(f.done.returned[0], 1);
    ASSERT_EQ(f.done.ok, 0);
    ASSERT_EQ(f.done.abandoned, 1);
    ASSERT_EQ(f.store.n, 0);
    fx_free(&f);
}

TEST(spill_to_spool_and_replay_in_order)
{
    fixture_t f;
    fx_init(&f);
    fx_spool_dir(&f);
    ASSERT_EQ(dg_writer_set_spool(f.w, f.dir, 1 << 20, 1), 0);
    f.store.fail_left = -1;
    ASSERT_EQ(dg_writer_start(f.w), 0);
    for (uint64_t q = 1; q <= 20; q += 4) dg_writer_submit(f.w, batch(&f, q, q + 3));
    /* over the spill mark (1 batch in memory) the oldest go to the spool */
    want_n = 4;
    wait_until(&f.done.mu, &f.done.cv, spooled_at_least, &f.done, "4 batches spooled");
    ASSERT_EQ(f.done.ok, 0);
    ASSERT_EQ(dg_writer_failing(f.w), 1);
    ASSERT_EQ(dg_writer_backlog_full(f.w), 0);  /* the spool has room */
    pthread_mutex_lock(&f.store.mu);
    f.store.fail_left = 0;
    pthread_mutex_unlock(&f.store.mu);
    want_n = 20;
    wait_until(&f.done.mu, &f.done.cv, acked_upto, &f.done, "seqs 1..20 acked");
    ASSERT_EQ(f.store.n, 20);
    for (size_t i = 0; i < f.store.n; i++) ASSERT_U64_EQ(f.store.seqs[i], i + 1);   /* in order */
    for (int q = 1; q <= 20; q++) ASSERT_EQ(f.done.acked[q], 1);                   /* once each */
    ASSERT_EQ(f.done.early, 0);
    ASSERT(f.done.foreign >= 1);                /* the spooled ones came back as acks */
    ASSERT_EQ(dg_writer_failing(f.w), 0);
    fx_free(&f);
}

TEST(earlier_run_spool_is_stored_without_acks)
{
    fixture_t f;
    fx_init(&f);
    fx_spool_dir(&f);
    /* what a crashed run left: seqs 1..3 of "its" worker 0, slot 5, gen 1 */
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/backlog.spool", f.dir);
    dg_spool_t *s = NULL;
    ASSERT_EQ(dg_spool_open(path, 1 << 20, 42, &s, err, sizeof err, NULL, 0), 0);
    dg_batch_t *old = batch(&f, 101, 103);
    ASSERT_EQ(dg_spool_append(s, old->recs, old->n), 0);
    dg_spool_close(s);
    f.done.returned[0] = 1;                     /* never submitted */
    ASSERT_EQ(dg_writer_set_spool(f.w, f.dir, 1 << 20, 1), 0);
    ASSERT_EQ(dg_writer_start(f.w), 0);
    dg_writer_submit(f.w, batch(&f, 1, 1));     /* a connection of this run with the same origin */
    want_n = 4;
    wait_until(&f.store.mu, &f.store.cv, committed_at_least, &f.store, "spool and batch stored");
    wait_until(&f.done.mu, &f.done.cv, returned_all, &f.done, "batch back");
    ASSERT_U64_EQ(f.store.seqs[0], 101);        /* the spool first */
    ASSERT_U64_EQ(f.store.seqs[3], 1);
    ASSERT_EQ(f.done.foreign, 0);               /* no acks for the earlier run */
    ASSERT_EQ(f.done.acked[101] + f.done.acked[102] + f.done.acked[103], 0);
    ASSERT_EQ(f.done.acked[1], 1);
    fx_free(&f);
}

TEST(backlog_full_without_spool_and_with_a_full_one)
{
    fixture_t f;
    fx_init(&f);
    dg_writer_set_spool(f.w, NULL, 0, 1);
    f.store.fail_left = -1;
    ASSERT_EQ(dg_writer_start(f.w), 0);
    ASSERT_EQ(dg_writer_backlog_full(f.w), 0);
    dg_writer_submit(f.w, batch(&f, 1, 1));
    want_n = 2;   /* after the first failed attempt has returned */
    wait_until(&f.store.mu, &f.store.cv, calls_at_least, &f.store, "second attempt");
    ASSERT_EQ(dg_writer_backlog_full(f.w), 1);  /* failing, nowhere to put more */
    pthread_mutex_lock(&f.store.mu);
    f.store.fail_left = 0;
    pthread_mutex_unlock(&f.store.mu);
    wait_until(&f.done.mu, &f.done.cv, returned_all, &f.done, "batch back");
    ASSERT_EQ(dg_writer_backlog_full(f.w), 0);
    fx_free(&f);

    /* a spool with room for one batch only */
    fx_init(&f);
    fx_spool_dir(&f);
    ASSERT_EQ(dg_writer_set_spool(f.w, f.dir, 300, 1), 0);
    f.store.fail_left = -1;
    ASSERT_EQ(dg_writer_start(f.w), 0);
    for (uint64_t q = 1; q <= 8; q += 2) dg_writer_submit(f.w, batch(&f, q, q + 1));
    want_n = 1;
    wait_until(&f.done.mu, &f.done.cv, spooled_at_least, &f.done, "a batch spooled");
    want_n = f.store.calls + 2;
    wait_until(&f.store.mu, &f.store.cv, calls_at_least, &f.store, "two more attempts");
    ASSERT_EQ(f.done.spooled, 1);
    ASSERT_EQ(dg_writer_backlog_full(f.w), 1);
    pthread_mutex_lock(&f.store.mu);
    f.store.fail_left = 0;
    pthread_mutex_unlock(&f.store.mu);
    want_n = 8;
    wait_until(&f.done.mu, &f.done.cv, acked_upto, &f.done, "seqs 1..8 acked");
    for (size_t i = 0; i < f.store.n; i++) ASSERT_U64_EQ(f.store.seqs[i], i + 1);
    ASSERT_EQ(f.done.early, 0);
    ASSERT_EQ(dg_writer_backlog_full(f.w), 0);
    fx_free(&f);
}

int main(void)
{
    dg_log_level = DG_LOG_ERROR + 1;   /* the failures here are on purpose */
    RUN(group_commit_takes_everything_queued);
    RUN(commit_interval_collects_small_batches);
    RUN(retries_with_backoff_and_acks_only_when_durable);
    RUN(stop_while_failing_hands_back_unacked);
    RUN(spill_to_spool_and_replay_in_order);
    RUN(earlier_run_spool_is_stored_without_acks);
    RUN(backlog_full_without_spool_and_with_a_full_one);
    return check_summary("pipeline_writer");
}
