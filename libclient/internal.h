/* internal.h - libdronegate internals: the store-and-forward queue, the
 * reconnect backoff and the server-message parser. Pure code (no sockets),
 * unit-tested by tests/unit/test_client_*.c and fuzzed by fuzz/fuzz_client_msg.c.
 * Nothing here is exported from libdronegate.so (-fvisibility=hidden). */
#ifndef DGC_INTERNAL_H
#define DGC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dronegate/client.h"

/* ------------------------------------------------------------ the queue */

/* One queued sample: 88 bytes on LP64. The seq is implicit (ring position). */
typedef struct dgc_rec {
    int64_t ts_ms;
    double  lat, lon, alt;
    float   speed, heading, climb, battery;
    uint8_t has;          /* DG_HAS_* */
    uint8_t status_len;   /* 0 = no status */
    char    status[32];
} dgc_rec_t;

/* Samples with seq in [head, next) are queued (unacked); those in
 * [head, tx] were written on the current connection; hi_sent is the highest
 * seq ever written (any connection). The ring's capacity is a power of two
 * that grows by doubling up to the first power of two >= max. */
typedef struct dgc_queue {
    dgc_rec_t *ring;
    size_t     cap;       /* power of two, 0 = no ring yet */
    size_t     max;       /* queue_max */
    int        policy;    /* dg_full_policy_t */
    uint64_t   head;      /* seq of the oldest queued sample */
    uint64_t   next;      /* seq the next pushed sample gets (head + count) */
    uint64_t   tx;        /* last seq written on this connection, >= head - 1 */
    uint64_t   hi_sent;   /* highest seq ever written */
    uint64_t   acked;     /* highest seq acked (0 = none) */
    uint64_t   refused, dropped, skipped, accepted;
} dgc_queue_t;

void   dgc_q_init(dgc_queue_t *q, size_t max, int policy);
void   dgc_q_free(dgc_queue_t *q);
static inline size_t dgc_q_count(const dgc_queue_t *q) { return (size_t)(q->next - q->head); }
/* DG_CLIENT_OK, DG_CLIENT_EDROPPED (taken, oldest dropped), DG_CLIENT_EFULL,
 * DG_CLIENT_ENOMEM. *seq gets the sample's seq. */
int    dgc_q_push(dgc_queue_t *q, const dgc_rec_t *r, uint64_t *seq);
/* The record of a queued seq (head <= seq < next). */
static inline dgc_rec_t *dgc_q_at(const dgc_queue_t *q, uint64_t seq)
{
    return &q->ring[seq & (q->cap - 1)];
}
/* Cumulative ack: drop every queued sample with seq <= `seq` (an ack beyond
 * what was ever written is clamped to hi_sent). Returns samples dropped. */
size_t dgc_q_ack(dgc_queue_t *q, uint64_t seq);
/* A new connection: nothing is in flight on it (resend from head). */
void   dgc_q_rewind(dgc_queue_t *q);
/* The session message said the gateway stored seqs up to last (has_last=0:
 * none). Samples already written with seq <= last are dropped as stored
 * (counted in skipped); queued samples never written whose seq <= last are
 * renumbered from last + 1 (order kept). 0, 1 when it renumbered, or
 * DG_CLIENT_ENOMEM. */
int    dgc_q_session(dgc_queue_t *q, int has_last, uint64_t last);
/* How many samples may be written now: queued past tx, and at most `window`
 * in flight (written on this connection, unacked). */
size_t dgc_q_sendable(const dgc_queue_t *q, size_t window);
/* Samples (tx, upto] were written. Returns how many of them were resends. */
size_t dgc_q_mark_sent(dgc_queue_t *q, uint64_t upto);

/* Forget every queued sample with seq <= `seq` (no clamping: replay of a
 * file queue, drop-oldest). Returns samples dropped. */
size_t dgc_q_forget(dgc_queue_t *q, uint64_t seq);

/* ------------------------------------------------- file queue (fileq.c) */

#define DGC_FQ_ENTRY 104   /* bytes per entry: magic, crc, seq, record */

typedef struct dgc_fq {
    int      fd;
    int      sync;         /* fdatasync after each sample entry */
    char    *path;
    uint64_t bytes, entries;
    uint64_t replayed;     /* samples found unacked at open */
    uint64_t truncated;    /* bytes of a torn tail cut at open */
    uint64_t rewrites;
} dgc_fq_t;

void dgc_fq_init(dgc_fq_t *f);
/* Open (create) PATH and replay it into q (a freshly initialised queue).
 * 0, or -1 with the reason in err. */
int  dgc_fq_open(dgc_fq_t *f, const char *path, int sync, dgc_queue_t *q, char *err, size_t el);
/* Append a sample entry (before the sample is queued). 0 or -1 (errno). */
int  dgc_fq_append(dgc_fq_t *f, uint64_t seq, const dgc_rec_t *r);
/* Append a head entry for q->head - 1; compacts when the file got large. */
int  dgc_fq_head(dgc_fq_t *f, const dgc_queue_t *q);
/* Rewrite the file from q (crash-safe: temp file, fsync, rename). */
int  dgc_fq_rewrite(dgc_fq_t *f, const dgc_queue_t *q);
void dgc_fq_close(dgc_fq_t *f);

/* ---------------------------------------------------------- backoff */

typedef struct dgc_backoff {
    unsigned min_ms, max_ms;
    unsigned fails;       /* failures in a row */
    uint64_t rng;         /* xorshift64 state, never 0 */
} dgc_backoff_t;

void     dgc_backoff_init(dgc_backoff_t *b, unsigned min_ms, unsigned max_ms, uint64_t seed);
/* Delay before the next attempt: min * 2^fails capped at max, times a
 * uniform jitter in [0.5, 1.5), capped at max again; then fails++. */
unsigned dgc_backoff_next(dgc_backoff_t *b);
void     dgc_backoff_reset(dgc_backoff_t *b);
uint64_t dgc_rand(uint64_t *state);

/* ----------------------------------------------- server messages */

enum { DGC_MSG_OTHER = 0, DGC_MSG_ACK, DGC_MSG_SESSION, DGC_MSG_ERROR, DGC_MSG_COMMAND };

typedef struct dgc_msg {
    int      type;
    int      has_seq;        /* ack/error: seq present; session: last_seq not null */
    uint64_t seq;            /* ack seq, error seq, session last_seq */
    char     code[48], field[48], message[256];   /* error (truncated, NUL-terminated) */
    char     id[128], name[64];                   /* command */
    const char *args;        /* command args: raw JSON span in the input, or NULL */
    size_t   args_len;
} dgc_msg_t;

/* Parse one text frame from the gateway: an object or an array of objects.
 * Calls cb for every object that is a well-formed message (unknown types and
 * malformed members give DGC_MSG_OTHER or are skipped). Returns the number of
 * messages delivered, or -1 when the text is not valid JSON. */
int dgc_parse_server(const char *text, size_t n,
                     void (*cb)(void *ud, const dgc_msg_t *m), void *ud);

/* ---------------------------------------------------- sample JSON */

/* Check a sample's ranges and fill a record (timestamp 0 -> now_ms).
 * DG_CLIENT_OK or DG_CLIENT_EINVAL (*why says which field). */
int    dgc_rec_from_sample(dgc_rec_t *r, const dg_sample_t *s, int64_t now_ms, const char **why);
/* Write the JSON object of one record into out (DGC_REC_JSON_MAX bytes at
 * least). Returns its length. */
#define DGC_REC_JSON_MAX 512
size_t dgc_rec_json(char *out, const dgc_rec_t *r, uint64_t seq);

/* ---------------------------------------------- protobuf (pb.c, grpc://) */

/* DroneMessage{telemetry} of one record into out (DGC_REC_PB_MAX bytes at
 * least); its length (at most 107: client.c frames it with a 6-byte header). */
#define DGC_REC_PB_MAX 160
size_t dgc_rec_pb(uint8_t *out, const dgc_rec_t *r, uint64_t seq);
/* DroneMessage{command_ack}; 0 when it does not fit in cap. */
size_t dgc_cmd_ack_pb(uint8_t *out, size_t cap, const char *id, const char *status, const char *message);
/* One ServerMessage: cb once (DGC_MSG_OTHER for an empty or unknown body;
 * command args point into data). 1, or -1 when malformed. */
int    dgc_parse_server_pb(const uint8_t *data, size_t n,
                           void (*cb)(void *ud, const dgc_msg_t *m), void *ud);

/* ------------------------------------------ HTTP/2 call (grpc.c, grpc://) */

/* One dronegate.v1.Telemetry/Stream call on its own HTTP/2 connection
 * (nghttp2 client session; bytes in and out through the caller). */
typedef struct dgc_h2 dgc_h2_t;
/* authority "host:port"; token NULL = no authorization. NULL on no memory. */
dgc_h2_t *dgc_h2_new(const char *authority, const char *drone_id, const char *token);
void   dgc_h2_free(dgc_h2_t *h);
/* Input from the socket. 0, or -1 on an HTTP/2 protocol error. */
int    dgc_h2_recv(dgc_h2_t *h, const uint8_t *p, size_t n);
/* The next gRPC message received (a ServerMessage), 0 when none is complete. */
int    dgc_h2_next(dgc_h2_t *h, const uint8_t **p, size_t *n);
/* Queue one DroneMessage (framed with the gRPC prefix). 0 or -1. */
int    dgc_h2_send(dgc_h2_t *h, const void *msg, size_t n);
size_t dgc_h2_pending(const dgc_h2_t *h);       /* queued, not yet taken by HTTP/2 */
void   dgc_h2_half_close(dgc_h2_t *h);          /* END_STREAM once the queue is sent */
void   dgc_h2_ping(dgc_h2_t *h);
/* Bytes to write: what nghttp2 has to send now (valid until the next call). */
int    dgc_h2_output(dgc_h2_t *h, const uint8_t **p, size_t *n);
/* The call ended: 1 with its grpc-status and message, else 0. */
int    dgc_h2_ended(const dgc_h2_t *h, int *status, const char **message);

#endif
