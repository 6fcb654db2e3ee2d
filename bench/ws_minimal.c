/* ws_minimal.c - the network-path reference for bench/bench_window.sh: a
 * minimal WebSocket endpoint that only frames and acks. It accepts the
 * upgrade on any path (answering dronegate.json.v1 when offered), reads
 * masked client frames, and after each read sends one cumulative
 * {"type":"ack","seq":N} with the highest "seq" found in the text frames of
 * that read (a byte scan, no JSON parsing, no validation, no store): the
 * fewest acks a correct endpoint can send (one per frame made the client,
 * not the endpoint, the limit at window 256 once dronegate-sim ran on
 * libdronegate). Pings get pongs, a close gets a close. What dronegate on
 * `null:` adds on top of this is its own cost.
 *
 *   ws_minimal [--listen 127.0.0.1:PORT] [--threads N]   (default :8081, 2)
 *
 * Threads: N event loops (epoll, level-triggered), each with its own
 * SO_REUSEPORT listening socket, like dronegate's workers. Limits: frames up
 * to 16 MiB, no fragmentation (continuation frames are acked like text),
 * no extensions; a connection that breaks a rule is closed. Benchmark tool,
 * not a server.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "minimal.h"

#define FRAME_MAX (16u << 20)
#define MAX_EV    256

typedef struct conn {
    int      fd;
    int      upgraded;
    uint8_t *in;            /* unread input */
    size_t   in_len, in_cap;
    char    *out;           /* unsent output */
    size_t   out_len, out_cap, out_off;
} conn_t;

static int out_put(conn_t *c, const void *p, size_t n)
{
    if (grow((void **)&c->out, &c->out_cap, c->out_len + n)) return -1;
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

static int send_frame(conn_t *c, int op, const void *p, size_t n)
{
    uint8_t h[10];
    size_t hl = 2;
    h[0] = (uint8_t)(0x80 | op);
    if (n < 126) h[1] = (uint8_t)n;
    else if (n < 65536) { h[1] = 126; h[2] = (uint8_t)(n >> 8); h[3] = (uint8_t)n; hl = 4; }
    else { h[1] = 127; for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i)); hl = 10; }
    return out_put(c, h, hl) || out_put(c, p, n);
}

static void b64(const uint8_t *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

/* The upgrade request is complete in c->in: answer 101. -1 on a bad one. */
static int upgrade(conn_t *c, size_t hdr_len)
{
    char *req = (char *)c->in;
    char save = req[hdr_len];
    req[hdr_len] = '\0';
    char *k = strcasestr(req, "\r\nSec-WebSocket-Key:");
    int proto = strstr(req, "dronegate.json.v1") != NULL;
    if (!k) return -1;
    k += 20;
    while (*k == ' ') k++;
    char key[128];
    size_t kl = strcspn(k, "\r\n ");
    if (kl == 0 || kl > 64) return -1;
    memcpy(key, k, kl);
    memcpy(key + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    uint8_t sha[20];
    SHA1((const uint8_t *)key, kl + 36, sha);
    char acc[32];
    b64(sha, 20, acc);
    req[hdr_len] = save;
    char resp[256];
    int n = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n", acc,
                     proto ? "Sec-WebSocket-Protocol: dronegate.json.v1\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof resp) return -1;
    c->upgraded = 1;
    /* the contract's first message: a client (libdronegate, the simulator)
     * sends telemetry only after it; this endpoint keeps no seqs */
    static const char session[] = "\x81\x22{\"type\":\"session\",\"last_seq\":null}";
    if (out_put(c, resp, (size_t)n)) return -1;
    return out_put(c, session, sizeof session - 1);
}

/* Highest "seq": N in p[0..n), -1 when none. */
static int64_t max_seq(const uint8_t *p, size_t n, uint64_t *out)
{
    int found = 0;
    for (size_t i = 0; i + 6 < n; i++) {
        if (p[i] != '"' || memcmp(p + i, "\"seq\"", 5)) continue;
        size_t j = i + 5;
        while (j < n && (p[j] == ' ' || p[j] == ':')) j++;
        uint64_t v = 0;
        size_t d = j;
        while (j < n && p[j] >= '0' && p[j] <= '9') v = v * 10 + (uint64_t)(p[j++] - '0');
        if (j == d) continue;
        if (!found || v > *out) *out = v;
        found = 1;
    }
    return found ? 0 : -1;
}

/* Consume whole frames from c->in. -1 to close. */
static int frames(conn_t *c)
{
    size_t off = 0;
    uint64_t ack = 0;
    int have_ack = 0;
    for (;;) {
        uint8_t *p = c->in + off;
        size_t n = c->in_len - off;
        if (n < 2) break;
        int op = p[0] & 0x0f;
        uint64_t len = p[1] & 0x7f;
        size_t hl = 2;
        if (!(p[1] & 0x80)) return -1;   /* clients must mask */
        if (len == 126) { if (n < 4) break; len = (uint64_t)p[2] << 8 | p[3]; hl = 4; }
        else if (len == 127) {
            if (n < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
            hl = 10;
        }
        if (len > FRAME_MAX) return -1;
        if (n < hl + 4 + len) break;
        uint8_t *m = p + hl, *d = p + hl + 4;
        for (uint64_t i = 0; i < len; i++) d[i] ^= m[i & 3];
        if (op == 1 || op == 0) {
            uint64_t seq = 0;
            if (max_seq(d, (size_t)len, &seq) == 0 && (!have_ack || seq > ack)) {
                ack = seq;
                have_ack = 1;
            }
        } else if (op == 9) {
            if (send_frame(c, 10, d, (size_t)len)) return -1;
        } else if (op == 8) {
            send_frame(c, 8, d, len >= 2 ? 2 : 0);
            return -1;
        } else if (op != 10) {
            return -1;
        }
        off += hl + 4 + (size_t)len;
    }
    if (have_ack) {
        char a[64];
        int k = snprintf(a, sizeof a, "{\"type\":\"ack\",\"seq\":%" PRIu64 "}", ack);
        if (send_frame(c, 1, a, (size_t)k)) return -1;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

static int flush_out(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) return errno == EAGAIN ? 0 : -1;
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static void conn_free(int ep, conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static void *loop(void *arg)
{
    (void)arg;
    int one = 1;
    int ls = minimal_listen("ws_minimal");
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[MAX_EV];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EV, -1);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *nc = calloc(1, sizeof *nc);
                    if (!nc) { close(fd); continue; }
                    nc->fd = fd;
                    struct epoll_event e2 = { .events = EPOLLIN, .data.ptr = nc };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e2);
                }
                continue;
            }
            int bad = 0;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (grow((void **)&c->in, &c->in_cap, c->in_len + 65536)) bad = 1;
                ssize_t r = bad ? -1 : recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN)) bad = 1;
                if (r > 0) {
                    c->in_len += (size_t)r;
                    if (!c->upgraded) {
                        uint8_t *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
                        if (e) {
                            size_t hl = (size_t)(e - c->in) + 4;
                            if (upgrade(c, hl)) bad = 1;
                            memmove(c->in, c->in + hl, c->in_len - hl);
                            c->in_len -= hl;
                        } else if (c->in_len > 16384) bad = 1;
                    }
                    if (!bad && c->upgraded && frames(c)) { flush_out(c); bad = 1; }
                }
            }
            if (!bad && flush_out(c)) bad = 1;
            if (bad) { conn_free(ep, c); continue; }
            struct epoll_event e2 = { .events = EPOLLIN | (c->out_len ? EPOLLOUT : 0), .data.ptr = c };
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e2);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    return minimal_main(argc, argv, "ws_minimal", "127.0.0.1:8081", loop);
}
