/* ingest.h - the drone channel: WebSocket messages -> decode -> validate ->
 * batch, and durable batches -> cumulative acks. Runs on the connection's
 * worker thread.
 */
#ifndef DG_INGEST_H
#define DG_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "../net/conn.h"
#include "../pipeline/writer.h"
#include "../ws/ws.h"
#include "commands.h"
#include "registry.h"

struct dg_server;
struct dg_drone_io;

/* The drone channel's state of a connection (its pstate, conn.h), on every
 * drone transport (WebSocket JSON / protobuf / mavlink2, gRPC): set up by
 * dg_ingest_start_io, released by dg_ingest_release. */
typedef struct dg_drone_chan {
    dg_ws_session_t ws;           /* WebSocket transports (io->ws) */
    dg_drone_t     *drone;
    const struct dg_drone_io *io; /* how this transport frames acks, errors,
                                   * commands; NULL: not (yet) a drone channel */
    dg_conn_t      *ack_next;     /* the worker's list of channels owing an ack */
    uint64_t        ack_pending;  /* highest durable seq not yet acked */
    uint64_t        ack_sent;     /* highest seq acked */
    uint64_t        max_in;       /* highest seq taken in (gRPC: the call ends
                                   * with OK after a half-close once it is acked) */
    uint64_t        rej_max;      /* highest seq the store rejected (reused): never
                                   * acked, so it settles max_in in place of an ack */
    int64_t         last_ack_ms;
    int64_t         last_ping_ms;
    double          tokens;       /* rate limit bucket */
    int64_t         tokens_ms;
    dg_buf_t        stash;        /* input received before the session message */
    uint8_t         session_wait; /* session message not sent yet: reads
                                   * stopped, input stashed, no commands */
    bool            has_pending;
    bool            has_sent;
    bool            reack;        /* a resent seq <= ack_sent became durable: ack again */
    bool            has_in;       /* max_in is set */
    bool            has_rej;      /* rej_max is set */
    uint8_t         ack_dirty;    /* on the worker's ack list */
} dg_drone_chan_t;
_Static_assert(sizeof(dg_drone_chan_t) <= DG_CONN_PSTATE_BYTES, "the drone channel state must fit a connection's pstate");

static inline dg_drone_chan_t *dg_drone_chan(dg_conn_t *c) { return (dg_drone_chan_t *)(void *)c->pstate; }

/* The family tag (dg_conn_ops_t.family) of every drone channel table. */
extern const char dg_ingest_family;
/* Is c a drone channel (its pstate a dg_drone_chan_t, dg_ingest_start_io
 * done)? A gRPC connection is one only once its call has started. */
static inline bool dg_ingest_is_channel(dg_conn_t *c)
{
    return c->ops->family == &dg_ingest_family && dg_drone_chan(c)->io != NULL;
}

/* What a transport does with the drone channel's output: the per-message
 * logic (validate, rate limit, seq rules, batch, acks after durability,
 * commands, errors) is shared; each transport (WebSocket JSON, WebSocket
 * protobuf, gRPC stream) only frames and sends. Worker thread. */
struct dg_decode_error;
typedef struct dg_drone_io {
    const char *name;
    int   transport;   /* DG_TR_*: which messages_received counter */
    bool  ws;          /* the channel is a WebSocket session (dg_drone_chan(c)->ws) */
    void (*session)(dg_conn_t *c, int known, uint64_t last_seq);
    void (*ack)(dg_conn_t *c, uint64_t seq);
    /* one rejected message; suppressed > 0: "too_many_errors" summary */
    void (*error)(dg_conn_t *c, const struct dg_decode_error *e, uint64_t suppressed);
    void (*command)(dg_conn_t *c, const dg_command_t *cmd);
    /* end the channel; code is a WebSocket close code (1001 drain, 1008
     * policy, 1009 too big, 1013 try again, 4409 replaced, ...) that other
     * transports map to their own status */
    void (*close)(dg_conn_t *c, uint16_t code, const char *reason);
    bool (*closed)(dg_conn_t *c);   /* nothing more may be sent */
    /* optional: the transport decodes its WebSocket messages itself (any
     * opcode; returns 0 or a close code), instead of JSON / protobuf */
    int  (*message)(dg_conn_t *c, int opcode, uint8_t *data, size_t len);
    /* optional: the channel ends: free the transport's state (c->proto) */
    void (*release)(dg_conn_t *c);
} dg_drone_io_t;

/* For WebSocket transports defined outside ingest.c: send one message
 * (framed, corked into one write), close with a close frame, closed? */
void dg_ingest_ws_send(dg_conn_t *c, int opcode, const void *p, size_t n);
void dg_ingest_ws_close(dg_conn_t *c, uint16_t code, const char *reason);
bool dg_ingest_ws_closed(dg_conn_t *c);

extern const dg_drone_io_t dg_ws_json_io, dg_ws_pb_io;

/* The connection has been upgraded (101 sent): it becomes drone `d`'s
 * channel, replacing any older connection of the same drone (4409). */
void dg_ingest_start(dg_conn_t *c, dg_drone_t *d);
/* The same with a transport: io frames the output, ops becomes the
 * connection's handler table (a WebSocket io: dg_ingest_conn_ops). */
void dg_ingest_start_io(dg_conn_t *c, dg_drone_t *d, const dg_drone_io_t *io, const dg_conn_ops_t *ops);
/* One transport message of a channel: a JSON text (object or batch) or one
 * serialized DroneMessage. Returns 0, or a WebSocket close code to end the
 * channel with (rate limit: 1008). */
int  dg_ingest_json(dg_conn_t *c, const uint8_t *data, size_t len);
int  dg_ingest_pb(dg_conn_t *c, const uint8_t *data, size_t len, int64_t now_us);   /* now_us 0: the clock's */
/* A transport that decodes several messages of one read of c (gRPC)
 * brackets them: one receive time for all (returned), the registry's
 * newest record and the received counters updated once at the end. */
int64_t dg_ingest_read_begin(void);
void    dg_ingest_read_end(dg_conn_t *c);
/* The transport-independent part of a channel's teardown (registry, ack
 * and pause lists); a transport's on_close calls it. */
void dg_ingest_release(dg_conn_t *c);
/* Bytes received on a drone channel. */
void dg_ingest_on_data(dg_conn_t *c, uint8_t *p, size_t n);
/* The connection is being closed: release the session, drone goes offline. */
void dg_ingest_on_close(dg_conn_t *c);
/* Fail/close the channel with a close code (close frame, then TCP close). */
void dg_ingest_close(dg_conn_t *c, uint16_t code, const char *reason);
/* Send a keep-alive ping. */
void dg_ingest_ping(dg_conn_t *c);
/* A batch came back from the writer: note acks owed to its connections. */
void dg_ingest_batch_done(dg_worker_t *w, dg_batch_t *b);
/* Send owed acks (only those whose ack interval has passed, unless force). */
void dg_ingest_flush_acks(dg_worker_t *w, bool force);

/* Send a command down this drone connection (status -> sent). */
void dg_ingest_send_command(dg_conn_t *c, const dg_command_t *cmd);
/* Route a new command to the drone's connection, wherever it is. 0 when
 * handed over, -1 when the drone is offline. */
int  dg_ingest_dispatch_command(dg_worker_t *w, const dg_command_t *cmd);
/* The same from any thread (the fleet thread: a command another gateway
 * created for a drone connected here): always through the holding worker's
 * inbox. 0 when posted, -1 when the drone is not connected here. */
int  dg_ingest_post_command(struct dg_server *srv, const dg_command_t *cmd);
/* The drone connected to another gateway of the fleet: close its
 * connection here with 4409 (any thread: through the holding worker's
 * inbox). 0 when posted, -1 when it is not connected here. */
int  dg_ingest_replaced_elsewhere(struct dg_server *srv, const char *drone_id);
/* Drones without a connection of their own (MAVLink/UDP vehicles: one
 * socket for many drones) are attached in the registry with slot
 * DG_INGEST_SLOT_NOCONN and a generation of the transport's choosing.
 * Commands for them run `fn` on the ref's worker (through its inbox when
 * dispatched elsewhere). One such transport per process (set once before
 * the workers start). */
#define DG_INGEST_SLOT_NOCONN 0xffffffu
void dg_ingest_set_noconn_command(void (*fn)(dg_worker_t *w, uint32_t gen, const dg_command_t *cmd));

/* Expire overdue commands (called periodically by worker 0). */
void dg_ingest_expire_commands(dg_worker_t *w);
/* Persist + publish a command change. */
void dg_ingest_command_changed(dg_worker_t *w, const dg_command_t *cmd);

/* Before the first worker is created (main thread): register the drone
 * channel's per-worker state (JSON decoder, ack list and timer; worker.h
 * dg_worker_ext_t) and the live stream's (dg_live_register). 0, or -1 when
 * the worker's ext table is full. */
int  dg_ingest_register(void);

/* What the drone channel and the live stream do at the worker loop's fixed
 * points: acks after durable batches, command expiry, live publishing. */
extern const struct dg_worker_hooks dg_ingest_worker_hooks;
/* Connection handlers of a drone channel (after dg_ingest_start). */
extern const dg_conn_ops_t dg_ingest_conn_ops;

#endif
