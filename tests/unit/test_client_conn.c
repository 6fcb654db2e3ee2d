/* test_client_conn.c - libdronegate's connection logic against a fake
 * gateway in the same process (a loopback listening socket served by the
 * test, single thread, the client driven through dg_client_step):
 * reconnect backoff after refused connects, no telemetry before the session
 * message, resend in order after a drop, honouring last_seq, batches as JSON
 * arrays, masked frames, the upgrade request. Links build/libdronegate.a. */
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

static void fake_send_text(fake_t *f, const char *s)
{
    uint8_t h[4];
    size_t n = strlen(s), hl = 2;
    h[0] = 0x81;
    if (n < 126) h[1] = (uint8_t)n;
    else { h[1] = 126; h[2] = (uint8_t)(n >> 8); h[3] = (uint8_t)n; hl = 4; }
    ssize_t w = write(f->fd, h, hl);
    w = write(f->fd, s, n);
    (void)w;
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
                         "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                         "Sec-WebSocket-Protocol: dronegate.json.v1\r\n\r\n", acc);
        ssize_t w = write(f->fd, resp, (size_t)n);
        (void)w;
        memmove(f->in, f->in + hl, f->in_len - hl);
        f->in_len -= hl;
        f->upgraded = 1;
        if (session) fake_send_text(f, session);
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
        if ((p[0] & 0x0f) == 1) {
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
    cfg.token = "tok123";
    cfg.backoff_min_ms = bmin;
    cfg.backoff_max_ms = bmax;
    cfg.batch_max = batch;
    cfg.max_rate = 0;
    char err[128];
    return dg_client_open(&cfg, err, sizeof err);
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

int main(void)
{
    RUN(backoff_after_refused_connects);
    RUN(resend_in_order_after_drop_and_last_seq);
    RUN(fresh_drone_renumbers_after_last_seq);
    RUN(rejected_samples_leave_the_queue);
    RUN(send_never_blocks_and_validates);
    RUN(source_addr_query_and_shutdown_without_blocking);
    RUN(host_names_resolve_off_the_loop);
    return check_summary("client_conn");
}
