/* dronegate/client.h - libdronegate: the drone-side client of dronegate.
 *
 * A drone's companion computer links this library to send telemetry to a
 * dronegate gateway over WebSocket (subprotocol dronegate.json.v1: JSON text
 * frames, or with cfg.format = DG_FORMAT_PROTOBUF dronegate.pb.v1: one
 * protobuf DroneMessage per binary frame) or gRPC (grpc://,
 * dronegate.v1.Telemetry/Stream over HTTP/2) and
 * to receive operator commands. It does store-and-forward: every sample given
 * to dg_client_send() gets the next sequence number and stays in a bounded
 * in-memory queue until the gateway's cumulative ack says it is durably
 * stored. After any link drop or gateway restart the library reconnects (with
 * exponential backoff and jitter) and resends everything unacked, in order,
 * in batches. The gateway stores (drone_id, seq) at most once, so every
 * sample that was accepted by dg_client_send() ends up stored exactly once
 * unless the queue overflows (counted, policy chosen by the caller) or the
 * process dies with a memory-only queue (set queue_file to keep the queue in
 * a file that survives crashes and reboots; see docs/client-notes.md).
 *
 * No global state: any number of clients may live in one process.
 *
 * Two ways to drive a client:
 *
 *  1. From your own event loop (poll/epoll/libev/...): watch dg_client_fd()
 *     for dg_client_events() (POLLIN/POLLOUT bits), sleep at most
 *     dg_client_timeout_ms(), then call dg_client_process() with the events
 *     that fired (0 on timeout). The fd changes across reconnects: re-read it
 *     after each dg_client_process() call. dg_client_step() does one such
 *     round with poll(2) for you.
 *
 *  2. On a thread of its own: dg_client_start() runs the loop in a new
 *     thread; dg_client_send() and dg_client_command_ack() may then be called
 *     from any thread. Callbacks run on the client's thread.
 *
 * In both modes callbacks run inside the library with the client's
 * (recursive) lock held: they may call dg_client_send(),
 * dg_client_command_ack() and dg_client_stats(), but not dg_client_close().
 *
 * Minimal use:
 *
 *     dg_client_config_t cfg;
 *     dg_client_config_init(&cfg);
 *     cfg.url = "ws://gateway.example:8080";
 *     cfg.drone_id = "drone-7";
 *     cfg.token = getenv("DRONE_TOKEN");          // NULL when auth is off
 *     char err[256];
 *     dg_client_t *c = dg_client_open(&cfg, err, sizeof err);
 *     if (!c) { fprintf(stderr, "%s\n", err); return 1; }
 *     dg_client_start(c);                           // or drive it yourself
 *     dg_sample_t s = { .latitude = 47.39, .longitude = 8.54, .altitude = 488 };
 *     if (dg_client_send(c, &s, NULL) == DG_CLIENT_EFULL) { ... }
 *     ...
 *     dg_client_close(c, 5000);                     // flush up to 5 s
 *
 * Build: pkg-config --cflags --libs dronegate  (links -lssl -lcrypto too).
 */
#ifndef DRONEGATE_CLIENT_H
#define DRONEGATE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DG_CLIENT_API __attribute__((visibility("default")))
#else
#define DG_CLIENT_API
#endif

#define DG_CLIENT_VERSION "0.1.0"

typedef struct dg_client dg_client_t;

/* ---- return codes (negative) ---- */
enum {
    DG_CLIENT_OK       = 0,
    DG_CLIENT_EFULL    = -1,  /* queue full and policy REFUSE_NEWEST: sample not taken */
    DG_CLIENT_EINVAL   = -2,  /* bad argument (sample out of range, bad URL, ...) */
    DG_CLIENT_ENOMEM   = -3,
    DG_CLIENT_ECLOSED  = -4,  /* the client is closing */
    DG_CLIENT_ESTATE   = -5,  /* wrong mode (e.g. dg_client_process while a thread runs) */
    DG_CLIENT_EIO      = -6,  /* the queue file could not be written: sample not taken */
    DG_CLIENT_EDROPPED = 1,   /* send: taken, but the oldest queued sample was dropped
                                 to make room (policy DROP_OLDEST) */
};

/* What dg_client_send() does when the queue holds queue_max samples. */
typedef enum dg_full_policy {
    DG_FULL_REFUSE_NEWEST = 0,  /* return DG_CLIENT_EFULL, keep the queue (default) */
    DG_FULL_DROP_OLDEST   = 1,  /* drop the oldest unacked sample, take the new one */
} dg_full_policy_t;

/* Connection state, reported through on_state. */
typedef enum dg_client_state {
    DG_STATE_IDLE = 0,      /* not started yet */
    DG_STATE_CONNECTING,    /* TCP connect, TLS handshake, HTTP upgrade */
    DG_STATE_OPEN,          /* upgraded, session message received: sending */
    DG_STATE_BACKOFF,       /* link lost or refused; waiting to reconnect */
    DG_STATE_CLOSING,       /* dg_client_close: flushing, then close handshake */
    DG_STATE_CLOSED,        /* for good (closed, or refused in a way retrying cannot fix) */
} dg_client_state_t;

/* Message encoding on ws:// and wss:// (dg_client_config_t.format). */
typedef enum dg_client_format {
    DG_FORMAT_JSON     = 0,   /* subprotocol dronegate.json.v1: JSON text frames,
                                 batch_max samples per frame as one array (default) */
    DG_FORMAT_PROTOBUF = 1,   /* subprotocol dronegate.pb.v1: each binary frame holds
                                 one DroneMessage (proto/dronegate/v1/telemetry.proto),
                                 batch_max frames per write; the gateway must select
                                 dronegate.pb.v1 in its upgrade answer, else the attempt
                                 fails with error code "handshake" (and is retried) */
} dg_client_format_t;

/* Optional fields present in a sample (dg_sample_t.has). */
enum {
    DG_HAS_SPEED   = 1 << 0,
    DG_HAS_HEADING = 1 << 1,
    DG_HAS_CLIMB   = 1 << 2,
    DG_HAS_BATTERY = 1 << 3,
};

/* One telemetry sample (the contract's JSON telemetry fields). Ranges are
 * checked by dg_client_send() (DG_CLIENT_EINVAL), so the gateway never has to
 * reject a queued sample. speed/heading/climb/battery are stored as float. */
typedef struct dg_sample {
    int64_t     timestamp_ms;   /* ms since the Unix epoch; 0 = now (taken in send) */
    double      latitude;       /* [-90, 90] */
    double      longitude;      /* [-180, 180] */
    double      altitude;       /* metres AMSL, [-1000, 100000] */
    double      speed;          /* m/s >= 0                 (DG_HAS_SPEED) */
    double      heading;        /* degrees [0, 360)         (DG_HAS_HEADING) */
    double      climb;          /* m/s                      (DG_HAS_CLIMB) */
    double      battery;        /* percent [0, 100]         (DG_HAS_BATTERY) */
    unsigned    has;            /* DG_HAS_* bits */
    const char *status;         /* NULL = none; <= 32 bytes, copied */
} dg_sample_t;

/* An error message from the gateway: {"type":"error",...}, or one made by
 * the library (code "connect", "handshake", "http_401", "protocol", "closed",
 * "queue_full"...). Strings are NUL-terminated and valid only during the
 * callback. seq is 0 when the error concerns no sample. */
typedef struct dg_client_error {
    uint64_t    seq;
    const char *code;
    const char *field;    /* "" when none */
    const char *message;  /* "" when none */
    int         from_server;
} dg_client_error_t;

/* A downlink command. args_json is the raw JSON of "args" ("{}" when none). */
typedef struct dg_client_command {
    const char *id;
    const char *name;
    const char *args_json;
} dg_client_command_t;

typedef struct dg_client_callbacks {
    /* Cumulative ack: every sample with seq <= `seq` is durably stored and has
     * left the queue. */
    void (*on_ack)(void *user, uint64_t seq);
    void (*on_error)(void *user, const dg_client_error_t *err);
    /* Answer with dg_client_command_ack() (now or later). */
    void (*on_command)(void *user, const dg_client_command_t *cmd);
    /* detail: why (e.g. "connection refused", "server closed 1001"), or "". */
    void (*on_state)(void *user, dg_client_state_t state, const char *detail);
} dg_client_callbacks_t;

typedef struct dg_client_config {
    const char *url;          /* ws://HOST[:PORT][/PREFIX][?QUERY] or wss://...; /ws/{id} is appended
                                 (before ?QUERY, which is passed on as is).
                                 grpc://HOST[:PORT] (default port 50051) or grpcs://...: one
                                 dronegate.v1.Telemetry/Stream call over HTTP/2 instead */
    const char *drone_id;     /* 1-64 chars of [A-Za-z0-9._-] */
    const char *token;        /* Authorization: Bearer token; NULL = none */
    size_t      queue_max;    /* samples held unacked (default 65536; 88 bytes each) */
    dg_full_policy_t full_policy;
    dg_client_format_t format;    /* ws://, wss://: DG_FORMAT_JSON (default) or DG_FORMAT_PROTOBUF;
                                 grpc:// always speaks protobuf (the field is ignored there) */
    unsigned    batch_max;    /* samples per frame (JSON array); protobuf: DroneMessages
                                 per write (default 64) */
    unsigned    window;       /* samples sent but not yet acked, at most (default 4096) */
    unsigned    backoff_min_ms;       /* first reconnect delay (default 100) */
    unsigned    backoff_max_ms;       /* cap (default 10000); jitter 0.5x..1.5x, capped */
    unsigned    connect_timeout_ms;   /* TCP + TLS + upgrade + session (default 10000) */
    unsigned    ping_interval_ms;     /* keep-alive ping when idle; 0 = off (default 15000) */
    /* Samples written per second at most, resends included (default 8000:
     * the gateway closes a drone's connection with 1008 above its
     * --max-msg-rate, default 10000/s). 0 = unlimited. After a 1008 close
     * the library halves its rate (not below 50/s; unlimited becomes 8000). */
    unsigned    max_rate;
    /* wss:// only: verification is on unless tls_insecure is set. */
    const char *tls_ca_file;  /* PEM bundle; NULL = the system store */
    const char *tls_server_name;  /* SNI and the name checked; NULL = the URL's host */
    int         tls_insecure; /* 1 = do not verify the certificate (tests only) */
    /* Optional file queue: every sample is also appended to this file before
     * dg_client_send returns, and a new client on the same file (after a
     * crash or reboot) resends what was not acked and keeps counting seqs.
     * Format and write order: libclient/fileq.c, docs/client-notes.md.
     * NULL = memory only. One client per file. */
    const char *queue_file;
    int         queue_file_sync;  /* 1 = fdatasync each sample (power loss safe, slow) */
    /* Local address to connect from: a numeric IPv4 or IPv6 address (bound
     * with IP_BIND_ADDRESS_NO_PORT, so the port is picked per destination and
     * every source address has its own ephemeral port range: a load generator
     * with many clients spreads them over 127.0.0.1, .2, ...). NULL = the
     * kernel's choice. An address of the other family than the gateway's
     * fails each connect attempt (error code "connect"). */
    const char *source_addr;
    dg_client_callbacks_t cb;
    void       *user;         /* passed to every callback */
} dg_client_config_t;

/* Counters, all since dg_client_open. */
typedef struct dg_client_stats {
    uint64_t next_seq;        /* seq the next accepted sample will get */
    uint64_t acked_seq;       /* highest seq acked (0 = none) */
    uint64_t queued;          /* samples in the queue (unacked) */
    uint64_t accepted;        /* dg_client_send calls that took the sample */
    uint64_t refused_full;    /* DG_CLIENT_EFULL returns */
    uint64_t dropped_oldest;  /* samples dropped by DG_FULL_DROP_OLDEST */
    uint64_t sent;            /* samples written to a connection (first time) */
    uint64_t resent;          /* samples written again after a reconnect */
    uint64_t frames;          /* telemetry frames written */
    uint64_t acked;           /* samples acked */
    uint64_t skipped_by_session; /* unacked samples the session said were stored */
    uint64_t connects;        /* connection attempts */
    uint64_t sessions;        /* connections that reached DG_STATE_OPEN */
    uint64_t server_errors;   /* error messages from the gateway */
    uint64_t replayed;        /* unacked samples found in the queue file at open */
    uint64_t rejected;        /* samples the gateway rejected (on_error told which); dropped
                                 from the queue once all before them were acked */
    uint64_t bytes_sent;      /* bytes written to the connection (after TLS: plaintext) */
    uint64_t bytes_received;  /* bytes read from the connection (plaintext) */
    uint64_t pings;           /* WebSocket pings received from the gateway (answered) */
} dg_client_stats_t;

/* Fill *cfg with the defaults (everything else NULL/0). */
DG_CLIENT_API void dg_client_config_init(dg_client_config_t *cfg);

/* Make a client. Does not connect yet (dg_client_start / the first
 * dg_client_process does). NULL on error, with the reason in err. The
 * strings in cfg are copied. */
DG_CLIENT_API dg_client_t *dg_client_open(const dg_client_config_t *cfg, char *err, size_t errlen);

/* Queue one sample. Never blocks. Returns DG_CLIENT_OK, DG_CLIENT_EDROPPED
 * (taken; the oldest was dropped), DG_CLIENT_EFULL (not taken), or
 * DG_CLIENT_EINVAL / DG_CLIENT_ECLOSED. *seq_out (may be NULL) gets the
 * sample's seq. Sequence numbers assigned before the first session message
 * of this client are provisional: when the gateway reports that it already
 * stored seqs up to N for this drone (a restarted drone process), samples
 * not yet sent are renumbered from N+1 on, keeping their order. */
DG_CLIENT_API int dg_client_send(dg_client_t *c, const dg_sample_t *s, uint64_t *seq_out);

/* Answer a command: status "accepted", "rejected" or "done"; message may be
 * NULL. Sent when connected, otherwise dropped (commands are delivered only
 * to a connected drone). DG_CLIENT_OK or an error. */
DG_CLIENT_API int dg_client_command_ack(dg_client_t *c, const char *id, const char *status,
                                        const char *message);

/* ---- driving from your own event loop ---- */

/* The fd to watch, or -1 (then only the timeout matters): the socket, or
 * while a host name is being resolved (on a thread of the library's, never
 * inside dg_client_process) an eventfd that becomes readable with the
 * answer. */
DG_CLIENT_API int dg_client_fd(dg_client_t *c);
/* POLLIN / POLLOUT bits to watch dg_client_fd() for. */
DG_CLIENT_API int dg_client_events(dg_client_t *c);
/* Milliseconds until dg_client_process must be called even without events
 * (0 = now: e.g. new samples to frame), -1 = no deadline. */
DG_CLIENT_API int dg_client_timeout_ms(dg_client_t *c);
/* Do all due work: connect, read, parse, callbacks, write, timers.
 * revents: what poll reported for dg_client_fd() (0 after a timeout).
 * Returns 0, or DG_CLIENT_ESTATE when a thread of its own is running. */
DG_CLIENT_API int dg_client_process(dg_client_t *c, int revents);
/* One round of poll(2) (at most max_wait_ms, -1 = the client's timeout) and
 * dg_client_process. */
DG_CLIENT_API int dg_client_step(dg_client_t *c, int max_wait_ms);

/* ---- or: a thread of its own ---- */
DG_CLIENT_API int dg_client_start(dg_client_t *c);

/* ---- state ---- */
DG_CLIENT_API dg_client_state_t dg_client_state(dg_client_t *c);
DG_CLIENT_API void dg_client_stats(dg_client_t *c, dg_client_stats_t *out);
DG_CLIENT_API const char *dg_client_state_name(dg_client_state_t s);
DG_CLIENT_API const char *dg_client_strerror(int rc);

/* Keep running (reconnecting if needed) until every queued sample is acked
 * or flush_ms has passed; works in both modes (with a thread of its own it
 * just waits). Returns the number of samples still unacked. Must not be
 * called from a callback. */
DG_CLIENT_API long dg_client_flush(dg_client_t *c, int flush_ms);

/* Start closing without waiting (for a caller that drives many clients from
 * one event loop, where dg_client_close's blocking flush would stall the
 * others): an open connection gets its close handshake (WebSocket close 1000;
 * grpc://: the call is half-closed and the gateway ends it), anything else
 * stops at once. No reconnect follows. Keep driving the client until
 * dg_client_state() is DG_STATE_CLOSED (at most ~1 s: the close handshake's
 * own timeout), then free it with dg_client_close(c, 0). Samples still
 * queued are not sent anymore: flush first (wait for stats.queued == 0) if
 * they matter. Returns DG_CLIENT_OK, or DG_CLIENT_ESTATE when a thread of
 * its own runs (use dg_client_close). */
DG_CLIENT_API int dg_client_shutdown(dg_client_t *c);

/* Flush and close: keep running (reconnecting if needed) until every queued
 * sample is acked or flush_ms has passed, then close the WebSocket (1000) and
 * free the client. Stops the client's thread if one runs. Returns the number
 * of samples that were still unacked (lost), 0 when everything was stored.
 * Must not be called from a callback. */
DG_CLIENT_API long dg_client_close(dg_client_t *c, int flush_ms);

#ifdef __cplusplus
}
#endif

#endif
