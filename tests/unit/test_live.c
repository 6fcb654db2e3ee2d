/* test_live.c - the live stream's fan-out and conflation (src/core/live.c)
 * without a network: watchers whose sockets are one end of a socketpair,
 * events published on the worker and delivered by dg_live_flush, what the
 * watcher received read from the other end (unmasked server frames).
 *
 * Conflation (live.h): once a watcher's pending output passes DG_LIVE_HIGH,
 * only the latest telemetry of each drone is kept for it (the replaced ones
 * counted in dronegate_live_skipped_total); other events (presence,
 * commands) still go out in order; when the output drains below
 * DG_LIVE_LOW the kept states are sent, in the order their drones first
 * became pending.
 *
 * The worker and connections are built by hand with only what live.c
 * touches (a one-worker server, the worker's ext slots, an ev loop for
 * dg_conn_update_events, an empty registry for the snapshot): no listening
 * socket, no threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "core/config.h"
#include "core/live.h"
#include "core/metrics.h"
#include "core/registry.h"
#include "core/server.h"
#include "net/worker.h"

static void noop_cb(struct ev_loop *l, ev_io *io, int ev) { (void)l; (void)io; (void)ev; }

/* What the connection was before its upgrade (dg_live_start switches). */
static const dg_conn_ops_t before_upgrade = { .name = "http", .transport = DG_TR_LIVE };

#define MAXW 2

typedef struct fixture {
    dg_config_t  cfg;
    dg_server_t  srv;
    dg_worker_t *w;
    dg_worker_t *workers[1];
    dg_conn_t   *c[MAXW];
    int          peer[MAXW];   /* the watchers' ends */
    int          n;
    /* what a watcher received: its text payloads, in order */
    dg_buf_t     raw;
    char       **msg;
    size_t       nmsg, msg_cap;
} fixture_t;

static fixture_t *fx_new(void)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->cfg.ping_interval_ms = 1000000;
    f->srv.cfg = &f->cfg;
    f->srv.registry = dg_registry_new();
    f->w = calloc(1, sizeof *f->w);
    f->w->srv = &f->srv;
    f->w->loop = ev_loop_new(EVFLAG_AUTO);
    f->workers[0] = f->w;
    f->srv.workers = f->workers;
    f->srv.nworkers = 1;
    atomic_init(&f->srv.live_watchers, 0);
    if (dg_live_register() || dg_worker_ext_init(f->w)) abort();
    return f;
}

/* A watcher on /api/v1/live?drones=filter ("" = every drone); its
 * snapshot (empty registry: one final message) is read and checked. */
static int fx_watch(fixture_t *f, const char *filter)
{
    int sv[2];
    if (f->n == MAXW || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) abort();
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    dg_conn_t *c = calloc(1, sizeof *c);
    ev_io_init(&c->io, noop_cb, sv[0], EV_READ);
    c->ops = &before_upgrade;
    c->w = f->w;
    c->fd = sv[0];
    f->c[f->n] = c;
    f->peer[f->n] = sv[1];
    dg_live_start(c, filter);
    return f->n++;
}

static void fx_free(fixture_t *f)
{
    for (int i = 0; i < f->n; i++) {
        dg_conn_t *c = f->c[i];
        dg_live_on_close(c);
        ev_io_stop(f->w->loop, &c->io);
        close(c->fd);
        close(f->peer[i]);
        dg_buf_free(&c->out);
        free(c);
    }
    for (size_t i = 0; i < f->nmsg; i++) free(f->msg[i]);
    free(f->msg);
    dg_buf_free(&f->raw);
    dg_worker_ext_free(f->w);
    ev_loop_destroy(f->w->loop);
    dg_buf_free(&f->w->scratch);
    free(f->w);
    dg_registry_free(f->srv.registry);
    free(f);
}

static void publish(fixture_t *f, const char *id, uint64_t seq)
{
    dg_record_t r;
    dg_record_init(&r);
    r.drone_id_len = (uint8_t)strlen(id);
    memcpy(r.drone_id, id, r.drone_id_len + 1);
    r.seq = seq;
    r.flags = DG_REC_HAS_SEQ;
    r.ts_ms = 1795860000000LL + (int64_t)seq;
    r.lat = 47.0;
    r.lon = 8.0;
    r.alt = 400.0;
    dg_live_publish_record(f->w, &r);
}

/* Read up to `max` bytes of what watcher i was sent (kept for drain()),
 * then let its connection write what it holds once (dg_conn_flush). */
static void take(fixture_t *f, int i, size_t max)
{
    uint8_t tmp[4096];
    for (size_t got = 0; got < max;) {
        ssize_t r = read(f->peer[i], tmp, max - got < sizeof tmp ? max - got : sizeof tmp);
        if (r <= 0) break;
        dg_buf_append(&f->raw, tmp, (size_t)r);
        got += (size_t)r;
    }
    dg_conn_flush(f->c[i]);
}

/* Read what watcher i was sent, letting its connection write what it holds
 * (dg_conn_flush: pending output, then the conflated states once below
 * DG_LIVE_LOW) until nothing is left; parse the frames (with what take()
 * read before) into f->msg, replacing what was there. */
static void drain(fixture_t *f, int i)
{
    dg_conn_t *c = f->c[i];
    uint8_t tmp[65536];
    for (int idle = 0; idle < 2;) {
        ssize_t r = read(f->peer[i], tmp, sizeof tmp);
        if (r > 0) { dg_buf_append(&f->raw, tmp, (size_t)r); idle = 0; continue; }
        if (!c->out.len) idle++;    /* nothing pending: this flush sends what conflation kept */
        dg_conn_flush(c);
    }
    for (size_t k = 0; k < f->nmsg; k++) free(f->msg[k]);
    f->nmsg = 0;
    const uint8_t *p = (const uint8_t *)f->raw.data;
    for (size_t o = 0; o + 2 <= f->raw.len;) {
        size_t len = p[o + 1] & 0x7f, h = 2;
        if (len == 126) { len = (size_t)p[o + 2] << 8 | p[o + 3]; h = 4; }
        else if (len == 127) { len = 0; for (int b = 0; b < 8; b++) len = len << 8 | p[o + 2 + b]; h = 10; }
        if (o + h + len > f->raw.len) abort();          /* a torn frame: a bug */
        if ((p[o] & 0x0f) == DG_WS_OP_TEXT) {
            if (f->nmsg == f->msg_cap) {
                f->msg_cap = f->msg_cap ? f->msg_cap * 2 : 256;
                f->msg = realloc(f->msg, f->msg_cap * sizeof *f->msg);
            }
            char *s = malloc(len + 1);
            memcpy(s, p + o + h, len);
            s[len] = '\0';
            f->msg[f->nmsg++] = s;
        }
        o += h + len;
    }
    f->raw.len = 0;
}

/* "drone_id" and "seq" of a telemetry message; 0 if it is not one. */
static int telemetry_of(const char *m, char *id, size_t idcap, unsigned long long *seq)
{
    if (strncmp(m, "{\"type\":\"telemetry\",\"drone_id\":\"", 32)) return 0;
    const char *q = strchr(m + 32, '"');
    const char *s = strstr(m, "\"seq\":");
    if (!q || !s || (size_t)(q - (m + 32)) >= idcap) return 0;
    memcpy(id, m + 32, (size_t)(q - (m + 32)));
    id[q - (m + 32)] = '\0';
    *seq = strtoull(s + 6, NULL, 10);
    return 1;
}

/* Fill watcher i's pending output past DG_LIVE_HIGH (it does not read) with
 * telemetry of drone "fill"; the event that crosses the mark is sent, so
 * nothing is conflated yet. Returns the number of events. */
static int fill(fixture_t *f, int i)
{
    int n = 0;
    while (f->c[i]->out.len < DG_LIVE_HIGH && n < 100000) {
        publish(f, "fill", (uint64_t)++n);
        dg_live_flush(f->w);
    }
    return n;
}

/* A fixture with one watcher of every drone, its output already past
 * DG_LIVE_HIGH with `*nfill` events of drone "fill" (none conflated). */
static fixture_t *fx_slow(int *slow, int *nfill)
{
    fixture_t *f = fx_new();
    *slow = fx_watch(f, "");
    drain(f, *slow);
    *nfill = fill(f, *slow);
    return f;
}

TEST(events_pass_in_order_and_through_the_filter)
{
    fixture_t *f = fx_new();
    int all = fx_watch(f, "");
    int onlyb = fx_watch(f, "B,not-here");
    drain(f, all);
    ASSERT_EQ(f->nmsg, 1);
    ASSERT_STR_EQ(f->msg[0], "{\"type\":\"snapshot\",\"drones\":[],\"final\":true}");
    drain(f, onlyb);
    ASSERT_EQ(f->nmsg, 1);
    uint64_t skipped0 = dg_metrics.live_skipped;

    publish(f, "A", 1);
    publish(f, "B", 1);
    publish(f, "A", 2);
    dg_live_publish_presence(f->w, "B", false, 1795860000000LL);
    dg_live_flush(f->w);

    char id[64];
    unsigned long long seq;
    drain(f, all);
    ASSERT_EQ(f->nmsg, 4);
    ASSERT(telemetry_of(f->msg[0], id, sizeof id, &seq));
    ASSERT_STR_EQ(id, "A");
    ASSERT_EQ(seq, 1);
    ASSERT(telemetry_of(f->msg[1], id, sizeof id, &seq));
    ASSERT_STR_EQ(id, "B");
    ASSERT_EQ(seq, 1);
    ASSERT(telemetry_of(f->msg[2], id, sizeof id, &seq));
    ASSERT_STR_EQ(id, "A");
    ASSERT_EQ(seq, 2);
    ASSERT(strstr(f->msg[3], "{\"type\":\"offline\",\"drone_id\":\"B\"") == f->msg[3]);

    drain(f, onlyb);
    ASSERT_EQ(f->nmsg, 2);
    ASSERT(telemetry_of(f->msg[0], id, sizeof id, &seq));
    ASSERT_STR_EQ(id, "B");
    ASSERT(strstr(f->msg[1], "\"type\":\"offline\"") != NULL);
    ASSERT_U64_EQ(dg_metrics.live_skipped, skipped0);   /* nobody was slow */
    fx_free(f);
}

TEST(slow_watcher_gets_the_latest_per_drone_and_other_events_at_once)
{
    int slow, nfill;
    fixture_t *f = fx_slow(&slow, &nfill);
    ASSERT(f->c[slow]->out.len >= DG_LIVE_HIGH);
    size_t out0 = f->c[slow]->out.len;
    uint64_t skipped0 = dg_metrics.live_skipped;

    /* 50 states each of A, B, C, interleaved; an offline event of B among them */
    for (uint64_t s = 1; s <= 50; s++) {
        publish(f, "A", s);
        publish(f, "B", s);
        publish(f, "C", s);
        if (s == 25) dg_live_publish_presence(f->w, "B", false, 1795860000000LL);
        dg_live_flush(f->w);
    }
    /* the output did not grow by 150 telemetry frames: only the offline event */
    ASSERT(f->c[slow]->out.len - out0 < 200);
    ASSERT_U64_EQ(dg_metrics.live_skipped - skipped0, 3 * 49);

    /* Partly drained (below DG_LIVE_HIGH, not yet below DG_LIVE_LOW): while
     * states are pending, new telemetry still goes into them; sent at once
     * it would overtake its drone's pending older state. */
    take(f, slow, 96 * 1024);
    ASSERT(f->c[slow]->out.len < DG_LIVE_HIGH);
    ASSERT(f->c[slow]->out.len >= DG_LIVE_LOW);
    publish(f, "A", 51);
    publish(f, "B", 51);
    dg_live_flush(f->w);
    ASSERT_U64_EQ(dg_metrics.live_skipped - skipped0, 3 * 49 + 2);

    drain(f, slow);
    char id[64];
    unsigned long long seq;
    /* every fill event, in order, then the offline event, then A, B at 51, C at 50 */
    ASSERT_EQ(f->nmsg, (size_t)nfill + 1 + 3);
    for (int i = 0; i < nfill; i++) {
        if (!telemetry_of(f->msg[i], id, sizeof id, &seq) || strcmp(id, "fill") || seq != (unsigned long long)i + 1)
            CHECK__FAIL("message %d is not fill/%d: %.80s", i, i + 1, f->msg[i]);
    }
    ASSERT(strstr(f->msg[nfill], "{\"type\":\"offline\",\"drone_id\":\"B\"") == f->msg[nfill]);
    const char *want[3] = { "A", "B", "C" };
    const unsigned long long want_seq[3] = { 51, 51, 50 };
    for (int k = 0; k < 3; k++) {
        ASSERT(telemetry_of(f->msg[nfill + 1 + k], id, sizeof id, &seq));
        ASSERT_STR_EQ(id, want[k]);
        ASSERT_EQ(seq, want_seq[k]);
    }

    /* drained: events pass straight through again */
    skipped0 = dg_metrics.live_skipped;
    publish(f, "A", 51);
    publish(f, "A", 52);
    dg_live_flush(f->w);
    drain(f, slow);
    ASSERT_EQ(f->nmsg, 2);
    ASSERT(telemetry_of(f->msg[1], id, sizeof id, &seq));
    ASSERT_EQ(seq, 52);
    ASSERT_U64_EQ(dg_metrics.live_skipped, skipped0);

    /* slow again: the drones sent before are pending anew, once each */
    nfill = fill(f, slow);
    publish(f, "A", 53);
    publish(f, "A", 54);
    dg_live_flush(f->w);
    ASSERT_U64_EQ(dg_metrics.live_skipped, skipped0 + 1);
    drain(f, slow);
    ASSERT_EQ(f->nmsg, (size_t)nfill + 1);
    ASSERT(telemetry_of(f->msg[nfill], id, sizeof id, &seq));
    ASSERT_STR_EQ(id, "A");
    ASSERT_EQ(seq, 54);
    fx_free(f);
}

/* 300 drones pending at once: the conflation table grows 64 -> 1024 slots
 * while states are pending; they still come out once each, latest state,
 * in the order the drones first became pending. */
TEST(conflation_table_growth_keeps_order_and_latest)
{
    int slow, nfill;
    fixture_t *f = fx_slow(&slow, &nfill);
    char name[16];
    for (uint64_t s = 1; s <= 2; s++) {
        for (int d = 0; d < 300; d++) {
            snprintf(name, sizeof name, "d-%03d", d);
            publish(f, name, s);
        }
        dg_live_flush(f->w);
    }
    drain(f, slow);
    ASSERT_EQ(f->nmsg, (size_t)nfill + 300);
    char id[64];
    unsigned long long seq;
    for (int d = 0; d < 300; d++) {
        snprintf(name, sizeof name, "d-%03d", d);
        if (!telemetry_of(f->msg[nfill + d], id, sizeof id, &seq) || strcmp(id, name) || seq != 2)
            CHECK__FAIL("state %d: want %s/2, got %.80s", d, name, f->msg[nfill + d]);
    }
    fx_free(f);
}

int main(void)
{
    RUN(events_pass_in_order_and_through_the_filter);
    RUN(slow_watcher_gets_the_latest_per_drone_and_other_events_at_once);
    RUN(conflation_table_growth_keeps_order_and_latest);
    return check_summary("test_live");
}
