/* reads.h - store reads off the event loops.
 *
 * A REST request that reads the store (telemetry history, a command of an
 * earlier run) would otherwise run on a worker thread: with a networked
 * store that is a round trip at least, the whole query for a 100k-row
 * history, and up to the connect timeout when the database host is gone -
 * during which every drone of that worker waits for its acks. Instead the
 * worker hands the request to this pool (dg_reads_submit), stops parsing
 * that connection, and gets the finished reply back through its inbox
 * (DG_MSG_READ), in order.
 *
 * The pool also owns the store health check behind /readyz: a thread pings
 * the store once a second and publishes the result (srv->store_ok), so the
 * probe itself never touches the store.
 */
#ifndef DG_READS_H
#define DG_READS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "server.h"
#include "../store/store.h"
#include "../pipeline/writer.h"

typedef struct dg_reads dg_reads_t;
typedef struct dg_read_job dg_read_job_t;

/* Runs on a pool thread: do the store call, fill status/ctype/body (or
 * status >= 400 and err, a short message for the client). */
typedef void (*dg_read_fn)(dg_server_t *srv, dg_read_job_t *j);

struct dg_read_job {
    dg_msg_t        msg;        /* DG_MSG_READ on the way back; must be first */
    dg_read_job_t  *next;       /* pool queue */
    dg_read_fn      run;
    /* Worker thread, from its inbox: deliver the result (frees j). Set by
     * whoever submits (HTTP: dg_http_read_done). */
    void          (*done)(dg_worker_t *w, dg_read_job_t *j);
    dg_worker_t    *w;          /* the connection waiting for the reply */
    uint32_t        slot, gen;
    /* request */
    dg_query_t      q;          /* q.drone_id points at id */
    char            id[DG_DRONE_ID_MAX + 1];
    char            cmd_id[40];
    int             fmt;
    /* reply */
    int             found;      /* last_seq: 1 found (seq), 0 none, -1 error/unknown */
    uint64_t        seq;
    int             status;
    const char     *ctype;      /* static string */
    dg_buf_t        body;
    char            err[160];
};

/* Start `threads` reader threads and the health thread. NULL on failure. */
dg_reads_t *dg_reads_start(dg_server_t *srv, int threads);
/* Queue a job (worker thread). 0, or -1 when the queue is full or the pool
 * is stopping: the caller answers 503 itself and keeps the job. */
int  dg_reads_submit(dg_reads_t *r, dg_read_job_t *j);
/* Stop the threads; jobs still queued are posted back with status 503. */
void dg_reads_stop(dg_reads_t *r);
void dg_read_job_free(dg_read_job_t *j);

#endif
