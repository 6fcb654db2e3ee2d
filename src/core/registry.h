/* registry.h - every known drone and its latest state, in memory.
 *
 * Shared by all worker threads. 64 stripes, each a hash table of its own
 * guarded by its own mutex (an entry lives in the stripe of its hash); a
 * stripe's table doubles under its lock when it fills, so growth never stops
 * more than 1/64 of the registry and never takes two locks.
 *
 * Lifetime: an entry is evictable when its drone is offline and nobody pins
 * it. dg_registry_get(..., create=true) returns a pinned entry: a connection
 * holds that pin for its whole life and gives it back with
 * dg_registry_release() when it closes. Beyond --registry-max-offline
 * evictable entries, the one that became evictable first (offline longest)
 * is freed: memory is bounded by online drones + the bound. The store keeps
 * every drone; an evicted drone is only forgotten by the in-memory views
 * (drones list, latest state, live snapshot) until it sends again.
 * Online (or pinned) entries are never evicted.
 *
 * Locking rule: a thread holds at most one stripe lock; the eviction list
 * lock is a leaf (taken under a stripe lock or alone, nothing under it).
 *
 * The registry also knows which connection currently owns a drone (worker,
 * slot, generation), which is how a second connection of the same drone finds
 * the first one to replace it (4409).
 */
#ifndef DG_REGISTRY_H
#define DG_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

typedef struct dg_registry dg_registry_t;
typedef struct dg_drone dg_drone_t;

#define DG_REGISTRY_MAX_OFFLINE_DEFAULT 200000

typedef struct dg_conn_ref {
    int      worker;   /* -1 = none */
    uint32_t slot, gen;
} dg_conn_ref_t;

/* A copy of one drone's state, taken under its lock. */
typedef struct dg_drone_state {
    char        id[DG_DRONE_ID_MAX + 1];
    bool        online;         /* here or on another gateway of the fleet */
    const char *instance;       /* online elsewhere: that gateway's name; NULL = here or offline */
    int64_t     last_seen_ms;   /* last message or connect/disconnect, 0 = never */
    bool        has_last;       /* `last` holds a record */
    dg_record_t last;
} dg_drone_state_t;

dg_registry_t *dg_registry_new(void);
void           dg_registry_free(dg_registry_t *r);
/* Evictable (offline, unpinned) entries kept at most (0 = none kept). Any
 * thread; takes effect at the next insertion. */
void           dg_registry_set_max_offline(dg_registry_t *r, size_t n);

/* Find the drone (id must be valid). With `create`, make it when missing and
 * return it PINNED (the caller owns one pin: dg_registry_release() it).
 * Without `create`, the pointer is only an existence answer: dereference it
 * only while the drone is known to be pinned; prefer dg_registry_find_*().
 * NULL when not found (or out of memory). */
dg_drone_t *dg_registry_get(dg_registry_t *r, const char *id, size_t len, bool create);
/* Give back a pin taken by dg_registry_get(create). */
void        dg_registry_release(dg_registry_t *r, dg_drone_t *d);

/* The drone's id (NUL-terminated; immutable) and its length. */
const char *dg_drone_id(const dg_drone_t *d, size_t *len);

/* Make `ref` the drone's current connection and mark it online. When another
 * connection owned it, its ref is written to *old and 1 is returned (the
 * caller closes it with 4409); else 0. */
int  dg_registry_attach(dg_registry_t *r, dg_drone_t *d, dg_conn_ref_t ref, dg_conn_ref_t *old, int64_t now_ms);
/* The connection `ref` went away: when it is still the current one, the drone
 * goes offline. Returns true when it did. */
bool dg_registry_detach(dg_registry_t *r, dg_drone_t *d, dg_conn_ref_t ref, int64_t now_ms);
/* The drone's current connection: true (and *out) when online. */
bool dg_registry_conn(dg_registry_t *r, dg_drone_t *d, dg_conn_ref_t *out);

/* Latest-state rule (what the drone sent last, never what it claims is
 * newest): `rec` replaces `cur` unless both carry a seq and rec's is not
 * higher. So the last message in arrival order wins, a redelivered or
 * reused seq (which the store ignores or rejects as seq_reused) never shows,
 * and a timestamp far in the future cannot freeze the state. */
bool dg_registry_supersedes(const dg_record_t *rec, const dg_record_t *cur);
/* Apply rec to the drone's latest state (by dg_registry_supersedes). */
void dg_registry_update(dg_registry_t *r, dg_drone_t *d, const dg_record_t *rec);
/* Restore a stored record (at start); the drone is offline and evictable. */
void dg_registry_restore(dg_registry_t *r, const dg_record_t *rec);

/* The fleet (several gateways over one PostgreSQL, fleet/fleet.h): another
 * gateway holds the drone's connection (instance: an interned name that
 * lives as long as the process; compared by pointer), or no longer
 * (NULL). Creates the entry when instance is set; a drone held elsewhere is
 * online and never evicted; a connection here takes precedence (attach
 * clears the mark). Clearing (instance NULL) with `expect` set clears only
 * that gateway's mark (a drone that moved on keeps its new one). true when
 * the visible online state changed. */
bool dg_registry_set_remote(dg_registry_t *r, const char *id, size_t len, const char *instance,
                            const char *expect, int64_t now_ms);
/* Clear every mark of `instance` (NULL: of every gateway), calling went()
 * under a stripe lock (no registry call inside) for each drone that goes
 * offline by it. Returns their count. O(registry). */
size_t dg_registry_clear_remote(dg_registry_t *r, const char *instance,
                                void (*went)(void *ud, const char *id), void *ud, int64_t now_ms);
/* A latest state written by another gateway (read from the store): applied
 * by dg_registry_supersedes; true when it became the drone's latest. */
bool dg_registry_update_remote(dg_registry_t *r, const dg_record_t *rec);

/* Copy one drone's state (d pinned). */
void dg_registry_state(dg_registry_t *r, dg_drone_t *d, dg_drone_state_t *out);
/* Look up by id and copy under one lock (no pointer escapes): true when known. */
bool dg_registry_find_state(dg_registry_t *r, const char *id, size_t len, dg_drone_state_t *out);
/* Look up by id: true (and *out) when known and online. */
bool dg_registry_find_conn(dg_registry_t *r, const char *id, size_t len, dg_conn_ref_t *out);

/* Copies of all drones, sorted by id. *out is malloc'd (caller frees).
 * Returns the count, or -1 on ENOMEM. O(n) memory: for small fleets/tests. */
long dg_registry_snapshot(dg_registry_t *r, dg_drone_state_t **out);
/* One page in id order: up to `limit` drones whose id is > `after` ("" or
 * NULL = from the start) and, when `want` is set, for which want(ud, id) is
 * true, copied into out[0..limit) sorted by id. *more is set when drones
 * beyond the page exist. Returns the count or -1 (ENOMEM). Cost: one pass
 * over the registry with a bounded heap, O(n log limit), limit states of
 * memory; no lock held for more than one stripe. */
long dg_registry_page(dg_registry_t *r, const char *after, size_t limit,
                      bool (*want)(void *ud, const char *id), void *ud,
                      dg_drone_state_t *out, bool *more);
/* Walk the whole registry in table order, one bounded batch per call (the
 * live snapshot): copies up to about `limit` drones (a bucket is never split:
 * a batch may stop early, or pass limit by one bucket chain when it would
 * otherwise be empty; out needs limit + DG_REGISTRY_SCAN_SLACK slots) from
 * *pos on, advances *pos; *done when the walk is over. Cost O(batch): no
 * sort, one stripe lock at a time. Every drone present for the whole walk is
 * returned at least once; one whose stripe grew meanwhile may come twice
 * (a table only doubles: a bucket's entries move to the same or a later
 * bucket). Start with a zeroed pos. */
#define DG_REGISTRY_SCAN_SLACK 64
typedef struct dg_registry_pos { uint32_t stripe; size_t bucket; } dg_registry_pos_t;
long dg_registry_scan(dg_registry_t *r, dg_registry_pos_t *pos, size_t limit,
                      bool (*want)(void *ud, const char *id), void *ud,
                      dg_drone_state_t *out, bool *done);
size_t dg_registry_count(dg_registry_t *r);
/* Entries currently evictable (offline, unpinned). */
size_t dg_registry_offline(dg_registry_t *r);
/* Entries evicted so far. */
uint64_t dg_registry_evicted(dg_registry_t *r);
/* Highest durable seq of the drone (session message): 1 and *seq, 0 when
 * the drone has none stored, -1 when unknown (ask the store). */
int  dg_registry_last_seq(dg_registry_t *r, dg_drone_t *d, uint64_t *seq);
/* The store's answer (found and seq, or none stored) makes the drone's
 * highest durable seq known (a higher one already known stays). */
void dg_registry_set_last_seq(dg_registry_t *r, dg_drone_t *d, int found, uint64_t seq);
/* A durable batch's highest seq, by id under the stripe lock (no pointer
 * that eviction could free): raises a value already known, never makes one
 * known (only the store's answer does). */
void dg_registry_raise_last_seq(dg_registry_t *r, const char *id, size_t len, uint64_t seq);

#endif
