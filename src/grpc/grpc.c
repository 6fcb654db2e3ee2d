/* grpc.c - see grpc.h.
 *
 * Per connection (c->proto): the nghttp2 server session, the one call's
 * request headers, the gRPC bytes received and not yet decoded, the
 * ServerMessage frames not yet taken by nghttp2's data provider.
 *
 * nghttp2 must not be asked to send from inside its own callbacks: every
 * entry point (input, an ack, a command, a timer) changes state, then calls
 * pump() once, which hands nghttp2's output to the connection.
 *
 * Memory per call: the session (a few KB), `in` up to one message
 * (--max-message + 5 bytes; HTTP/2 flow control and paused reads bound
 * what arrives meanwhile), `out` up to GRPC_OUT_MAX (a client that does
 * not read its responses is dropped, as on WebSocket).
 */
#include "grpc.h"

#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../codec/pb_telemetry.h"
#include "../core/auth.h"
#include "../core/config.h"
#include "../core/ingest.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/server.h"
#include "../core/timefmt.h"
#include "../net/worker.h"

#define GRPC_PATH    "/dronegate.v1.Telemetry/Stream"
#define GRPC_OUT_MAX (8u << 20)

enum { ST_OK = 0, ST_INVALID_ARGUMENT = 3, ST_RESOURCE_EXHAUSTED = 8, ST_ABORTED = 10,
       ST_UNIMPLEMENTED = 12, ST_INTERNAL = 13, ST_UNAVAILABLE = 14, ST_UNAUTHENTICATED = 16 };

typedef struct grpc_conn {
    nghttp2_session *ng;
    int32_t   sid;              /* the call's stream, 0 before it */
    bool      started;          /* the stream is a drone channel (dg_ingest_start_io done) */
    bool      resp;             /* response HEADERS submitted */
    bool      ending;           /* trailers due after `out` */
    bool      half_closed;      /* the client sent END_STREAM */
    bool      in_cb;            /* inside nghttp2_session_mem_recv */
    bool      pumping;          /* inside pump (dg_conn_flush calls on_writable) */
    bool      bye;              /* GOAWAY submitted: the client closes */
    int       status;           /* grpc-status of the trailers */
    char      message[160];
    /* request headers */
    char      method[8], path[64], ctype[64], drone[DG_DRONE_ID_MAX + 2], auth[DG_TOKEN_LEN + 16];
    bool      hdr_long;         /* a header we read was longer than we keep */
    dg_buf_t  in;               /* gRPC bytes received, not decoded */
    dg_buf_t  out;              /* ServerMessage frames (with prefix) for the data provider */
    size_t    out_off;
} grpc_conn_t;

static grpc_conn_t *G(dg_conn_t *c) { return c->proto; }

long dg_grpc_frame(const uint8_t *p, size_t n, size_t max)
{
    if (n < 1) return DG_GRPC_MORE;
    if (p[0] != 0) return DG_GRPC_COMPRESSED;
    if (n < 5) return DG_GRPC_MORE;
    uint32_t len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (len > max) return DG_GRPC_TOO_BIG;
    return n - 5 >= len ? (long)len : DG_GRPC_MORE;
}

int dg_grpc_status_of(uint16_t code)
{
    switch (code) {
    case 1000: return ST_OK;
    case 1001: return ST_UNAVAILABLE;          /* drain, idle timeout */
    case 1013: return ST_UNAVAILABLE;          /* store unavailable: try again */
    case 1008: return ST_RESOURCE_EXHAUSTED;   /* rate limit, backlog full */
    case 1009: return ST_RESOURCE_EXHAUSTED;   /* message too big */
    case 4409: return ST_ABORTED;              /* replaced by a newer connection */
    case 1003: case 1007: return ST_INVALID_ARGUMENT;
    default:   return ST_INTERNAL;
    }
}

/* ---- output ---- */

static void pump(dg_conn_t *c)
{
    grpc_conn_t *g = G(c);
    if (!g || g->in_cb || g->pumping || c->dead) return;
    g->pumping = true;
    uint8_t was = c->cork;
    c->cork = 1;
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(g->ng, &data);
        if (n < 0) { c->cork = was; g->pumping = false; dg_conn_close(c, true); return; }
        if (n == 0) break;
        if (dg_conn_send(c, data, (size_t)n) < 0) break;
    }
    c->cork = was;
    if (!c->dead) dg_conn_flush(c);
    g->pumping = false;
    /* after a GOAWAY the client closes (a FIN from us right after the last
     * frames made grpc-core report "Socket closed" instead of the status) */
    if (!c->dead && !c->closing && !nghttp2_session_want_read(g->ng) && !nghttp2_session_want_write(g->ng))
        dg_conn_close(c, false);   /* after what is queued */
}

static ssize_t read_out(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    dg_conn_t *c = ud;
    grpc_conn_t *g = G(c);
    size_t avail = g->out.len - g->out_off;
    if (avail) {
        size_t n = avail < length ? avail : length;
        memcpy(buf, g->out.data + g->out_off, n);
        g->out_off += n;
        if (g->out_off == g->out.len) g->out.len = g->out_off = 0;
        return (ssize_t)n;
    }
    if (!g->ending) return NGHTTP2_ERR_DEFERRED;
    char st[8];
    snprintf(st, sizeof st, "%d", g->status);
    nghttp2_nv tr[2] = {
        { (uint8_t *)"grpc-status", (uint8_t *)st, 11, strlen(st), NGHTTP2_NV_FLAG_NONE },
        { (uint8_t *)"grpc-message", (uint8_t *)g->message, 12, strlen(g->message), NGHTTP2_NV_FLAG_NONE },
    };
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (nghttp2_submit_trailer(ng, sid, tr, g->message[0] ? 2 : 1) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    return 0;
}

static void respond(dg_conn_t *c)
{
    grpc_conn_t *g = G(c);
    if (g->resp) return;
    g->resp = true;
    nghttp2_nv h[2] = {
        { (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE },
        { (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE },
    };
    nghttp2_data_provider prd = { .source.ptr = NULL, .read_callback = read_out };
    nghttp2_submit_response(g->ng, g->sid, h, 2, &prd);
}

/* Percent-encode a grpc-message (the gRPC spec: printable ASCII except %). */
static void set_message(grpc_conn_t *g, const char *msg)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && o + 4 < sizeof g->message; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '%') g->message[o++] = (char)*p;
        else o += (size_t)snprintf(g->message + o, sizeof g->message - o, "%%%02X", *p);
    }
    g->message[o] = '\0';
}

/* End the call with a status: trailers after the pending messages, or a
 * trailers-only response before any. */
static void end_call(dg_conn_t *c, int status, const char *msg)
{
    grpc_conn_t *g = G(c);
    if (g->ending || !g->sid) return;
    g->ending = true;
    g->status = status;
    set_message(g, msg ? msg : "");
    dg_debug("grpc: drone %s call ends: grpc-status %d (%s)", g->drone[0] ? g->drone : "-", status, g->message);
    if (!g->resp) {
        g->resp = true;
        char st[8];
        snprintf(st, sizeof st, "%d", status);
        nghttp2_nv h[4] = {
            { (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE },
            { (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE },
            { (uint8_t *)"grpc-status", (uint8_t *)st, 11, strlen(st), NGHTTP2_NV_FLAG_NONE },
            { (uint8_t *)"grpc-message", (uint8_t *)g->message, 12, strlen(g->message), NGHTTP2_NV_FLAG_NONE },
        };
        nghttp2_submit_response(g->ng, g->sid, h, g->message[0] ? 4 : 3, NULL);
    } else {
        nghttp2_session_resume_data(g->ng, g->sid);
    }
    pump(c);
}

/* One ServerMessage (in w->scratch) to the call. */
static void send_scratch(dg_conn_t *c, int rc)
{
    grpc_conn_t *g = G(c);
    if (rc || g->ending) return;
    dg_buf_t *m = &c->w->scratch;
    if (g->out.len - g->out_off + m->len + 5 > GRPC_OUT_MAX) {   /* the client does not read */
        dg_conn_close(c, true);
        return;
    }
    uint8_t pre[5] = { 0, (uint8_t)(m->len >> 24), (uint8_t)(m->len >> 16), (uint8_t)(m->len >> 8), (uint8_t)m->len };
    if (dg_buf_append(&g->out, pre, 5) || dg_buf_append(&g->out, m->data, m->len)) { dg_conn_close(c, true); return; }
    respond(c);
    nghttp2_session_resume_data(g->ng, g->sid);
    pump(c);
}

/* ---- the drone channel's transport (core/ingest.h) ---- */

static void maybe_finish(dg_conn_t *c);
static void check_end(dg_conn_t *c);

static void io_session(dg_conn_t *c, int known, uint64_t seq);
static void io_ack(dg_conn_t *c, uint64_t seq)
{
    send_scratch(c, dg_pb_ack(&c->w->scratch, seq));
    maybe_finish(c);
}
static void io_command(dg_conn_t *c, const dg_command_t *cmd)
{
    send_scratch(c, dg_pb_command(&c->w->scratch, cmd->id, cmd->name, cmd->args));
}
static void io_error(dg_conn_t *c, const dg_decode_error_t *e, uint64_t suppressed)
{
    if (suppressed) {
        char msg[128];
        snprintf(msg, sizeof msg, "%" PRIu64 " more rejected messages were not reported", suppressed);
        send_scratch(c, dg_pb_error(&c->w->scratch, false, 0, "too_many_errors", NULL, msg));
        return;
    }
    send_scratch(c, dg_pb_error(&c->w->scratch, e->has_seq, e->seq, e->code, e->field, e->message));
    maybe_finish(c);   /* a rejected reused seq may be the last one taken in */
}
static void io_close(dg_conn_t *c, uint16_t code, const char *reason)
{
    end_call(c, dg_grpc_status_of(code), reason);
}
static bool io_closed(dg_conn_t *c) { return !G(c) || G(c)->ending; }

static const dg_drone_io_t dg_grpc_io = {
    .name = "grpc", .transport = DG_TR_GRPC, .ws = false,
    .session = io_session, .ack = io_ack, .error = io_error,
    .command = io_command, .close = io_close, .closed = io_closed,
};

/* Decode the complete messages in `in` (not before the session message). */
static void process(dg_conn_t *c)
{
    grpc_conn_t *g = G(c);
    if (!g->started || dg_drone_chan(c)->session_wait) return;
    size_t off = 0, max = (size_t)c->w->srv->cfg->max_message;
    if (!g->in.len) { check_end(c); return; }
    int64_t now_us = dg_ingest_read_begin();   /* received_at, registry, counters: once per read */
    while (!g->ending && !c->dead && !c->closing && off < g->in.len) {   /* (in.data may be NULL) */
        long len = dg_grpc_frame((const uint8_t *)g->in.data + off, g->in.len - off, max);
        if (len == DG_GRPC_MORE) break;
        if (len == DG_GRPC_COMPRESSED) { end_call(c, ST_UNIMPLEMENTED, "compressed messages are not supported"); break; }
        if (len == DG_GRPC_TOO_BIG) {
            dg_inc(&dg_metrics.rejected[DG_REJ_TOO_BIG], 1);
            end_call(c, ST_RESOURCE_EXHAUSTED, "message larger than --max-message");
            break;
        }
        int rc = dg_ingest_pb(c, (const uint8_t *)g->in.data + off + 5, (size_t)len, now_us);
        off += 5 + (size_t)len;
        if (rc) { dg_ingest_close(c, (uint16_t)rc, rc == 1008 ? "rate limit exceeded" : "channel failed"); break; }
    }
    dg_ingest_read_end(c);
    if (off) {
        c->last_rx_ms = dg_mono_ms();   /* once per read, not per message (it showed in profiles) */
        memmove(g->in.data, g->in.data + off, g->in.len - off);
        g->in.len -= off;
    }
    check_end(c);
}

/* After a half-close and the input decoded (not before the session
 * message: until then the input waits): a partial message left is an
 * error, else OK once everything taken in is acked. */
static void check_end(dg_conn_t *c)
{
    grpc_conn_t *g = G(c);
    if (!g->half_closed || g->ending || !g->started || dg_drone_chan(c)->session_wait) return;
    if (g->in.len) { end_call(c, ST_INTERNAL, "the stream ended inside a message"); return; }
    maybe_finish(c);
}

/* Everything taken in has its answer: acked, or rejected by the store as a
 * reused seq (never acked: once the highest seq taken in is rejected and no
 * durable seq waits for its ack, nothing more will come). */
static bool settled(dg_conn_t *c)
{
    const dg_drone_chan_t *d = dg_drone_chan(c);
    if (!d->has_in) return true;
    bool sent = d->has_sent;
    if (sent && d->ack_sent >= d->max_in) return true;
    bool ack_owed = d->has_pending && (!sent || d->ack_pending > d->ack_sent);
    return d->has_rej && d->rej_max >= d->max_in && !ack_owed;
}

/* After a half-close: OK once everything taken in is settled (acked or
 * rejected). */
static void maybe_finish(dg_conn_t *c)
{
    grpc_conn_t *g = G(c);
    if (!g->half_closed || g->ending || !g->started || dg_drone_chan(c)->session_wait) return;
    if (g->in.len) return;   /* a partial message, then END_STREAM: process() ended it */
    if (!settled(c)) return;
    end_call(c, ST_OK, "");
}

static void io_session(dg_conn_t *c, int known, uint64_t seq)
{
    respond(c);
    send_scratch(c, dg_pb_session(&c->w->scratch, known, seq));
    process(c);   /* messages (and a half-close) that came while the session was looked up */
}

/* ---- nghttp2 callbacks ---- */

static void keep(char *dst, size_t cap, const uint8_t *v, size_t n, bool *long_)
{
    if (n >= cap) { *long_ = true; n = cap - 1; }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    dg_conn_t *c = ud;
    grpc_conn_t *g = G(c);
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    if (g->sid) {   /* one call per connection */
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    g->sid = f->hd.stream_id;
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *v, size_t vl, uint8_t flags, void *ud)
{
    dg_conn_t *c = ud;
    grpc_conn_t *g = G(c);
    if (f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != g->sid || g->started) return 0;
#define IS(s) (nl == sizeof(s) - 1 && !memcmp(name, s, nl))
    if (IS(":method")) keep(g->method, sizeof g->method, v, vl, &g->hdr_long);
    else if (IS(":path")) keep(g->path, sizeof g->path, v, vl, &g->hdr_long);
    else if (IS("content-type")) keep(g->ctype, sizeof g->ctype, v, vl, &g->hdr_long);
    else if (IS("drone-id")) keep(g->drone, sizeof g->drone, v, vl, &g->hdr_long);
    else if (IS("authorization")) keep(g->auth, sizeof g->auth, v, vl, &g->hdr_long);
#undef IS
    return 0;
}

static void reject(dg_conn_t *c, int status, const char *msg, int crej)
{
    if (crej >= 0) dg_inc(&dg_metrics.conn_rejected[crej], 1);
    end_call(c, status, msg);
}

/* The request headers are complete: validate, then the stream becomes the
 * drone's channel. */
static void start_call(dg_conn_t *c)
{
    grpc_conn_t *g = G(c);
    const dg_config_t *cfg = c->w->srv->cfg;
    if (strcmp(g->method, "POST") || strncmp(g->ctype, "application/grpc", 16)) {
        reject(c, ST_UNIMPLEMENTED, "not a gRPC request (POST, content-type application/grpc)", DG_CREJ_BAD_REQUEST);
        return;
    }
    if (strcmp(g->path, GRPC_PATH)) {
        reject(c, ST_UNIMPLEMENTED, "unknown method: this server has " GRPC_PATH, DG_CREJ_BAD_REQUEST);
        return;
    }
    size_t idlen = strlen(g->drone);
    if (g->hdr_long || !dg_drone_id_valid(g->drone, idlen)) {
        reject(c, ST_INVALID_ARGUMENT, "metadata drone-id: use 1-64 characters of A-Z a-z 0-9 . _ -", DG_CREJ_BAD_ID);
        return;
    }
    if (c->w->draining) { reject(c, ST_UNAVAILABLE, "server is shutting down", -1); return; }
    if (cfg->auth_secret[0]) {
        const char *t = g->auth;
        bool ok = !strncasecmp(t, "Bearer ", 7);
        if (ok) { t += 7; ok = dg_auth_check(cfg->auth_secret, g->drone, idlen, t, strlen(t)); }
        if (!ok) {
            reject(c, ST_UNAUTHENTICATED, "missing or invalid token for this drone (metadata authorization: Bearer)", DG_CREJ_AUTH);
            return;
        }
    }
    dg_drone_t *d = dg_registry_get(c->w->srv->registry, g->drone, idlen, true);
    if (!d) { reject(c, ST_UNAVAILABLE, "out of memory", -1); return; }
    g->started = true;
    dg_ingest_start_io(c, d, &dg_grpc_io, &dg_grpc_conn_ops);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    dg_conn_t *c = ud;
    grpc_conn_t *g = G(c);
    if (f->hd.stream_id == 0 || f->hd.stream_id != g->sid) return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST && !g->started && !g->ending)
        start_call(c);
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        g->half_closed = true;
        dg_debug("grpc: drone %s half-closed its call", g->drone);
        if (g->started) {
            process(c);   /* ends with check_end(): now, or after the session message */
        } else if (!g->ending) {
            end_call(c, ST_INTERNAL, "the stream ended before the call started");
        }
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *data, size_t len, void *ud)
{
    dg_conn_t *c = ud;
    grpc_conn_t *g = G(c);
    if (sid != g->sid || !g->started || g->ending) return 0;
    size_t max = (size_t)c->w->srv->cfg->max_message + 5;
    if (g->in.len + len > max + 16384) {   /* more than one message's worth undecoded */
        if (dg_drone_chan(c)->session_wait) return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (dg_buf_append(&g->in, data, len)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    process(c);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t err, void *ud)
{
    dg_conn_t *c = ud;
    grpc_conn_t *g = G(c);
    if (sid != g->sid) return 0;
    /* the call is over (trailers out, or the client cancelled): so is the connection */
    if (!g->ending) { g->ending = true; g->status = ST_OK; }   /* cancelled: nothing more to send */
    if (!g->bye) {
        g->bye = true;
        nghttp2_submit_goaway(ng, NGHTTP2_FLAG_NONE, sid, NGHTTP2_NO_ERROR, NULL, 0);
    }
    return 0;
}

/* ---- the connection's handlers (conn.h) ---- */

static void grpc_on_open(dg_conn_t *c)
{
    grpc_conn_t *g = calloc(1, sizeof *g);
    nghttp2_session_callbacks *cb = NULL;
    if (!g || nghttp2_session_callbacks_new(&cb)) { free(g); dg_conn_close(c, true); return; }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    int rc = nghttp2_session_server_new(&g->ng, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rc) { free(g); dg_conn_close(c, true); return; }
    c->proto = g;
    nghttp2_settings_entry iv[2] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1 },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384 },
    };
    nghttp2_submit_settings(g->ng, NGHTTP2_FLAG_NONE, iv, 2);
    pump(c);
}

static void grpc_on_data(dg_conn_t *c, uint8_t *p, size_t n)
{
    grpc_conn_t *g = G(c);
    if (!g) return;
    c->last_rx_ms = dg_mono_ms();
    g->in_cb = true;
    ssize_t r = nghttp2_session_mem_recv(g->ng, p, n);
    g->in_cb = false;
    if (r < 0) {   /* not HTTP/2, or a protocol error: nghttp2 queued a GOAWAY when it could */
        pump(c);
        if (!c->dead) dg_conn_close(c, false);
        return;
    }
    pump(c);
}

static void grpc_on_writable(dg_conn_t *c)
{
    pump(c);
}

static void grpc_on_close(dg_conn_t *c)
{
    grpc_conn_t *g = G(c);
    if (g && g->started) dg_ingest_release(c);
    if (g) {
        nghttp2_session_del(g->ng);
        dg_buf_free(&g->in);
        dg_buf_free(&g->out);
        free(g);
    }
    c->proto = NULL;
}

static void grpc_on_tick(dg_conn_t *c, int64_t now)
{
    grpc_conn_t *g = G(c);
    if (!g) return;
    const dg_config_t *cfg = c->w->srv->cfg;
    if (!g->started) {
        if (now >= c->deadline_ms && !g->ending) {
            dg_inc(&dg_metrics.conn_rejected[DG_CREJ_HANDSHAKE_TIMEOUT], 1);
            dg_conn_close(c, true);
        }
        return;
    }
    if (g->ending) {
        if (now - c->last_rx_ms >= 5000) dg_conn_close(c, true);   /* the client never finished */
        return;
    }
    if (now - c->last_rx_ms >= cfg->idle_timeout_ms) {
        end_call(c, ST_UNAVAILABLE, "idle timeout");
    } else if (now - c->last_rx_ms >= cfg->ping_interval_ms && now - dg_drone_chan(c)->last_ping_ms >= cfg->ping_interval_ms) {
        dg_drone_chan(c)->last_ping_ms = now;
        nghttp2_submit_ping(g->ng, NGHTTP2_FLAG_NONE, NULL);
        pump(c);
    }
}

static void grpc_on_drain(dg_conn_t *c)
{
    grpc_conn_t *g = G(c);
    if (!g) return;
    if (g->started || g->sid) end_call(c, ST_UNAVAILABLE, "server shutting down");
    if (!g->bye) {
        g->bye = true;
        nghttp2_submit_goaway(g->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(g->ng),
                              NGHTTP2_NO_ERROR, NULL, 0);
    }
    pump(c);
    /* Our last frames (trailers, GOAWAY) are out: close now, which lingers
     * (grpc_on_linger: no FIN from us, input read and dropped) until the
     * client closes, bounded by the drain deadline. Left open, the drain saw
     * nothing pending (no output, not lingering) and closed the socket at
     * once: a FIN right behind the trailers, which grpc-core sometimes
     * reported as "Socket closed" instead of the status (the ASan flake of
     * test_grpc::test_drain_acks_what_was_received_then_unavailable). Still
     * open only while nghttp2 holds frames back (flow control). */
    if (!c->dead && !nghttp2_session_want_write(g->ng)) dg_conn_close(c, false);
}

/* After our last frames (trailers, GOAWAY): the client closes first. A FIN
 * from us right behind them can reach grpc-core before it has read the
 * trailers ("Socket closed" instead of the status), and a close() with its
 * frames unread would reset the connection, so input is read and dropped
 * until the client's EOF (bounded by the worker's linger deadline). */
static bool grpc_on_linger(dg_conn_t *c, uint8_t *p, size_t n)
{
    return false;
}

static void grpc_on_backlog_full(dg_conn_t *c)
{
    end_call(c, ST_RESOURCE_EXHAUSTED, "backlog full: the store is unavailable, retry later");
}

const dg_conn_ops_t dg_grpc_conn_ops = {
    .name = "grpc",
    .transport = DG_TR_GRPC,
    .out_max = GRPC_OUT_MAX + (1u << 20),
    .store_fed = true,
    .family = &dg_ingest_family,   /* a drone channel once the call started */
    .on_open = grpc_on_open,
    .on_data = grpc_on_data,
    .on_writable = grpc_on_writable,
    .on_close = grpc_on_close,
    .on_tick = grpc_on_tick,
    .on_drain = grpc_on_drain,
    .on_linger = grpc_on_linger,
    .on_backlog_full = grpc_on_backlog_full,
};
