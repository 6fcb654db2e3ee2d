/* fuzz_grpc_session.c - libFuzzer target for the whole gRPC connection:
 * arbitrary client bytes into a real --grpc-listen connection (grpc.c's
 * handlers: an nghttp2 server session with our callbacks, the request
 * header checks, the gRPC deframer, DroneMessage decoding, the ingest path
 * with acks, errors and trailers) of a real (not running) worker with a
 * null store. HTTP/2 parsing is nghttp2's; everything it calls back is ours.
 *
 * Input: byte 0 bit 0 set = the HTTP/2 client preface is prepended (so the
 * fuzzer spends its time on frames, not on finding the preface); the rest
 * is fed in two chunks split at a point derived from byte 1. Between and
 * after the chunks the worker's loop runs until the null store has handed
 * its batches back, so the session message, acks and the input that waited
 * for the session are processed too. Output goes to a socketpair that is
 * drained. Each input gets a fresh connection; closed ones are freed, so
 * leaks show.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/commands.h"
#include "core/config.h"
#include "core/ingest.h"
#include "core/log.h"
#include "core/server.h"
#include "core/timefmt.h"
#include "grpc/grpc.h"
#include "http/http.h"
#include "net/worker.h"

static dg_config_t cfg;
static dg_server_t srv;
static dg_worker_t *worker;

static void on_done(dg_batch_t *b, void *ud) { dg_worker_post(worker, &b->msg); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    char *args[] = { "fuzz", "--store", "null:", "--workers", "1", "--web-root", "/nonexistent",
                     "--max-message", "4096" };
    dg_log_level = DG_LOG_ERROR + 1;
    if (dg_config_load(&cfg, 9, args, 1, err, sizeof err)) abort();
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

/* Run the worker's loop until the store has handed everything back. */
static void settle(void)
{
    ev_run(worker->loop, EVRUN_NOWAIT);
    for (int i = 0; i < 200 && (worker->inflight > 0 || worker->open); i++) {
        usleep(50);
        ev_run(worker->loop, EVRUN_NOWAIT);
    }
}

static void drain(int fd)
{
    char sink[65536];
    while (read(fd, sink, sizeof sink) > 0) {}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (size < 2) return 0;
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
    c->ops = &dg_grpc_conn_ops;
    c->last_rx_ms = dg_mono_ms();
    c->deadline_ms = c->last_rx_ms + 10000;
    ev_io_init(&c->io, NULL, sp[0], EV_READ);
    c->ops->on_open(c);

    size_t pre = (data[0] & 1) ? sizeof preface - 1 : 0;
    size_t n = pre + size - 2;
    uint8_t *buf = malloc(n ? n : 1);
    memcpy(buf, preface, pre);
    memcpy(buf + pre, data + 2, size - 2);
    size_t cut = n ? (size_t)data[1] * n / 255 : 0;
    /* the connection's ops may change (drone channel): always call the current ones */
    if (cut && !c->dead && !c->closing) { c->ops->on_data(c, buf, cut); }
    drain(sp[1]);
    if (!c->dead) settle();
    if (!c->dead && !c->closing && cut < n) c->ops->on_data(c, buf + cut, n - cut);
    drain(sp[1]);
    if (!c->dead) settle();
    if (!c->dead && c->ops->on_tick) c->ops->on_tick(c, dg_mono_ms());
    if (!c->dead) dg_conn_close(c, true);
    free(buf);
    drain(sp[1]);
    close(sp[1]);
    settle();
    return 0;
}
