/* grpc_minimal.c - the gRPC network-path reference for bench/bench_grpc.sh:
 * a minimal h2c endpoint (nghttp2 server session) that only frames and acks.
 * Any POST gets response HEADERS (200, application/grpc); the gRPC messages
 * of the request are cut at their 5-byte prefixes and each DroneMessage is
 * scanned for telemetry.seq (field 1 -> field 1 varint, no decoding of the
 * rest, no validation, no store). After every read, each stream that got
 * messages is sent one ServerMessage{ack{seq = the highest}}. A half-close
 * is answered with the trailers grpc-status 0. What dronegate on `null:`
 * adds on top of this is its own cost.
 *
 *   grpc_minimal [--listen 127.0.0.1:PORT] [--threads N]   (default :50052, 2)
 *
 * Threads: N event loops (epoll, level-triggered), each with its own
 * SO_REUSEPORT listening socket, like dronegate's workers. nghttp2 grants
 * HTTP/2 window as it consumes (its default). Benchmark tool, not a server.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "minimal.h"

#define MAX_EV  256
#define MSG_MAX (16u << 20)

typedef struct stream {
    int32_t  id;
    uint8_t *in;             /* partial gRPC message */
    size_t   in_len, in_cap;
    uint8_t *out;            /* acks not yet taken by nghttp2 */
    size_t   out_len, out_off, out_cap;
    uint64_t max_seq;
    int      has_new, eof, ended;
    struct stream *next;     /* the connection's streams */
} stream_t;

typedef struct conn {
    int       fd;
    nghttp2_session *ng;
    stream_t *streams;
    uint8_t  *out;           /* bytes nghttp2 produced, not yet sent */
    size_t    out_len, out_off, out_cap;
} conn_t;

static int put(uint8_t **p, size_t *len, size_t *cap, const void *d, size_t n)
{
    if (grow((void **)p, cap, *len + n)) return -1;
    memcpy(*p + *len, d, n);
    *len += n;
    return 0;
}

static int varint(const uint8_t **p, const uint8_t *e, uint64_t *v)
{
    *v = 0;
    for (int s = 0; *p < e && s < 64; s += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

/* telemetry.seq of a DroneMessage: field 1 (LEN) -> its field 1 (varint). */
static int seq_of(const uint8_t *p, size_t n, uint64_t *seq)
{
    const uint8_t *e = p + n;
    uint64_t tag, len;
    if (varint(&p, e, &tag) || tag != 0x0a || varint(&p, e, &len) || len > (uint64_t)(e - p)) return -1;
    e = p + len;
    if (varint(&p, e, &tag) || tag != 0x08) return -1;
    return varint(&p, e, seq);
}

static stream_t *find(conn_t *c, int32_t id)
{
    for (stream_t *s = c->streams; s; s = s->next) if (s->id == id) return s;
    return NULL;
}

static ssize_t read_out(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t length, uint32_t *flags,
                        nghttp2_data_source *src, void *ud)
{
    stream_t *s = src->ptr;
    size_t avail = s->out_len - s->out_off;
    if (avail) {
        size_t n = avail < length ? avail : length;
        memcpy(buf, s->out + s->out_off, n);
        s->out_off += n;
        if (s->out_off == s->out_len) s->out_off = s->out_len = 0;
        return (ssize_t)n;
    }
    if (!s->eof) return NGHTTP2_ERR_DEFERRED;
    nghttp2_nv tr[] = { { (uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE } };
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (nghttp2_submit_trailer(ng, sid, tr, 1) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    conn_t *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    stream_t *s = calloc(1, sizeof *s);
    if (!s) return NGHTTP2_ERR_CALLBACK_FAILURE;
    s->id = f->hd.stream_id;
    s->next = c->streams;
    c->streams = s;
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    conn_t *c = ud;
    stream_t *s = find(c, f->hd.stream_id);
    if (!s) return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        nghttp2_nv h[] = {
            { (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE },
            { (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE },
        };
        nghttp2_data_provider prd = { .source.ptr = s, .read_callback = read_out };
        nghttp2_submit_response(ng, s->id, h, 2, &prd);
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        s->eof = 1;
        nghttp2_session_resume_data(ng, s->id);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *data, size_t len, void *ud)
{
    stream_t *s = find(ud, sid);
    if (!s) return 0;
    if (put(&s->in, &s->in_len, &s->in_cap, data, len)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    size_t off = 0;
    while (s->in_len - off >= 5) {
        const uint8_t *p = s->in + off;
        uint32_t n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        if (p[0] || n > MSG_MAX) return NGHTTP2_ERR_CALLBACK_FAILURE;
        if (s->in_len - off - 5 < n) break;
        uint64_t seq;
        if (seq_of(p + 5, n, &seq) == 0 && (!s->has_new || seq > s->max_seq)) {
            if (seq > s->max_seq || !s->has_new) s->max_seq = seq;
            s->has_new = 1;
        }
        off += 5 + n;
    }
    memmove(s->in, s->in + off, s->in_len - off);
    s->in_len -= off;
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t err, void *ud)
{
    conn_t *c = ud;
    for (stream_t **pp = &c->streams; *pp; pp = &(*pp)->next) {
        if ((*pp)->id != sid) continue;
        stream_t *s = *pp;
        *pp = s->next;
        free(s->in);
        free(s->out);
        free(s);
        break;
    }
    return 0;
}

/* One ack per stream that got messages in this read. */
static void ack_all(conn_t *c)
{
    for (stream_t *s = c->streams; s; s = s->next) {
        if (!s->has_new) continue;
        s->has_new = 0;
        uint8_t m[32], *p = m + 5 + 4;   /* prefix, ServerMessage{1: Ack{1: seq}} */
        size_t vl = 0;
        uint64_t v = s->max_seq;
        do { p[vl++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>= 7; } while (v);
        size_t ack_len = 1 + vl, msg_len = 2 + ack_len;
        m[0] = 0; m[1] = m[2] = 0; m[3] = (uint8_t)(msg_len >> 8); m[4] = (uint8_t)msg_len;
        m[5] = 0x0a; m[6] = (uint8_t)ack_len; m[7] = 0x08;
        memmove(m + 8, p, vl);
        if (put(&s->out, &s->out_len, &s->out_cap, m, 5 + msg_len) == 0) nghttp2_session_resume_data(c->ng, s->id);
    }
}

static int pump(conn_t *c)
{
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(c->ng, &d);
        if (n < 0) return -1;
        if (n == 0) break;
        if (put(&c->out, &c->out_len, &c->out_cap, d, (size_t)n)) return -1;
    }
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) return errno == EAGAIN ? 0 : -1;
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    return !nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng) ? -1 : 0;
}

static void conn_free(int ep, conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    nghttp2_session_del(c->ng);   /* closes the streams (on_stream_close frees them) */
    free(c->out);
    free(c);
}

static nghttp2_session_callbacks *callbacks;

static void *loop(void *arg)
{
    (void)arg;
    int one = 1;
    int ls = minimal_listen("grpc_minimal");
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[MAX_EV];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    uint8_t *buf = malloc(65536);
    if (!buf) exit(1);
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EV, -1);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *nc = calloc(1, sizeof *nc);
                    if (!nc || nghttp2_session_server_new(&nc->ng, callbacks, nc)) { free(nc); close(fd); continue; }
                    nc->fd = fd;
                    nghttp2_submit_settings(nc->ng, NGHTTP2_FLAG_NONE, NULL, 0);
                    struct epoll_event e2 = { .events = EPOLLIN | EPOLLOUT, .data.ptr = nc };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e2);
                }
                continue;
            }
            int bad = 0;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = recv(c->fd, buf, 65536, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN)) bad = 1;
                if (r > 0) {
                    if (nghttp2_session_mem_recv(c->ng, buf, (size_t)r) < 0) bad = 1;
                    else ack_all(c);
                }
            }
            if (!bad && pump(c)) bad = 1;
            if (bad) { conn_free(ep, c); continue; }
            struct epoll_event e2 = { .events = EPOLLIN | (c->out_len ? EPOLLOUT : 0), .data.ptr = c };
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e2);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (nghttp2_session_callbacks_new(&callbacks)) return 1;
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    return minimal_main(argc, argv, "grpc_minimal", "127.0.0.1:50052", loop);
}
