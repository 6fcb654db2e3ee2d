/* live.h - the live stream: GET /api/v1/live (WebSocket) pushes every
 * drone's telemetry as it arrives (before storage: a view, not a record),
 * online/offline transitions and command status changes.
 *
 * Fan-out: a worker appends events (already framed as WebSocket text
 * frames) to its open chunk while it processes input; before its loop
 * blocks it posts the chunk (reference-counted, shared) to every worker that
 * has watchers. Each worker copies the frames that pass a watcher's filter
 * into that watcher's output. Nothing is encoded when nobody watches.
 *
 * Slow watchers never slow drones: when a watcher's pending output passes
 * DG_LIVE_HIGH, telemetry for it is conflated (the latest event per drone is
 * kept, older ones are counted in dronegate_live_skipped_total) until its
 * output drains below DG_LIVE_LOW; then the latest states are sent.
 */
#ifndef DG_LIVE_H
#define DG_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "commands.h"
#include "record.h"
#include "../net/conn.h"
#include "../pipeline/writer.h"
#include "../ws/ws.h"

#define DG_LIVE_HIGH (512 * 1024)
#define DG_LIVE_LOW  (64 * 1024)
/* Drones per snapshot message (about: a hash bucket is never split): the
 * snapshot of a watcher is sent as {"type":"snapshot","drones":[...],
 * "final":false} ... "final":true, in no particular order (a drone added
 * meanwhile may come twice), the next chunk when the output has drained
 * below DG_LIVE_LOW: memory per watcher stays bounded at any fleet size,
 * and each chunk costs O(chunk). */
#define DG_LIVE_SNAPSHOT_CHUNK 1000

typedef struct dg_live_chunk dg_live_chunk_t;

/* A live watcher's state of its connection (pstate, conn.h): set up by
 * dg_live_start, released by dg_live_on_close. */
typedef struct dg_live_conn {
    dg_ws_session_t       ws;
    struct dg_live_watch *lw;           /* filter, conflation state */
    int64_t               last_ping_ms;
} dg_live_conn_t;
_Static_assert(sizeof(dg_live_conn_t) <= DG_CONN_PSTATE_BYTES, "the live watcher state must fit a connection's pstate");

static inline dg_live_conn_t *dg_live_conn(dg_conn_t *c) { return (dg_live_conn_t *)(void *)c->pstate; }

/* Before the first worker is created (main thread): register the live
 * stream's per-worker state (worker.h dg_worker_ext_t: the open chunk, the
 * watchers). 0, or -1 when the worker's ext table is full. */
int  dg_live_register(void);

/* Any worker thread: is anybody watching? (one atomic load) */
bool dg_live_active(dg_worker_t *w);
/* Worker thread: publish events into the worker's open chunk. */
void dg_live_publish_record(dg_worker_t *w, const dg_record_t *r);
void dg_live_publish_presence(dg_worker_t *w, const char *drone_id, bool online, int64_t at_ms);
void dg_live_publish_command(dg_worker_t *w, const dg_command_t *c);
/* Worker thread, before blocking: send the open chunk to watching workers. */
void dg_live_flush(dg_worker_t *w);
/* Worker thread: a chunk arrived in the inbox. */
void dg_live_deliver(dg_worker_t *w, dg_live_chunk_t *ch);
void dg_live_chunk_unref(dg_live_chunk_t *ch);
/* A DG_MSG_LIVE inbox message: deliver (unless !deliver) and release it. */
void dg_live_on_msg(dg_worker_t *w, dg_msg_t *m, bool deliver);
/* Close a watcher with a close frame. */
void dg_live_close(dg_conn_t *c, uint16_t code, const char *reason);

/* Upgrade done on /api/v1/live: `filter` is the drones= value ("" = all). */
void dg_live_start(dg_conn_t *c, const char *filter);
void dg_live_on_data(dg_conn_t *c, uint8_t *p, size_t n);
void dg_live_on_close(dg_conn_t *c);
/* Output drained below DG_LIVE_LOW: send conflated states and the next
 * snapshot chunk. */
void dg_live_on_drained(dg_conn_t *c);

/* Connection handlers of a live watcher (after dg_live_start). */
extern const dg_conn_ops_t dg_live_conn_ops;

#endif
