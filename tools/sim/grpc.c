/* grpc.c - --transport grpc: each drone is one h2c connection (HTTP/2 with
 * prior knowledge) carrying one call of dronegate.v1.Telemetry/Stream, with
 * nghttp2's client session. The session never touches the socket: input is
 * fed with nghttp2_session_mem_recv, output taken with
 * nghttp2_session_mem_send into the drone's `out` buffer, which client.c
 * writes as for WebSocket.
 *
 *   connect -> preface + SETTINGS + HEADERS (drone-id, authorization)
 *   response HEADERS :status 200 -> open (HANDSHAKE -> OPEN), as a 101 is
 *   DATA -> gRPC messages (5-byte prefix) -> ServerMessage (pb.c)
 *   trailers / RST_STREAM / GOAWAY -> the call is over: closes counted by
 *   code "grpc-N" (N = grpc-status), reconnect unless the status says
 *   retrying cannot help (UNAUTHENTICATED, INVALID_ARGUMENT, UNIMPLEMENTED)
 *   or another call took this drone over (ABORTED, 4409 on WebSocket)
 *
 * Telemetry waits in `gout` (gRPC-framed) until nghttp2's data provider
 * takes it, which HTTP/2 flow control paces: a gateway that stops granting
 * window stops this drone. At shutdown the call is half-closed once `gout`
 * is sent; the gateway ends it with OK when everything is acked.
 */
#include "sim.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define GRPC_PATH "/dronegate.v1.Telemetry/Stream"
#define MSG_MAX   (1u << 20)

static ssize_t read_gout(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    sim_drone_t *d = ud;
    size_t avail = d->gout.len - d->gout_off;
    if (!avail) {
        if (d->h2_eof) { *flags |= NGHTTP2_DATA_FLAG_EOF; return 0; }
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < len ? avail : len;
    memcpy(buf, d->gout.data + d->gout_off, n);
    d->gout_off += n;
    if (d->gout_off == d->gout.len) d->gout.len = d->gout_off = 0;
    return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *v, size_t vl, uint8_t flags, void *ud)
{
    sim_drone_t *d = ud;
    if (f->hd.stream_id != d->h2_sid) return 0;
    if (nl == 7 && !memcmp(name, ":status", 7) && !(vl == 3 && !memcmp(v, "200", 3))) {
        d->h2_status = 2;   /* UNKNOWN: not a gRPC answer */
        snprintf(d->h2_msg, sizeof d->h2_msg, "HTTP status %.*s", (int)(vl > 8 ? 8 : vl), (const char *)v);
    } else if (nl == 11 && !memcmp(name, "grpc-status", 11)) {
        d->h2_status = vl && vl < 4 ? atoi((const char *)v) : 2;   /* headers are NUL-terminated */
    } else if (nl == 12 && !memcmp(name, "grpc-message", 12)) {
        snprintf(d->h2_msg, sizeof d->h2_msg, "%.*s", (int)vl, (const char *)v);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    sim_drone_t *d = ud;
    sim_worker_t *w = d->w;
    if (f->hd.type == NGHTTP2_PING && !(f->hd.flags & NGHTTP2_FLAG_ACK)) sim_add(&w->st.pings, 1);
    /* END_STREAM from the gateway ends the call (trailers, or a trailers-only
     * refusal); nghttp2 closes the stream only once our side ends too */
    if (f->hd.stream_id == d->h2_sid && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        if (d->h2_status < 0) { d->h2_status = 13; snprintf(d->h2_msg, sizeof d->h2_msg, "no grpc-status"); }
        d->h2_ended = 1;
        return 0;
    }
    if (f->hd.type == NGHTTP2_HEADERS && f->hd.stream_id == d->h2_sid && !d->h2_resp &&
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM) && d->h2_status < 0) {
        d->h2_resp = 1;
        sim_conn_opened(w, d);   /* the call is accepted: as a 101 on WebSocket */
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len, void *ud)
{
    sim_drone_t *d = ud;
    if (sid != d->h2_sid) return 0;
    if (dg_buf_append(&d->msg, data, len)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    size_t off = 0;
    const uint8_t *p = (const uint8_t *)d->msg.data;
    while (d->msg.len - off >= 5) {
        uint32_t n = (uint32_t)p[off + 1] << 24 | (uint32_t)p[off + 2] << 16 | (uint32_t)p[off + 3] << 8 | p[off + 4];
        if (p[off] != 0 || n > MSG_MAX) return NGHTTP2_ERR_CALLBACK_FAILURE;   /* compressed / too big */
        if (d->msg.len - off - 5 < n) break;
        sim_pb_message(d->w, d, p + off + 5, n);
        off += 5 + (size_t)n;
    }
    if (off) dg_buf_consume(&d->msg, off);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud)
{
    sim_drone_t *d = ud;
    if (sid != d->h2_sid) return 0;
    if (d->h2_status < 0) {   /* no trailers: reset by the server */
        d->h2_status = err == NGHTTP2_REFUSED_STREAM ? 14 : 13;
        snprintf(d->h2_msg, sizeof d->h2_msg, "stream reset (HTTP/2 error %u)", err);
    }
    d->h2_ended = 1;
    return 0;
}

int sim_h2_start(sim_worker_t *w, sim_drone_t *d)
{
    const sim_config_t *cfg = w->cfg;
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb)) return -ENOMEM;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session *s = NULL;
    int rc = nghttp2_session_client_new(&s, cb, d);
    nghttp2_session_callbacks_del(cb);
    if (rc) return -ENOMEM;
    d->h2 = s;
    d->h2_eof = d->h2_ended = d->h2_resp = 0;
    d->h2_status = -1;
    d->h2_msg[0] = '\0';
    d->gout.len = d->gout_off = 0;
    d->msg.len = 0;
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
    char bearer[8 + sizeof d->token];
    snprintf(bearer, sizeof bearer, "Bearer %s", d->token);
#define NV(n, v, vl) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE }
    nghttp2_nv h[] = {
        NV(":method", "POST", 4),
        NV(":scheme", "http", 4),
        NV(":path", GRPC_PATH, sizeof GRPC_PATH - 1),
        NV(":authority", cfg->hosthdr, strlen(cfg->hosthdr)),
        NV("content-type", "application/grpc", 16),
        NV("te", "trailers", 8),
        NV("user-agent", "dronegate-sim", 13),
        NV("drone-id", d->id, d->id_len),
        NV("authorization", bearer, strlen(bearer)),
    };
#undef NV
    nghttp2_data_provider prd = { .read_callback = read_gout };
    int32_t sid = nghttp2_submit_request(s, NULL, h, d->token[0] ? 9 : 8, &prd, d);
    if (sid < 0) { sim_h2_free(d); return -ENOMEM; }
    d->h2_sid = sid;
    return 0;
}

void sim_h2_queued(sim_drone_t *d)
{
    if (d->h2 && d->h2_sid > 0) nghttp2_session_resume_data(d->h2, d->h2_sid);
}

void sim_h2_pump(sim_worker_t *w, sim_drone_t *d)
{
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(d->h2, &p);
        if (n <= 0) break;
        if (dg_buf_append(&d->out, p, (size_t)n)) break;
    }
}

void sim_h2_free(sim_drone_t *d)
{
    if (d->h2) nghttp2_session_del(d->h2);
    d->h2 = NULL;
    d->h2_sid = 0;
    d->gout.len = d->gout_off = 0;
    if (d->gout.cap > 65536) dg_buf_free(&d->gout);
}

/* The call is over: count it like a close, then drop the connection. */
static void call_ended(sim_worker_t *w, sim_drone_t *d)
{
    int st = d->h2_status < 0 ? 14 : d->h2_status;
    char code[16];
    snprintf(code, sizeof code, "grpc-%d", st);
    bool ours = d->closing_for_good && st == 0;
    if (d->state == SIM_D_HANDSHAKE) {
        if (st == 16 || st == 3 || st == 12) d->no_reconnect = 1;   /* retrying cannot fix these */
        sim_code_inc(w->http_codes, code, strlen(code));
        char why[200];
        snprintf(why, sizeof why, "call refused: grpc-status %d %s%s", st, d->h2_msg,
                 st == 16 ? " (check --auth-secret)" : "");
        sim_conn_failed(w, d, why);
        return;
    }
    if (!ours) {
        sim_code_inc(w->close_codes, code, strlen(code));
        sim_add(&w->st.closes, 1);
        if (st == 10) d->no_reconnect = 1;   /* ABORTED: a newer call of this drone */
        sim_log(w, "%s: the server ended the call: grpc-status %d %s%s", d->id, st, d->h2_msg,
                st == 10 ? " (replaced by another connection of this drone; not reconnecting)" : "");
    }
    sim_conn_down(w, d);
}

void sim_h2_readable(sim_worker_t *w, sim_drone_t *d)
{
    for (int round = 0; round < 8; round++) {
        ssize_t r = recv(d->fd, w->rbuf, w->rbuf_cap, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r <= 0) {   /* EOF or error before the call ended */
            int err = r < 0 ? errno : 0;
            if (d->state == SIM_D_HANDSHAKE) {
                char why[200];
                snprintf(why, sizeof why, "connection lost before the call was answered%s%s",
                         err ? ": " : "", err ? strerror(err) : "");
                sim_conn_failed(w, d, why);
                return;
            }
            if (d->state == SIM_D_OPEN && !d->closing_for_good) {
                sim_code_inc(w->close_codes, "1006", 4);
                sim_add(&w->st.closes, 1);
                sim_add(&w->st.drops, 1);
                sim_log(w, "%s: connection lost without the call's trailers", d->id);
            }
            sim_conn_down(w, d);
            return;
        }
        sim_add(&w->st.bytes_in, (uint64_t)r);
        ssize_t used = nghttp2_session_mem_recv(d->h2, w->rbuf, (size_t)r);
        if (used < 0) {
            sim_log(w, "%s: HTTP/2: %s", d->id, nghttp2_strerror((int)used));
            if (d->state == SIM_D_HANDSHAKE) { sim_conn_failed(w, d, "HTTP/2 protocol error"); return; }
            sim_add(&w->st.closes, 1);
            sim_code_inc(w->close_codes, "h2-error", 8);
            sim_conn_down(w, d);
            return;
        }
        if (d->h2_ended) { sim_flush(w, d); call_ended(w, d); return; }
        if ((size_t)r < w->rbuf_cap) break;
    }
    sim_mark_dirty(w, d);   /* WINDOW_UPDATE, PING ack, command acks */
}
