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
#include <string.h>

#include "core/timefmt.h"
#include "fuzz_worker.h"
#include "grpc/grpc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *extra[] = { "--max-message", "4096" };
    fuzz_worker_init(2, extra);
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
    dg_conn_t *c = fuzz_conn_new(&dg_grpc_conn_ops, sp);
    if (!c) return 0;
    c->last_rx_ms = dg_mono_ms();
    c->deadline_ms = c->last_rx_ms + 10000;
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
