/* conn.h - one client connection, owned by one worker thread.
 *
 * A connection starts as HTTP (request parsing with http_parser) and may be
 * upgraded to a drone WebSocket channel. The HTTP and WebSocket states share
 * a union, so an idle drone connection costs only this struct (a few hundred
 * bytes) plus the kernel's socket: input is parsed straight from the
 * worker's shared read buffer and `out` holds memory only while the socket
 * would block.
 */
#ifndef DG_CONN_H
#define DG_CONN_H

#include <ev.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/buf.h"
#include "../core/registry.h"
#include "../ws/ws.h"

typedef struct dg_worker dg_worker_t;
typedef struct dg_http_req dg_http_req_t;

enum dg_conn_kind { DG_CONN_HTTP = 0, DG_CONN_DRONE = 1, DG_CONN_LIVE = 2 };

struct dg_live_watch;
typedef struct dg_conn dg_conn_t;

/* What a protocol does with a connection: the loop (worker.c) calls these
 * and never asks what kind of connection it is (cf. Redis' ConnectionType).
 * A transport (HTTP, drone WebSocket, live watcher; gRPC or MAVLink later)
 * is one such table; a connection switches tables with dg_conn_set_ops()
 * (e.g. on a WebSocket upgrade). Every callback runs on the worker thread;
 * NULL entries are skipped. */
typedef struct dg_conn_ops {
    const char *name;
    int    transport;       /* DG_TR_*: which connections gauge counts it */
    size_t out_max;         /* pending output cap: a peer that does not read is dropped */
    bool   store_fed;       /* input becomes store records: reading pauses while the
                             * worker's batch pool is out, stops when draining */
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
    uint8_t        kind;          /* DG_CONN_* */
    uint8_t        closing;       /* flush `out`, then close */
    uint8_t        cork;          /* collect output, flush once after processing */
    uint8_t        paused;        /* reads stopped: store backpressure */
    uint8_t        ack_dirty;     /* on the worker's ack list */
    uint8_t        served;        /* HTTP: at least one request completed */
    uint8_t        dead;          /* closed; freed after the current callback */
    uint8_t        lingering;     /* output done: read input (on_linger) until EOF */
    uint8_t        wr_shut;       /* lingering and our write side is shut (FIN sent) */
    uint32_t       drain_left;    /* draining, store-fed: bytes the kernel held when the
                                   * drain began, still to be read ("what was received") */
    int64_t        last_rx_ms;    /* monotonic: last bytes received */
    int64_t        last_ping_ms;
    int64_t        deadline_ms;   /* HTTP: handshake / keep-alive deadline; lingering: give-up time */
    dg_buf_t       out;           /* pending output */
    struct dg_conn *prev, *next;  /* the worker's list of connections */
    struct dg_conn *ack_next;     /* the worker's list of connections owing an ack */
    struct dg_conn *pause_next;   /* the worker's list of paused connections */
    void          *proto;         /* state of a protocol that keeps it outside the union
                                   * below (a new transport: allocated by its on_open or
                                   * when it takes the connection over, freed by on_close) */
    union {
        struct {                  /* DG_CONN_HTTP */
            http_parser    parser;
            dg_http_req_t *req;   /* allocated while a request is being parsed */
            uint8_t        awaiting;  /* a store read is running for req: parser
                                       * paused, reads stopped (reads.h) */
            uint8_t        blocked;   /* pending output over DG_HTTP_OUT_HIGH: parser
                                       * paused, reads stopped until it drains */
            dg_buf_t       stash;     /* input after the awaited request */
        } http;
        struct {                  /* DG_CONN_DRONE */
            dg_ws_session_t ws;
            dg_drone_t     *drone;
            const struct dg_drone_io *io; /* how this transport frames acks, errors,
                                           * commands (core/ingest.h) */
            uint64_t        ack_pending;  /* highest durable seq not yet acked */
            uint64_t        ack_sent;     /* highest seq acked */
            uint8_t         session_wait; /* session message not sent yet: reads
                                           * stopped, input stashed, no commands */
            dg_buf_t        stash;        /* input received before the session message */
            bool            has_pending;
            bool            has_sent;
            bool            reack;        /* a resent seq <= ack_sent became durable: ack again */
            bool            has_in;       /* max_in is set */
            uint64_t        max_in;       /* highest seq taken in (gRPC: the call ends
                                           * with OK after a half-close once it is acked) */
            bool            has_rej;      /* rej_max is set */
            uint64_t        rej_max;      /* highest seq the store rejected (reused): never
                                           * acked, so it settles max_in in place of an ack */
            int64_t         last_ack_ms;
            double          tokens;       /* rate limit bucket */
            int64_t         tokens_ms;
        } drone;
        struct {                  /* DG_CONN_LIVE */
            dg_ws_session_t       ws;
            struct dg_live_watch *lw;     /* filter, conflation state */
        } live;
    } u;
};

/* Queue bytes for the peer (written at once unless corked or blocked).
 * Returns 0, or -1 when the connection is being dropped (output over limit). */
int  dg_conn_send(dg_conn_t *c, const void *p, size_t n);
/* Write as much of `out` as the socket takes; arm EV_WRITE for the rest. */
void dg_conn_flush(dg_conn_t *c);
/* Close after the pending output is written (or at once when `now`: the
 * connection is dead at once, its teardown runs after the current callback). */
void dg_conn_close(dg_conn_t *c, bool now);
/* Hand the connection to another protocol (kind: DG_CONN_*, kept for the
 * protocols' own checks). */
void dg_conn_set_ops(dg_conn_t *c, const dg_conn_ops_t *ops, int kind);

#endif
