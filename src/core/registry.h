/* registry.h - every known drone and its latest state, in memory.
 *
 * Shared by all worker threads: a fixed hash table whose buckets are guarded
 * by 64 striped mutexes (an entry is guarded by the stripe of its bucket).
 * Entries are never freed while the registry lives, so a connection may keep
 * a pointer to its drone's entry. The registry also knows which connection
 * currently owns a drone (worker, slot, generation), which is how a second
 * connection of the same drone finds the first one to replace it (4409).
 */
#ifndef DG_REGISTRY_H
#define DG_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

typedef struct dg_registry dg_registry_t;
typedef struct dg_drone dg_drone_t;

typedef struct dg_conn_ref {
    int      worker;   /* -1 = none */
    uint32_t slot, gen;
} dg_conn_ref_t;

/* A copy of one drone's state, taken under its lock. */
typedef struct dg_drone_state {
    char        id[DG_DRONE_ID_MAX + 1];
    bool        online;
    int64_t     last_seen_ms;   /* last message or connect/disconnect, 0 = never */
    bool        has_last;       /* `last` holds a record */
    dg_record_t last;
} dg_drone_state_t;

dg_registry_t *dg_registry_new(void);
void           dg_registry_free(dg_registry_t *r);

/* Find the drone (id must be valid); create it when `create`. NULL when not
 * found (or out of memory). */
dg_drone_t *dg_registry_get(dg_registry_t *r, const char *id, size_t len, bool create);

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
/* Latest record of the drone (keeps the newest by timestamp, then seq). */
void dg_registry_update(dg_registry_t *r, dg_drone_t *d, const dg_record_t *rec);
/* Restore a stored record (at start); the drone is offline. */
void dg_registry_restore(dg_registry_t *r, const dg_record_t *rec);

/* Copy one drone's state. */
void dg_registry_state(dg_registry_t *r, dg_drone_t *d, dg_drone_state_t *out);
/* Copies of all drones, sorted by id. *out is malloc'd (caller frees).
 * Returns the count, or -1 on ENOMEM. */
long dg_registry_snapshot(dg_registry_t *r, dg_drone_state_t **out);
size_t dg_registry_count(dg_registry_t *r);
/* Highest durable seq of the drone (session message): 1 and *seq, 0 when
 * the drone has none stored, -1 when unknown (ask the store). */
int  dg_registry_last_seq(dg_registry_t *r, dg_drone_t *d, uint64_t *seq);
/* Note the highest durable seq: from_store (the store's answer: found or
 * none) makes it known; a durable batch (from_store false) only raises a
 * value already known. */
void dg_registry_set_last_seq(dg_registry_t *r, dg_drone_t *d, int found, uint64_t seq, bool from_store);

#endif
