/* test_registry.c - the drone registry: growth, lookups after growth, the
 * offline bound (eviction keeps online and pinned drones), pages in id order,
 * the latest-state rule, and concurrent use from two threads.
 * Runs plain and under ASan+UBSan (make unit unit-asan).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "../../src/core/registry.h"

static size_t idf(char *buf, size_t cap, const char *pre, long i)
{
    int n = snprintf(buf, cap, "%s%07ld", pre, i);
    return (size_t)n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);   /* CPU time: the machine may be shared */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static dg_record_t rec(const char *id, uint64_t seq, int64_t ts_ms, double lat)
{
    dg_record_t r;
    dg_record_init(&r);
    r.drone_id_len = (uint8_t)strlen(id);
    memcpy(r.drone_id, id, r.drone_id_len + 1u);
    r.seq = seq;
    r.flags = DG_REC_HAS_SEQ | DG_REC_HAS_TS;
    r.ts_ms = ts_ms;
    r.recv_us = 1000;
    r.lat = lat;
    return r;
}

TEST(growth_200k_and_lookups)
{
    dg_registry_t *r = dg_registry_new();
    ASSERT(r);
    char id[32];
    double t0 = now_s();
    for (long i = 0; i < 200000; i++) {
        size_t n = idf(id, sizeof id, "d", i);
        dg_drone_t *d = dg_registry_get(r, id, n, true);
        ASSERT(d);
        dg_registry_release(r, d);
    }
    double t1 = now_s();
    ASSERT_EQ(dg_registry_count(r), 200000);
    for (long i = 0; i < 200000; i++) {
        size_t n = idf(id, sizeof id, "d", i);
        dg_drone_state_t s;
        if (!dg_registry_find_state(r, id, n, &s)) CHECK__FAIL("lost %s after growth", id);
        ASSERT_STR_EQ(s.id, id);
    }
    double t2 = now_s();
    ASSERT(!dg_registry_get(r, "nope", 4, false));
    fprintf(stderr, "  registry (CPU): 200k inserts %.1f ms, 200k lookups %.1f ms\n", (t1 - t0) * 1e3, (t2 - t1) * 1e3);
    /* a page at 200k entries */
    dg_drone_state_t *v = malloc(1000 * sizeof *v);
    bool more;
    t0 = now_s();
    long n = dg_registry_page(r, "d0100000", 1000, NULL, NULL, v, &more);
    t1 = now_s();
    fprintf(stderr, "  registry (CPU): one page of 1000 at 200k drones %.2f ms\n", (t1 - t0) * 1e3);
    ASSERT_EQ(n, 1000);
    ASSERT(more);
    ASSERT_STR_EQ(v[0].id, "d0100001");
    ASSERT_STR_EQ(v[999].id, "d0101000");
    free(v);
    dg_registry_free(r);
}

static bool want_hundredth(void *ud, const char *id) { return atol(id + 1) % 100 == 0; }

TEST(pages_walk_everything_once_in_order)
{
    dg_registry_t *r = dg_registry_new();
    char id[32];
    long total = 2345;
    for (long i = total - 1; i >= 0; i--) {   /* insertion order != id order */
        size_t n = idf(id, sizeof id, "p", (i * 7919) % total);
        dg_registry_release(r, dg_registry_get(r, id, n, true));
    }
    dg_drone_state_t v[100];
    char cursor[DG_DRONE_ID_MAX + 1] = "";
    long seen = 0;
    bool more = true;
    while (more) {
        long n = dg_registry_page(r, cursor, 100, NULL, NULL, v, &more);
        ASSERT(n > 0);
        for (long i = 0; i < n; i++) {
            idf(id, sizeof id, "p", seen + i);
            ASSERT_STR_EQ(v[i].id, id);
        }
        seen += n;
        memcpy(cursor, v[n - 1].id, strlen(v[n - 1].id) + 1);
    }
    ASSERT_EQ(seen, total);
    /* a filter: every 100th drone, pages of 10 */
    long want_seen = 0;
    memset(cursor, 0, sizeof cursor);
    more = true;
    while (more) {
        long n = dg_registry_page(r, cursor, 10, want_hundredth, NULL, v, &more);
        ASSERT(n >= 0 && n <= 10);
        for (long i = 0; i < n; i++) ASSERT_EQ(atol(v[i].id + 1) % 100, 0);
        want_seen += n;
        if (n) memcpy(cursor, v[n - 1].id, strlen(v[n - 1].id) + 1);
    }
    ASSERT_EQ(want_seen, (total + 99) / 100);
    /* exactly one page: no "more" */
    long n = dg_registry_page(r, "p0002245", 100, NULL, NULL, v, &more);
    ASSERT_EQ(n, 99);
    ASSERT(!more);
    dg_registry_free(r);
}

/* The live snapshot's walk: every drone once, bounded batches, and with the
 * table growing between batches no drone present from the start is missed. */
TEST(scan_batches_cover_everything_while_growing)
{
    dg_registry_t *r = dg_registry_new();
    char id[32];
    long total = 5000;
    for (long i = 0; i < total; i++) {
        size_t n = idf(id, sizeof id, "s", i);
        dg_registry_release(r, dg_registry_get(r, id, n, true));
    }
    for (int grow = 0; grow < 2; grow++) {
        char *seen = calloc((size_t)total, 1);
        dg_drone_state_t *v = malloc((100 + DG_REGISTRY_SCAN_SLACK) * sizeof *v);
        dg_registry_pos_t pos = { 0, 0 };
        bool done = false;
        long batches = 0, extra = 0, got = 0;
        while (!done) {
            long n = dg_registry_scan(r, &pos, 100, NULL, NULL, v, &done);
            ASSERT(n >= 0 && n <= 100 + DG_REGISTRY_SCAN_SLACK);
            batches++;
            for (long i = 0; i < n; i++) {
                long k = atol(v[i].id + 1);
                if (v[i].id[0] == 's' && k < total) { if (!grow) ASSERT(!seen[k]); seen[k] = 1; got++; }
            }
            if (grow && batches <= 20)       /* 20,000 new drones: stripes double mid-walk */
                for (int j = 0; j < 1000; j++) {
                    size_t n2 = idf(id, sizeof id, "g", extra++ + (long)grow * 1000000);
                    dg_registry_release(r, dg_registry_get(r, id, n2, true));
                }
        }
        for (long k = 0; k < total; k++) if (!seen[k]) CHECK__FAIL("drone %ld missed (grow=%d)", k, grow);
        if (!grow) { ASSERT_EQ(got, total); ASSERT(batches >= total / 100); }
        free(v);
        free(seen);
    }
    dg_registry_free(r);
}

TEST(eviction_keeps_online_and_pinned)
{
    dg_registry_t *r = dg_registry_new();
    dg_registry_set_max_offline(r, 100);
    char id[32];
    dg_drone_t *on[50];
    dg_conn_ref_t ref = { 0, 1, 1 }, old;
    for (long i = 0; i < 50; i++) {          /* 50 online drones (pinned + attached) */
        size_t n = idf(id, sizeof id, "on", i);
        on[i] = dg_registry_get(r, id, n, true);
        ASSERT(on[i]);
        ref.slot = (uint32_t)i;
        ASSERT_EQ(dg_registry_attach(r, on[i], ref, &old, 1), 0);
        if (i % 2) dg_registry_release(r, on[i]);   /* online alone must keep it */
    }
    dg_drone_t *pinned = dg_registry_get(r, "pinned", 6, true);   /* pinned, not yet attached */
    for (long i = 0; i < 10000; i++) {       /* 10,000 drones that come and go */
        size_t n = idf(id, sizeof id, "off", i);
        dg_drone_t *d = dg_registry_get(r, id, n, true);
        ASSERT(d);
        ref.slot = (uint32_t)(1000 + i);
        dg_registry_attach(r, d, ref, &old, 2);
        dg_record_t x = rec(id, 1, 5, 1.0);
        dg_registry_update(r, d, &x);
        ASSERT(dg_registry_detach(r, d, ref, 3));
        dg_registry_release(r, d);
    }
    ASSERT_EQ(dg_registry_offline(r), 100);
    ASSERT_EQ(dg_registry_count(r), 50 + 1 + 100);
    ASSERT_EQ(dg_registry_evicted(r), 10000 - 100);
    for (long i = 0; i < 50; i++) {
        size_t n = idf(id, sizeof id, "on", i);
        dg_conn_ref_t got;
        ASSERT(dg_registry_find_conn(r, id, n, &got));
        ASSERT_EQ(got.slot, i);
    }
    dg_drone_state_t s;
    ASSERT(dg_registry_find_state(r, "pinned", 6, &s));
    /* the most recently offline stay, the oldest left */
    idf(id, sizeof id, "off", 9999);
    ASSERT(dg_registry_find_state(r, id, strlen(id), &s));
    ASSERT(s.has_last);
    idf(id, sizeof id, "off", 9900);
    ASSERT(dg_registry_find_state(r, id, strlen(id), &s));
    idf(id, sizeof id, "off", 9899);
    ASSERT(!dg_registry_find_state(r, id, strlen(id), &s));
    idf(id, sizeof id, "off", 0);
    ASSERT(!dg_registry_find_state(r, id, strlen(id), &s));
    /* an online drone that goes offline joins the evictable ones (oldest leaves) */
    ref.slot = 0;
    ASSERT(dg_registry_detach(r, on[0], ref, 4));
    dg_registry_release(r, on[0]);
    ASSERT_EQ(dg_registry_count(r), 49 + 1 + 100);
    ASSERT_EQ(dg_registry_offline(r), 100);
    ASSERT(dg_registry_find_state(r, "on0000000", 9, &s));
    idf(id, sizeof id, "off", 9900);
    ASSERT(!dg_registry_find_state(r, id, strlen(id), &s));
    dg_registry_release(r, pinned);
    ASSERT_EQ(dg_registry_offline(r), 100);
    ASSERT(dg_registry_find_state(r, "pinned", 6, &s));
    dg_registry_free(r);
}

TEST(latest_state_follows_what_was_sent_last)
{
    dg_registry_t *r = dg_registry_new();
    dg_drone_t *d = dg_registry_get(r, "x", 1, true);
    dg_record_t a = rec("x", 1, 4102444800000LL /* 2100 */, 1.0);
    dg_record_t b = rec("x", 2, 1700000000000LL, 2.0);
    dg_record_t dup = rec("x", 2, 1700000001000LL, 3.0);   /* reused seq: the store rejects it */
    dg_record_t old = rec("x", 1, 4102444800000LL, 1.0);   /* redelivery */
    dg_drone_state_t s;
    dg_registry_update(r, d, &a);
    dg_registry_update(r, d, &b);
    dg_registry_state(r, d, &s);
    ASSERT_DBL_EQ(s.last.lat, 2.0);          /* the far-future record does not freeze it */
    dg_registry_update(r, d, &dup);
    dg_registry_update(r, d, &old);
    dg_registry_state(r, d, &s);
    ASSERT_DBL_EQ(s.last.lat, 2.0);
    ASSERT_U64_EQ(s.last.seq, 2);
    dg_record_t noseq = rec("x", 0, 1000, 9.0);
    noseq.flags = 0;
    dg_registry_update(r, d, &noseq);        /* without a seq: arrival order */
    dg_registry_state(r, d, &s);
    ASSERT_DBL_EQ(s.last.lat, 9.0);
    dg_registry_release(r, d);
    dg_registry_free(r);
}

typedef struct worker_arg {
    dg_registry_t *r;
    int            t;
    long           errors;
} worker_arg_t;

static void *hammer(void *p)
{
    worker_arg_t *a = p;
    char id[32];
    dg_conn_ref_t ref = { a->t, 0, 0 }, old;
    for (long i = 0; i < 30000; i++) {
        /* half the ids shared by both threads, half own */
        size_t n = (i & 1) ? idf(id, sizeof id, "s", i % 5000) : idf(id, sizeof id, a->t ? "b" : "a", i);
        dg_drone_t *d = dg_registry_get(a->r, id, n, true);
        if (!d) { a->errors++; continue; }
        ref.slot = (uint32_t)i;
        dg_registry_attach(a->r, d, ref, &old, i);
        dg_record_t x = rec(id, (uint64_t)i, i, 1.0);
        dg_registry_update(a->r, d, &x);
        dg_drone_state_t s;
        if (!dg_registry_find_state(a->r, id, n, &s) || strcmp(s.id, id)) a->errors++;
        dg_registry_detach(a->r, d, ref, i);
        dg_registry_release(a->r, d);
        if (i % 1000 == 0) {
            dg_drone_state_t v[64];
            bool more;
            if (dg_registry_page(a->r, "", 64, NULL, NULL, v, &more) < 0) a->errors++;
        }
    }
    return NULL;
}

TEST(two_threads)
{
    dg_registry_t *r = dg_registry_new();
    dg_registry_set_max_offline(r, 3000);
    worker_arg_t a = { r, 0, 0 }, b = { r, 1, 0 };
    pthread_t ta, tb;
    ASSERT_EQ(pthread_create(&ta, NULL, hammer, &a), 0);
    ASSERT_EQ(pthread_create(&tb, NULL, hammer, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ASSERT_EQ(a.errors + b.errors, 0);
    ASSERT_EQ(dg_registry_offline(r), 3000);
    ASSERT_EQ(dg_registry_count(r), 3000);
    dg_registry_free(r);
}

/* The fleet view: drones held by another gateway are online, carry its
 * name, are never evicted; a connection here wins; clearing is per gateway. */
TEST(remote_drones_of_the_fleet)
{
    static const char gw_b[] = "gw-b", gw_c[] = "gw-c";
    dg_registry_t *r = dg_registry_new();
    dg_registry_set_max_offline(r, 0);                       /* evict every offline drone at once */
    dg_drone_state_t st;
    ASSERT(!dg_registry_set_remote(r, "x1", 2, NULL, gw_b, 5));   /* clearing an unknown drone: nothing */
    ASSERT(!dg_registry_find_state(r, "x1", 2, &st));
    ASSERT(dg_registry_set_remote(r, "x1", 2, gw_b, NULL, 10));   /* online on gw-b */
    ASSERT(!dg_registry_set_remote(r, "x1", 2, gw_b, NULL, 11));  /* no change */
    ASSERT(dg_registry_find_state(r, "x1", 2, &st));              /* not evicted although "offline here" */
    ASSERT(st.online && st.instance == gw_b && st.last_seen_ms == 10);
    dg_record_t a = rec("x1", 5, 1000, 1.5);
    ASSERT(dg_registry_update_remote(r, &a));
    dg_record_t old = rec("x1", 4, 2000, 9.9);
    ASSERT(!dg_registry_update_remote(r, &old));                  /* lower seq: not the latest */
    ASSERT(dg_registry_find_state(r, "x1", 2, &st) && st.has_last && st.last.lat == 1.5);
    /* moved on to gw-c: gw-b's late "offline" must not clear gw-c's mark */
    ASSERT(!dg_registry_set_remote(r, "x1", 2, gw_c, NULL, 12));  /* still online: no visible change */
    ASSERT(!dg_registry_set_remote(r, "x1", 2, NULL, gw_b, 13));
    ASSERT(dg_registry_find_state(r, "x1", 2, &st) && st.online && st.instance == gw_c);
    /* a connection here takes precedence */
    dg_drone_t *d = dg_registry_get(r, "x1", 2, true);
    dg_conn_ref_t ref = { 0, 1, 1 }, prev;
    ASSERT_EQ(dg_registry_attach(r, d, ref, &prev, 14), 0);
    ASSERT(dg_registry_find_state(r, "x1", 2, &st) && st.online && st.instance == NULL);
    ASSERT(dg_registry_detach(r, d, ref, 15));
    dg_registry_release(r, d);
    ASSERT(!dg_registry_find_state(r, "x1", 2, &st));             /* offline, unpinned, bound 0: evicted */
    /* clear per gateway */
    ASSERT(dg_registry_set_remote(r, "y1", 2, gw_b, NULL, 20));
    ASSERT(dg_registry_set_remote(r, "y2", 2, gw_c, NULL, 20));
    ASSERT_EQ(dg_registry_clear_remote(r, gw_b, NULL, NULL, 21), 1u);
    ASSERT(!dg_registry_find_state(r, "y1", 2, &st));
    ASSERT(dg_registry_find_state(r, "y2", 2, &st) && st.online);
    ASSERT_EQ(dg_registry_clear_remote(r, NULL, NULL, NULL, 22), 1u);
    ASSERT(!dg_registry_find_state(r, "y2", 2, &st));
    dg_registry_free(r);
}

int main(void)
{
    RUN(growth_200k_and_lookups);
    RUN(pages_walk_everything_once_in_order);
    RUN(scan_batches_cover_everything_while_growing);
    RUN(eviction_keeps_online_and_pinned);
    RUN(latest_state_follows_what_was_sent_last);
    RUN(two_threads);
    RUN(remote_drones_of_the_fleet);
    return check_summary("registry");
}
