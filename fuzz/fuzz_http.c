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
#include <string.h>

#include "fuzz_worker.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_worker_init(0, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sp[2];
    dg_conn_t *c = fuzz_conn_new(&dg_http_conn_ops, sp);
    if (!c) return 0;
    dg_http_init(c);

    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    size_t cut = size ? (size_t)data[0] % (size + 1) : 0;
    c->cork = 1;
    if (cut) dg_http_on_data(c, buf, cut);
    /* the server stops reading a closing connection; an upgraded one
     * (drone channel, live watcher) reads through its new table */
    if (!c->dead && !c->closing && cut < size) c->ops->on_data(c, buf + cut, size - cut);
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
