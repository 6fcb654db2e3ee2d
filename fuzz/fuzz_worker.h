/* fuzz_worker.h - the harness fuzz_http.c and fuzz_grpc_session.c share: a
 * real (not running) worker of a server on the null: store, with its
 * writer thread, and a fresh connection per input on one end of a
 * socketpair (the caller reads the other end). Header-only: each fuzz
 * target is built from its own .c file. */
#ifndef DG_FUZZ_WORKER_H
#define DG_FUZZ_WORKER_H

#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/commands.h"
#include "core/config.h"
#include "core/ingest.h"
#include "core/log.h"
#include "core/server.h"
#include "http/http.h"
#include "net/worker.h"

static dg_config_t cfg;
static dg_server_t srv;
static dg_worker_t *worker;

static void fuzz_on_done(dg_batch_t *b, void *ud) { dg_worker_post(worker, &b->msg); }

/* The server and its one worker; `extra` flags after the common ones. Aborts on failure. */
static void fuzz_worker_init(int nextra, char **extra)
{
    char err[256];
    char *args[16] = { "fuzz", "--store", "null:", "--workers", "1", "--web-root", "/nonexistent" };
    int n = 7;
    for (int i = 0; i < nextra && n < 16; i++) args[n++] = extra[i];
    dg_log_level = DG_LOG_ERROR + 1;
    if (dg_config_load(&cfg, n, args, 1, err, sizeof err)) abort();
    cfg.max_connections = 1000;
    srv.cfg = &cfg;
    srv.store_ops = dg_store_lookup(cfg.store);
    dg_store_config_t sc = { 0 };
    if (srv.store_ops->open(cfg.store, &sc, &srv.store, err, sizeof err)) abort();
    srv.registry = dg_registry_new();
    srv.commands = dg_commands_new(1000);
    srv.nworkers = 1;
    srv.accept_ops = &dg_http_conn_ops;
    srv.worker_hooks = &dg_ingest_worker_hooks;
    if (dg_ingest_register()) abort();
    srv.workers = &worker;
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp)) abort();   /* a dummy listening fd for the worker */
    worker = dg_worker_new(&srv, 0, sp[0]);
    srv.writer = dg_writer_new(srv.store_ops, srv.store, fuzz_on_done, NULL);
    if (!worker || !srv.writer || dg_writer_start(srv.writer)) abort();
    srv.sink_ops = &dg_writer_sink_ops;   /* the workers submit through the sink (as main.c) */
    srv.sink = srv.writer;
}

/* A fresh connection of the worker with `ops` on sp[0] (non-blocking
 * socketpair, large send buffer); NULL when no socketpair. The caller sets
 * up the protocol state (e.g. dg_http_init) and reads sp[1]. */
static dg_conn_t *fuzz_conn_new(const dg_conn_ops_t *ops, int sp[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp)) return NULL;
    int big = 1 << 22;
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    dg_conn_t *c = calloc(1, sizeof *c);
    c->w = worker;
    c->fd = sp[0];
    c->slot = 0;
    if (!worker->slot_cap) {
        worker->slots = calloc(1024, sizeof *worker->slots);
        worker->gens = calloc(1024, sizeof *worker->gens);
        worker->slot_cap = 1024;
    }
    c->gen = ++worker->gens[0];
    worker->slots[0] = c;
    worker->conns = c;
    worker->nconns = 1;
    atomic_fetch_add(&srv.nconns, 1);
    c->ops = ops;
    ev_io_init(&c->io, NULL, sp[0], EV_READ);
    return c;
}

#endif
