/* http.h - HTTP/1.1 on a connection: request parsing (http_parser from
 * Debian's libhttp-parser), routing, responses, keep-alive, and the
 * WebSocket upgrade handshake. Runs on the connection's worker thread.
 */
#ifndef DG_HTTP_H
#define DG_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"
#include "../core/record.h"
#include "../net/conn.h"

#define DG_HTTP_MAX_HEADERS_BYTES 16384
#define DG_HDR_AUTHORIZATION 1
#define DG_HDR_ORIGIN        2
#define DG_HDR_HOST          4
/* Pipelining backpressure: after a response, no further request of the
 * connection is parsed (and nothing more is read) while more than
 * DG_HTTP_OUT_HIGH bytes of output are pending; parsing resumes once the
 * output is down to DG_HTTP_OUT_LOW. One response may exceed the bound. */
#define DG_HTTP_OUT_HIGH (1024 * 1024)
#define DG_HTTP_OUT_LOW  (256 * 1024)
/* A single response may be this big (history: at most 100,000 rows). */
#define DG_HTTP_OUT_MAX  ((size_t)256 * 1024 * 1024)

/* Connection handlers of an HTTP connection (the listener's protocol). */
extern const dg_conn_ops_t dg_http_conn_ops;

typedef struct dg_http_req dg_http_req_t;

struct dg_http_req {
    int      method;            /* enum http_method */
    dg_buf_t url;               /* raw request target */
    dg_buf_t body;
    size_t   header_bytes;      /* for the size limit */
    char     hname[64];         /* current header name (lowercased, truncated) */
    size_t   hname_len;
    int      in_value;
    dg_buf_t hval;              /* current header value */
    /* headers we use (truncated copies, NUL-terminated) */
    char     upgrade[32];
    char     connection[128];
    char     ws_key[64];
    char     ws_version[8];
    char     ws_protocol[256];
    char     authorization[1100];   /* "Bearer " + a DG_OPERATOR_TOKEN_MAX token + spaces */
    char     origin[256];
    char     host[256];
    uint8_t  overlong;          /* DG_HDR_* bits: that header did not fit its copy (never compared) */
    char     content_type[128];
    int      complete;
    int      too_big;
};

/* An HTTP connection's state (its pstate, conn.h): set up by dg_http_init
 * (the table's on_open), released by dg_http_free (on_close, or before an
 * upgrade hands pstate to the WebSocket protocol). */
typedef struct dg_http_conn {
    http_parser    parser;
    dg_http_req_t *req;        /* allocated while a request is being parsed */
    uint8_t        awaiting;   /* a store read is running for req: parser
                                * paused, reads stopped (reads.h) */
    uint8_t        blocked;    /* pending output over DG_HTTP_OUT_HIGH: parser
                                * paused, reads stopped until it drains */
    uint8_t        served;     /* at least one request completed */
    dg_buf_t       stash;      /* input after the awaited request */
} dg_http_conn_t;
_Static_assert(sizeof(dg_http_conn_t) <= DG_CONN_PSTATE_BYTES, "the HTTP state must fit a connection's pstate");

static inline dg_http_conn_t *dg_http_conn(dg_conn_t *c) { return (dg_http_conn_t *)(void *)c->pstate; }

/* Feed bytes of an HTTP connection. May upgrade the connection to a drone
 * WebSocket (remaining bytes are then fed to the WebSocket session). */
void dg_http_on_data(dg_conn_t *c, uint8_t *p, size_t n);
/* Initialise the HTTP state of a new connection. */
void dg_http_init(dg_conn_t *c);
/* Release HTTP state (request buffers). */
void dg_http_free(dg_conn_t *c);
/* The connection's pending output went down (called by the connection
 * layer after a flush): resume parsing if it was blocked on output. */
void dg_http_on_drained(dg_conn_t *c);

struct dg_read_job;
/* The request being handled is answered later (its store read went to the
 * read pool, reads.h): the parser pauses after it and reading stops until
 * dg_http_read_done() delivers the reply. Call from a request handler. */
void dg_http_await(dg_conn_t *c);
/* Worker thread, from its inbox: send a read job's reply to its connection
 * (if still there) and go on with the requests after it. Frees j. */
void dg_http_read_done(dg_worker_t *w, struct dg_read_job *j);

/* Send a complete response. `extra` is additional header lines, each ending
 * in \r\n (may be NULL). Closes after sending unless keep-alive. */
void dg_http_respond(dg_conn_t *c, int status, const char *ctype, const void *body, size_t len,
                     const char *extra);
/* {"error":"msg"} with the status. */
void dg_http_error(dg_conn_t *c, int status, const char *msg);

/* A parsed query string parameter: find `key` in the query part of url;
 * copies the percent-decoded value into out (NUL-terminated). 1 found, 0 not,
 * -1 too long / malformed / holding a control character (NUL, %00-%1f, %7f,
 * raw or encoded): callers answer 400 (401 for a token). */
int  dg_http_query_param(const char *query, size_t qlen, const char *key, char *out, size_t outlen);

/* Operator access for /api/ requests and the live stream. Operator auth is
 * on when --auth-secret, --operator-token or --operator-read-token is set;
 * then the request must carry an operator token of the needed scope
 * (Authorization: Bearer T or ?token=T): 401 otherwise, 403 for a read token
 * on a command. With operator auth off, the Host must name the gateway
 * (dg_auth_host_ok), else 421: a page whose DNS name was rebound to us could
 * read the open API. Returns false when a response was sent. */
bool dg_http_operator_ok(dg_conn_t *c, dg_http_req_t *r, const char *q, size_t qlen, bool command_scope);
/* Browser requests (POSTs, the live stream): an Origin header, when present,
 * must be in --allowed-origins, or equal the Host header while that Host
 * names the gateway (dg_auth_host_ok: an IP address, a name without a dot
 * such as localhost, the --listen host or a name in --allowed-hosts). A page
 * whose DNS name was rebound to the gateway sends a matching Origin and Host
 * of its own name: 421. Any other Origin: 403. Returns false when a response
 * was sent. */
bool dg_http_origin_ok(dg_conn_t *c, dg_http_req_t *r);
/* GET /api/v1/live: WebSocket upgrade to a live watcher. */
void dg_http_upgrade_live(dg_conn_t *c, dg_http_req_t *r, const char *q, size_t qlen);

/* REST routes (api.c). Returns 1 when the request was handled. */
int  dg_api_handle(dg_conn_t *c, dg_http_req_t *r, const char *path, size_t plen,
                   const char *query, size_t qlen, int keep_alive);


#endif
