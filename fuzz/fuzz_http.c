/* fuzz_http.c - libFuzzer target for the HTTP/1.1 request path: arbitrary
 * client bytes into a real connection of a real (not running) worker, fed in
 * two chunks split at a point derived from the data. This covers http_parser
 * glue, header capture and limits, routing, the REST handlers, the WebSocket
 * upgrade (and, after an upgrade, the drone channel and the live stream).
 *
 * Output goes to a socketpair whose other end is drained; a null store keeps
 * it in memory. Each input gets a fresh connection; one loop iteration
 * afterwards frees closed connections and hands back batches, so leaks show.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/commands.h"
#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "core/ingest.h"
#include "core/live.h"
#include "http/http.h"
#include "net/worker.h"

static dg_config_t cfg;
static dg_server_t srv;
static dg_worker_t *worker;

static void on_done(dg_batch_t *b, void *ud) { dg_worker_post(worker, &b->msg); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    char *args[] = { "fuzz", "--store", "null:", "--workers", "1", "--web-root", "/nonexistent" };
    dg_log_level = DG_LOG_ERROR + 1;
    if (dg_config_load(&cfg, 7, args, 1, err, sizeof err)) abort();
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
    srv.workers = &worker;
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp)) abort();   /* a dummy listening fd for the worker */
    worker = dg_worker_new(&srv, 0, sp[0]);
    srv.writer = dg_writer_new(srv.store_ops, srv.store, on_done, NULL);
    if (!worker || !srv.writer || dg_writer_start(srv.writer)) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp)) return 0;
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
    c->ops = &dg_http_conn_ops;
    dg_http_init(c);
    ev_io_init(&c->io, NULL, sp[0], EV_READ);

    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    size_t cut = size ? (size_t)data[0] % (size + 1) : 0;
    c->cork = 1;
    if (cut) {
        if (c->kind == DG_CONN_HTTP) dg_http_on_data(c, buf, cut);
    }
    if (!c->dead && !c->closing && cut < size) {   /* the server stops reading a closing connection */
        if (c->kind == DG_CONN_HTTP) dg_http_on_data(c, buf + cut, size - cut);
        else if (c->kind == DG_CONN_DRONE) dg_ingest_on_data(c, buf + cut, size - cut);
        else dg_live_on_data(c, buf + cut, size - cut);
    }
    if (!c->dead) { c->cork = 0; dg_conn_close(c, true); }
    free(buf);
    char sink[65536];
    while (read(sp[1], sink, sizeof sink) > 0) {}
    close(sp[1]);
    /* one loop iteration: prepare frees the dead connection, submits the
     * open batch; then wait for the writer to hand batches back */
    ev_run(worker->loop, EVRUN_NOWAIT);
    for (int i = 0; i < 100 && worker->inflight > 0; i++) {
        usleep(100);
        ev_run(worker->loop, EVRUN_NOWAIT);
    }
    return 0;
}
