/* grpc.c - grpc:// for libdronegate: one dronegate.v1.Telemetry/Stream call
 * per HTTP/2 connection (h2c, or over TLS with ALPN h2 for grpcs://), with
 * nghttp2's client session. The session never touches the socket: client.c
 * feeds what it reads (dgc_h2_recv) and writes what dgc_h2_output hands out.
 * Messages to send wait gRPC-framed in `q` until HTTP/2 flow control lets
 * nghttp2 take them; ServerMessages received wait in `in` until client.c
 * takes them with dgc_h2_next (after dgc_h2_recv returned: nothing of the
 * client runs inside nghttp2's callbacks). */
#include "internal.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_MAX (1u << 20)

struct dgc_h2 {
    nghttp2_session *ng;
    int32_t  sid;
    uint8_t *q;   size_t q_len, q_off, q_cap;     /* framed DroneMessages to send */
    uint8_t *in;  size_t in_len, in_off, in_cap;  /* DATA received, framed ServerMessages */
    int      eof;                                 /* half-close after q */
    int      ended, status;
    char     message[160];
};

static int put(uint8_t **b, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n) c *= 2;
        uint8_t *nb = realloc(*b, c);
        if (!nb) return -1;
        *b = nb;
        *cap = c;
    }
    memcpy(*b + *len, p, n);
    *len += n;
    return 0;
}

static ssize_t read_q(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
                      nghttp2_data_source *src, void *ud)
{
    dgc_h2_t *h = ud;
    size_t avail = h->q_len - h->q_off;
    if (!avail) {
        if (h->eof) { *flags |= NGHTTP2_DATA_FLAG_EOF; return 0; }
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < len ? avail : len;
    memcpy(buf, h->q + h->q_off, n);
    h->q_off += n;
    if (h->q_off == h->q_len) h->q_off = h->q_len = 0;
    return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *v, size_t vl, uint8_t flags, void *ud)
{
    dgc_h2_t *h = ud;
    if (f->hd.stream_id != h->sid) return 0;
    if (nl == 7 && !memcmp(name, ":status", 7) && !(vl == 3 && !memcmp(v, "200", 3))) {
        h->status = 2;   /* UNKNOWN: not a gRPC answer (a proxy's error page) */
        snprintf(h->message, sizeof h->message, "HTTP status %.*s", (int)(vl > 8 ? 8 : vl), (const char *)v);
    } else if (nl == 11 && !memcmp(name, "grpc-status", 11)) {
        h->status = vl && vl < 4 ? atoi((const char *)v) : 2;
    } else if (nl == 12 && !memcmp(name, "grpc-message", 12)) {
        snprintf(h->message, sizeof h->message, "%.*s", (int)vl, (const char *)v);
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len, void *ud)
{
    dgc_h2_t *h = ud;
    if (sid != h->sid) return 0;
    if (h->in_len - h->in_off + len > MSG_MAX + 5 + 65536) return NGHTTP2_ERR_CALLBACK_FAILURE;
    return put(&h->in, &h->in_len, &h->in_cap, data, len) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* END_STREAM from the gateway ends the call (trailers, or a trailers-only
 * refusal); nghttp2 closes the stream only once our side ends too. */
static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    dgc_h2_t *h = ud;
    if (f->hd.stream_id == h->sid && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        if (h->status < 0) { h->status = 13; snprintf(h->message, sizeof h->message, "no grpc-status"); }
        h->ended = 1;
    }
    return 0;
}

static int on_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud)
{
    dgc_h2_t *h = ud;
    if (sid != h->sid) return 0;
    if (h->status < 0) {   /* no trailers: reset */
        h->status = err == NGHTTP2_REFUSED_STREAM ? 14 : 13;
        snprintf(h->message, sizeof h->message, "stream reset (HTTP/2 error %u)", err);
    }
    h->ended = 1;
    return 0;
}

dgc_h2_t *dgc_h2_new(const char *authority, const char *drone_id, const char *token)
{
    dgc_h2_t *h = calloc(1, sizeof *h);
    nghttp2_session_callbacks *cb = NULL;
    if (!h || nghttp2_session_callbacks_new(&cb)) { free(h); return NULL; }
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
    int rc = nghttp2_session_client_new(&h->ng, cb, h);
    nghttp2_session_callbacks_del(cb);
    if (rc) { free(h); return NULL; }
    h->status = -1;
    nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, NULL, 0);
    size_t tl = token ? strlen(token) : 0;
    char *bearer = malloc(8 + tl);
    if (!bearer) { dgc_h2_free(h); return NULL; }
    snprintf(bearer, 8 + tl, "Bearer %s", token ? token : "");
#define NV(n, v, vl) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE }
    nghttp2_nv hd[] = {
        NV(":method", "POST", 4),
        NV(":scheme", "http", 4),
        NV(":path", "/dronegate.v1.Telemetry/Stream", 30),
        NV(":authority", authority, strlen(authority)),
        NV("content-type", "application/grpc", 16),
        NV("te", "trailers", 8),
        NV("user-agent", "libdronegate/" DG_CLIENT_VERSION, sizeof("libdronegate/" DG_CLIENT_VERSION) - 1),
        NV("drone-id", drone_id, strlen(drone_id)),
        NV("authorization", bearer, strlen(bearer)),
    };
#undef NV
    nghttp2_data_provider prd = { .read_callback = read_q };
    h->sid = nghttp2_submit_request(h->ng, NULL, hd, token ? 9 : 8, &prd, h);
    free(bearer);   /* nghttp2 copies the header block */
    if (h->sid < 0) { dgc_h2_free(h); return NULL; }
    return h;
}

void dgc_h2_free(dgc_h2_t *h)
{
    if (!h) return;
    if (h->ng) nghttp2_session_del(h->ng);
    free(h->q);
    free(h->in);
    free(h);
}

int dgc_h2_recv(dgc_h2_t *h, const uint8_t *p, size_t n)
{
    return nghttp2_session_mem_recv(h->ng, p, n) < 0 ? -1 : 0;
}

int dgc_h2_next(dgc_h2_t *h, const uint8_t **p, size_t *n)
{
    size_t avail = h->in_len - h->in_off;
    const uint8_t *b = h->in + h->in_off;
    if (avail < 5) goto none;
    uint32_t len = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
    if (b[0] != 0 || len > MSG_MAX) {   /* compressed or too big: skip everything (the call will fail) */
        h->in_off = h->in_len = 0;
        return 0;
    }
    if (avail - 5 < len) goto none;
    *p = b + 5;
    *n = len;
    h->in_off += 5 + (size_t)len;
    return 1;
none:
    if (h->in_off == h->in_len) h->in_off = h->in_len = 0;
    else if (h->in_off > 65536) {
        memmove(h->in, h->in + h->in_off, h->in_len - h->in_off);
        h->in_len -= h->in_off;
        h->in_off = 0;
    }
    return 0;
}

int dgc_h2_send(dgc_h2_t *h, const void *msg, size_t n)
{
    uint8_t pre[5] = { 0, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
    if (h->eof || put(&h->q, &h->q_len, &h->q_cap, pre, 5) || put(&h->q, &h->q_len, &h->q_cap, msg, n)) return -1;
    nghttp2_session_resume_data(h->ng, h->sid);
    return 0;
}

size_t dgc_h2_pending(const dgc_h2_t *h) { return h->q_len - h->q_off; }

void dgc_h2_half_close(dgc_h2_t *h)
{
    h->eof = 1;
    nghttp2_session_resume_data(h->ng, h->sid);
}

void dgc_h2_ping(dgc_h2_t *h) { nghttp2_submit_ping(h->ng, NGHTTP2_FLAG_NONE, NULL); }

int dgc_h2_output(dgc_h2_t *h, const uint8_t **p, size_t *n)
{
    ssize_t r = nghttp2_session_mem_send(h->ng, p);
    if (r < 0) return -1;
    *n = (size_t)r;
    return 0;
}

int dgc_h2_ended(const dgc_h2_t *h, int *status, const char **message)
{
    if (!h->ended) return 0;
    *status = h->status;
    *message = h->message;
    return 1;
}
