/* conn.h - one client connection, owned by one worker thread.
 *
 * The loop (worker.c) reads, writes, times out and closes a connection;
 * what the bytes mean is the business of the protocol whose handler table
 * (dg_conn_ops_t) the connection points at. A connection starts with its
 * listener's table (HTTP, gRPC) and may switch tables (dg_conn_set_ops: a
 * WebSocket upgrade to a drone channel or a live watcher).
 *
 * The protocol's per-connection state lives in `pstate`, an aligned area of
 * this struct that net/ never reads: each protocol views it through a typed
 * accessor in its own header (http/http.h dg_http_conn(), core/ingest.h
 * dg_drone_chan(), core/live.h dg_live_conn()), with a _Static_assert that
 * its struct fits DG_CONN_PSTATE_BYTES. Switching tables hands the area to
 * the new protocol, which initialises it (the old one has released what
 * it held). So an idle drone connection costs only this struct (544 bytes
 * on x86-64) plus the kernel's socket, and no allocation of its own: input
 * is parsed straight from the worker's shared read buffer and `out` holds
 * memory only while the socket would block.
 */
#ifndef DG_CONN_H
#define DG_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"

typedef struct dg_worker dg_worker_t;
typedef struct dg_conn dg_conn_t;

/* Bytes of protocol state inside each connection: the largest protocol
 * state (the drone channel's, 360 bytes on x86-64) rounded up to the
 * alignment. A protocol whose state does not fit fails to compile (its
 * _Static_assert); one with larger state keeps it on the heap (`proto`). */
#define DG_CONN_PSTATE_BYTES 368

/* What a protocol does with a connection: the loop (worker.c) calls these
 * and never asks what kind of connection it is (cf. Redis' ConnectionType).
 * A transport (HTTP, drone WebSocket, live watcher, gRPC) is one such
 * table, defined in the transport's own folder; a connection switches tables with dg_conn_set_ops()
 * (e.g. on a WebSocket upgrade). Every callback runs on the worker thread;
 * NULL entries are skipped. */
typedef struct dg_conn_ops {
    const char *name;
    int    transport;       /* DG_TR_*: which connections gauge counts it */
    size_t out_max;         /* pending output cap: a peer that does not read is dropped */
    bool   store_fed;       /* input becomes store records: reading pauses while the
                             * worker's batch pool is out, stops when draining */
    /* Tables whose connections share one pstate layout carry the same tag
     * (the drone channel's WebSocket and gRPC tables: &dg_ingest_family),
     * defined and compared by the layer that owns the layout; NULL: the
     * table is the only one, compare c->ops itself. net/ never reads it. */
    const void *family;
    void (*on_open)(dg_conn_t *c);                    /* accepted (listener's table) */
    void (*on_data)(dg_conn_t *c, uint8_t *p, size_t n);
    void (*on_writable)(dg_conn_t *c);                /* output was written (may queue more, corked) */
    void (*on_close)(dg_conn_t *c);                   /* teardown, after every callback of c returned */
    void (*on_tick)(dg_conn_t *c, int64_t now_ms);    /* sweep: timeouts, keep-alive pings */
    void (*on_drain)(dg_conn_t *c);                   /* server shutdown: close politely */
    void (*on_backlog_full)(dg_conn_t *c);            /* store_fed: store down, backlog full */
    /* Closing, our last bytes written: input that arrives before our write
     * side is shut. Return true once the peer has finished its side (a
     * WebSocket close frame came back, or the session is over): only then
     * does the loop send FIN. A FIN right after our close frame made peers
     * (python-websockets) fail the connection with 1006 while they were
     * still sending. Called once with n == 0 when output is done. NULL:
     * FIN at once (HTTP). */
    bool (*on_linger)(dg_conn_t *c, uint8_t *p, size_t n);
} dg_conn_ops_t;

struct dg_conn {
    ev_io          io;            /* first: the watcher's data pointer is not needed */
    const dg_conn_ops_t *ops;     /* the protocol on this connection */
    dg_worker_t   *w;
    int            fd;
    uint32_t       slot, gen;     /* index in the worker's slot table + reuse generation */
    uint8_t        closing;       /* flush `out`, then close */
    uint8_t        cork;          /* collect output, flush once after processing */
    uint8_t        paused;        /* reads stopped: store backpressure, or the protocol
                                   * waits (on the worker's pause list only for the former) */
    uint8_t        dead;          /* closed; freed after the current callback */
    uint8_t        lingering;     /* output done: read input (on_linger) until EOF */
    uint8_t        wr_shut;       /* lingering and our write side is shut (FIN sent) */
    uint32_t       drain_left;    /* draining, store-fed: bytes the kernel held when the
                                   * drain began, still to be read ("what was received") */
    int64_t        last_rx_ms;    /* monotonic: last bytes received */
    int64_t        deadline_ms;   /* lingering: give-up time; else the protocol's
                                   * (HTTP handshake / keep-alive, gRPC) */
    dg_buf_t       out;           /* pending output */
    struct dg_conn *prev, *next;  /* the worker's list of connections */
    struct dg_conn *pause_next;   /* the worker's list of paused connections */
    void          *proto;         /* heap state of a protocol, beside or instead of
                                   * pstate (gRPC's nghttp2 session under its drone
                                   * channel, MAVLink's vehicle state): allocated by
                                   * the protocol, freed by its on_close / release */
    /* the protocol's state (see above); zero when the connection is accepted */
    _Alignas(max_align_t) unsigned char pstate[DG_CONN_PSTATE_BYTES];
};

/* Queue bytes for the peer (written at once unless corked or blocked).
 * Returns 0, or -1 when the connection is being dropped (output over limit). */
int  dg_conn_send(dg_conn_t *c, const void *p, size_t n);
/* Write as much of `out` as the socket takes; arm EV_WRITE for the rest. */
void dg_conn_flush(dg_conn_t *c);
/* Close after the pending output is written (or at once when `now`: the
 * connection is dead at once, its teardown runs after the current callback). */
void dg_conn_close(dg_conn_t *c, bool now);
/* Hand the connection to another protocol (it then initialises pstate). */
void dg_conn_set_ops(dg_conn_t *c, const dg_conn_ops_t *ops);

#endif
