/* server.h - the process: configuration, store, writer, registry, workers.
 *
 * Created by main(), shared read-mostly by every thread. Fields after start
 * are immutable except the atomics.
 */
#ifndef DG_SERVER_H
#define DG_SERVER_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "registry.h"
#include "../store/store.h"
#include "../pipeline/sink.h"
#include "../pipeline/writer.h"

typedef struct dg_worker dg_worker_t;

typedef struct dg_server {
    const dg_config_t    *cfg;
    const dg_store_ops_t *store_ops;
    dg_store_t           *store;
    dg_writer_t          *writer;         /* the store writer: telemetry (without --queue) and commands */
    /* Where workers submit telemetry batches (sink.h): the writer itself
     * (dg_writer_sink_ops), or a broker publisher with --queue (queue.h). */
    const dg_sink_ops_t  *sink_ops;
    void                 *sink;
    dg_registry_t        *registry;
    int                   nworkers;
    dg_worker_t         **workers;
    char                  host[256];
    int                   port;           /* actual port (resolved when 0 was asked) */
    atomic_int            draining;
    atomic_long           nconns;         /* open connections, all workers */
    atomic_int            live_watchers;  /* live stream watchers, all workers */
    struct dg_commands   *commands;
    struct dg_reads      *reads;          /* store reads off the event loops (reads.h) */
    atomic_int            store_ok;       /* last health check of the store answered */
    int64_t               started_ms;
    const struct dg_conn_ops *accept_ops; /* protocol of accepted connections (HTTP) */
    const struct dg_worker_hooks *worker_hooks; /* what the layers above do per loop (worker.h) */
    struct dg_fleet      *fleet;          /* several gateways over PostgreSQL (fleet.h); NULL otherwise */
} dg_server_t;

#endif
