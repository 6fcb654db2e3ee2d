/* registry.c - see registry.h.
 *
 * Hash: FNV-1a over the id, 2^16 buckets, chaining. Stripe = bucket & 63.
 * The table does not grow: at 1M drones chains average 16, which is still
 * cheap next to the network work per message; documented as a known limit.
 */
#include "registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS (1u << 16)
#define NSTRIPES 64u

struct dg_drone {
    struct dg_drone *next;          /* bucket chain */
    uint32_t      hash;
    char          id[DG_DRONE_ID_MAX + 1];
    uint8_t       id_len;
    /* guarded by the stripe lock: */
    bool          online;
    bool          has_last;
    int64_t       last_seen_ms;
    dg_conn_ref_t conn;
    dg_record_t   last;
    uint8_t       seq_known;        /* 0 unknown, 1 none stored, 2 last_seq (session message) */
    uint64_t      last_seq;         /* highest durable seq */
};

struct dg_registry {
    pthread_mutex_t  lock[NSTRIPES];
    dg_drone_t      *bucket[NBUCKETS];
    _Atomic size_t   count;
};

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
    return h;
}

static pthread_mutex_t *lock_of(dg_registry_t *r, uint32_t hash)
{
    return &r->lock[(hash & (NBUCKETS - 1)) & (NSTRIPES - 1)];
}

dg_registry_t *dg_registry_new(void)
{
    dg_registry_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    for (unsigned i = 0; i < NSTRIPES; i++) pthread_mutex_init(&r->lock[i], NULL);
    return r;
}

void dg_registry_free(dg_registry_t *r)
{
    if (!r) return;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        dg_drone_t *d = r->bucket[b];
        while (d) { dg_drone_t *n = d->next; free(d); d = n; }
    }
    for (unsigned i = 0; i < NSTRIPES; i++) pthread_mutex_destroy(&r->lock[i]);
    free(r);
}

dg_drone_t *dg_registry_get(dg_registry_t *r, const char *id, size_t len, bool create)
{
    if (len > DG_DRONE_ID_MAX) return NULL;
    uint32_t h = fnv1a(id, len);
    pthread_mutex_t *lk = lock_of(r, h);
    pthread_mutex_lock(lk);
    dg_drone_t **slot = &r->bucket[h & (NBUCKETS - 1)], *d = *slot;
    while (d && !(d->hash == h && d->id_len == len && !memcmp(d->id, id, len))) d = d->next;
    if (!d && create && (d = calloc(1, sizeof *d))) {
        d->hash = h;
        memcpy(d->id, id, len);
        d->id[len] = '\0';
        d->id_len = (uint8_t)len;
        d->conn.worker = -1;
        dg_record_init(&d->last);
        d->next = *slot;
        *slot = d;
        atomic_fetch_add(&r->count, 1);
    }
    pthread_mutex_unlock(lk);
    return d;
}

const char *dg_drone_id(const dg_drone_t *d, size_t *len)
{
    if (len) *len = d->id_len;
    return d->id;
}

int dg_registry_attach(dg_registry_t *r, dg_drone_t *d, dg_conn_ref_t ref, dg_conn_ref_t *old, int64_t now_ms)
{
    pthread_mutex_t *lk = lock_of(r, d->hash);
    pthread_mutex_lock(lk);
    int replaced = 0;
    if (d->online && d->conn.worker >= 0) { *old = d->conn; replaced = 1; }
    d->conn = ref;
    d->online = true;
    d->last_seen_ms = now_ms;
    pthread_mutex_unlock(lk);
    return replaced;
}

bool dg_registry_detach(dg_registry_t *r, dg_drone_t *d, dg_conn_ref_t ref, int64_t now_ms)
{
    pthread_mutex_t *lk = lock_of(r, d->hash);
    bool went = false;
    pthread_mutex_lock(lk);
    if (d->online && d->conn.worker == ref.worker && d->conn.slot == ref.slot && d->conn.gen == ref.gen) {
        d->online = false;
        d->conn.worker = -1;
        d->last_seen_ms = now_ms;
        went = true;
    }
    pthread_mutex_unlock(lk);
    return went;
}

bool dg_registry_conn(dg_registry_t *r, dg_drone_t *d, dg_conn_ref_t *out)
{
    pthread_mutex_t *lk = lock_of(r, d->hash);
    pthread_mutex_lock(lk);
    bool on = d->online && d->conn.worker >= 0;
    if (on) *out = d->conn;
    pthread_mutex_unlock(lk);
    return on;
}

static bool newer(const dg_record_t *a, const dg_record_t *b)
{
    if (a->ts_ms != b->ts_ms) return a->ts_ms > b->ts_ms;
    return a->seq >= b->seq;
}

void dg_registry_update(dg_registry_t *r, dg_drone_t *d, const dg_record_t *rec)
{
    pthread_mutex_t *lk = lock_of(r, d->hash);
    pthread_mutex_lock(lk);
    if (!d->has_last || newer(rec, &d->last)) {
        d->last = *rec;
        d->has_last = true;
    }
    int64_t seen = rec->recv_us / 1000;
    if (seen > d->last_seen_ms) d->last_seen_ms = seen;
    pthread_mutex_unlock(lk);
}

int dg_registry_last_seq(dg_registry_t *r, dg_drone_t *d, uint64_t *seq)
{
    pthread_mutex_t *lk = lock_of(r, d->hash);
    pthread_mutex_lock(lk);
    int st = d->seq_known == 2 ? 1 : d->seq_known == 1 ? 0 : -1;
    if (st == 1) *seq = d->last_seq;
    pthread_mutex_unlock(lk);
    return st;
}

void dg_registry_set_last_seq(dg_registry_t *r, dg_drone_t *d, int found, uint64_t seq, bool from_store)
{
    pthread_mutex_lock(lock_of(r, d->hash));
    if (from_store || d->seq_known) {   /* durable seqs only refine a known value */
        if (found && (d->seq_known != 2 || seq > d->last_seq)) { d->last_seq = seq; d->seq_known = 2; }
        else if (!found && !d->seq_known) d->seq_known = 1;
    }
    pthread_mutex_unlock(lock_of(r, d->hash));
}

void dg_registry_restore(dg_registry_t *r, const dg_record_t *rec)
{
    dg_drone_t *d = dg_registry_get(r, rec->drone_id, rec->drone_id_len, true);
    if (d) dg_registry_update(r, d, rec);
}

void dg_registry_state(dg_registry_t *r, dg_drone_t *d, dg_drone_state_t *out)
{
    pthread_mutex_t *lk = lock_of(r, d->hash);
    pthread_mutex_lock(lk);
    memcpy(out->id, d->id, (size_t)d->id_len + 1);
    out->online = d->online;
    out->last_seen_ms = d->last_seen_ms;
    out->has_last = d->has_last;
    out->last = d->last;
    pthread_mutex_unlock(lk);
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
    for (unsigned s = 0; s < NSTRIPES; s++) {
        pthread_mutex_lock(&r->lock[s]);
        for (unsigned b = s; b < NBUCKETS; b += NSTRIPES) {
            for (dg_drone_t *d = r->bucket[b]; d; d = d->next) {
                if (n == cap) {
                    dg_drone_state_t *nv = realloc(v, 2 * cap * sizeof *v);
                    if (!nv) { pthread_mutex_unlock(&r->lock[s]); free(v); return -1; }
                    v = nv;
                    cap *= 2;
                }
                dg_drone_state_t *o = &v[n++];
                memcpy(o->id, d->id, (size_t)d->id_len + 1);
                o->online = d->online;
                o->last_seen_ms = d->last_seen_ms;
                o->has_last = d->has_last;
                o->last = d->last;
            }
        }
        pthread_mutex_unlock(&r->lock[s]);
    }
    qsort(v, n, sizeof *v, by_id);
    *out = v;
    return (long)n;
}

size_t dg_registry_count(dg_registry_t *r) { return atomic_load(&r->count); }
