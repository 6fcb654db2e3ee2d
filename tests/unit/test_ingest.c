/* test_ingest.c - the ack bookkeeping of src/core/ingest.c without a network:
 * dg_ingest_batch_done() (a store batch came back) and dg_ingest_flush_acks()
 * (send what is owed), on a drone connection whose socket is one end of a
 * socketpair; the test reads what the server wrote from the other end and
 * parses the unmasked WebSocket text frames.
 *
 * The worker and connection are built by hand with only what ingest touches
 * (worker.c's connection table, an ev loop for dg_conn_update_events, the
 * server's registry and config): no listening socket, no threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "core/config.h"
#include "core/ingest.h"
#include "core/metrics.h"
#include "core/registry.h"
#include "core/server.h"
#include "core/timefmt.h"
#include "net/worker.h"
#include "pipeline/batch.h"

static void noop_cb(struct ev_loop *l, ev_io *io, int ev) { (void)l; (void)io; (void)ev; }

typedef struct fixture {
    dg_config_t   cfg;
    dg_server_t   srv;
    dg_worker_t  *w;
    dg_conn_t    *c;
    int           peer;        /* the drone's end */
    dg_batch_t   *b;
} fixture_t;

#define DRONE "d-1"
#define GEN   7u

static fixture_t *fx_new(void)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->cfg.ack_interval_ms = 0;
    f->srv.cfg = &f->cfg;
    f->srv.registry = dg_registry_new();
    f->w = calloc(1, sizeof *f->w);
    f->w->srv = &f->srv;
    f->w->loop = ev_loop_new(EVFLAG_AUTO);
    f->w->slot_cap = 4;
    f->w->slots = calloc(f->w->slot_cap, sizeof *f->w->slots);
    f->w->gens = calloc(f->w->slot_cap, sizeof *f->w->gens);
    if (dg_ingest_register() || dg_worker_ext_init(f->w)) abort();   /* the decoder, the ack list */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) abort();
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    f->peer = sv[1];
    dg_conn_t *c = calloc(1, sizeof *c);
    ev_io_init(&c->io, noop_cb, sv[0], EV_READ);
    c->ops = &dg_ingest_conn_ops;
    dg_drone_chan(c)->io = &dg_ws_json_io;   /* the WebSocket JSON transport: a drone channel */
    c->w = f->w;
    c->fd = sv[0];
    c->slot = 1;
    c->gen = GEN;
    f->w->slots[1] = c;
    f->w->gens[1] = GEN;
    f->c = c;
    f->b = dg_batch_new(0, 16);
    return f;
}

static void fx_free(fixture_t *f)
{
    ev_io_stop(f->w->loop, &f->c->io);
    close(f->c->fd);
    close(f->peer);
    dg_buf_free(&f->c->out);
    free(f->c);
    free(f->w->slots);
    free(f->w->gens);
    dg_worker_ext_free(f->w);
    ev_loop_destroy(f->w->loop);
    dg_buf_free(&f->w->scratch);   /* error replies are built there */
    free(f->w);
    dg_registry_free(f->srv.registry);
    dg_batch_free(f->b);
    free(f);
}

static void add(fixture_t *f, uint64_t seq, uint32_t extra_flags, uint32_t gen)
{
    dg_batch_t *b = f->b;
    if (b->n == b->cap) abort();
    dg_record_t *r = &b->recs[b->n++];
    dg_record_init(r);
    r->seq = seq;
    r->flags = DG_REC_HAS_SEQ | extra_flags;
    r->origin = dg_origin_pack(0, 1, gen);
    r->drone_id_len = (uint8_t)strlen(DRONE);
    memcpy(r->drone_id, DRONE, r->drone_id_len + 1);
}

/* batch back from the store with `status`, then the loop's flush */
static void done(fixture_t *f, int status)
{
    f->b->status = status;
    dg_ingest_batch_done(f->w, f->b);
    dg_ingest_flush_acks(f->w, false);
    f->b->n = 0;
}

/* Every text message the server wrote so far, joined by '\n' (server
 * frames are unmasked; payloads here are < 126 bytes or 16-bit lengths). */
static const char *drain(fixture_t *f)
{
    static char out[8192];
    static uint8_t raw[8192];
    size_t n = 0, k = 0;
    for (;;) {
        ssize_t r = read(f->peer, raw + n, sizeof raw - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    out[0] = '\0';
    for (size_t i = 0; i + 2 <= n;) {
        size_t len = raw[i + 1] & 0x7f, h = 2;
        if (len == 126) { len = (size_t)raw[i + 2] << 8 | raw[i + 3]; h = 4; }
        if (i + h + len > n) break;
        if (k) out[k++] = '\n';
        memcpy(out + k, raw + i + h, len);
        k += len;
        out[k] = '\0';
        i += h + len;
    }
    return out;
}

TEST(durable_batch_acks_highest_seq)
{
    fixture_t *f = fx_new();
    add(f, 1, 0, GEN);
    add(f, 3, 0, GEN);
    add(f, 2, 0, GEN);
    done(f, 0);
    const char *s = drain(f);
    fx_free(f);
    ASSERT_STR_EQ(s, "{\"type\":\"ack\",\"seq\":3}");
}

TEST(failed_batch_is_not_acked)
{
    fixture_t *f = fx_new();
    add(f, 1, 0, GEN);
    add(f, 2, 0, GEN);
    done(f, -5);                    /* not stored: the drone resends */
    const char *s1 = drain(f);
    ASSERT_STR_EQ(s1, "");
    add(f, 1, 0, GEN);
    done(f, DG_BATCH_SPOOLED);      /* spooled: not durable yet */
    const char *s2 = drain(f);
    fx_free(f);
    ASSERT_STR_EQ(s2, "");
}

TEST(cumulative_and_never_backwards)
{
    fixture_t *f = fx_new();
    add(f, 5, 0, GEN);
    done(f, 0);
    ASSERT_STR_EQ(drain(f), "{\"type\":\"ack\",\"seq\":5}");
    add(f, 6, 0, GEN);
    add(f, 7, 0, GEN);
    done(f, 0);
    ASSERT_STR_EQ(drain(f), "{\"type\":\"ack\",\"seq\":7}");
    /* an empty round owes nothing */
    done(f, 0);
    const char *s = drain(f);
    fx_free(f);
    ASSERT_STR_EQ(s, "");
}

TEST(reused_seq_is_reported_not_acked)
{
    fixture_t *f = fx_new();
    add(f, 4, DG_REC_REJECTED_REUSED, GEN);
    done(f, 0);
    const char *s = drain(f);
    ASSERT(strstr(s, "\"type\":\"error\"") != NULL);
    ASSERT(strstr(s, "\"seq\":4,\"code\":\"seq_reused\"") != NULL);
    ASSERT(strstr(s, "\"type\":\"ack\"") == NULL);
    /* with an accepted one in the same batch: the ack names the accepted seq only */
    add(f, 8, 0, GEN);
    add(f, 9, DG_REC_REJECTED_REUSED, GEN);
    done(f, 0);
    s = drain(f);
    ASSERT(strstr(s, "\"seq\":9,\"code\":\"seq_reused\"") != NULL);
    ASSERT(strstr(s, "{\"type\":\"ack\",\"seq\":8}") != NULL);
    ASSERT(strstr(s, "\"type\":\"ack\",\"seq\":9") == NULL);
    fx_free(f);
}

TEST(resent_seq_is_acked_again)
{
    fixture_t *f = fx_new();
    add(f, 10, 0, GEN);
    done(f, 0);
    ASSERT_STR_EQ(drain(f), "{\"type\":\"ack\",\"seq\":10}");
    add(f, 9, 0, GEN);             /* a redelivery of something acked already */
    done(f, 0);
    const char *s = drain(f);
    fx_free(f);
    ASSERT_STR_EQ(s, "{\"type\":\"ack\",\"seq\":10}");
}

TEST(ack_interval_coalesces_until_forced)
{
    fixture_t *f = fx_new();
    f->cfg.ack_interval_ms = 60000;
    dg_drone_chan(f->c)->last_ack_ms = dg_mono_ms();   /* an ack just went out */
    add(f, 1, 0, GEN);
    add(f, 2, 0, GEN);
    done(f, 0);
    ASSERT_STR_EQ(drain(f), "");                /* held back: the interval has not passed */
    add(f, 3, 0, GEN);
    done(f, 0);
    ASSERT_STR_EQ(drain(f), "");
    dg_ingest_flush_acks(f->w, true);           /* the ack timer / drain */
    const char *s = drain(f);
    fx_free(f);
    ASSERT_STR_EQ(s, "{\"type\":\"ack\",\"seq\":3}");
}

TEST(record_without_seq_not_acked)
{
    fixture_t *f = fx_new();
    add(f, 3, 0, GEN);
    f->b->recs[0].flags = 0;        /* stored, but nothing to acknowledge */
    done(f, 0);
    const char *s = drain(f);
    fx_free(f);
    ASSERT_STR_EQ(s, "");
}

TEST(other_connection_generation_not_acked)
{
    fixture_t *f = fx_new();
    add(f, 1, 0, GEN + 1);          /* the slot was reused: another connection */
    done(f, 0);
    const char *s = drain(f);
    fx_free(f);
    ASSERT_STR_EQ(s, "");
}

TEST(closing_connection_not_acked)
{
    fixture_t *f = fx_new();
    dg_drone_chan(f->c)->ws.closed = 1;
    add(f, 1, 0, GEN);
    done(f, 0);
    const char *s = drain(f);
    fx_free(f);
    ASSERT_STR_EQ(s, "");
}

/* Issue 8 §1.1: decoding stops once the connection is going away. The
 * drone has gone (its end closed): the reply to the first bad message
 * fails (EPIPE) and closes the connection, and none of the other 1,999
 * objects of the frame is looked at. */
TEST(decoding_stops_once_the_connection_is_closing)
{
    fixture_t *f = fx_new();
    signal(SIGPIPE, SIG_IGN);       /* as the server does */
    close(f->peer);
    f->peer = -1;
    dg_buf_t frame = { 0 };
    dg_buf_puts(&frame, "[");
    for (int i = 0; i < 2000; i++)
        dg_buf_printf(&frame, "%s{\"seq\":%d,\"latitude\":999,\"longitude\":0,\"altitude\":0}", i ? "," : "", i + 1);
    dg_buf_puts(&frame, "]");
    uint64_t bad0 = dg_metrics.rejected[DG_REJ_INVALID_FIELD];
    dg_ingest_json(f->c, (const uint8_t *)frame.data, frame.len);
    uint64_t looked_at = dg_metrics.rejected[DG_REJ_INVALID_FIELD] - bad0;
    int dead = f->c->dead;
    dg_buf_free(&frame);
    f->w->dead = NULL;              /* closed (queued for the loop): freed here */
    fx_free(f);
    ASSERT(dead);
    ASSERT_U64_EQ(looked_at, 1);
}

int main(void)
{
    RUN(durable_batch_acks_highest_seq);
    RUN(failed_batch_is_not_acked);
    RUN(cumulative_and_never_backwards);
    RUN(reused_seq_is_reported_not_acked);
    RUN(resent_seq_is_acked_again);
    RUN(ack_interval_coalesces_until_forced);
    RUN(record_without_seq_not_acked);
    RUN(other_connection_generation_not_acked);
    RUN(closing_connection_not_acked);
    RUN(decoding_stops_once_the_connection_is_closing);
    return check_summary("ingest");
}
