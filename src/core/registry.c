/* registry.c - see registry.h.
 *
 * Layout: hash = FNV-1a over the id. Stripe = hash & 63; inside a stripe,
 * bucket = (hash >> 6) & (nb - 1), chaining. A stripe's table starts at 256
 * buckets and doubles (rehash under that stripe's lock only) when its entries
 * pass its bucket count, so chains stay ~1 long at any fleet size and one
 * growth step moves only 1/64 of the drones (~3,000 entries at 200k drones;
 * 200k inserts including every growth step take ~330 ms of CPU:
 * tests/unit/test_registry.c).
 *
 * Eviction: entries that are offline and unpinned sit on one list in the order
 * they became so (an LRU by "offline since"); beyond max_offline the head is
 * freed. Taking an entry off the list to free it marks it `evicting`; the
 * evictor then takes its stripe lock and frees it only if it is still
 * offline and unpinned (else it just clears the mark: whoever pinned it will
 * put it back on the list when it becomes evictable again). Only the evictor
 * that unlinked an entry may free it, so an entry is freed exactly once.
 *
 * Threads: any. Locks: see registry.h (one stripe at a time; `ev_lock` leaf).
 */
#include "registry.h"

#include "hash.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NSTRIPES   64u
#define STRIPE_SHIFT 6
#define MIN_BUCKETS 256u

struct dg_drone {
    struct dg_drone *next;          /* bucket chain (stripe lock) */
    struct dg_drone *ev_prev, *ev_next; /* eviction list (ev_lock) */
    uint32_t      hash;
    uint8_t       id_len;
    uint8_t       on_list;          /* on the eviction list (ev_lock) */
    uint8_t       evicting;         /* taken off the list by an evictor (ev_lock) */
    char          id[DG_DRONE_ID_MAX + 1];
    /* guarded by the stripe lock: */
    bool          online;
    bool          has_last;
    uint32_t      pins;             /* connections holding a pointer */
    int64_t       last_seen_ms;
    dg_conn_ref_t conn;
    const char   *remote;           /* the other gateway holding it (interned, never freed), or NULL */
    dg_record_t   last;
    uint8_t       seq_known;        /* 0 unknown, 1 none stored, 2 last_seq (session message) */
    uint64_t      last_seq;         /* highest durable seq */
};

typedef struct stripe {
    pthread_mutex_t lock;
    dg_drone_t    **bucket;         /* nb buckets */
    size_t          nb, n;
} stripe_t;

struct dg_registry {
    stripe_t         s[NSTRIPES];
    _Atomic size_t   count;
    _Atomic size_t   max_offline;
    _Atomic uint64_t evicted;
    pthread_mutex_t  ev_lock;       /* leaf lock: the eviction list */
    dg_drone_t      *ev_head, *ev_tail;
    size_t           ev_n;
};

static uint32_t fnv1a(const char *s, size_t n)
{
    return dg_fnv1a32(s, n);
}

static stripe_t *stripe_of(dg_registry_t *r, uint32_t hash) { return &r->s[hash & (NSTRIPES - 1)]; }
static size_t bucket_of(const stripe_t *s, uint32_t hash) { return (hash >> STRIPE_SHIFT) & (s->nb - 1); }

dg_registry_t *dg_registry_new(void)
{
    dg_registry_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    for (unsigned i = 0; i < NSTRIPES; i++) {
        stripe_t *s = &r->s[i];
        if (!(s->bucket = calloc(MIN_BUCKETS, sizeof *s->bucket))) {
            while (i--) { free(r->s[i].bucket); pthread_mutex_destroy(&r->s[i].lock); }
            free(r);
            return NULL;
        }
        s->nb = MIN_BUCKETS;
        pthread_mutex_init(&s->lock, NULL);
    }
    pthread_mutex_init(&r->ev_lock, NULL);
    atomic_init(&r->max_offline, DG_REGISTRY_MAX_OFFLINE_DEFAULT);
    return r;
}

void dg_registry_free(dg_registry_t *r)
{
    if (!r) return;
    for (unsigned i = 0; i < NSTRIPES; i++) {
        stripe_t *s = &r->s[i];
        for (size_t b = 0; b < s->nb; b++) {
            dg_drone_t *d = s->bucket[b];
            while (d) { dg_drone_t *n = d->next; free(d); d = n; }
        }
        free(s->bucket);
        pthread_mutex_destroy(&s->lock);
    }
    pthread_mutex_destroy(&r->ev_lock);
    free(r);
}

void dg_registry_set_max_offline(dg_registry_t *r, size_t n) { atomic_store(&r->max_offline, n); }

/* ---- eviction list (callers hold d's stripe lock) ---- */

static void ev_unlink(dg_registry_t *r, dg_drone_t *d)
{
    if (d->ev_prev) d->ev_prev->ev_next = d->ev_next; else r->ev_head = d->ev_next;
    if (d->ev_next) d->ev_next->ev_prev = d->ev_prev; else r->ev_tail = d->ev_prev;
    d->ev_prev = d->ev_next = NULL;
    d->on_list = 0;
    r->ev_n--;
}

/* After any change of online/pins: keep list membership == evictable. */
static void settle(dg_registry_t *r, dg_drone_t *d)
{
    bool evictable = !d->online && !d->remote && d->pins == 0;
    pthread_mutex_lock(&r->ev_lock);
    if (evictable && !d->on_list && !d->evicting) {
        d->ev_prev = r->ev_tail;
        d->ev_next = NULL;
        if (r->ev_tail) r->ev_tail->ev_next = d; else r->ev_head = d;
        r->ev_tail = d;
        d->on_list = 1;
        r->ev_n++;
    } else if (!evictable && d->on_list) {
        ev_unlink(r, d);
    }
    pthread_mutex_unlock(&r->ev_lock);
}

/* Free the oldest evictable entries beyond the bound. No lock held on entry. */
static void evict(dg_registry_t *r)
{
    for (;;) {
        pthread_mutex_lock(&r->ev_lock);
        dg_drone_t *d = r->ev_n > atomic_load(&r->max_offline) ? r->ev_head : NULL;
        if (d) { ev_unlink(r, d); d->evicting = 1; }
        pthread_mutex_unlock(&r->ev_lock);
        if (!d) return;
        stripe_t *s = stripe_of(r, d->hash);   /* hash is immutable; d cannot be freed by anyone else */
        pthread_mutex_lock(&s->lock);
        bool gone = !d->online && !d->remote && d->pins == 0;
        if (gone) {
            dg_drone_t **pp = &s->bucket[bucket_of(s, d->hash)];
            while (*pp != d) pp = &(*pp)->next;
            *pp = d->next;
            s->n--;
            atomic_fetch_sub(&r->count, 1);
        }
        pthread_mutex_lock(&r->ev_lock);
        d->evicting = 0;
        if (d->on_list) ev_unlink(r, d);      /* cannot happen while evicting; kept for safety */
        pthread_mutex_unlock(&r->ev_lock);
        pthread_mutex_unlock(&s->lock);
        if (gone) {
            free(d);
            atomic_fetch_add_explicit(&r->evicted, 1, memory_order_relaxed);
        }
    }
}

/* Double a stripe's table (its lock held). On ENOMEM it stays as it is. */
static void grow(stripe_t *s)
{
    size_t nb = s->nb * 2;
    dg_drone_t **nt = calloc(nb, sizeof *nt);
    if (!nt) return;
    for (size_t b = 0; b < s->nb; b++) {
        for (dg_drone_t *d = s->bucket[b], *next; d; d = next) {
            next = d->next;
            size_t j = (d->hash >> STRIPE_SHIFT) & (nb - 1);
            d->next = nt[j];
            nt[j] = d;
        }
    }
    free(s->bucket);
    s->bucket = nt;
    s->nb = nb;
}

static dg_drone_t *lookup(stripe_t *s, uint32_t h, const char *id, size_t len)
{
    dg_drone_t *d = s->bucket[bucket_of(s, h)];
    while (d && !(d->hash == h && d->id_len == len && !memcmp(d->id, id, len))) d = d->next;
    return d;
}

/* Find or create; pin when asked. *created tells whether it was made. */
static dg_drone_t *get(dg_registry_t *r, const char *id, size_t len, bool create, bool pin, bool *created)
{
    if (len > DG_DRONE_ID_MAX) return NULL;
    uint32_t h = fnv1a(id, len);
    stripe_t *s = stripe_of(r, h);
    *created = false;
    pthread_mutex_lock(&s->lock);
    dg_drone_t *d = lookup(s, h, id, len);
    if (!d && create && (d = calloc(1, sizeof *d))) {
        d->hash = h;
        memcpy(d->id, id, len);
        d->id[len] = '\0';
        d->id_len = (uint8_t)len;
        d->conn.worker = -1;
        dg_record_init(&d->last);
        size_t b = bucket_of(s, h);
        d->next = s->bucket[b];
        s->bucket[b] = d;
        if (++s->n > s->nb) grow(s);
        atomic_fetch_add(&r->count, 1);
        *created = true;
    }
    if (d && create) {
        if (pin) d->pins++;
        settle(r, d);
    }
    pthread_mutex_unlock(&s->lock);
    return d;
}

dg_drone_t *dg_registry_get(dg_registry_t *r, const char *id, size_t len, bool create)
{
    bool created;
    dg_drone_t *d = get(r, id, len, create, create, &created);
    if (created) evict(r);
    return d;
}

void dg_registry_release(dg_registry_t *r, dg_drone_t *d)
{
    if (!d) return;
    stripe_t *s = stripe_of(r, d->hash);
    pthread_mutex_lock(&s->lock);
    if (d->pins) d->pins--;
    settle(r, d);
    pthread_mutex_unlock(&s->lock);
    evict(r);
}

const char *dg_drone_id(const dg_drone_t *d, size_t *len)
{
    if (len) *len = d->id_len;
    return d->id;
}

int dg_registry_attach(dg_registry_t *r, dg_drone_t *d, dg_conn_ref_t ref, dg_conn_ref_t *old, int64_t now_ms)
{
    stripe_t *s = stripe_of(r, d->hash);
    pthread_mutex_lock(&s->lock);
    int replaced = 0;
    if (d->online && d->conn.worker >= 0) { *old = d->conn; replaced = 1; }
    d->conn = ref;
    d->online = true;
    d->remote = NULL;                 /* held here now */
    d->last_seen_ms = now_ms;
    settle(r, d);
    pthread_mutex_unlock(&s->lock);
    return replaced;
}

bool dg_registry_detach(dg_registry_t *r, dg_drone_t *d, dg_conn_ref_t ref, int64_t now_ms)
{
    stripe_t *s = stripe_of(r, d->hash);
    bool went = false;
    pthread_mutex_lock(&s->lock);
    if (d->online && d->conn.worker == ref.worker && d->conn.slot == ref.slot && d->conn.gen == ref.gen) {
        d->online = false;
        d->conn.worker = -1;
        d->last_seen_ms = now_ms;
        went = true;
        settle(r, d);
    }
    pthread_mutex_unlock(&s->lock);
    if (went) evict(r);
    return went;
}

bool dg_registry_conn(dg_registry_t *r, dg_drone_t *d, dg_conn_ref_t *out)
{
    stripe_t *s = stripe_of(r, d->hash);
    pthread_mutex_lock(&s->lock);
    bool on = d->online && d->conn.worker >= 0;
    if (on) *out = d->conn;
    pthread_mutex_unlock(&s->lock);
    return on;
}

bool dg_registry_supersedes(const dg_record_t *rec, const dg_record_t *cur)
{
    if ((rec->flags & DG_REC_HAS_SEQ) && (cur->flags & DG_REC_HAS_SEQ)) return rec->seq > cur->seq;
    return true;
}

static void update_locked(dg_drone_t *d, const dg_record_t *rec)
{
    if (!d->has_last || dg_registry_supersedes(rec, &d->last)) {
        d->last = *rec;
        d->has_last = true;
    }
    int64_t seen = rec->recv_us / 1000;
    if (seen > d->last_seen_ms) d->last_seen_ms = seen;
}

void dg_registry_update(dg_registry_t *r, dg_drone_t *d, const dg_record_t *rec)
{
    stripe_t *s = stripe_of(r, d->hash);
    pthread_mutex_lock(&s->lock);
    update_locked(d, rec);
    pthread_mutex_unlock(&s->lock);
}

int dg_registry_last_seq(dg_registry_t *r, dg_drone_t *d, uint64_t *seq)
{
    pthread_mutex_t *lk = &stripe_of(r, d->hash)->lock;
    pthread_mutex_lock(lk);
    int st = d->seq_known == 2 ? 1 : d->seq_known == 1 ? 0 : -1;
    if (st == 1) *seq = d->last_seq;
    pthread_mutex_unlock(lk);
    return st;
}

/* Under the stripe lock: seq (found) becomes the drone's highest durable
 * seq unless a higher one is known. */
static void raise_locked(dg_drone_t *d, uint64_t seq)
{
    if (d->seq_known != 2 || seq > d->last_seq) { d->last_seq = seq; d->seq_known = 2; }
}

void dg_registry_set_last_seq(dg_registry_t *r, dg_drone_t *d, int found, uint64_t seq)
{
    pthread_mutex_lock(&stripe_of(r, d->hash)->lock);
    if (found) raise_locked(d, seq);
    else if (!d->seq_known) d->seq_known = 1;
    pthread_mutex_unlock(&stripe_of(r, d->hash)->lock);
}

void dg_registry_raise_last_seq(dg_registry_t *r, const char *id, size_t len, uint64_t seq)
{
    if (len > DG_DRONE_ID_MAX) return;
    uint32_t h = fnv1a(id, len);
    stripe_t *s = stripe_of(r, h);
    pthread_mutex_lock(&s->lock);
    dg_drone_t *d = lookup(s, h, id, len);   /* evicted or never seen: stays unknown (the store answers) */
    if (d && d->seq_known) raise_locked(d, seq);   /* durable seqs only refine a known value */
    pthread_mutex_unlock(&s->lock);
}

void dg_registry_restore(dg_registry_t *r, const dg_record_t *rec)
{
    bool created;
    dg_drone_t *d = get(r, rec->drone_id, rec->drone_id_len, true, false, &created);
    if (!d) return;
    /* update under the lock of a lookup: an unpinned entry may be evicted
     * by another thread as soon as the lock is dropped */
    uint32_t h = fnv1a(rec->drone_id, rec->drone_id_len);
    stripe_t *s = stripe_of(r, h);
    pthread_mutex_lock(&s->lock);
    if ((d = lookup(s, h, rec->drone_id, rec->drone_id_len))) update_locked(d, rec);
    pthread_mutex_unlock(&s->lock);
    if (created) evict(r);
}

bool dg_registry_set_remote(dg_registry_t *r, const char *id, size_t len, const char *instance,
                            const char *expect, int64_t now_ms)
{
    bool created = false, changed = false;
    dg_drone_t *d;
    uint32_t h = fnv1a(id, len);
    stripe_t *s = stripe_of(r, h);
    if (instance && !get(r, id, len, true, false, &created)) return false;
    pthread_mutex_lock(&s->lock);
    if ((d = lookup(s, h, id, len)) && d->remote != instance && (instance || !expect || d->remote == expect)) {
        bool was = d->online || d->remote;
        d->remote = instance;
        changed = !d->online && was != (d->online || d->remote);
        if (changed) d->last_seen_ms = now_ms;
        settle(r, d);
    }
    pthread_mutex_unlock(&s->lock);
    evict(r);
    return changed;
}

size_t dg_registry_clear_remote(dg_registry_t *r, const char *instance,
                                void (*went)(void *ud, const char *id), void *ud, int64_t now_ms)
{
    size_t n = 0;
    for (uint32_t i = 0; i < NSTRIPES; i++) {
        stripe_t *s = &r->s[i];
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nb; b++)
            for (dg_drone_t *d = s->bucket[b]; d; d = d->next) {
                if (!d->remote || (instance && d->remote != instance)) continue;
                d->remote = NULL;
                if (!d->online) {
                    d->last_seen_ms = now_ms;
                    if (went) went(ud, d->id);
                    n++;
                }
                settle(r, d);
            }
        pthread_mutex_unlock(&s->lock);
    }
    evict(r);
    return n;
}

bool dg_registry_update_remote(dg_registry_t *r, const dg_record_t *rec)
{
    bool created, took = false;
    if (!get(r, rec->drone_id, rec->drone_id_len, true, false, &created)) return false;
    uint32_t h = fnv1a(rec->drone_id, rec->drone_id_len);
    stripe_t *s = stripe_of(r, h);
    pthread_mutex_lock(&s->lock);
    dg_drone_t *d = lookup(s, h, rec->drone_id, rec->drone_id_len);
    if (d && (!d->has_last || dg_registry_supersedes(rec, &d->last))) {
        update_locked(d, rec);
        took = true;
    }
    pthread_mutex_unlock(&s->lock);
    if (created) evict(r);
    return took;
}

static void copy_state(const dg_drone_t *d, dg_drone_state_t *o)
{
    memcpy(o->id, d->id, (size_t)d->id_len + 1);
    o->online = d->online || d->remote;
    o->instance = d->online ? NULL : d->remote;
    o->last_seen_ms = d->last_seen_ms;
    o->has_last = d->has_last;
    o->last = d->last;
}

void dg_registry_state(dg_registry_t *r, dg_drone_t *d, dg_drone_state_t *out)
{
    stripe_t *s = stripe_of(r, d->hash);
    pthread_mutex_lock(&s->lock);
    copy_state(d, out);
    pthread_mutex_unlock(&s->lock);
}

bool dg_registry_find_state(dg_registry_t *r, const char *id, size_t len, dg_drone_state_t *out)
{
    if (len > DG_DRONE_ID_MAX) return false;
    uint32_t h = fnv1a(id, len);
    stripe_t *s = stripe_of(r, h);
    pthread_mutex_lock(&s->lock);
    dg_drone_t *d = lookup(s, h, id, len);
    if (d) copy_state(d, out);
    pthread_mutex_unlock(&s->lock);
    return d != NULL;
}

bool dg_registry_find_conn(dg_registry_t *r, const char *id, size_t len, dg_conn_ref_t *out)
{
    if (len > DG_DRONE_ID_MAX) return false;
    uint32_t h = fnv1a(id, len);
    stripe_t *s = stripe_of(r, h);
    pthread_mutex_lock(&s->lock);
    dg_drone_t *d = lookup(s, h, id, len);
    bool on = d && d->online && d->conn.worker >= 0;
    if (on) *out = d->conn;
    pthread_mutex_unlock(&s->lock);
    return on;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const dg_drone_state_t *)a)->id, ((const dg_drone_state_t *)b)->id);
}

long dg_registry_snapshot(dg_registry_t *r, dg_drone_state_t **out)
{
    size_t cap = atomic_load(&r->count) + 16, n = 0;
    dg_drone_state_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    for (unsigned i = 0; i < NSTRIPES; i++) {
        stripe_t *s = &r->s[i];
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nb; b++) {
            for (dg_drone_t *d = s->bucket[b]; d; d = d->next) {
                if (n == cap) {
                    dg_drone_state_t *nv = realloc(v, 2 * cap * sizeof *v);
                    if (!nv) { pthread_mutex_unlock(&s->lock); free(v); return -1; }
                    v = nv;
                    cap *= 2;
                }
                copy_state(d, &v[n++]);
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    qsort(v, n, sizeof *v, by_id);
    *out = v;
    return (long)n;
}

/* ---- pages: a max-heap (by id) of indexes into the caller's array ---- */

static void heap_down(uint32_t *h, size_t n, size_t i, const dg_drone_state_t *v)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && strcmp(v[h[l]].id, v[h[m]].id) > 0) m = l;
        if (l + 1 < n && strcmp(v[h[l + 1]].id, v[h[m]].id) > 0) m = l + 1;
        if (m == i) return;
        uint32_t t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

static void heap_up(uint32_t *h, size_t i, const dg_drone_state_t *v)
{
    while (i) {
        size_t p = (i - 1) / 2;
        if (strcmp(v[h[i]].id, v[h[p]].id) <= 0) return;
        uint32_t t = h[i]; h[i] = h[p]; h[p] = t;
        i = p;
    }
}

long dg_registry_page(dg_registry_t *r, const char *after, size_t limit,
                      bool (*want)(void *ud, const char *id), void *ud,
                      dg_drone_state_t *out, bool *more)
{
    *more = false;
    if (!limit) return 0;
    if (!after) after = "";
    uint32_t *h = malloc(limit * sizeof *h);
    if (!h) return -1;
    size_t n = 0;
    for (unsigned i = 0; i < NSTRIPES; i++) {
        stripe_t *s = &r->s[i];
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nb; b++) {
            for (dg_drone_t *d = s->bucket[b]; d; d = d->next) {
                if (strcmp(d->id, after) <= 0) continue;
                if (want && !want(ud, d->id)) continue;
                if (n == limit && strcmp(d->id, out[h[0]].id) >= 0) { *more = true; continue; }
                if (n < limit) {
                    h[n] = (uint32_t)n;
                    copy_state(d, &out[n]);
                    heap_up(h, n++, out);
                } else {
                    *more = true;                 /* the old top drops out of the page */
                    copy_state(d, &out[h[0]]);
                    heap_down(h, n, 0, out);
                }
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    free(h);
    qsort(out, n, sizeof *out, by_id);
    return (long)n;
}

long dg_registry_scan(dg_registry_t *r, dg_registry_pos_t *pos, size_t limit,
                      bool (*want)(void *ud, const char *id), void *ud,
                      dg_drone_state_t *out, bool *done)
{
    size_t n = 0;
    *done = false;
    while (pos->stripe < NSTRIPES) {
        stripe_t *s = &r->s[pos->stripe];
        pthread_mutex_lock(&s->lock);
        for (; pos->bucket < s->nb; pos->bucket++) {
            size_t chain = 0;
            for (dg_drone_t *d = s->bucket[pos->bucket]; d; d = d->next) chain++;
            if (n && n + chain > limit) { pthread_mutex_unlock(&s->lock); return (long)n; }
            size_t k = 0;
            for (dg_drone_t *d = s->bucket[pos->bucket]; d && k < limit + DG_REGISTRY_SCAN_SLACK; d = d->next, k++)
                if (!want || want(ud, d->id)) copy_state(d, &out[n++]);
        }
        pthread_mutex_unlock(&s->lock);
        pos->stripe++;
        pos->bucket = 0;
    }
    *done = true;
    return (long)n;
}

size_t dg_registry_count(dg_registry_t *r) { return atomic_load(&r->count); }

size_t dg_registry_offline(dg_registry_t *r)
{
    pthread_mutex_lock(&r->ev_lock);
    size_t n = r->ev_n;
    pthread_mutex_unlock(&r->ev_lock);
    return n;
}

uint64_t dg_registry_evicted(dg_registry_t *r) { return atomic_load_explicit(&r->evicted, memory_order_relaxed); }
