/* test_client_conn.c - libdronegate's connection logic against a fake
 * gateway in the same process (a loopback listening socket served by the
 * test, single thread, the client driven through dg_client_step):
 * reconnect backoff after refused connects, no telemetry before the session
 * message, resend in order after a drop, honouring last_seq, batches as JSON
 * arrays, masked frames, the upgrade request; dronegate.pb.v1 (binary
 * frames, one DroneMessage each). Links build/libdronegate.a. */
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dronegate/client.h"

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the fake gateway ---- */
typedef struct fake {
    int ls, fd, port;
    char in[1 << 20];
    size_t in_len;
    int upgraded;
    uint64_t seqs[4096];    /* seqs received, in order (all connections) */
    int nseqs;
    int frames, arrays, unmasked;
    char req[4096];
    const char *proto;      /* subprotocol the upgrade answer selects (NULL: no header) */
    int bins;               /* binary frames: DroneMessages (dronegate.pb.v1) */
    int close_code;         /* of the last close frame from the client */
    char cmd_ack[64];       /* "id/status" of the last command_ack (either format) */
} fake_t;

static void fake_listen(fake_t *f)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bind(f->ls, (struct sockaddr *)&a, sizeof a);
    socklen_t l = sizeof a;
    getsockname(f->ls, (struct sockaddr *)&a, &l);
    f->port = ntohs(a.sin_port);
    f->proto = "dronegate.json.v1";
    listen(f->ls, 8);
}

static void fake_drop(fake_t *f)
{
    if (f->fd >= 0) {
        struct linger lg = { 1, 0 };   /* RST */
        setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(f->fd);
    }
    f->fd = -1;
    f->in_len = 0;
    f->upgraded = 0;
}

static void fake_send_frame(fake_t *f, int op, const void *s, size_t n)
{
    uint8_t h[4];
    size_t hl = 2;
    h[0] = (uint8_t)(0x80 | op);
    if (n < 126) h[1] = (uint8_t)n;
    else { h[1] = 126; h[2] = (uint8_t)(n >> 8); h[3] = (uint8_t)n; hl = 4; }
    ssize_t w = write(f->fd, h, hl);
    w = write(f->fd, s, n);
    (void)w;
}

static void fake_send_text(fake_t *f, const char *s) { fake_send_frame(f, 0x1, s, strlen(s)); }

/* ---- protobuf by hand (what the gateway's dronegate.pb.v1 side sends) ---- */
static size_t pb_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (uint8_t)(v | 0x80); v >>= 7; }
    p[n++] = (uint8_t)v;
    return n;
}

/* ServerMessage{body_field: {1: v}} (ack = 1, session = 4); v < 0: empty body */
static void fake_send_pb(fake_t *f, int body_field, int64_t v)
{
    uint8_t inner[16], m[32];
    size_t il = 0, n = 0;
    if (v >= 0) { inner[il++] = 1 << 3; il += pb_varint(inner + il, (uint64_t)v); }
    m[n++] = (uint8_t)(body_field << 3 | 2);
    n += pb_varint(m + n, il);
    memcpy(m + n, inner, il);
    fake_send_frame(f, 0x2, m, n + il);
}

/* Read a LEN field's span or a varint; 0 at the end or on garbage. */
static int pb_next(const uint8_t **p, const uint8_t *e, int *field, uint64_t *v, const uint8_t **sub)
{
    if (*p >= e) return 0;
    uint64_t tag = 0, x = 0;
    for (int sh = 0; *p < e; sh += 7) { uint8_t b = *(*p)++; tag |= (uint64_t)(b & 0x7f) << sh; if (!(b & 0x80)) break; }
    *field = (int)(tag >> 3);
    int wt = (int)(tag & 7);
    if (wt == 1) { *p += 8; return 1; }
    if (wt == 5) { *p += 4; return 1; }
    for (int sh = 0; *p < e; sh += 7) { uint8_t b = *(*p)++; x |= (uint64_t)(b & 0x7f) << sh; if (!(b & 0x80)) break; }
    *v = x;
    if (wt == 2) { if (x > (uint64_t)(e - *p)) return 0; *sub = *p; *p += x; }
    return 1;
}

/* One DroneMessage: telemetry (record its seq) or command_ack. */
static void fake_drone_message(fake_t *f, const uint8_t *p, size_t n)
{
    const uint8_t *e = p + n, *sub = NULL, *s2 = NULL;
    int field, f2;
    uint64_t v, v2;
    f->bins++;
    while (pb_next(&p, e, &field, &v, &sub)) {
        const uint8_t *q = sub, *qe = sub + v;
        if (field == 1) {
            while (pb_next(&q, qe, &f2, &v2, &s2))
                if (f2 == 1 && f->nseqs < 4096) f->seqs[f->nseqs++] = v2;
        } else if (field == 2) {
            char id[32] = "", st[32] = "";
            while (pb_next(&q, qe, &f2, &v2, &s2)) {
                if (f2 == 1) snprintf(id, sizeof id, "%.*s", (int)v2, (const char *)s2);
                if (f2 == 2) snprintf(st, sizeof st, "%.*s", (int)v2, (const char *)s2);
            }
            snprintf(f->cmd_ack, sizeof f->cmd_ack, "%s/%s", id, st);
        }
    }
}

static void accept_key(const char *key, size_t kl, char out[29])
{
    char buf[128];
    unsigned char md[20];
    int n = snprintf(buf, sizeof buf, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)kl, key);
    EVP_Digest(buf, (size_t)n, md, NULL, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, 20);
}

/* Serve: accept, answer the upgrade (+ session unless session == NULL),
 * parse the client's frames (record seqs). */
static void fake_serve(fake_t *f, const char *session)
{
    if (f->fd < 0) {
        f->fd = accept4(f->ls, NULL, NULL, SOCK_NONBLOCK);
        if (f->fd < 0) return;
    }
    for (;;) {
        ssize_t r = read(f->fd, f->in + f->in_len, sizeof f->in - f->in_len);
        if (r <= 0) break;
        f->in_len += (size_t)r;
    }
    if (!f->upgraded) {
        char *e = memmem(f->in, f->in_len, "\r\n\r\n", 4);
        if (!e) return;
        size_t hl = (size_t)(e - f->in) + 4;
        snprintf(f->req, sizeof f->req, "%.*s", (int)hl, f->in);
        char *k = strstr(f->req, "Sec-WebSocket-Key: ");
        char acc[29] = "";
        if (k) { k += 19; accept_key(k, strcspn(k, "\r"), acc); }
        char resp[512];
        int n = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n", acc,
                         f->proto ? "Sec-WebSocket-Protocol: " : "", f->proto ? f->proto : "", f->proto ? "\r\n" : "");
        ssize_t w = write(f->fd, resp, (size_t)n);
        (void)w;
        memmove(f->in, f->in + hl, f->in_len - hl);
        f->in_len -= hl;
        f->upgraded = 1;
        if (session && !strcmp(session, "pb")) fake_send_pb(f, 4, -1);   /* Session{} : last_seq null */
        else if (session) fake_send_text(f, session);
    }
    size_t off = 0;
    while (f->in_len - off >= 2) {
        uint8_t *p = (uint8_t *)f->in + off;
        int masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) { if (f->in_len - off < 4) break; len = (uint64_t)p[2] << 8 | p[3]; hl = 4; }
        else if (len == 127) { if (f->in_len - off < 10) break; len = 0; for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i]; hl = 10; }
        if (masked) hl += 4;
        if (f->in_len - off < hl + len) break;
        uint8_t *pl = p + hl;
        if (masked) for (uint64_t i = 0; i < len; i++) pl[i] ^= p[hl - 4 + (i & 3)];
        else f->unmasked++;
        if ((p[0] & 0x0f) == 2) fake_drone_message(f, pl, (size_t)len);
        if ((p[0] & 0x0f) == 8 && len >= 2) f->close_code = pl[0] << 8 | pl[1];
        if ((p[0] & 0x0f) == 1) {
            static const char ca_key[] = "\"command_ack\",\"id\":\"", acc_key[] = "\"status\":\"accepted\"";
            char *ca = memmem(pl, (size_t)len, ca_key, sizeof ca_key - 1);
            if (ca) snprintf(f->cmd_ack, sizeof f->cmd_ack, "%.*s/%s", (int)strcspn(ca + sizeof ca_key - 1, "\""),
                             ca + sizeof ca_key - 1, memmem(pl, (size_t)len, acc_key, sizeof acc_key - 1) ? "accepted" : "?");
            f->frames++;
            if (pl[0] == '[') f->arrays++;
            char *s = (char *)pl, *end = (char *)pl + len;
            while ((s = memmem(s, (size_t)(end - s), "\"seq\":", 6))) {
                s += 6;
                if (f->nseqs < 4096) f->seqs[f->nseqs++] = strtoull(s, NULL, 10);
            }
        }
        off += hl + len;
    }
    memmove(f->in, f->in + off, f->in_len - off);
    f->in_len -= off;
}

static void fake_ack(fake_t *f, uint64_t seq)
{
    char m[64];
    snprintf(m, sizeof m, "{\"type\":\"ack\",\"seq\":%llu}", (unsigned long long)seq);
    fake_send_text(f, m);
}

/* ---- client side ---- */
static int states[256], nstates;
static uint64_t last_ack;
static void on_state(void *u, dg_client_state_t s, const char *d) { (void)u; (void)d; if (nstates < 256) states[nstates++] = s; }
static void on_ack(void *u, uint64_t seq) { (void)u; last_ack = seq; }

static int ws_format;   /* cfg.format of the clients mk() makes */
static char last_err[64];
static void on_error(void *u, const dg_client_error_t *e) { (void)u; snprintf(last_err, sizeof last_err, "%s", e->code); }
static dg_client_t *cur;   /* the client mk() made last */
static void on_command(void *u, const dg_client_command_t *cmd)
{
    (void)u;
    dg_client_command_ack(cur, cmd->id, "accepted", NULL);
}

/* The tests' config: ws://HOST:PORT/pre + rest, drone unit-1, no pings,
 * state/ack callbacks (their records reset). url: the caller's buffer. */
static void unit_cfg(dg_client_config_t *cfg, char *url, size_t ul, const char *host, int port, const char *rest)
{
    dg_client_config_init(cfg);
    snprintf(url, ul, "ws://%s:%d/pre%s", host, port, rest);
    cfg->url = url;
    cfg->drone_id = "unit-1";
    cfg->ping_interval_ms = 0;
    cfg->cb.on_state = on_state;
    cfg->cb.on_ack = on_ack;
    nstates = 0;
    last_ack = 0;
}

static dg_client_t *mk(int port, unsigned bmin, unsigned bmax, unsigned batch)
{
    dg_client_config_t cfg;
    char url[64];
    unit_cfg(&cfg, url, sizeof url, "127.0.0.1", port, "");
    cfg.format = ws_format;
    cfg.cb.on_error = on_error;
    cfg.token = "tok123";
    cfg.backoff_min_ms = bmin;
    cfg.backoff_max_ms = bmax;
    cfg.batch_max = batch;
    cfg.max_rate = 0;
    cfg.cb.on_command = on_command;
    char err[128];
    return cur = dg_client_open(&cfg, err, sizeof err);
}

static void send_n(dg_client_t *c, int n, int64_t ts0)
{
    for (int i = 0; i < n; i++) {
        dg_sample_t s = { .timestamp_ms = ts0 + i, .latitude = 1, .longitude = 2, .altitude = 3 };
        dg_client_send(c, &s, NULL);
    }
}

/* Run client + fake until cond or 3 s. */
#define PUMP_UNTIL(cond, session) do { int64_t dl__ = ms_now() + 3000; \
    while (!(cond) && ms_now() < dl__) { dg_client_step(c, 2); fake_serve(&f, session); } \
    if (!(cond)) CHECK__FAIL("timed out waiting for %s", #cond); } while (0)

TEST(backoff_after_refused_connects)
{
    fake_t f;
    fake_listen(&f);
    close(f.ls);                         /* nothing listens: refused */
    dg_client_t *c = mk(f.port, 40, 200, 8);
    ASSERT(c);
    int expect_lo[] = { 20, 40, 80, 100, 100 }, expect_hi[] = { 60, 120, 200, 200, 200 };
    for (int i = 0; i < 5; i++) {
        int64_t dl = ms_now() + 2000;
        dg_client_stats_t st;
        do { dg_client_step(c, 5); dg_client_stats(c, &st); }
        while ((dg_client_state(c) != DG_STATE_BACKOFF || (int)st.connects < i + 1) && ms_now() < dl);
        ASSERT_EQ(dg_client_state(c), DG_STATE_BACKOFF);
        int to = dg_client_timeout_ms(c);
        if (to > expect_hi[i] || to < expect_lo[i] - 30)
            CHECK__FAIL("attempt %d: backoff %d ms not in [%d, %d]", i, to, expect_lo[i], expect_hi[i]);
        /* sleep through the backoff: the next step connects again */
        poll(NULL, 0, to + 1);
    }
    dg_client_stats_t st;
    dg_client_stats(c, &st);
    ASSERT(st.connects >= 5);
    ASSERT_EQ(st.sessions, 0);
    ASSERT_EQ(dg_client_close(c, 0), 0);
}

TEST(resend_in_order_after_drop_and_last_seq)
{
    fake_t f;
    fake_listen(&f);
    dg_client_t *c = mk(f.port, 5, 20, 8);
    send_n(c, 20, 1000);                 /* queued before any connection */
    /* upgrade without a session message: nothing may be sent yet */
    int64_t dl = ms_now() + 500;
    while (ms_now() < dl && !f.upgraded) { dg_client_step(c, 2); fake_serve(&f, NULL); }
    ASSERT(f.upgraded);
    ASSERT(strstr(f.req, "GET /pre/ws/unit-1 HTTP/1.1\r\n") == f.req);
    ASSERT(strstr(f.req, "Authorization: Bearer tok123\r\n"));
    ASSERT(strstr(f.req, "Sec-WebSocket-Protocol: dronegate.json.v1\r\n"));
    for (int i = 0; i < 20; i++) { dg_client_step(c, 1); fake_serve(&f, NULL); }
    ASSERT_EQ(f.nseqs, 0);
    ASSERT_EQ(dg_client_state(c), DG_STATE_CONNECTING);
    fake_send_text(&f, "{\"type\":\"session\",\"last_seq\":null}");
    PUMP_UNTIL(f.nseqs == 20, NULL);
    for (int i = 0; i < 20; i++) ASSERT_U64_EQ(f.seqs[i], (uint64_t)i + 1);
    ASSERT_EQ(f.frames, 3);               /* 8 + 8 + 4 */
    ASSERT_EQ(f.arrays, 3);
    ASSERT_EQ(f.unmasked, 0);
    fake_ack(&f, 5);
    PUMP_UNTIL(last_ack == 5, NULL);
    /* the link drops; the gateway had stored up to 9 (acks 6..9 lost) */
    fake_drop(&f);
    send_n(c, 5, 2000);                  /* 21..25 while down */
    f.nseqs = 0;
    PUMP_UNTIL(f.nseqs == 16, "{\"type\":\"session\",\"last_seq\":9}");
    for (int i = 0; i < 16; i++) ASSERT_U64_EQ(f.seqs[i], (uint64_t)i + 10);   /* 10..25, in order */
    dg_client_stats_t st;
    dg_client_stats(c, &st);
    ASSERT_EQ(st.skipped_by_session, 4);  /* 6..9 */
    ASSERT_EQ(st.resent, 11);             /* 10..20 again */
    ASSERT_EQ(st.sessions, 2);
    fake_ack(&f, 25);
    PUMP_UNTIL(last_ack == 25, NULL);
    dg_client_stats(c, &st);
    ASSERT_EQ(st.queued, 0);
    /* states: connecting, open, backoff, connecting, open */
    int want[] = { DG_STATE_CONNECTING, DG_STATE_OPEN, DG_STATE_BACKOFF, DG_STATE_CONNECTING, DG_STATE_OPEN };
    ASSERT(nstates >= 5);
    for (int i = 0; i < 5; i++) ASSERT_EQ(states[i], want[i]);
    ASSERT_EQ(dg_client_close(c, 200), 0);
    fake_drop(&f);
    close(f.ls);
}

TEST(fresh_drone_renumbers_after_last_seq)
{
    fake_t f;
    fake_listen(&f);
    dg_client_t *c = mk(f.port, 5, 20, 64);
    uint64_t seq = 0;
    dg_sample_t s = { .timestamp_ms = 5, .latitude = 1, .longitude = 2, .altitude = 3 };
    dg_client_send(c, &s, &seq);
    ASSERT_U64_EQ(seq, 1);
    send_n(c, 2, 6);
    PUMP_UNTIL(f.nseqs == 3, "{\"type\":\"session\",\"last_seq\":500}");
    ASSERT_U64_EQ(f.seqs[0], 501);
    ASSERT_U64_EQ(f.seqs[2], 503);
    dg_client_send(c, &s, &seq);
    ASSERT_U64_EQ(seq, 504);
    ASSERT_EQ(dg_client_close(c, 0), 4);   /* nothing acked: 4 left */
    fake_drop(&f);
    close(f.ls);
}

TEST(rejected_samples_leave_the_queue)
{
    fake_t f;
    fake_listen(&f);
    dg_client_t *c = mk(f.port, 5, 20, 64);
    send_n(c, 3, 10);
    PUMP_UNTIL(f.nseqs == 3, "{\"type\":\"session\",\"last_seq\":null}");
    /* the last sample is rejected: never acked; the ack of 2 arrives after */
    fake_send_text(&f, "{\"type\":\"error\",\"seq\":3,\"code\":\"invalid_field\",\"field\":\"altitude\"}");
    fake_ack(&f, 2);
    dg_client_stats_t st;
    PUMP_UNTIL((dg_client_stats(c, &st), st.queued == 0), NULL);
    ASSERT_EQ(st.rejected, 1);
    ASSERT_EQ(st.acked, 2);
    ASSERT_U64_EQ(last_ack, 2);           /* the rejected one is not reported as stored */
    /* two rejected in the middle, errors before the ack that precedes them */
    send_n(c, 4, 20);                     /* 4..7 */
    PUMP_UNTIL(f.nseqs == 7, NULL);
    fake_send_text(&f, "[{\"type\":\"error\",\"seq\":6,\"code\":\"seq_reused\"},"
                       "{\"type\":\"error\",\"seq\":5,\"code\":\"seq_reused\"}]");
    fake_ack(&f, 4);
    PUMP_UNTIL((dg_client_stats(c, &st), st.queued == 1), NULL);   /* 7 waits for its ack */
    ASSERT_EQ(st.rejected, 3);
    fake_ack(&f, 7);
    PUMP_UNTIL((dg_client_stats(c, &st), st.queued == 0), NULL);
    ASSERT_EQ(dg_client_close(c, 0), 0);
    fake_drop(&f);
    close(f.ls);
}

TEST(send_never_blocks_and_validates)
{
    dg_client_t *c = mk(9, 5, 20, 8);     /* never driven */
    dg_sample_t s = { .latitude = 100 };
    ASSERT_EQ(dg_client_send(c, &s, NULL), DG_CLIENT_EINVAL);
    ASSERT_EQ(dg_client_send(c, NULL, NULL), DG_CLIENT_EINVAL);
    ASSERT_EQ(dg_client_command_ack(c, "x", "done", NULL), DG_CLIENT_ESTATE);   /* not connected */
    ASSERT_EQ(dg_client_command_ack(c, "x", "maybe", NULL), DG_CLIENT_EINVAL);
    ASSERT_EQ(dg_client_close(c, 0), 0);
    char err[128];
    dg_client_config_t cfg;
    dg_client_config_init(&cfg);
    cfg.drone_id = "bad id";
    cfg.url = "ws://127.0.0.1:1";
    ASSERT(!dg_client_open(&cfg, err, sizeof err));
    ASSERT(strstr(err, "drone id"));
    cfg.drone_id = "ok";
    cfg.url = "http://x";
    ASSERT(!dg_client_open(&cfg, err, sizeof err));
    cfg.url = "ws://[::1:80";
    ASSERT(!dg_client_open(&cfg, err, sizeof err));
    cfg.url = "ws://[::1]:8080/p/";
    dg_client_t *c2 = dg_client_open(&cfg, err, sizeof err);
    ASSERT(c2);
    dg_client_close(c2, 0);
}

/* The hooks a many-clients driver (dronegate-sim) needs: a local source
 * address, a ?query on the URL, byte counters, and dg_client_shutdown: a
 * close that does not block (the loop drives it to CLOSED). */
TEST(source_addr_query_and_shutdown_without_blocking)
{
    fake_t f;
    fake_listen(&f);
    dg_client_config_t cfg;
    char url[96], err[128];
    unit_cfg(&cfg, url, sizeof url, "127.0.0.1", f.port, "?k=v1");
    cfg.source_addr = "not-an-ip";
    ASSERT(dg_client_open(&cfg, err, sizeof err) == NULL);
    ASSERT(strstr(err, "source_addr"));
    cfg.source_addr = "127.0.0.2";
    nstates = 0;
    last_ack = 0;
    dg_client_t *c = dg_client_open(&cfg, err, sizeof err);
    ASSERT(c);
    PUMP_UNTIL(dg_client_state(c) == DG_STATE_OPEN, "{\"type\":\"session\",\"last_seq\":null}");
    ASSERT(strstr(f.req, "GET /pre/ws/unit-1?k=v1 HTTP/1.1\r\n") == f.req);
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    ASSERT_EQ(getpeername(f.fd, (struct sockaddr *)&peer, &pl), 0);
    ASSERT_EQ(ntohl(peer.sin_addr.s_addr), 0x7f000002);
    send_n(c, 3, 5000);
    PUMP_UNTIL(f.nseqs == 3, NULL);
    fake_ack(&f, 3);
    PUMP_UNTIL(last_ack == 3, NULL);
    dg_client_stats_t st;
    dg_client_stats(c, &st);
    ASSERT(st.bytes_sent > 100 && st.bytes_received > 50);
    int64_t t0 = ms_now();
    ASSERT_EQ(dg_client_shutdown(c), DG_CLIENT_OK);
    ASSERT(ms_now() - t0 < 100);                       /* no waiting inside */
    ASSERT_EQ(dg_client_state(c), DG_STATE_CLOSING);
    dg_sample_t s = { .latitude = 1, .longitude = 2, .altitude = 3 };
    ASSERT_EQ(dg_client_send(c, &s, NULL), DG_CLIENT_ECLOSED);
    fake_serve(&f, NULL);
    fake_drop(&f);                                     /* the gateway closes TCP */
    int64_t dl = ms_now() + 3000;
    while (dg_client_state(c) != DG_STATE_CLOSED && ms_now() < dl) dg_client_step(c, 5);
    ASSERT_EQ(dg_client_state(c), DG_STATE_CLOSED);
    ASSERT_EQ(dg_client_fd(c), -1);
    ASSERT_EQ(dg_client_timeout_ms(c), -1);            /* nothing more to do: no reconnect */
    dg_client_stats(c, &st);
    ASSERT_EQ(st.connects, 1);
    ASSERT_EQ(dg_client_close(c, 0), 0);
    close(f.ls);
}

/* A host name is resolved on a thread: while it resolves, the client's fd is
 * an eventfd (not a socket) to watch for POLLIN, and the application's loop
 * never waits inside getaddrinfo. "localhost" comes from /etc/hosts (no
 * packet leaves the machine); ::1 may come first and be refused (the fake
 * listens on IPv4): the next attempt takes the next address. Closing a
 * client mid-lookup returns at once (the thread frees what it shares). */
TEST(host_names_resolve_off_the_loop)
{
    fake_t f;
    fake_listen(&f);
    dg_client_config_t cfg;
    char url[96], err[128];
    unit_cfg(&cfg, url, sizeof url, "localhost", f.port, "");
    cfg.backoff_min_ms = 5;
    cfg.backoff_max_ms = 20;
    dg_client_t *c = dg_client_open(&cfg, err, sizeof err);
    ASSERT(c);
    ASSERT_EQ(dg_client_process(c, 0), 0);             /* idle -> the lookup starts */
    ASSERT_EQ(dg_client_state(c), DG_STATE_CONNECTING);
    int fd = dg_client_fd(c), type = 0;
    socklen_t tl = sizeof type;
    ASSERT(fd >= 0);
    ASSERT(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 && errno == ENOTSOCK);   /* the eventfd */
    ASSERT_EQ(dg_client_events(c), POLLIN);
    PUMP_UNTIL(dg_client_state(c) == DG_STATE_OPEN, "{\"type\":\"session\",\"last_seq\":null}");
    ASSERT(strstr(f.req, "Host: localhost:"));
    send_n(c, 3, 7000);
    PUMP_UNTIL(f.nseqs == 3, NULL);
    fake_ack(&f, 3);
    PUMP_UNTIL(last_ack == 3, NULL);
    ASSERT_EQ(dg_client_close(c, 0), 0);
    fake_drop(&f);
    for (int i = 0; i < 20; i++) {                     /* closed mid-lookup, over and over */
        c = dg_client_open(&cfg, err, sizeof err);
        ASSERT(c);
        ASSERT_EQ(dg_client_process(c, 0), 0);
        int64_t t0 = ms_now();
        ASSERT_EQ(dg_client_close(c, 0), 0);
        ASSERT(ms_now() - t0 < 100);
    }
    close(f.ls);
}

/* DG_FORMAT_PROTOBUF offers dronegate.pb.v1 and refuses an answer that
 * selects another subprotocol or none (the gateway would talk JSON). */
TEST(protobuf_subprotocol_must_be_selected)
{
    fake_t f;
    fake_listen(&f);
    ws_format = DG_FORMAT_PROTOBUF;
    dg_client_t *c = mk(f.port, 5, 20, 8);
    ws_format = DG_FORMAT_JSON;
    ASSERT(c);
    for (int round = 0; round < 2; round++) {
        f.proto = round ? NULL : "dronegate.json.v1";
        last_err[0] = '\0';
        PUMP_UNTIL(dg_client_state(c) == DG_STATE_BACKOFF && last_err[0], NULL);
        ASSERT(strstr(f.req, "Sec-WebSocket-Protocol: dronegate.pb.v1\r\n"));
        ASSERT_STR_EQ(last_err, "handshake");
        fake_drop(&f);
    }
    dg_client_stats_t st;
    dg_client_stats(c, &st);
    ASSERT_EQ(st.sessions, 0);
    ASSERT_EQ(dg_client_close(c, 0), 0);
    /* a bad format value is refused at open */
    dg_client_config_t cfg;
    dg_client_config_init(&cfg);
    char err[128];
    cfg.url = "ws://127.0.0.1:1";
    cfg.drone_id = "ok";
    cfg.format = (dg_client_format_t)7;
    ASSERT(!dg_client_open(&cfg, err, sizeof err));
    ASSERT(strstr(err, "format"));
    close(f.ls);
}

/* dronegate.pb.v1: one DroneMessage per binary frame, masked; ServerMessages
 * in binary frames (session, ack, command); resend after a drop honours
 * last_seq; command_ack goes back as a DroneMessage. */
TEST(protobuf_frames_resend_and_commands)
{
    fake_t f;
    fake_listen(&f);
    f.proto = "dronegate.pb.v1";
    ws_format = DG_FORMAT_PROTOBUF;
    dg_client_t *c = mk(f.port, 5, 20, 8);
    ws_format = DG_FORMAT_JSON;
    ASSERT(c);
    send_n(c, 20, 1000);
    PUMP_UNTIL(f.nseqs == 20, "pb");
    for (int i = 0; i < 20; i++) ASSERT_U64_EQ(f.seqs[i], (uint64_t)i + 1);
    ASSERT_EQ(f.bins, 20);                /* one frame per sample */
    ASSERT_EQ(f.frames, 0);               /* no text */
    ASSERT_EQ(f.unmasked, 0);
    fake_send_pb(&f, 1, 5);               /* Ack{5} */
    PUMP_UNTIL(last_ack == 5, NULL);
    fake_drop(&f);
    send_n(c, 5, 2000);                   /* 21..25 while down */
    f.nseqs = 0;
    int64_t dl = ms_now() + 3000;
    while (!f.upgraded && ms_now() < dl) { dg_client_step(c, 2); fake_serve(&f, NULL); }
    fake_send_pb(&f, 4, 9);               /* Session{last_seq: 9} */
    PUMP_UNTIL(f.nseqs == 16, NULL);
    for (int i = 0; i < 16; i++) ASSERT_U64_EQ(f.seqs[i], (uint64_t)i + 10);
    dg_client_stats_t st;
    dg_client_stats(c, &st);
    ASSERT_EQ(st.skipped_by_session, 4);
    ASSERT_EQ(st.resent, 11);
    /* Command{id "c-1", name "land", args_json "{}"} */
    static const uint8_t cmd[] = { 3 << 3 | 2, 15, 0x0a, 3, 'c', '-', '1', 0x12, 4, 'l', 'a', 'n', 'd', 0x1a, 2, '{', '}' };
    fake_send_frame(&f, 0x2, cmd, sizeof cmd);
    PUMP_UNTIL(f.cmd_ack[0], NULL);
    ASSERT_STR_EQ(f.cmd_ack, "c-1/accepted");
    fake_send_pb(&f, 1, 25);
    PUMP_UNTIL(last_ack == 25, NULL);
    ASSERT_EQ(dg_client_close(c, 200), 0);
    fake_drop(&f);
    close(f.ls);
}

/* A text frame on dronegate.pb.v1 (and a binary one on JSON) closes with 1003. */
TEST(protobuf_text_frame_is_a_protocol_error)
{
    for (int pb = 0; pb < 2; pb++) {
        fake_t f;
        fake_listen(&f);
        f.proto = pb ? "dronegate.pb.v1" : "dronegate.json.v1";
        ws_format = pb ? DG_FORMAT_PROTOBUF : DG_FORMAT_JSON;
        dg_client_t *c = mk(f.port, 5, 20, 8);
        ws_format = DG_FORMAT_JSON;
        ASSERT(c);
        PUMP_UNTIL(dg_client_state(c) == DG_STATE_OPEN, pb ? "pb" : "{\"type\":\"session\",\"last_seq\":null}");
        last_err[0] = '\0';
        if (pb) fake_send_text(&f, "{\"type\":\"ack\",\"seq\":1}");
        else fake_send_pb(&f, 1, 1);
        PUMP_UNTIL(dg_client_state(c) == DG_STATE_BACKOFF, NULL);
        ASSERT_STR_EQ(last_err, "protocol");
        fake_serve(&f, NULL);
        ASSERT_EQ(f.close_code, 1003);
        ASSERT_EQ(dg_client_close(c, 0), 0);
        fake_drop(&f);
        close(f.ls);
    }
}

int main(void)
{
    RUN(backoff_after_refused_connects);
    RUN(resend_in_order_after_drop_and_last_seq);
    RUN(fresh_drone_renumbers_after_last_seq);
    RUN(rejected_samples_leave_the_queue);
    RUN(send_never_blocks_and_validates);
    RUN(source_addr_query_and_shutdown_without_blocking);
    RUN(host_names_resolve_off_the_loop);
    RUN(protobuf_subprotocol_must_be_selected);
    RUN(protobuf_frames_resend_and_commands);
    RUN(protobuf_text_frame_is_a_protocol_error);
    return check_summary("client_conn");
}
