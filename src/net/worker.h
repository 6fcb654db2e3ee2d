/* worker.h - one event-loop thread (libev) with its own SO_REUSEPORT
 * listening socket, its connections, its store batches and an inbox.
 *
 * Everything a worker owns is touched only by its thread; other threads talk
 * to it through dg_worker_post() (mutex-protected list + ev_async wake-up):
 * the store writer hands batches back, another worker asks it to close a
 * replaced connection, main asks it to drain.
 *
 * The worker holds only what the loop itself needs (connections, listeners,
 * read buffer, the store pipeline's open batch and pool, drain state). The
 * per-worker state of the layers above (the drone channel's JSON decoder,
 * ack list and ack timer in core/ingest.c; the live stream's open chunk and
 * watchers in core/live.c) is theirs: each registers a dg_worker_ext_t once
 * and reaches its state through w->ext[its slot] (one load, no lookup).
 */
#ifndef DG_WORKER_H
#define DG_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "../core/server.h"
#include "../pipeline/writer.h"

/* Inbox message types: informative only (logs, debugging); what runs is
 * dg_msg_t.handle. */
enum { DG_MSG_BATCH = 1, DG_MSG_CLOSE = 2, DG_MSG_DRAIN = 3, DG_MSG_LIVE = 4, DG_MSG_COMMAND = 5, DG_MSG_READ = 6, DG_MSG_FLEET = 7 };

#define DG_MAX_LISTENERS 4
#define DG_WORKER_EXT_MAX 4

struct dg_worker {
    int              id;
    dg_server_t     *srv;
    pthread_t        thread;
    struct ev_loop  *loop;
    struct dg_listener {            /* listening sockets, each with the protocol
                                     * its connections start with */
        ev_io        io;            /* first: data points to the worker */
        int          fd;            /* -1 once closed */
        const dg_conn_ops_t *ops;
        /* a datagram socket (UDP): no connections; the protocol reads it */
        void       (*on_dgram)(dg_worker_t *w, int fd, void *ud);
        void        *ud;
    } lst[DG_MAX_LISTENERS];
    int              nlst;
    ev_async         wake;
    ev_timer         sweep;         /* timeouts, pings */
    ev_timer         accept_timer;  /* accepting paused (EMFILE), restarts it */
    int64_t          emfile_warned_ms;
    ev_prepare       prep;          /* before blocking: submit batch, free dead conns */
    pthread_mutex_t  mu;            /* guards inbox */
    dg_msg_t        *inbox, *inbox_tail;
    /* connection table */
    dg_conn_t      **slots;
    uint32_t        *gens;
    uint32_t         slot_cap, slot_hint;
    dg_conn_t       *conns;         /* all open connections */
    dg_conn_t       *dead;          /* closed, freed in prep */
    size_t           nconns;
    /* input */
    uint8_t         *rbuf;
    size_t           rbuf_cap;
    dg_buf_t         scratch;       /* reusable output buffer (error replies, live events) */
    /* store pipeline */
    dg_batch_t      *open;          /* being filled */
    dg_batch_pool_t  pool;          /* free batches (pipeline/batch.h) */
    int              inflight;      /* submitted, not returned */
    int64_t          depth_pending; /* appended records not yet in dronegate_queue_depth (depth_flush) */
    bool             paused;        /* out of batches: drone reads stopped */
    dg_conn_t       *paused_list;
    /* the layers' per-worker state (dg_worker_ext_register): set when the
     * worker is created, before its thread starts, and never changed, so
     * other threads may read the pointers */
    void            *ext[DG_WORKER_EXT_MAX];
    /* drain */
    bool             draining;
    int64_t          drain_deadline_ms;
    bool             closing_sent;
};

/* What the layers above the loop do at its fixed points (Redis' beforeSleep
 * style); set once in srv->worker_hooks (main). batch_done and after_inbox
 * are required, the rest may be NULL. */
typedef struct dg_worker_hooks {
    void (*batch_done)(dg_worker_t *w, dg_batch_t *b);  /* a batch came back from the writer */
    void (*after_inbox)(dg_worker_t *w, bool force);    /* inbox handled / ack timer: send what is owed */
    void (*tick)(dg_worker_t *w);                       /* every sweep */
    void (*before_sleep)(dg_worker_t *w);               /* prepare step, before blocking */
} dg_worker_hooks_t;

/* Per-worker state of a layer above the loop. A layer registers its type
 * once, before the first worker is created (main thread; not thread-safe);
 * every worker created afterwards holds one instance in ext[slot]: made by
 * init when the worker is created (NULL: out of memory, the worker is not
 * created), freed by free when the worker is freed, after its connections
 * were torn down and its inbox emptied, while its loop still exists. */
typedef struct dg_worker_ext {
    const char *name;
    void *(*init)(dg_worker_t *w);
    void  (*free)(dg_worker_t *w, void *state);
} dg_worker_ext_t;

/* The slot of type t in every worker's ext[] (registering t again returns
 * the same slot), or -1 when DG_WORKER_EXT_MAX types are registered. */
int   dg_worker_ext_register(const dg_worker_ext_t *t);
/* Create / free the registered states of a worker (dg_worker_new and
 * dg_worker_free do; for a worker built by hand, as the unit tests do).
 * init: 0, or -1 when out of memory (what was made is freed). */
int   dg_worker_ext_init(dg_worker_t *w);
void  dg_worker_ext_free(dg_worker_t *w);

/* lfd: the HTTP listener (connections start with srv->accept_ops). */
dg_worker_t *dg_worker_new(dg_server_t *srv, int id, int lfd);
/* Another listening socket whose connections start with `ops` (e.g. gRPC),
 * before dg_worker_start. 0, or -1 when DG_MAX_LISTENERS are taken. */
int   dg_worker_listen(dg_worker_t *w, int fd, const dg_conn_ops_t *ops);
/* A datagram socket (e.g. MAVLink/UDP) in the same table: on_dgram(w, fd,
 * ud) runs on the worker thread whenever fd is readable (it reads what it
 * wants; level-triggered). Stopped and closed with the other listeners at
 * drain. Before dg_worker_start. 0, or -1 when the table is full. */
int   dg_worker_listen_dgram(dg_worker_t *w, int fd, void (*on_dgram)(dg_worker_t *w, int fd, void *ud), void *ud);
int   dg_worker_start(dg_worker_t *w);
void  dg_worker_join(dg_worker_t *w);
void  dg_worker_free(dg_worker_t *w);
/* Any thread: ask the worker to drain (server shutdown). 0 or -ENOMEM. */
int   dg_worker_drain(dg_worker_t *w);
/* Any thread: deliver a message to the worker's inbox. m->handle is called
 * on the worker thread (deliver true), or with deliver false when the worker
 * is freed first; either way it frees m. A message without handler is one
 * of the worker's own store batches coming back. */
void  dg_worker_post(dg_worker_t *w, dg_msg_t *m);
/* The worker's connection at slot with generation gen, or NULL. */
dg_conn_t *dg_worker_conn(dg_worker_t *w, uint32_t slot, uint32_t gen);
/* Append a record to the open batch (origin fields must be set). */
void  dg_worker_append(dg_worker_t *w, const dg_record_t *rec);
/* Stop/resume reading a connection (store backpressure). */
void  dg_worker_pause_conn(dg_worker_t *w, dg_conn_t *c);
/* Set the connection's libev events (EV_READ unless paused/draining, EV_WRITE if output pending). */
void  dg_conn_update_events(dg_conn_t *c);

/* 0 when host:port can be bound without SO_REUSEPORT (nobody else listens
 * there); -1 with a message in err otherwise. */
int   dg_listen_probe(const char *host, int port, char *err, size_t errlen);
/* Create a listening socket (SO_REUSEPORT) on host:port. Returns fd or -1
 * with a message in err. When port is 0, *bound gets the port chosen. */
int   dg_listen(const char *host, int port, int *bound, char *err, size_t errlen);

#endif
