/* client.c - libdronegate: connection state machine, WebSocket client
 * framing (RFC 6455), optional TLS (OpenSSL), event-loop and thread driving.
 *
 *   IDLE --process--> CONNECTING: TCP connect -> [TLS handshake] -> HTTP
 *        upgrade -> wait for {"type":"session"}         (connect_timeout_ms)
 *   CONNECTING --session--> OPEN: queue rewound (resend from the oldest
 *        unacked), honour last_seq, write batches as the window allows
 *   any failure / EOF / close frame / silence --> BACKOFF --timer--> CONNECTING
 *   dg_client_close: flush until acked or deadline, close 1000, free
 *
 * Liveness: with ping_interval_ms set, a ping goes out after that long
 * without any byte from the gateway, and the connection is dropped after
 * twice that long (a stalled link is detected, not waited on forever).
 *
 * Locking: one recursive mutex per client around every public call and the
 * processing; callbacks run with it held.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_MESSAGE   (1u << 20)   /* server message limit */
#define HANDSHAKE_MAX 16384
#define OUT_HWM       (256u << 10) /* stop framing samples while this much is unsent */
#define CLOSE_WAIT_MS 1000         /* for the server's close answer / EOF */
#define JSON_PROTO    "dronegate.json.v1"
#define PB_PROTO      "dronegate.pb.v1"

typedef struct obuf {
    char  *data;
    size_t len, off, cap;
} obuf_t;

enum { PH_NONE = 0, PH_TCP, PH_TLS, PH_UPGRADE, PH_SESSION, PH_OPEN, PH_CLOSING };

struct dg_client {
    pthread_mutex_t mu;
    /* configuration (owned copies) */
    char *host, *port, *path, *query, *drone_id, *token, *ca_file, *sni;   /* query: NULL = none */
    struct sockaddr_storage src;   /* cfg.source_addr (port 0); src_len 0 = kernel's choice */
    socklen_t src_len;
    int   tls, tls_insecure;
    int   grpc;                /* grpc:// or grpcs://: one gRPC call instead of a WebSocket */
    int   pb;                  /* protobuf messages: grpc://, or ws:// with DG_FORMAT_PROTOBUF
                                  (subprotocol dronegate.pb.v1, one DroneMessage per binary frame) */
    dgc_h2_t *h2;              /* the call's HTTP/2 session (grpc.c) */
    unsigned batch_max, window, connect_timeout_ms, ping_interval_ms;
    double   rate, tokens;        /* token bucket for samples written (rate 0 = off) */
    int64_t  tokens_ms;
    dg_client_callbacks_t cb;
    void *user;
    /* state */
    dg_client_state_t state;
    int      phase;
    int      fd;
    struct dgc_lookup *lookup; /* a name being resolved on a thread (fd -1 meanwhile) */
    SSL_CTX *ctx;
    SSL     *ssl;
    int      tls_want_write;
    obuf_t   out, in, msg;
    int      msg_op;          /* opcode of a fragmented message in progress */
    int      close_sent;
    char     key[32];
    int64_t  deadline;        /* connect/close timeout or backoff end (ms, monotonic) */
    int64_t  last_rx, ping_sent_at;
    int      dirty;           /* samples may be sendable */
    int      close_code;      /* last close code from the server */
    dgc_queue_t   q;
    uint64_t      rejected[64];  /* written seqs the gateway rejected (never acked) */
    int           nrej;
    dgc_fq_t      fq;
    int           have_fq;
    dgc_backoff_t bo;
    uint64_t mask_rng;
    dg_client_stats_t st;
    /* thread mode */
    pthread_t th;
    int       thread_on, stop;
    int       wake[2];
    int       closing;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ buffers */

static int ob_reserve(obuf_t *b, size_t extra)
{
    if (b->off && b->off == b->len) b->off = b->len = 0;
    if (b->len + extra <= b->cap) return 0;
    if (b->off) {   /* reclaim the consumed prefix */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap) return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

static int ob_append(obuf_t *b, const void *p, size_t n)
{
    if (ob_reserve(b, n)) return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static void ob_free(obuf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static inline size_t ob_pending(const obuf_t *b) { return b->len - b->off; }

/* ---------------------------------------------------------- callbacks */

static void set_state(dg_client_t *c, dg_client_state_t s, const char *detail)
{
    if (c->state == s) return;
    c->state = s;
    if (c->cb.on_state) c->cb.on_state(c->user, s, detail ? detail : "");
}

static void report(dg_client_t *c, const char *code, uint64_t seq, const char *fmt, ...)
{
    if (!c->cb.on_error) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dg_client_error_t e = { .seq = seq, .code = code, .field = "", .message = msg, .from_server = 0 };
    c->cb.on_error(c->user, &e);
}

/* ------------------------------------------------------------ config */

void dg_client_config_init(dg_client_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->queue_max = 65536;
    cfg->full_policy = DG_FULL_REFUSE_NEWEST;
    cfg->batch_max = 64;
    cfg->window = 4096;
    cfg->backoff_min_ms = 100;
    cfg->backoff_max_ms = 10000;
    cfg->connect_timeout_ms = 10000;
    cfg->ping_interval_ms = 15000;
    cfg->max_rate = 8000;
}

static int drone_id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = '\0'; }
    return d;
}

/* ws://host[:port][/prefix] ; [v6]:port accepted. */
static int parse_url(dg_client_t *c, const char *url, char *err, size_t el)
{
    const char *p;
    if (!url) { snprintf(err, el, "no url"); return -1; }
    if (!strncmp(url, "ws://", 5)) { c->tls = 0; p = url + 5; }
    else if (!strncmp(url, "wss://", 6)) { c->tls = 1; p = url + 6; }
    else if (!strncmp(url, "grpc://", 7)) { c->tls = 0; c->grpc = 1; p = url + 7; }
    else if (!strncmp(url, "grpcs://", 8)) { c->tls = 1; c->grpc = 1; p = url + 8; }
    else { snprintf(err, el, "url must start with ws://, wss://, grpc:// or grpcs://: %s", url); return -1; }
    const char *hs = p, *he, *ps = NULL, *pe = NULL;
    if (*p == '[') {
        hs = p + 1;
        he = strchr(hs, ']');
        if (!he) { snprintf(err, el, "bad IPv6 literal in url: %s", url); return -1; }
        p = he + 1;
    } else {
        while (*p && *p != ':' && *p != '/' && *p != '?') p++;
        he = p;
    }
    if (*p == ':') {
        ps = ++p;
        while (*p >= '0' && *p <= '9') p++;
        pe = p;
        if (pe == ps || pe - ps > 5) { snprintf(err, el, "bad port in url: %s", url); return -1; }
    }
    if (*p && *p != '/' && *p != '?') { snprintf(err, el, "unexpected '%c' in url: %s", *p, url); return -1; }
    if (he == hs) { snprintf(err, el, "no host in url: %s", url); return -1; }
    const char *q = strchr(p, '?');   /* a query (e.g. token=...) goes after /ws/{id} */
    if (q) {
        if (c->grpc) { snprintf(err, el, "a grpc:// url has no query: %s", url); return -1; }
        for (const char *t = q + 1; *t; t++)
            if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f || *t == '#') {
                snprintf(err, el, "bad character in the url's query: %s", url);
                return -1;
            }
        c->query = strdup(q + 1);
        if (!c->query) { snprintf(err, el, "out of memory"); return -1; }
    }
    size_t pl = q ? (size_t)(q - p) : strlen(p);
    while (pl && p[pl - 1] == '/') pl--;
    c->host = dupn(hs, (size_t)(he - hs));
    c->port = ps ? dupn(ps, (size_t)(pe - ps)) : strdup(c->tls ? "443" : c->grpc ? "50051" : "80");
    if (c->grpc && pl) { snprintf(err, el, "a grpc:// url has no path: %s", url); return -1; }
    c->path = dupn(p, pl);
    if (!c->host || !c->port || !c->path) { snprintf(err, el, "out of memory"); return -1; }
    return 0;
}

static void free_config(dg_client_t *c)
{
    free(c->host); free(c->port); free(c->path); free(c->query); free(c->drone_id);
    free(c->token); free(c->ca_file); free(c->sni);
}

static int tls_setup(dg_client_t *c, const dg_client_config_t *cfg, char *err, size_t el)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx) { snprintf(err, el, "SSL_CTX_new failed"); return -1; }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    if (c->grpc) SSL_CTX_set_alpn_protos(c->ctx, (const unsigned char *)"\x02h2", 3);   /* HTTP/2 over TLS */
    if (cfg->tls_insecure) {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    int ok = cfg->tls_ca_file ? SSL_CTX_load_verify_locations(c->ctx, cfg->tls_ca_file, NULL)
                              : SSL_CTX_set_default_verify_paths(c->ctx);
    if (!ok) {
        unsigned long e = ERR_get_error();
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        snprintf(err, el, "cannot load CA %s: %s", cfg->tls_ca_file ? cfg->tls_ca_file : "(system store)", buf);
        return -1;
    }
    return 0;
}

dg_client_t *dg_client_open(const dg_client_config_t *cfg, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) { err = dummy; errlen = sizeof dummy; }
    err[0] = '\0';
    if (!cfg) { snprintf(err, errlen, "no config"); return NULL; }
    if (!drone_id_ok(cfg->drone_id)) {
        snprintf(err, errlen, "drone id must be 1-64 characters of [A-Za-z0-9._-]");
        return NULL;
    }
    if (cfg->token) {
        for (const char *t = cfg->token; *t; t++)
            if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f) {
                snprintf(err, errlen, "token holds a character that cannot go in an HTTP header");
                return NULL;
            }
    }
    dg_client_t *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, errlen, "out of memory"); return NULL; }
    c->fd = -1;
    c->wake[0] = c->wake[1] = -1;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->mu, &a);
    pthread_mutexattr_destroy(&a);
    if (parse_url(c, cfg->url, err, errlen)) goto fail;
    c->drone_id = strdup(cfg->drone_id);
    c->token = cfg->token && cfg->token[0] ? strdup(cfg->token) : NULL;
    c->ca_file = cfg->tls_ca_file ? strdup(cfg->tls_ca_file) : NULL;
    c->sni = strdup(cfg->tls_server_name ? cfg->tls_server_name : c->host);
    if (!c->drone_id || !c->sni) { snprintf(err, errlen, "out of memory"); goto fail; }
    c->tls_insecure = cfg->tls_insecure;
    if (cfg->format != DG_FORMAT_JSON && cfg->format != DG_FORMAT_PROTOBUF) {
        snprintf(err, errlen, "format must be DG_FORMAT_JSON or DG_FORMAT_PROTOBUF");
        goto fail;
    }
    c->pb = c->grpc || cfg->format == DG_FORMAT_PROTOBUF;
    if (cfg->source_addr && cfg->source_addr[0]) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&c->src;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&c->src;
        if (inet_pton(AF_INET, cfg->source_addr, &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
            c->src_len = sizeof *s4;
        } else if (inet_pton(AF_INET6, cfg->source_addr, &s6->sin6_addr) == 1) {
            s6->sin6_family = AF_INET6;
            c->src_len = sizeof *s6;
        } else {
            snprintf(err, errlen, "source_addr must be a numeric IPv4 or IPv6 address (got \"%.64s\")",
                     cfg->source_addr);
            goto fail;
        }
    }
    c->batch_max = cfg->batch_max ? cfg->batch_max : 64;
    c->window = cfg->window ? cfg->window : 4096;
    if (c->window < c->batch_max) c->window = c->batch_max;
    c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000;
    c->ping_interval_ms = cfg->ping_interval_ms;
    c->rate = cfg->max_rate;
    c->cb = cfg->cb;
    c->user = cfg->user;
    if (c->tls && tls_setup(c, cfg, err, errlen)) goto fail;
    uint64_t seed[2] = { 0, 0 };
    if (getrandom(seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        seed[0] = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
        seed[1] = seed[0] * 0x9e3779b97f4a7c15ull;
    }
    dgc_q_init(&c->q, cfg->queue_max ? cfg->queue_max : 65536, cfg->full_policy);
    dgc_fq_init(&c->fq);
    if (cfg->queue_file) {
        if (dgc_fq_open(&c->fq, cfg->queue_file, cfg->queue_file_sync, &c->q, err, errlen)) {
            dgc_fq_close(&c->fq);
            dgc_q_free(&c->q);
            goto fail;
        }
        c->have_fq = 1;
        c->st.replayed = c->fq.replayed;
    }
    dgc_backoff_init(&c->bo, cfg->backoff_min_ms ? cfg->backoff_min_ms : 100,
                     cfg->backoff_max_ms ? cfg->backoff_max_ms : 10000, seed[0] | 1);
    c->mask_rng = seed[1] | 1;
    c->state = DG_STATE_IDLE;
    return c;
fail:
    if (c->ctx) SSL_CTX_free(c->ctx);
    free_config(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return NULL;
}

static inline int thread_running(dg_client_t *c)
{
    return __atomic_load_n(&c->thread_on, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------- I/O */

/* >0 bytes, 0 EOF, -1 would block, -2 error (errno / TLS error set). */
static ssize_t io_read(dg_client_t *c, void *buf, size_t n)
{
    if (c->ssl) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, buf, (int)(n > 1 << 30 ? 1 << 30 : n));
        if (r > 0) { c->st.bytes_received += (uint64_t)r; return r; }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) return -1;
        if (e == SSL_ERROR_WANT_WRITE) { c->tls_want_write = 1; return -1; }
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        return -2;
    }
    for (;;) {
        ssize_t r = recv(c->fd, buf, n, 0);
        if (r >= 0) { c->st.bytes_received += (uint64_t)r; return r; }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
        return -2;
    }
}

static ssize_t io_write(dg_client_t *c, const void *buf, size_t n)
{
    if (c->ssl) {
        ERR_clear_error();
        int r = SSL_write(c->ssl, buf, (int)(n > 1 << 30 ? 1 << 30 : n));
        if (r > 0) { c->tls_want_write = 0; c->st.bytes_sent += (uint64_t)r; return r; }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE) { c->tls_want_write = 1; return -1; }
        if (e == SSL_ERROR_WANT_READ) return -1;
        return -2;
    }
    for (;;) {
        ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r >= 0) { c->st.bytes_sent += (uint64_t)r; return r; }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
        return -2;
    }
}

/* ------------------------------------------------------- connection */

static void conn_down(dg_client_t *c, const char *why);

/* ---------------------------------------------------- name lookup
 *
 * getaddrinfo() blocks for as long as DNS takes (seconds when a resolver
 * does not answer), which would stall the application's event loop. A host
 * that is an address literal is converted at once (AI_NUMERICHOST); a name
 * is resolved on a short-lived detached thread that signals an eventfd: the
 * client hands that eventfd out as its fd (POLLIN) until the answer is in,
 * and gives up at the connect timeout. The lookup is shared by the client
 * and the thread and freed by whichever lets go last, so a client closed or
 * timed out mid-lookup never waits for the thread. */
struct dgc_lookup {
    int refs;                  /* atomic: client + thread */
    int done;                  /* atomic: rc and res are set (the thread's last write to them) */
    int efd;
    int rc;
    struct addrinfo *res;
    char host[256], port[16];
};

static void lookup_release(struct dgc_lookup *l)
{
    if (__atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL)) return;
    if (l->res) freeaddrinfo(l->res);
    close(l->efd);
    free(l);
}

static const struct addrinfo lookup_hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                              .ai_flags = AI_ADDRCONFIG };

static void *lookup_main(void *arg)
{
    struct dgc_lookup *l = arg;
    struct addrinfo *res = NULL;
    l->rc = getaddrinfo(l->host, l->port, &lookup_hints, &res);
    l->res = res;
    __atomic_store_n(&l->done, 1, __ATOMIC_RELEASE);
    uint64_t one = 1;
    ssize_t w = write(l->efd, &one, sizeof one);
    (void)w;
    lookup_release(l);
    return NULL;
}

/* Start resolving c->host on a thread; NULL when that cannot start (the
 * caller then resolves inline). */
static struct dgc_lookup *lookup_start(dg_client_t *c)
{
    if (strlen(c->host) >= sizeof ((struct dgc_lookup *)0)->host ||
        strlen(c->port) >= sizeof ((struct dgc_lookup *)0)->port) return NULL;
    struct dgc_lookup *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->efd < 0) { free(l); return NULL; }
    strcpy(l->host, c->host);
    strcpy(l->port, c->port);
    l->refs = 2;
    pthread_attr_t at;
    pthread_t th;
    int ok = !pthread_attr_init(&at);
    if (ok) {
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 512 * 1024);   /* getaddrinfo and NSS modules: far less */
        ok = !pthread_create(&th, &at, lookup_main, l);
        pthread_attr_destroy(&at);
    }
    if (!ok) { close(l->efd); free(l); return NULL; }
    return l;
}

static void drop_socket(dg_client_t *c)
{
    dgc_h2_free(c->h2);
    c->h2 = NULL;
    if (c->ssl) { SSL_free(c->ssl); c->ssl = NULL; }
    if (c->fd >= 0) { close(c->fd); c->fd = -1; }
    if (c->lookup) { lookup_release(c->lookup); c->lookup = NULL; }
    c->out.len = c->out.off = 0;
    c->in.len = c->in.off = 0;
    c->msg.len = c->msg.off = 0;
    if (c->out.cap > (1u << 20)) ob_free(&c->out);
    if (c->in.cap > (1u << 20)) ob_free(&c->in);
    ob_free(&c->msg);
    c->msg_op = 0;
    c->close_sent = 0;
    c->tls_want_write = 0;
    c->phase = PH_NONE;
}

/* The connection is gone: back off, then reconnect (unless closing for good). */
static void conn_down(dg_client_t *c, const char *why)
{
    drop_socket(c);
    dgc_q_rewind(&c->q);
    if (c->stop && c->closing == 2) { set_state(c, DG_STATE_CLOSED, why); return; }
    unsigned d = dgc_backoff_next(&c->bo);
    c->deadline = now_ms() + d;
    set_state(c, DG_STATE_BACKOFF, why);
}

static void attempt_failed(dg_client_t *c, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    report(c, code, 0, "%s", msg);
    conn_down(c, msg);
}

static void send_upgrade(dg_client_t *c);

static void connect_to(dg_client_t *c, int g, struct addrinfo *res);

static void start_connect(dg_client_t *c)
{
    struct addrinfo hints = lookup_hints, *res = NULL;
    hints.ai_flags |= AI_NUMERICHOST;
    c->st.connects++;
    set_state(c, DG_STATE_CONNECTING, "");
    c->deadline = now_ms() + c->connect_timeout_ms;
    int g = getaddrinfo(c->host, c->port, &hints, &res);   /* an address literal: no lookup */
    if (g == EAI_NONAME) {
        if ((c->lookup = lookup_start(c))) return;          /* a name: on a thread (lookup_step) */
        g = getaddrinfo(c->host, c->port, &lookup_hints, &res);   /* no thread: inline */
    }
    connect_to(c, g, res);
}

/* Resolving: the answer is in (or the connect timeout passed). */
static void lookup_step(dg_client_t *c, int64_t t)
{
    struct dgc_lookup *l = c->lookup;
    if (__atomic_load_n(&l->done, __ATOMIC_ACQUIRE)) {
        int g = l->rc;
        struct addrinfo *res = l->res;
        l->res = NULL;
        c->lookup = NULL;
        lookup_release(l);
        connect_to(c, g, res);
    } else if (t >= c->deadline) {
        attempt_failed(c, "connect", "cannot resolve %s: no answer within %u ms", c->host, c->connect_timeout_ms);
    }
}

/* Connect to the k-th address of res (freed here); g: getaddrinfo's result. */
static void connect_to(dg_client_t *c, int g, struct addrinfo *res)
{
    if (g || !res) {
        if (res) freeaddrinfo(res);
        attempt_failed(c, "connect", "cannot resolve %s: %s", c->host, g ? gai_strerror(g) : "no address");
        return;
    }
    /* several addresses (localhost: ::1 and 127.0.0.1): attempt k uses the
     * k-th, so a failing one is skipped at the next attempt */
    unsigned na = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) na++;
    struct addrinfo *ai = res;
    for (unsigned k = (unsigned)((c->st.connects - 1) % na); k; k--) ai = ai->ai_next;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        freeaddrinfo(res);
        attempt_failed(c, "connect", "socket: %s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->src_len) {
        /* the port is chosen at connect() for the whole 4-tuple, so every
         * source address brings its own ephemeral port range */
#ifdef IP_BIND_ADDRESS_NO_PORT
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
        if (c->src.ss_family != ai->ai_family || bind(fd, (struct sockaddr *)&c->src, c->src_len)) {
            int e = c->src.ss_family != ai->ai_family ? EAFNOSUPPORT : errno;
            close(fd);
            freeaddrinfo(res);
            attempt_failed(c, "connect", "bind to the source address: %s", strerror(e));
            return;
        }
    }
    int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    if (r < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        attempt_failed(c, "connect", "connect to %s:%s: %s", c->host, c->port, strerror(e));
        return;
    }
    c->fd = fd;
    c->phase = PH_TCP;
}

static void tls_step(dg_client_t *c)
{
    ERR_clear_error();
    int r = SSL_connect(c->ssl);
    if (r == 1) { send_upgrade(c); return; }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) { c->tls_want_write = 0; return; }
    if (e == SSL_ERROR_WANT_WRITE) { c->tls_want_write = 1; return; }
    char buf[256] = "";
    long v = SSL_get_verify_result(c->ssl);
    unsigned long le = ERR_get_error();
    if (le) ERR_error_string_n(le, buf, sizeof buf);
    if (v != X509_V_OK)
        attempt_failed(c, "tls", "TLS handshake with %s failed: certificate: %s", c->host,
                       X509_verify_cert_error_string(v));
    else
        attempt_failed(c, "tls", "TLS handshake with %s failed: %s", c->host, buf[0] ? buf : "connection closed");
}

static void tcp_connected(dg_client_t *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) err = errno;
    if (err) {
        attempt_failed(c, "connect", "connect to %s:%s: %s", c->host, c->port, strerror(err));
        return;
    }
    if (!c->tls) { send_upgrade(c); return; }
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl) { attempt_failed(c, "tls", "SSL_new failed"); return; }
    SSL_set_fd(c->ssl, c->fd);
    struct in6_addr a6;
    struct in_addr a4;
    int is_ip = inet_pton(AF_INET, c->sni, &a4) == 1 || inet_pton(AF_INET6, c->sni, &a6) == 1;
    if (!is_ip) SSL_set_tlsext_host_name(c->ssl, c->sni);
    if (!c->tls_insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        if (is_ip) X509_VERIFY_PARAM_set1_ip_asc(vp, c->sni);
        else SSL_set1_host(c->ssl, c->sni);
    }
    c->phase = PH_TLS;
    tls_step(c);
}

static void start_call(dg_client_t *c)
{
    int v6 = strchr(c->host, ':') != NULL;
    char auth[300];
    snprintf(auth, sizeof auth, "%s%s%s:%s", v6 ? "[" : "", c->host, v6 ? "]" : "", c->port);
    c->h2 = dgc_h2_new(auth, c->drone_id, c->token);
    if (!c->h2) { attempt_failed(c, "nomem", "out of memory (HTTP/2 session)"); return; }
    c->phase = PH_SESSION;   /* the call is sent with the first flush; the session message opens it */
}

static void send_upgrade(dg_client_t *c)
{
    if (c->grpc) { start_call(c); return; }
    unsigned char raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = dgc_rand(&c->mask_rng);
        memcpy(raw + i, &r, 8);
    }
    EVP_EncodeBlock((unsigned char *)c->key, raw, sizeof raw);
    int v6 = strchr(c->host, ':') != NULL;
    int defport = !strcmp(c->port, c->tls ? "443" : "80");
    char req[2048];
    int n = snprintf(req, sizeof req,
        "GET %s/ws/%s%s%s HTTP/1.1\r\n"
        "Host: %s%s%s%s%s\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: %s\r\n"
        "User-Agent: libdronegate/" DG_CLIENT_VERSION "\r\n"
        "%s%s%s"
        "\r\n",
        c->path, c->drone_id, c->query ? "?" : "", c->query ? c->query : "", v6 ? "[" : "", c->host, v6 ? "]" : "", defport ? "" : ":",
        defport ? "" : c->port, c->key, c->pb ? PB_PROTO : JSON_PROTO,
        c->token ? "Authorization: Bearer " : "", c->token ? c->token : "", c->token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof req || ob_append(&c->out, req, (size_t)n)) {
        attempt_failed(c, "handshake", "upgrade request too long");
        return;
    }
    c->phase = PH_UPGRADE;
}

static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e - s == tl && !strncasecmp(v + s, tok, tl)) return 1;
    }
    return 0;
}

static void accept_key(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char buf[64];
    unsigned char md[20];
    unsigned int ml = 0;
    int n = snprintf(buf, sizeof buf, "%s%s", key, guid);
    EVP_Digest(buf, (size_t)n, md, &ml, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, 20);
}

/* 1 upgraded (header consumed), 0 need more, -1 failed (connection down). */
static int handle_upgrade(dg_client_t *c)
{
    const char *b = c->in.data + c->in.off;
    size_t avail = ob_pending(&c->in);
    const char *end = memmem(b, avail, "\r\n\r\n", 4);
    if (!end) {
        if (avail > HANDSHAKE_MAX) { attempt_failed(c, "handshake", "upgrade answer too long"); return -1; }
        return 0;
    }
    size_t hlen = (size_t)(end - b) + 4;
    const char *eol = memmem(b, hlen, "\r\n", 2);
    int status = 0;
    if (hlen > 12 && !memcmp(b, "HTTP/1.", 7) && b[8] == ' ' &&
        b[9] >= '0' && b[9] <= '9' && b[10] >= '0' && b[10] <= '9' && b[11] >= '0' && b[11] <= '9')
        status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    if (status != 101) {
        char code[16];
        snprintf(code, sizeof code, "http_%d", status);
        attempt_failed(c, code, "upgrade refused: %.*s%s", (int)(eol - b < 100 ? eol - b : 100), b,
                       status == 401 || status == 403 ? " (wrong token?)" : "");
        return -1;
    }
    /* JSON is the gateway's default when it names no subprotocol; protobuf
     * must be selected explicitly (a gateway without it would talk JSON) */
    const char *want = c->pb ? PB_PROTO : JSON_PROTO;
    int up = 0, conn = 0, acc = 0, proto = !c->pb, ext = 0;
    char expect[32];
    accept_key(c->key, expect);
    const char *p = eol + 2;
    while (p < end) {
        const char *le = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        if (!le) break;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon) {
            size_t nl = (size_t)(colon - p);
            const char *v = colon + 1;
            while (v < le && (*v == ' ' || *v == '\t')) v++;
            size_t vl = (size_t)(le - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
#define HDR(name) (nl == sizeof(name) - 1 && !strncasecmp(p, name, nl))
            if (HDR("upgrade")) up = vl == 9 && !strncasecmp(v, "websocket", 9);
            else if (HDR("connection")) conn = has_token(v, vl, "upgrade");
            else if (HDR("sec-websocket-accept")) acc = vl == 28 && !memcmp(v, expect, 28);
            else if (HDR("sec-websocket-protocol")) proto = vl == strlen(want) && !memcmp(v, want, vl);
            else if (HDR("sec-websocket-extensions") && vl) ext = 1;
#undef HDR
        }
        p = le + 2;
    }
    if (!up || !conn || !acc || !proto || ext) {
        attempt_failed(c, "handshake", "bad upgrade answer:%s%s%s%s%s%s", up ? "" : " no Upgrade: websocket",
                       conn ? "" : " no Connection: upgrade", acc ? "" : " wrong Sec-WebSocket-Accept",
                       proto ? "" : " the gateway did not select the subprotocol ", proto ? "" : want,
                       ext ? " unexpected extension" : "");
        return -1;
    }
    c->in.off += hlen;
    c->phase = PH_SESSION;   /* wait for the session message before sending */
    return 1;
}

/* ------------------------------------------------------ frames out */

/* A client frame's header with a fresh mask into h (14 bytes at most): its
 * length; the mask in *m32. */
static size_t frame_header(dg_client_t *c, uint8_t *h, int opcode, size_t n, uint32_t *m32)
{
    size_t hl = 0;
    h[hl++] = (uint8_t)(0x80 | opcode);
    if (n < 126) h[hl++] = (uint8_t)(0x80 | n);
    else if (n < 65536) { h[hl++] = 0x80 | 126; h[hl++] = (uint8_t)(n >> 8); h[hl++] = (uint8_t)n; }
    else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) h[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    *m32 = (uint32_t)dgc_rand(&c->mask_rng);
    memcpy(h + hl, m32, 4);
    return hl + 4;
}

/* d = s ^ mask (d == s allowed), eight bytes at a time (byte by byte was
 * 17% of a many-drone sim). */
static void mask_copy(uint8_t *d, const uint8_t *s, size_t n, uint32_t m32)
{
    uint8_t mask[4];
    memcpy(mask, &m32, 4);
    uint64_t m64 = (uint64_t)m32 | (uint64_t)m32 << 32;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        v ^= m64;
        memcpy(d + i, &v, 8);
    }
    for (; i < n; i++) d[i] = s[i] ^ mask[i & 3];
}

static int append_frame(dg_client_t *c, int opcode, const void *payload, size_t n)
{
    uint8_t h[14];
    uint32_t m32;
    size_t hl = frame_header(c, h, opcode, n, &m32);
    if (ob_reserve(&c->out, hl + n)) return -1;
    memcpy(c->out.data + c->out.len, h, hl);
    mask_copy((uint8_t *)c->out.data + c->out.len + hl, payload, n, m32);
    c->out.len += hl + n;
    return 0;
}

/* dronegate.pb.v1: samples s0 .. s0+k-1, one binary frame each, encoded and
 * masked in place in `out` (a DroneMessage{telemetry} is < 126 bytes: a
 * 6-byte header). 0 or -1 (no memory). */
static int append_pb_frames(dg_client_t *c, uint64_t s0, size_t k)
{
    if (ob_reserve(&c->out, k * (6 + DGC_REC_PB_MAX))) return -1;
    for (size_t i = 0; i < k; i++) {
        uint8_t *f = (uint8_t *)c->out.data + c->out.len;
        size_t n = dgc_rec_pb(f + 6, dgc_q_at(&c->q, s0 + i), s0 + i);
        uint32_t m32;
        frame_header(c, f, 0x2, n, &m32);
        mask_copy(f + 6, f + 6, n, m32);
        c->out.len += 6 + n;
    }
    return 0;
}

static void send_close(dg_client_t *c, uint16_t code, const char *reason)
{
    if (c->close_sent) return;
    uint8_t pl[125];
    size_t n = 0;
    if (code != 1005) {
        pl[0] = (uint8_t)(code >> 8);
        pl[1] = (uint8_t)code;
        size_t rl = strlen(reason);
        if (rl > 123) rl = 123;
        memcpy(pl + 2, reason, rl);
        n = 2 + rl;
    }
    append_frame(c, 0x8, pl, n);
    c->close_sent = 1;
}

/* Token bucket: refill, capped at 100 ms worth (at least one batch). */
static double bucket_cap(const dg_client_t *c)
{
    double cap = c->rate / 10.0;
    return cap < c->batch_max ? c->batch_max : cap;
}

static void refill(dg_client_t *c, int64_t t)
{
    if (c->rate <= 0) return;
    c->tokens += (double)(t - c->tokens_ms) * c->rate / 1000.0;
    c->tokens_ms = t;
    if (c->tokens > bucket_cap(c)) c->tokens = bucket_cap(c);
}

/* Samples a frame would take now (a full batch when that many are queued). */
static size_t batch_want(const dg_client_t *c)
{
    size_t k = dgc_q_sendable(&c->q, c->window);
    return k > c->batch_max ? c->batch_max : k;
}

/* Bytes not yet written: `out`, and for grpc:// the messages waiting for HTTP/2 window. */
static size_t out_pending(const dg_client_t *c)
{
    return ob_pending(&c->out) + (c->h2 ? dgc_h2_pending(c->h2) : 0);
}

/* One DroneMessage out: a binary frame (dronegate.pb.v1) or a gRPC message
 * of the call. 0 or -1 (no memory). */
static int send_pb(dg_client_t *c, const void *p, size_t n)
{
    return c->h2 ? dgc_h2_send(c->h2, p, n) : append_frame(c, 0x2, p, n);
}

/* Frame what the window allows into `out`, batch_max samples per frame
 * (protobuf: one DroneMessage per sample, batch_max per round). */
static void transmit(dg_client_t *c)
{
    if (c->phase != PH_OPEN || c->close_sent) return;
    char *buf = NULL;
    size_t bufcap = 0;
    while (out_pending(c) < OUT_HWM) {
        size_t k = batch_want(c);
        if (!k) break;
        if (c->rate > 0) {
            refill(c, now_ms());
            if (c->tokens < (double)k) break;   /* wait for a whole batch's worth */
            c->tokens -= (double)k;
        }
        if (c->pb) {   /* protobuf: one DroneMessage (frame or gRPC message) per sample, k per write */
            uint64_t s0 = c->q.tx + 1;
            size_t i = 0;
            if (!c->h2) i = append_pb_frames(c, s0, k) ? 0 : k;
            else for (; i < k; i++) {
                uint8_t pb[DGC_REC_PB_MAX];
                size_t n = dgc_rec_pb(pb, dgc_q_at(&c->q, s0 + i), s0 + i);
                if (dgc_h2_send(c->h2, pb, n)) break;
            }
            if (!i) break;
            size_t again = dgc_q_mark_sent(&c->q, s0 + i - 1);
            c->st.resent += again;
            c->st.sent += i - again;
            c->st.frames += i;
            if (i < k) break;
            continue;
        }
        size_t need = k * (DGC_REC_JSON_MAX + 1) + 2;
        if (need > bufcap) {
            char *nb = realloc(buf, need);
            if (!nb) break;
            buf = nb;
            bufcap = need;
        }
        char *p = buf;
        if (k > 1) *p++ = '[';
        uint64_t s0 = c->q.tx + 1;
        for (size_t i = 0; i < k; i++) {
            if (i) *p++ = ',';
            p += dgc_rec_json(p, dgc_q_at(&c->q, s0 + i), s0 + i);
        }
        if (k > 1) *p++ = ']';
        if (append_frame(c, 0x1, buf, (size_t)(p - buf))) break;
        size_t again = dgc_q_mark_sent(&c->q, s0 + k - 1);
        c->st.resent += again;
        c->st.sent += k - again;
        c->st.frames++;
    }
    free(buf);
    c->dirty = batch_want(c) > 0;   /* still work: rate-limited or output backed up */
}

/* Write out what we can. 0, or -1 when the connection went down. */
static int flush_out(dg_client_t *c)
{
    if (c->fd < 0 || c->phase == PH_TCP || c->phase == PH_TLS) return 0;
    for (int guard = 0; c->h2 && guard < 1024; guard++) {   /* HTTP/2 output first */
        const uint8_t *p;
        size_t n;
        if (dgc_h2_output(c->h2, &p, &n) || (n && ob_append(&c->out, p, n))) {
            attempt_failed(c, "protocol", "HTTP/2 session failed");
            return -1;
        }
        if (!n) break;
    }
    while (ob_pending(&c->out)) {
        ssize_t n = io_write(c, c->out.data + c->out.off, ob_pending(&c->out));
        if (n > 0) { c->out.off += (size_t)n; continue; }
        if (n == -1) break;
        conn_down(c, "connection lost (write failed)");
        report(c, "connection_lost", 0, "write to %s:%s failed: %s", c->host, c->port, strerror(errno));
        return -1;
    }
    if (c->out.off == c->out.len) c->out.off = c->out.len = 0;
    return 0;
}

/* ------------------------------------------------------- messages in */

static void on_session(dg_client_t *c, const dgc_msg_t *m)
{
    if (c->phase != PH_SESSION) return;   /* only the first message counts */
    uint64_t before = c->q.skipped;
    dgc_q_rewind(&c->q);
    int rn = dgc_q_session(&c->q, m->has_seq, m->seq);
    if (rn < 0) {
        attempt_failed(c, "nomem", "out of memory");
        return;
    }
    if (c->have_fq && (rn == 1 ? dgc_fq_rewrite(&c->fq, &c->q) :
                       c->q.skipped != before ? dgc_fq_head(&c->fq, &c->q) : 0))
        report(c, "queue_file", 0, "cannot write to %s: %s", c->fq.path, strerror(errno));
    c->phase = PH_OPEN;
    c->st.sessions++;
    c->tokens = 0;
    c->tokens_ms = now_ms();
    c->dirty = 1;
    c->deadline = 0;
    set_state(c, c->closing ? DG_STATE_CLOSING : DG_STATE_OPEN, "");
    if (c->q.skipped != before && c->cb.on_ack) c->cb.on_ack(c->user, c->q.head - 1);
}

/* A rejected sample is never acked: once every sample before it is acked
 * (it is the head), drop it so the queue does not wait for it forever. */
static void trim_rejected(dg_client_t *c)
{
    int moved = 0;
    for (int again = 1; again;) {
        again = 0;
        for (int i = 0; i < c->nrej; i++) {
            uint64_t s = c->rejected[i];
            if (s < c->q.head || s >= c->q.next) {          /* gone already */
                c->rejected[i--] = c->rejected[--c->nrej];
            } else if (s == c->q.head && s <= c->q.hi_sent) {
                dgc_q_forget(&c->q, s);
                c->st.rejected++;
                c->rejected[i--] = c->rejected[--c->nrej];
                moved = again = 1;
            }
        }
    }
    if (moved) {
        c->dirty = 1;
        if (c->have_fq) dgc_fq_head(&c->fq, &c->q);
    }
}

static void on_msg(void *ud, const dgc_msg_t *m)
{
    dg_client_t *c = ud;
    if (c->fd < 0) return;
    switch (m->type) {
    case DGC_MSG_SESSION:
        on_session(c, m);
        break;
    case DGC_MSG_ACK: {
        size_t n = dgc_q_ack(&c->q, m->seq);
        if (n && c->have_fq && dgc_fq_head(&c->fq, &c->q))
            report(c, "queue_file", 0, "cannot write to %s: %s", c->fq.path, strerror(errno));
        if (n) {
            c->st.acked += n;
            dgc_backoff_reset(&c->bo);   /* the path works end to end */
            c->dirty = 1;
            if (c->cb.on_ack) c->cb.on_ack(c->user, c->q.head - 1);
            trim_rejected(c);
        }
        break;
    }
    case DGC_MSG_ERROR: {
        c->st.server_errors++;
        if (m->has_seq && m->seq >= c->q.head && m->seq <= c->q.hi_sent && c->nrej < 64)
            c->rejected[c->nrej++] = m->seq;
        if (c->cb.on_error) {
            dg_client_error_t e = { .seq = m->has_seq ? m->seq : 0, .code = m->code[0] ? m->code : "error",
                                    .field = m->field, .message = m->message, .from_server = 1 };
            c->cb.on_error(c->user, &e);
        }
        trim_rejected(c);
        break;
    }
    case DGC_MSG_COMMAND: {
        if (!c->cb.on_command) {
            dg_client_command_ack(c, m->id, "rejected", "no command handler");
            break;
        }
        char *args = m->args ? dupn(m->args, m->args_len) : NULL;
        dg_client_command_t cmd = { .id = m->id, .name = m->name, .args_json = args ? args : "{}" };
        c->cb.on_command(c->user, &cmd);
        free(args);
        break;
    }
    default:
        break;
    }
}

/* A whole data message (op 1 text, 2 binary): JSON text on dronegate.json.v1,
 * one ServerMessage per binary frame on dronegate.pb.v1; the other kind is a
 * protocol error (close 1003, as the gateway does). 0, or -1 when the
 * connection went down. */
static int on_data(dg_client_t *c, int op, const uint8_t *p, size_t n)
{
    if (op != (c->pb ? 0x2 : 0x1)) {
        send_close(c, 1003, c->pb ? "text frame on dronegate.pb.v1" : "binary frame on dronegate.json.v1");
        flush_out(c);
        if (c->fd >= 0)
            attempt_failed(c, "protocol", "gateway sent a %s frame on %s", op == 0x1 ? "text" : "binary",
                           c->pb ? PB_PROTO : JSON_PROTO);
        return -1;
    }
    if (c->pb ? dgc_parse_server_pb(p, n, on_msg, c) < 0 : dgc_parse_server((const char *)p, n, on_msg, c) < 0)
        report(c, "protocol", 0, "gateway sent a %s (%zu bytes)",
               c->pb ? "binary frame that is not a ServerMessage" : "text frame that is not JSON", n);
    return c->fd >= 0 ? 0 : -1;
}

static void on_close_frame(dg_client_t *c, const uint8_t *p, size_t n)
{
    uint16_t code = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
    c->close_code = code;
    if (code == 4409) c->bo.fails = 64;   /* replaced by another connection of this id: wait the longest */
    if (code == 1008) {   /* over the gateway's rate limit: slow down */
        c->rate = c->rate <= 0 ? 8000 : c->rate / 2 < 50 ? 50 : c->rate / 2;
        report(c, "rate_limited", 0, "gateway closed with 1008 (rate limit): now at most %.0f samples/s", c->rate);
    }
    if (!c->close_sent) {
        if (code != 1000 || !c->closing) {
            char r[128];
            snprintf(r, sizeof r, "%.*s", (int)(n > 2 ? (n - 2 > 100 ? 100 : n - 2) : 0), (const char *)p + 2);
            report(c, "closed", 0, "gateway closed the connection: %u %s%s", code, r,
                   code == 4409 ? " (another connection of this drone id replaced this one)" : "");
        }
        send_close(c, code == 1005 || code == 1006 || code == 1015 ? 1000 : code, "");
    }
    flush_out(c);
    if (c->fd >= 0) {
        char why[64];
        snprintf(why, sizeof why, "gateway closed %u", code);
        conn_down(c, why);
    }
}

/* Parse whole frames from c->in. 0, or -1 when the connection went down. */
static int on_frames(dg_client_t *c)
{
    while (c->fd >= 0) {
        uint8_t *p = (uint8_t *)c->in.data + c->in.off;
        size_t n = ob_pending(&c->in);
        if (n < 2) return 0;
        int fin = p[0] & 0x80, rsv = p[0] & 0x70, op = p[0] & 0x0f, masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (n < 4) return 0;
            len = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (len == 127) {
            if (n < 10) return 0;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
            hl = 10;
        }
        if (rsv || masked) {
            send_close(c, 1002, "protocol error");
            flush_out(c);
            if (c->fd >= 0) attempt_failed(c, "protocol", "gateway sent a %s frame", rsv ? "RSV" : "masked");
            return -1;
        }
        if (len > MAX_MESSAGE) {
            send_close(c, 1009, "too big");
            flush_out(c);
            if (c->fd >= 0) attempt_failed(c, "protocol", "gateway frame over 1 MiB");
            return -1;
        }
        if (n - hl < len) return 0;
        uint8_t *pl = p + hl;
        c->in.off += hl + (size_t)len;
        if (op >= 0x8) {
            if (!fin || len > 125) {
                send_close(c, 1002, "bad control frame");
                flush_out(c);
                if (c->fd >= 0) attempt_failed(c, "protocol", "bad control frame from the gateway");
                return -1;
            }
            if (op == 0x9) { c->st.pings++; if (!c->close_sent) append_frame(c, 0xA, pl, (size_t)len); }
            else if (op == 0x8) { on_close_frame(c, pl, (size_t)len); return -1; }
            else if (op != 0xA) {
                send_close(c, 1002, "unknown opcode");
                flush_out(c);
                if (c->fd >= 0) attempt_failed(c, "protocol", "unknown control opcode %d", op);
                return -1;
            }
            continue;
        }
        if (op == 0x0) {
            if (!c->msg_op || c->msg.len + len > MAX_MESSAGE || ob_append(&c->msg, pl, (size_t)len)) {
                send_close(c, 1002, "bad continuation");
                flush_out(c);
                if (c->fd >= 0) attempt_failed(c, "protocol", "bad continuation frame from the gateway");
                return -1;
            }
            if (fin) {
                int mop = c->msg_op;
                c->msg_op = 0;
                int r = on_data(c, mop, (const uint8_t *)c->msg.data, c->msg.len);
                c->msg.len = 0;
                if (r < 0) return -1;
            }
        } else if (op == 0x1 || op == 0x2) {
            if (c->msg_op) {
                send_close(c, 1002, "new message inside a fragmented one");
                flush_out(c);
                if (c->fd >= 0) attempt_failed(c, "protocol", "interleaved message from the gateway");
                return -1;
            }
            if (fin) { if (on_data(c, op, pl, (size_t)len) < 0) return -1; }
            else {
                c->msg_op = op;
                c->msg.len = 0;
                if (ob_append(&c->msg, pl, (size_t)len)) { attempt_failed(c, "nomem", "out of memory"); return -1; }
            }
        } else {
            send_close(c, 1002, "unknown opcode");
            flush_out(c);
            if (c->fd >= 0) attempt_failed(c, "protocol", "unknown data opcode %d", op);
            return -1;
        }
    }
    return -1;
}

/* grpc://: the call ended (trailers or a reset). */
static void call_ended(dg_client_t *c, int st, const char *msg)
{
    c->close_code = st;
    if (st == 10) c->bo.fails = 64;   /* ABORTED: another connection of this drone id took over */
    if (st == 8 && strstr(msg, "rate")) {   /* over the gateway's rate limit: slow down */
        c->rate = c->rate <= 0 ? 8000 : c->rate / 2 < 50 ? 50 : c->rate / 2;
        report(c, "rate_limited", 0, "gateway ended the call (rate limit): now at most %.0f samples/s", c->rate);
    }
    char why[224];
    snprintf(why, sizeof why, "gateway ended the call: grpc-status %d %s%s", st, msg,
             st == 16 ? " (wrong token?)" : st == 10 ? " (another connection of this drone id replaced this one)" : "");
    if (c->phase == PH_SESSION) {
        char code[16];
        snprintf(code, sizeof code, "grpc_%d", st);
        attempt_failed(c, code, "%s", why);
        return;
    }
    if (!(c->closing && st == 0)) report(c, "closed", 0, "%s", why);
    conn_down(c, why);
}

/* grpc://: what was read goes to the HTTP/2 session; the ServerMessages
 * it completes to on_msg. 0, or -1 when the connection went down. */
static int call_input(dg_client_t *c)
{
    int rc = dgc_h2_recv(c->h2, (const uint8_t *)c->in.data + c->in.off, ob_pending(&c->in));
    c->in.off = c->in.len = 0;
    if (rc < 0) { attempt_failed(c, "protocol", "HTTP/2 protocol error from the gateway"); return -1; }
    const uint8_t *p;
    size_t n;
    while (c->h2 && dgc_h2_next(c->h2, &p, &n)) {
        if (dgc_parse_server_pb(p, n, on_msg, c) < 0)
            report(c, "protocol", 0, "gateway sent a message that is not a ServerMessage (%zu bytes)", n);
        if (c->fd < 0) return -1;
    }
    int st;
    const char *msg;
    if (c->h2 && dgc_h2_ended(c->h2, &st, &msg)) {
        flush_out(c);   /* e.g. the RST_STREAM nghttp2 answers with */
        if (c->fd >= 0) call_ended(c, st, msg);
        return -1;
    }
    return 0;
}

static void on_readable(dg_client_t *c)
{
    /* A first read of 4 KiB (what an idle drone gets: acks, a ping); a full
     * read means a backlog, then 64 KiB. The buffer is freed again when it is
     * empty, so thousands of idle clients in one process hold no 64 KiB each. */
    size_t want = 4096;
    for (int round = 0; round < 16 && c->fd >= 0; round++, want = 65536) {
        if (ob_reserve(&c->in, want)) { attempt_failed(c, "nomem", "out of memory"); return; }
        size_t cap = c->in.cap - c->in.len;
        ssize_t r = io_read(c, c->in.data + c->in.len, cap);
        if (r == -1) return;
        if (r == 0 || r == -2) {
            const char *why = r == 0 ? "connection closed by the gateway" : "connection lost";
            int e = errno;
            if (c->phase == PH_UPGRADE || c->phase == PH_SESSION)
                attempt_failed(c, "connect", "%s during the upgrade", why);
            else {
                if (!c->close_sent) report(c, "connection_lost", 0, "%s%s%s", why, r == -2 ? ": " : "",
                                           r == -2 ? strerror(e) : "");
                conn_down(c, why);
            }
            return;
        }
        c->in.len += (size_t)r;
        c->last_rx = now_ms();
        c->ping_sent_at = 0;
        if (c->h2) {
            if (call_input(c) < 0) return;
            if ((size_t)r < cap && !(c->ssl && SSL_pending(c->ssl))) return;
            continue;
        }
        if (c->phase == PH_UPGRADE) {
            int h = handle_upgrade(c);
            if (h < 0) return;
            if (h == 0) continue;
        }
        if (on_frames(c) < 0) return;
        if (c->in.off == c->in.len) c->in.off = c->in.len = 0;
        if ((size_t)r < cap && !(c->ssl && SSL_pending(c->ssl))) return;
    }
}

/* -------------------------------------------------------- processing */

static void process_locked(dg_client_t *c, int revents)
{
    int64_t t = now_ms();
    switch (c->state) {
    case DG_STATE_CLOSED:
        return;
    case DG_STATE_IDLE:
        start_connect(c);
        return;
    case DG_STATE_BACKOFF:
        if (t >= c->deadline) start_connect(c);
        return;
    default:
        break;
    }
    if (c->lookup) { lookup_step(c, t); return; }
    if (c->fd < 0) return;
    if (c->phase == PH_TCP) {
        if (revents & (POLLOUT | POLLERR | POLLHUP)) tcp_connected(c);
    } else if (c->phase == PH_TLS) {
        if (revents) tls_step(c);
    } else if (revents & (POLLIN | POLLERR | POLLHUP) || (c->ssl && SSL_pending(c->ssl))) {
        on_readable(c);
        if (c->in.cap > 8192 && !ob_pending(&c->in)) ob_free(&c->in);   /* see on_readable */
    }
    if (c->fd < 0) return;
    if (c->phase == PH_OPEN) transmit(c);
    if (flush_out(c) < 0) return;
    t = now_ms();
    if (c->phase != PH_OPEN && c->phase != PH_CLOSING) {
        if (t >= c->deadline) {
            attempt_failed(c, "timeout", "%s timed out after %u ms",
                           c->phase == PH_TCP ? "connect" : c->phase == PH_TLS ? "TLS handshake" :
                           c->phase == PH_UPGRADE ? "upgrade" : "waiting for the session message",
                           c->connect_timeout_ms);
        }
        return;
    }
    if (c->phase == PH_CLOSING) {
        if (t >= c->deadline) conn_down(c, "close handshake timed out");
        return;
    }
    if (c->ping_interval_ms) {
        int64_t idle = t - c->last_rx;
        if (idle >= 2 * (int64_t)c->ping_interval_ms) {
            report(c, "timeout", 0, "no data from the gateway for %lld ms: dropping the connection",
                   (long long)idle);
            conn_down(c, "gateway silent");
            return;
        }
        if (idle >= (int64_t)c->ping_interval_ms && !c->ping_sent_at) {
            if (c->h2) dgc_h2_ping(c->h2);
            else append_frame(c, 0x9, "dg", 2);
            c->ping_sent_at = t;
            flush_out(c);
        }
    }
}

int dg_client_process(dg_client_t *c, int revents)
{
    if (!c) return DG_CLIENT_EINVAL;
    pthread_mutex_lock(&c->mu);
    if (thread_running(c)) {
        pthread_mutex_unlock(&c->mu);
        return DG_CLIENT_ESTATE;
    }
    process_locked(c, revents);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int dg_client_fd(dg_client_t *c)
{
    pthread_mutex_lock(&c->mu);
    int fd = c->lookup ? c->lookup->efd : c->fd;
    pthread_mutex_unlock(&c->mu);
    return fd;
}

int dg_client_events(dg_client_t *c)
{
    pthread_mutex_lock(&c->mu);
    int ev = 0;
    if (c->lookup) ev = POLLIN;
    else if (c->fd >= 0) {
        ev = POLLIN;
        if (c->phase == PH_TCP || c->tls_want_write || ob_pending(&c->out)) ev |= POLLOUT;
    }
    pthread_mutex_unlock(&c->mu);
    return ev;
}

int dg_client_timeout_ms(dg_client_t *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t t = now_ms(), due = -1;
    switch (c->state) {
    case DG_STATE_CLOSED: due = -1; break;
    case DG_STATE_IDLE: due = t; break;
    case DG_STATE_BACKOFF: due = c->deadline; break;
    default:
        if (c->phase == PH_OPEN) {
            size_t k = batch_want(c);
            if (c->dirty && k && out_pending(c) < OUT_HWM) {
                due = t;
                if (c->rate > 0) {
                    refill(c, t);
                    if (c->tokens < (double)k) due = t + 1 + (int64_t)(((double)k - c->tokens) * 1000.0 / c->rate);
                }
            } else if (c->ping_interval_ms)
                due = c->last_rx + (c->ping_sent_at ? 2 : 1) * (int64_t)c->ping_interval_ms;
        } else {
            due = c->deadline;
        }
        if (c->ssl && SSL_pending(c->ssl)) due = t;
    }
    pthread_mutex_unlock(&c->mu);
    if (due < 0) return -1;
    int64_t d = due - t;
    if (d < 0) d = 0;
    return d > 3600000 ? 3600000 : (int)d;
}

static void step(dg_client_t *c, int max_wait_ms);

int dg_client_step(dg_client_t *c, int max_wait_ms)
{
    if (!c) return DG_CLIENT_EINVAL;
    if (thread_running(c)) return DG_CLIENT_ESTATE;
    step(c, max_wait_ms);
    return 0;
}

/* One poll round + process; the client's own thread calls this directly. */
static void step(dg_client_t *c, int max_wait_ms)
{
    struct pollfd pf[2];
    int nf = 0;
    int fd = dg_client_fd(c);
    if (fd >= 0) pf[nf++] = (struct pollfd){ .fd = fd, .events = (short)dg_client_events(c) };
    if (c->wake[0] >= 0) pf[nf++] = (struct pollfd){ .fd = c->wake[0], .events = POLLIN };
    int to = dg_client_timeout_ms(c);
    if (max_wait_ms >= 0 && (to < 0 || to > max_wait_ms)) to = max_wait_ms;
    int r = poll(pf, (nfds_t)nf, to);
    int rev = 0;
    if (r > 0) {
        for (int i = 0; i < nf; i++) {
            if (pf[i].fd == fd) rev = pf[i].revents;
            else if (pf[i].revents) { char b[64]; while (read(c->wake[0], b, sizeof b) > 0) {} }
        }
    }
    pthread_mutex_lock(&c->mu);
    process_locked(c, rev);
    pthread_mutex_unlock(&c->mu);
}

static void wake(dg_client_t *c)
{
    if (c->wake[1] >= 0) { char b = 1; ssize_t w = write(c->wake[1], &b, 1); (void)w; }
}

static void *thread_main(void *arg)
{
    dg_client_t *c = arg;
    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) step(c, -1);
    return NULL;
}

int dg_client_start(dg_client_t *c)
{
    if (!c) return DG_CLIENT_EINVAL;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    if (c->thread_on) rc = DG_CLIENT_ESTATE;
    else if (pipe2(c->wake, O_NONBLOCK | O_CLOEXEC)) rc = DG_CLIENT_ENOMEM;
    else {
        __atomic_store_n(&c->thread_on, 1, __ATOMIC_RELEASE);
        if (pthread_create(&c->th, NULL, thread_main, c)) {
            __atomic_store_n(&c->thread_on, 0, __ATOMIC_RELEASE);
            close(c->wake[0]); close(c->wake[1]);
            c->wake[0] = c->wake[1] = -1;
            rc = DG_CLIENT_ENOMEM;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* --------------------------------------------------------- public ops */

int dg_client_send(dg_client_t *c, const dg_sample_t *s, uint64_t *seq_out)
{
    if (!c) return DG_CLIENT_EINVAL;
    dgc_rec_t r;
    const char *why = NULL;
    if (dgc_rec_from_sample(&r, s, wall_ms(), &why)) return DG_CLIENT_EINVAL;
    pthread_mutex_lock(&c->mu);
    int rc;
    if (c->closing) rc = DG_CLIENT_ECLOSED;
    else if (c->have_fq && dgc_q_count(&c->q) >= c->q.max && c->q.policy != DG_FULL_DROP_OLDEST) {
        c->q.refused++;
        rc = DG_CLIENT_EFULL;
    } else if (c->have_fq && dgc_fq_append(&c->fq, c->q.next, &r)) {
        /* written before queued: a sample is in the file or not taken */
        report(c, "queue_file", 0, "cannot append to %s: %s", c->fq.path, strerror(errno));
        rc = DG_CLIENT_EIO;
    } else {
        rc = dgc_q_push(&c->q, &r, seq_out);
        if (rc == DG_CLIENT_EDROPPED && c->have_fq) dgc_fq_head(&c->fq, &c->q);
        if (rc == DG_CLIENT_OK || rc == DG_CLIENT_EDROPPED) {
            c->st.accepted++;
            if (!c->dirty) { c->dirty = 1; if (c->phase == PH_OPEN) wake(c); }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int dg_client_command_ack(dg_client_t *c, const char *id, const char *status, const char *message)
{
    if (!c || !id || !status) return DG_CLIENT_EINVAL;
    if (strcmp(status, "accepted") && strcmp(status, "rejected") && strcmp(status, "done"))
        return DG_CLIENT_EINVAL;
    pthread_mutex_lock(&c->mu);
    int rc = DG_CLIENT_OK;
    if (c->phase != PH_OPEN || c->close_sent) rc = DG_CLIENT_ESTATE;
    else if (c->pb) {
        size_t cap = strlen(id) + strlen(status) + (message ? strlen(message) : 0) + 64;
        uint8_t *pb = malloc(cap);
        size_t n = pb ? dgc_cmd_ack_pb(pb, cap, id, status, message) : 0;
        if (!n || send_pb(c, pb, n)) rc = DG_CLIENT_ENOMEM;
        free(pb);
        if (rc == 0) { if (thread_running(c)) wake(c); else flush_out(c); }
    } else {
        /* JSON-escape id and message */
        size_t il = strlen(id), ml = message ? strlen(message) : 0;
        char *buf = malloc(64 + 6 * (il + ml));
        if (!buf) rc = DG_CLIENT_ENOMEM;
        else {
            char *p = buf;
            p += sprintf(p, "{\"type\":\"command_ack\",\"id\":\"");
            for (int pass = 0; pass < 2; pass++) {
                const unsigned char *s = (const unsigned char *)(pass ? message : id);
                size_t n = pass ? ml : il;
                for (size_t i = 0; i < n; i++) {
                    if (s[i] == '"' || s[i] == '\\') { *p++ = '\\'; *p++ = (char)s[i]; }
                    else if (s[i] < 0x20) p += sprintf(p, "\\u%04x", s[i]);
                    else *p++ = (char)s[i];
                }
                if (!pass) p += sprintf(p, "\",\"status\":\"%s\",\"message\":\"", status);
            }
            p += sprintf(p, "\"}");
            if (append_frame(c, 0x1, buf, (size_t)(p - buf))) rc = DG_CLIENT_ENOMEM;
            free(buf);
            if (rc == 0) { if (thread_running(c)) wake(c); else flush_out(c); }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

dg_client_state_t dg_client_state(dg_client_t *c)
{
    pthread_mutex_lock(&c->mu);
    dg_client_state_t s = c->state;
    pthread_mutex_unlock(&c->mu);
    return s;
}

void dg_client_stats(dg_client_t *c, dg_client_stats_t *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    out->next_seq = c->q.next;
    out->acked_seq = c->q.acked;
    out->queued = dgc_q_count(&c->q);
    out->dropped_oldest = c->q.dropped;
    out->skipped_by_session = c->q.skipped;
    out->refused_full = c->q.refused;
    pthread_mutex_unlock(&c->mu);
}

const char *dg_client_state_name(dg_client_state_t s)
{
    switch (s) {
    case DG_STATE_IDLE: return "idle";
    case DG_STATE_CONNECTING: return "connecting";
    case DG_STATE_OPEN: return "open";
    case DG_STATE_BACKOFF: return "backoff";
    case DG_STATE_CLOSING: return "closing";
    case DG_STATE_CLOSED: return "closed";
    }
    return "?";
}

const char *dg_client_strerror(int rc)
{
    switch (rc) {
    case DG_CLIENT_OK: return "ok";
    case DG_CLIENT_EFULL: return "queue full";
    case DG_CLIENT_EINVAL: return "invalid argument";
    case DG_CLIENT_ENOMEM: return "out of memory";
    case DG_CLIENT_ECLOSED: return "client is closing";
    case DG_CLIENT_ESTATE: return "not possible in this state";
    case DG_CLIENT_EIO: return "cannot write the queue file";
    case DG_CLIENT_EDROPPED: return "queued; the oldest sample was dropped";
    }
    return "unknown error";
}

long dg_client_flush(dg_client_t *c, int flush_ms)
{
    if (!c) return 0;
    /* the lock is taken only inside each step, so other threads'
     * dg_client_send calls never wait on poll */
    int64_t deadline = now_ms() + (flush_ms > 0 ? flush_ms : 0);
    for (;;) {
        pthread_mutex_lock(&c->mu);
        long n = (long)dgc_q_count(&c->q);
        int more = n && c->state != DG_STATE_CLOSED;
        pthread_mutex_unlock(&c->mu);
        int left = (int)(deadline - now_ms());
        if (!more || left <= 0) return n;
        if (thread_running(c)) poll(NULL, 0, left < 5 ? left : 5);
        else step(c, left);
    }
}

/* The close handshake of an open connection: WebSocket close 1000, or for
 * grpc:// a half-close (the gateway ends the call, OK, once all is acked). */
static void start_close(dg_client_t *c)
{
    if (c->h2) {
        dgc_h2_half_close(c->h2);
        c->close_sent = 1;
    } else {
        send_close(c, 1000, "bye");
    }
    c->phase = PH_CLOSING;
    c->deadline = now_ms() + CLOSE_WAIT_MS;
    set_state(c, DG_STATE_CLOSING, "");
    flush_out(c);
}

int dg_client_shutdown(dg_client_t *c)
{
    if (!c) return DG_CLIENT_EINVAL;
    pthread_mutex_lock(&c->mu);
    if (thread_running(c)) {
        pthread_mutex_unlock(&c->mu);
        return DG_CLIENT_ESTATE;
    }
    c->closing = 2;
    c->stop = 1;   /* conn_down now ends in CLOSED instead of BACKOFF */
    if (c->state == DG_STATE_CLOSED || c->phase == PH_CLOSING) {
        /* already closed or closing */
    } else if (c->phase == PH_OPEN && c->fd >= 0) {
        start_close(c);
    } else {
        drop_socket(c);
        set_state(c, DG_STATE_CLOSED, dgc_q_count(&c->q) ? "closed with unacked samples" : "");
    }
    pthread_mutex_unlock(&c->mu);
    return DG_CLIENT_OK;
}

long dg_client_close(dg_client_t *c, int flush_ms)
{
    if (!c) return 0;
    if (thread_running(c)) {
        __atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
        wake(c);
        pthread_join(c->th, NULL);
        __atomic_store_n(&c->thread_on, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&c->stop, 0, __ATOMIC_RELEASE);
    }
    pthread_mutex_lock(&c->mu);
    c->closing = 1;
    pthread_mutex_unlock(&c->mu);
    dg_client_flush(c, flush_ms);
    pthread_mutex_lock(&c->mu);
    /* close handshake: best effort, bounded */
    if (c->phase == PH_OPEN && c->fd >= 0) {
        c->closing = 2;
        c->stop = 1;
        start_close(c);
        while (c->fd >= 0 && now_ms() < c->deadline) step(c, CLOSE_WAIT_MS);
    }
    long left = (long)dgc_q_count(&c->q);
    drop_socket(c);
    set_state(c, DG_STATE_CLOSED, left ? "closed with unacked samples" : "");
    pthread_mutex_unlock(&c->mu);
    if (c->wake[0] >= 0) { close(c->wake[0]); close(c->wake[1]); }
    ob_free(&c->out);
    ob_free(&c->in);
    ob_free(&c->msg);
    dgc_q_free(&c->q);
    dgc_fq_close(&c->fq);
    if (c->ctx) SSL_CTX_free(c->ctx);
    free_config(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return left;
}
