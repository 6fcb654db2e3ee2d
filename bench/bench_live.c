/* bench_live.c - live stream fan-out latency: N watchers on /api/v1/live,
 * each event's server receive time (received_us, CLOCK_REALTIME on the same
 * machine) against the watcher's receive time. Run beside dronegate-sim.
 *
 *   bench_live PORT WATCHERS SECONDS
 *
 * Prints one JSON line: events, per-watcher rate, latency p50/p99/p999/max in ms.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/timefmt.h"
#include "ws/ws.h"

typedef struct watcher {
    int      fd;
    int      upgraded;
    uint8_t *buf;
    size_t   len, cap;
} watcher_t;

static uint32_t *lat_us;
static size_t nlat, caplat;
static unsigned long long events;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void on_event(const uint8_t *p, size_t n, int64_t now_us)
{
    static const char key[] = "\"received_us\":";
    const uint8_t *k = memmem(p, n, key, sizeof key - 1);
    if (!k) return;
    long long r = strtoll((const char *)k + sizeof key - 1, NULL, 10);
    events++;
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 20;
        lat_us = realloc(lat_us, caplat * sizeof *lat_us);
        if (!lat_us) exit(1);
    }
    int64_t d = now_us - r;
    lat_us[nlat++] = (uint32_t)(d < 0 ? 0 : d);
}

static void consume(watcher_t *w, int64_t now_us)
{
    size_t off = 0;
    if (!w->upgraded) {
        uint8_t *e = memmem(w->buf, w->len, "\r\n\r\n", 4);
        if (!e) return;
        if (memcmp(w->buf, "HTTP/1.1 101", 12)) { fprintf(stderr, "upgrade refused: %.*s\n", 40, w->buf); exit(1); }
        w->upgraded = 1;
        off = (size_t)(e - w->buf) + 4;
    }
    for (;;) {
        dg_ws_frame_t f;
        int h = dg_ws_parse_header(w->buf + off, w->len - off, &f);
        if (h <= 0 || w->len - off - (size_t)h < f.len) break;
        if (f.opcode == DG_WS_OP_TEXT) on_event(w->buf + off + h, (size_t)f.len, now_us);
        off += (size_t)h + (size_t)f.len;
    }
    memmove(w->buf, w->buf + off, w->len - off);
    w->len -= off;
}

int main(int argc, char **argv)
{
    if (argc < 4) { fprintf(stderr, "usage: bench_live PORT WATCHERS SECONDS\n"); return 2; }
    int port = atoi(argv[1]), n = atoi(argv[2]);
    double secs = atof(argv[3]);
    watcher_t *ws = calloc((size_t)n, sizeof *ws);
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char req[256];
        int l = snprintf(req, sizeof req, "GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n");
        if (write(fd, req, (size_t)l) != l) return 1;
        ws[i].fd = fd;
        ws[i].cap = 1 << 20;
        ws[i].buf = malloc(ws[i].cap);
        pf[i].fd = fd;
        pf[i].events = POLLIN;
    }
    int64_t end = dg_mono_ms() + (int64_t)(secs * 1000);
    while (dg_mono_ms() < end) {
        if (poll(pf, (nfds_t)n, 100) <= 0) continue;
        for (int i = 0; i < n; i++) {
            if (!(pf[i].revents & POLLIN)) continue;
            watcher_t *w = &ws[i];
            if (w->cap - w->len < 65536) { w->cap *= 2; w->buf = realloc(w->buf, w->cap); }
            ssize_t r = read(w->fd, w->buf + w->len, w->cap - w->len);
            if (r <= 0) { fprintf(stderr, "watcher %d closed\n", i); return 1; }
            w->len += (size_t)r;
            consume(w, dg_now_us());
        }
    }
    qsort(lat_us, nlat, sizeof *lat_us, cmp_u32);
#define P(q) (nlat ? lat_us[(size_t)((double)(nlat - 1) * (q))] / 1000.0 : 0.0)
    printf("{\"watchers\":%d,\"events\":%llu,\"events_per_s_per_watcher\":%.0f,"
           "\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}}\n",
           n, events, (double)events / secs / n, P(0.5), P(0.99), P(0.999), nlat ? lat_us[nlat - 1] / 1000.0 : 0.0);
    return 0;
}
