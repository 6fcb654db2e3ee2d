/* http.c - HTTP/1.1 request handling on a connection (see http.h).
 *
 * http_parser (Debian's libhttp-parser, the Node.js parser) is a streaming
 * parser with no allocation of its own: it calls back with pieces of the URL,
 * headers and body as they arrive, so requests are assembled in a small
 * per-request struct that exists only while a request is in progress.
 * Pipelined requests are answered in order. An upgrade to WebSocket hands
 * the connection (and any bytes that followed the request) to ingest.c.
 */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/auth.h"
#include "../core/ingest.h"
#include "../core/live.h"
#include "../mavlink/ws.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/reads.h"
#include "../core/server.h"
#include "../core/timefmt.h"
#include "../net/worker.h"
#include "../ws/ws.h"
#include "../core/strutil.h"

static inline dg_http_conn_t *H(dg_conn_t *c) { return dg_http_conn(c); }

static const char *reason_of(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 421: return "Misdirected Request";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default:  return "Unknown";
    }
}

static int keep_alive_of(dg_conn_t *c)
{
    return http_should_keep_alive(&H(c)->parser) && !c->w->draining;
}

void dg_http_respond(dg_conn_t *c, int status, const char *ctype, const void *body, size_t len,
                     const char *extra)
{
    int ka = keep_alive_of(c);
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "X-Content-Type-Options: nosniff\r\n%s%s\r\n",
                     status, reason_of(status), ctype, len, ka ? "" : "Connection: close\r\n",
                     extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof head) n = 0;
    uint8_t was = c->cork;
    c->cork = 1;
    dg_conn_send(c, head, (size_t)n);
    if (len && H(c)->req && H(c)->req->method != HTTP_HEAD) dg_conn_send(c, body, len);
    c->cork = was;
    dg_inc(&dg_metrics.http_requests, 1);
    H(c)->served = 1;
    if (!ka) dg_conn_close(c, false);
    else if (!was) dg_conn_flush(c);
}

void dg_http_error(dg_conn_t *c, int status, const char *msg)
{
    char body[512];
    dg_buf_t b = { 0 };
    dg_buf_puts(&b, "{\"error\":");
    /* small JSON escape of msg */
    dg_buf_puts(&b, "\"");
    for (const char *p = msg; *p; p++) {
        if (*p == '"' || *p == '\\') dg_buf_append(&b, "\\", 1);
        if ((unsigned char)*p >= 0x20) dg_buf_append(&b, p, 1);
    }
    dg_buf_puts(&b, "\"}");
    size_t n = b.len < sizeof body ? b.len : sizeof body;
    memcpy(body, b.data, n);
    dg_buf_free(&b);
    dg_http_respond(c, status, "application/json", body, n, NULL);
}

/* ---- request assembly ---- */

static dg_http_req_t *req_of(http_parser *p) { return dg_http_conn((dg_conn_t *)p->data)->req; }

static int grow_header(dg_http_req_t *r, size_t n)
{
    r->header_bytes += n;
    if (r->header_bytes > DG_HTTP_MAX_HEADERS_BYTES) { r->too_big = 1; return -1; }
    return 0;
}

static void copy_hdr(char *dst, size_t cap, const dg_buf_t *v)
{
    size_t n = v->len < cap - 1 ? v->len : cap - 1;
    if (n) memcpy(dst, v->data, n);
    dst[n] = '\0';
}

/* Headers that are compared (credentials, Origin, Host) are never truncated:
 * one that does not fit is left empty and marked overlong. A repeated one is
 * overlong too (which of two Hosts or tokens would count?). */
static void copy_whole(dg_http_req_t *r, uint8_t bit, char *dst, size_t cap)
{
    if (r->hval.len >= cap || dst[0] || (r->hval.len && memchr(r->hval.data, '\0', r->hval.len))) {
        r->overlong |= bit;
        dst[0] = '\0';
        return;
    }
    copy_hdr(dst, cap, &r->hval);
}

static void header_done(dg_http_req_t *r)
{
    if (!r->hname_len) return;
    r->hname[r->hname_len < sizeof r->hname ? r->hname_len : sizeof r->hname - 1] = '\0';
    const char *h = r->hname;
    if (!strcmp(h, "upgrade")) copy_hdr(r->upgrade, sizeof r->upgrade, &r->hval);
    else if (!strcmp(h, "connection")) copy_hdr(r->connection, sizeof r->connection, &r->hval);
    else if (!strcmp(h, "sec-websocket-key")) copy_hdr(r->ws_key, sizeof r->ws_key, &r->hval);
    else if (!strcmp(h, "sec-websocket-version")) copy_hdr(r->ws_version, sizeof r->ws_version, &r->hval);
    else if (!strcmp(h, "sec-websocket-protocol")) {
        /* several headers: join with a comma */
        size_t cur = strlen(r->ws_protocol);
        if (cur && cur + 2 < sizeof r->ws_protocol) { r->ws_protocol[cur++] = ','; r->ws_protocol[cur] = '\0'; }
        copy_hdr(r->ws_protocol + cur, sizeof r->ws_protocol - cur, &r->hval);
    } else if (!strcmp(h, "authorization")) copy_whole(r, DG_HDR_AUTHORIZATION, r->authorization, sizeof r->authorization);
    else if (!strcmp(h, "origin")) copy_whole(r, DG_HDR_ORIGIN, r->origin, sizeof r->origin);
    else if (!strcmp(h, "host")) copy_whole(r, DG_HDR_HOST, r->host, sizeof r->host);
    else if (!strcmp(h, "content-type")) copy_hdr(r->content_type, sizeof r->content_type, &r->hval);
    r->hname_len = 0;
    r->hval.len = 0;
    r->in_value = 0;
}

static int on_message_begin(http_parser *p)
{
    dg_conn_t *c = p->data;
    if (!H(c)->req) {
        H(c)->req = calloc(1, sizeof(dg_http_req_t));
        if (!H(c)->req) return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    dg_http_req_t *r = req_of(p);
    if (grow_header(r, n)) return -1;
    return dg_buf_append(&r->url, at, n) ? -1 : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    dg_http_req_t *r = req_of(p);
    if (grow_header(r, n)) return -1;
    if (r->in_value) header_done(r);
    for (size_t i = 0; i < n; i++) {
        if (r->hname_len < sizeof r->hname - 1) r->hname[r->hname_len] = (char)tolower((unsigned char)at[i]);
        r->hname_len++;
    }
    if (r->hname_len >= sizeof r->hname) {      /* too long for any header we use: never matches */
        r->hname[0] = '\x01';
        r->hname_len = sizeof r->hname - 1;
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    dg_http_req_t *r = req_of(p);
    if (grow_header(r, n)) return -1;
    r->in_value = 1;
    return dg_buf_append(&r->hval, at, n) ? -1 : 0;
}

static int on_headers_complete(http_parser *p)
{
    dg_http_req_t *r = req_of(p);
    if (r->in_value) header_done(r);
    r->method = p->method;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    dg_conn_t *c = p->data;
    dg_http_req_t *r = H(c)->req;
    if (r->body.len + n > (size_t)c->w->srv->cfg->max_http_body) { r->too_big = 2; return -1; }
    return dg_buf_append(&r->body, at, n) ? -1 : 0;
}

static void handle_request(dg_conn_t *c, dg_http_req_t *r, bool parser_upgrade);

static int on_message_complete(http_parser *p)
{
    dg_conn_t *c = p->data;
    dg_http_req_t *r = H(c)->req;
    r->complete = 1;
    if (!p->upgrade) {
        handle_request(c, r, false);
        if (!c->dead && c->ops == &dg_http_conn_ops && H(c)->awaiting) {
            /* answered later (dg_http_read_done): keep the request, parse
             * nothing after it until then (replies stay in order) */
            http_parser_pause(p, 1);
            return 0;
        }
        if (!c->dead && c->ops == &dg_http_conn_ops && H(c)->req) {  /* not upgraded */
            dg_buf_free(&H(c)->req->url);
            dg_buf_free(&H(c)->req->body);
            dg_buf_free(&H(c)->req->hval);
            free(H(c)->req);
            H(c)->req = NULL;
            c->deadline_ms = dg_mono_ms() + c->w->srv->cfg->http_idle_timeout_ms;
        }
        if (c->dead || c->closing) return -1;   /* stop parsing: nothing more to answer */
        if (c->ops == &dg_http_conn_ops && c->out.len > DG_HTTP_OUT_HIGH) {
            /* pipelining client that does not read: parse nothing more
             * until its output drains (dg_http_on_drained) */
            H(c)->blocked = 1;
            http_parser_pause(p, 1);
        }
    }
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void dg_http_init(dg_conn_t *c)
{
    http_parser_init(&H(c)->parser, HTTP_REQUEST);
    H(c)->parser.data = c;
    H(c)->req = NULL;
}

void dg_http_free(dg_conn_t *c)
{
    dg_buf_free(&H(c)->stash);
    H(c)->awaiting = 0;
    dg_http_req_t *r = H(c)->req;
    if (!r) return;
    dg_buf_free(&r->url);
    dg_buf_free(&r->body);
    dg_buf_free(&r->hval);
    free(r);
    H(c)->req = NULL;
}

void dg_http_on_drained(dg_conn_t *c)
{
    if (c->ops != &dg_http_conn_ops || !H(c)->blocked || H(c)->awaiting) return;
    if (c->dead || c->closing || c->out.len > DG_HTTP_OUT_LOW) return;
    H(c)->blocked = 0;
    dg_buf_t st = H(c)->stash;
    H(c)->stash = (dg_buf_t){ 0 };
    http_parser_pause(&H(c)->parser, 0);
    c->paused = 0;
    uint8_t was = c->cork;
    c->cork = 1;   /* the caller flushes once */
    if (st.len) dg_http_on_data(c, (uint8_t *)st.data, st.len);
    c->cork = was;
    dg_buf_free(&st);
    if (!c->dead) dg_conn_update_events(c);
}

void dg_http_await(dg_conn_t *c)
{
    H(c)->awaiting = 1;
    c->deadline_ms = INT64_MAX;   /* the read has its own timeouts */
}

void dg_http_read_done(dg_worker_t *w, struct dg_read_job *j)
{
    dg_conn_t *c = dg_worker_conn(w, j->slot, j->gen);
    if (!c || c->dead || c->closing || c->ops != &dg_http_conn_ops || !H(c)->awaiting) {
        dg_read_job_free(j);   /* the client went away meanwhile */
        return;
    }
    if (j->status >= 400) dg_http_error(c, j->status, j->err);
    else dg_http_respond(c, j->status, j->ctype, j->body.data, j->body.len, NULL);
    dg_read_job_free(j);
    H(c)->awaiting = 0;
    if (c->dead) return;
    dg_http_req_t *r = H(c)->req;
    if (r) {
        dg_buf_free(&r->url);
        dg_buf_free(&r->body);
        dg_buf_free(&r->hval);
        free(r);
        H(c)->req = NULL;
    }
    c->deadline_ms = dg_mono_ms() + w->srv->cfg->http_idle_timeout_ms;
    dg_buf_t st = H(c)->stash;
    H(c)->stash = (dg_buf_t){ 0 };
    if (!c->closing) {
        http_parser_pause(&H(c)->parser, 0);
        c->paused = 0;
        if (st.len) dg_http_on_data(c, (uint8_t *)st.data, st.len);
        if (!c->dead) dg_conn_update_events(c);
    }
    dg_buf_free(&st);
}

/* ---- query strings ---- */

int dg_http_query_param(const char *q, size_t qlen, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key), i = 0;
    while (i < qlen) {
        size_t end = i;
        while (end < qlen && q[end] != '&') end++;
        size_t eq = i;
        while (eq < end && q[eq] != '=') eq++;
        if (eq - i == klen && !memcmp(q + i, key, klen)) {
            size_t v = eq < end ? eq + 1 : end;
            long n = dg_percent_decode(q + v, end - v, out, outlen, DG_PCT_PLUS | DG_PCT_STRICT);
            if (n < 0) return -1;
            for (long k = 0; k < n; k++) {
                unsigned char ch = (unsigned char)out[k];
                if (ch < 0x20 || ch == 0x7f) return -1;   /* NUL, CR, LF, ...: never a valid value */
            }
            return 1;
        }
        i = end + 1;
    }
    return 0;
}

/* ---- routing ---- */

static int has_token(const char *list, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *s = p;
        while (*p && *p != ',') p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - s) == tl && !strncasecmp(s, tok, tl)) return 1;
    }
    return 0;
}

static void reject(dg_conn_t *c, int status, int reason, const char *msg)
{
    dg_inc(&dg_metrics.conn_rejected[reason], 1);
    dg_http_error(c, status, msg);
}

/* Sec-WebSocket-Key: base64 of a 16-byte nonce = 22 chars + "==". */
static bool key_ok(const char *k)
{
    if (strlen(k) != 24 || k[22] != '=' || k[23] != '=') return false;
    for (int i = 0; i < 22; i++) {
        char ch = k[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' || ch == '/'))
            return false;
    }
    return true;
}

/* Checks every WebSocket upgrade shares; fills the accept key. false when
 * a response was sent instead. */
static bool ws_handshake_ok(dg_conn_t *c, dg_http_req_t *r, char accept[29])
{
    if (r->method != HTTP_GET) { reject(c, 405, DG_CREJ_BAD_REQUEST, "use GET for a WebSocket upgrade"); return false; }
    if (!has_token(r->upgrade, "websocket") || !has_token(r->connection, "upgrade")) {
        reject(c, 426, DG_CREJ_BAD_REQUEST, "WebSocket upgrade required (Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Key)");
        return false;
    }
    if (!key_ok(r->ws_key)) {   /* RFC 6455 4.2.1: a malformed handshake gets 400 */
        reject(c, 400, DG_CREJ_BAD_REQUEST, "missing or malformed Sec-WebSocket-Key (base64 of 16 bytes)");
        return false;
    }
    if (strcmp(r->ws_version, "13")) {
        dg_inc(&dg_metrics.conn_rejected[DG_CREJ_BAD_REQUEST], 1);
        dg_http_respond(c, 426, "application/json", "{\"error\":\"unsupported WebSocket version, use 13\"}", 49,
                        "Sec-WebSocket-Version: 13\r\n");
        return false;
    }
    if (dg_ws_accept_key(r->ws_key, strlen(r->ws_key), accept)) {
        reject(c, 400, DG_CREJ_BAD_REQUEST, "bad Sec-WebSocket-Key");
        return false;
    }
    return true;
}

static void send_101(dg_conn_t *c, const char *accept, const char *proto)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                     accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "", proto ? "\r\n" : "");
    dg_conn_send(c, head, (size_t)n);
    dg_inc(&dg_metrics.http_requests, 1);
}

/* The credential of a request: the Authorization Bearer token, else
 * ?token=. 1 found (*t, *tl; may be empty), 0 none, -1 unusable (a header
 * too long to hold a token, an over-long or malformed ?token=): never a match. */
static int bearer_or_query(dg_http_req_t *r, const char *q, size_t qlen, char *tok, size_t toklen,
                           const char **t, size_t *tl)
{
    if (r->overlong & DG_HDR_AUTHORIZATION) return -1;
    if (!strncasecmp(r->authorization, "Bearer ", 7)) {
        const char *b = r->authorization + 7, *e = b + strlen(b);
        while (*b == ' ' || *b == '\t') b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
        *t = b;
        *tl = (size_t)(e - b);
        return 1;
    }
    int rc = dg_http_query_param(q, qlen, "token", tok, toklen);
    if (rc == 1) { *t = tok; *tl = strlen(tok); }
    return rc;
}

static bool token_eq(const char *t, size_t tl, const char *want)
{
    return dg_auth_token_eq(t, tl, want, strlen(want));
}

static bool host_is_ours(const dg_config_t *cfg, const dg_http_req_t *r)
{
    return !(r->overlong & DG_HDR_HOST) && dg_auth_host_ok(r->host, cfg->listen, cfg->allowed_hosts);
}

static void misdirected(dg_conn_t *c, dg_http_req_t *r)
{
    char shown[201], msg[400];
    size_t n = 0;   /* the Host as sent, but only the characters a host may have */
    for (const char *p = r->host; *p && n < sizeof shown - 1; p++)
        if (isalnum((unsigned char)*p) || strchr(".-_:[]", *p)) shown[n++] = *p;
    shown[n] = '\0';
    snprintf(msg, sizeof msg, "Host %s is not a name of this gateway (DNS rebinding protection): "
             "add it to --allowed-hosts", (r->overlong & DG_HDR_HOST) ? "(too long)" : shown);
    reject(c, 421, DG_CREJ_AUTH, msg);
}

bool dg_http_operator_ok(dg_conn_t *c, dg_http_req_t *r, const char *q, size_t qlen, bool command_scope)
{
    const dg_config_t *cfg = c->w->srv->cfg;
    /* operator tokens given => the API is protected, with or without drone auth */
    if (!cfg->auth_secret[0] && !cfg->operator_token[0] && !cfg->operator_read_token[0]) {
        /* open API: any web page could read it through a DNS name rebound
         * to us; only requests that name the gateway in Host get in */
        if (host_is_ours(cfg, r) || (r->origin[0] && has_token(cfg->allowed_origins, r->origin))) return true;
        misdirected(c, r);
        return false;
    }
    char tok[DG_OPERATOR_TOKEN_MAX + 1];
    const char *t = NULL;
    size_t tl = 0;
    if (bearer_or_query(r, q, qlen, tok, sizeof tok, &t, &tl) == 1) {
        if (token_eq(t, tl, cfg->operator_token)) return true;
        if (token_eq(t, tl, cfg->operator_read_token)) {
            if (!command_scope) return true;
            reject(c, 403, DG_CREJ_AUTH, "this operator token has read scope only");
            return false;
        }
    }
    reject(c, 401, DG_CREJ_AUTH, "operator token required (Authorization: Bearer TOKEN or ?token=TOKEN)");
    return false;
}

bool dg_http_origin_ok(dg_conn_t *c, dg_http_req_t *r)
{
    const dg_config_t *cfg = c->w->srv->cfg;
    if (!r->origin[0] && !(r->overlong & DG_HDR_ORIGIN)) return true;   /* not a browser request */
    const char *o = r->origin;
    if (o[0] && has_token(cfg->allowed_origins, o)) return true;
    const char *hostpart = strstr(o, "://");
    if (hostpart && r->host[0] && !strcasecmp(hostpart + 3, r->host)) {
        /* same origin, if the Host is really ours and not the attacker's name */
        if (host_is_ours(cfg, r)) return true;
        misdirected(c, r);
        return false;
    }
    reject(c, 403, DG_CREJ_AUTH, "Origin not allowed (add it to --allowed-origins)");
    return false;
}

void dg_http_upgrade_live(dg_conn_t *c, dg_http_req_t *r, const char *q, size_t qlen)
{
    char accept[29], filter[8192];
    if (!dg_http_origin_ok(c, r) || !dg_http_operator_ok(c, r, q, qlen, false)) return;
    if (!ws_handshake_ok(c, r, accept)) return;
    int rc = dg_http_query_param(q, qlen, "drones", filter, sizeof filter);
    if (rc < 0) { reject(c, 400, DG_CREJ_BAD_REQUEST, "drones= must be a comma list of drone ids (at most 8 KiB)"); return; }
    if (rc == 0) filter[0] = '\0';
    const char *proto = has_token(r->ws_protocol, "dronegate.live.v1") ? "dronegate.live.v1" : NULL;
    send_101(c, accept, proto);
    dg_http_free(c);
    dg_live_start(c, filter);
}

/* GET /ws/{drone_id}: validate, authenticate, answer 101, hand over. */
static void upgrade(dg_conn_t *c, dg_http_req_t *r, const char *id, size_t idlen, const char *q, size_t qlen)
{
    const dg_config_t *cfg = c->w->srv->cfg;
    if (!dg_drone_id_valid(id, idlen)) {
        reject(c, 400, DG_CREJ_BAD_ID, "invalid drone id: use 1-64 characters of A-Z a-z 0-9 . _ -");
        return;
    }
    char accept[29];
    if (!ws_handshake_ok(c, r, accept)) return;
    if (cfg->auth_secret[0]) {
        char tok[DG_TOKEN_LEN + 1];
        const char *t = NULL;
        size_t tl = 0;
        if (bearer_or_query(r, q, qlen, tok, sizeof tok, &t, &tl) != 1 ||
            !dg_auth_check(cfg->auth_secret, id, idlen, t, tl)) {
            reject(c, 401, DG_CREJ_AUTH, "missing or invalid token for this drone");
            return;
        }
    }
    /* subprotocol */
    const char *proto = NULL;
    if (r->ws_protocol[0]) {
        /* dronegate.pb.v1 is chosen whenever the client offers it */
        if (has_token(r->ws_protocol, "dronegate.pb.v1")) proto = "dronegate.pb.v1";
        else if (has_token(r->ws_protocol, "dronegate.json.v1")) proto = "dronegate.json.v1";
        else if (has_token(r->ws_protocol, DG_MAV_WS_PROTOCOL)) proto = DG_MAV_WS_PROTOCOL;
        else {
            reject(c, 400, DG_CREJ_BAD_REQUEST,
                   "unsupported WebSocket subprotocol: this build speaks dronegate.json.v1, dronegate.pb.v1 and mavlink2");
            return;
        }
    }
    dg_drone_t *d = dg_registry_get(c->w->srv->registry, id, idlen, true);
    if (!d) { dg_http_error(c, 503, "out of memory"); return; }
    send_101(c, accept, proto);
    dg_http_free(c);
    if (proto && !strcmp(proto, "dronegate.pb.v1")) dg_ingest_start_io(c, d, &dg_ws_pb_io, &dg_ingest_conn_ops);
    else if (proto && !strcmp(proto, DG_MAV_WS_PROTOCOL)) dg_ingest_start_io(c, d, &dg_mav_ws_io, &dg_ingest_conn_ops);
    else dg_ingest_start(c, d);
}

/* `parser_upgrade`: http_parser itself saw an upgrade and stopped, so the
 * connection may switch protocols. From inside a parser callback it may
 * not: the parser state lives in pstate, which the WebSocket state replaces. */
static void handle_request(dg_conn_t *c, dg_http_req_t *r, bool parser_upgrade)
{
    if (dg_buf_append(&r->url, "", 1)) { dg_conn_close(c, true); return; }
    r->url.len--;
    const char *url = r->url.data;
    const char *qm = memchr(url, '?', r->url.len);
    size_t plen = qm ? (size_t)(qm - url) : r->url.len;
    const char *q = qm ? qm + 1 : "";
    size_t qlen = qm ? r->url.len - plen - 1 : 0;
    bool ws_path = (plen > 4 && !memcmp(url, "/ws/", 4)) || (plen == 12 && !memcmp(url, "/api/v1/live", 12));
    if (ws_path && !parser_upgrade && has_token(r->upgrade, "websocket")) {
        /* upgrade headers the HTTP parser did not accept as an upgrade
         * (e.g. odd whitespace in Connection) */
        reject(c, 400, DG_CREJ_BAD_REQUEST, "malformed WebSocket upgrade request");
        dg_conn_close(c, false);
        return;
    }
    if (plen > 4 && !memcmp(url, "/ws/", 4)) {
        if (c->w->draining) { dg_http_error(c, 503, "server is shutting down"); return; }
        upgrade(c, r, url + 4, plen - 4, q, qlen);
        return;
    }
    if (plen == 12 && !memcmp(url, "/api/v1/live", 12)) {
        if (c->w->draining) { dg_http_error(c, 503, "server is shutting down"); return; }
        dg_http_upgrade_live(c, r, q, qlen);
        return;
    }
    if (!dg_api_handle(c, r, url, plen, q, qlen, keep_alive_of(c)))
        dg_http_error(c, 404, "not found");
}

void dg_http_on_data(dg_conn_t *c, uint8_t *p, size_t n)
{
    size_t done = http_parser_execute(&H(c)->parser, &settings, (const char *)p, n);
    if (c->dead) return;
    if (c->ops != &dg_http_conn_ops) {
        /* upgraded: bytes after the request belong to the new protocol */
        if (done < n) c->ops->on_data(c, p + done, n - done);
        return;
    }
    if (c->closing) return;
    enum http_errno e = HTTP_PARSER_ERRNO(&H(c)->parser);
    if (e == HPE_PAUSED && (H(c)->awaiting || H(c)->blocked)) {
        /* keep what follows the awaited (or blocked) request; read nothing
         * more until its reply is out (at most one read's worth is kept) */
        if (done < n && dg_buf_append(&H(c)->stash, p + done, n - done)) { dg_conn_close(c, true); return; }
        c->paused = 1;
        dg_conn_update_events(c);
        return;
    }
    if (e != HPE_OK) {
        dg_http_req_t *r = H(c)->req;
        int too_big = r ? r->too_big : 0;
        H(c)->parser.flags = 0;
        if (too_big == 1) reject(c, 431, DG_CREJ_BAD_REQUEST, "request headers too large");
        else if (too_big == 2) reject(c, 413, DG_CREJ_BAD_REQUEST, "request body too large");
        else reject(c, 400, DG_CREJ_BAD_REQUEST, http_errno_description(e));
        dg_conn_close(c, false);
        return;
    }
    if (H(c)->parser.upgrade && c->ops == &dg_http_conn_ops && H(c)->req && H(c)->req->complete) {
        /* an Upgrade request we did not accept (wrong path etc.) */
        dg_http_req_t *r = H(c)->req;
        handle_request(c, r, true);
        if (!c->dead && c->ops != &dg_http_conn_ops && done < n) c->ops->on_data(c, p + done, n - done);   /* upgraded */
        else if (!c->dead && c->ops == &dg_http_conn_ops) dg_conn_close(c, false);
    }
}

/* ---- HTTP's connection handlers (conn.h): every accepted connection
 * starts with these; an upgrade switches to the drone or live table ---- */

static void http_on_writable(dg_conn_t *c)
{
    /* a response being read (slowly) is not an idle connection */
    if (H(c)->served && !H(c)->awaiting)
        c->deadline_ms = dg_mono_ms() + c->w->srv->cfg->http_idle_timeout_ms;
    dg_http_on_drained(c);
}

static void http_on_tick(dg_conn_t *c, int64_t now)
{
    if (now < c->deadline_ms) return;
    if (!H(c)->served) dg_inc(&dg_metrics.conn_rejected[DG_CREJ_HANDSHAKE_TIMEOUT], 1);
    dg_conn_close(c, true);
}

const dg_conn_ops_t dg_http_conn_ops = {
    .name = "http",
    .transport = DG_TR_HTTP,
    .out_max = DG_HTTP_OUT_MAX,
    .on_open = dg_http_init,
    .on_data = dg_http_on_data,
    .on_writable = http_on_writable,
    .on_close = dg_http_free,
    .on_tick = http_on_tick,
};
