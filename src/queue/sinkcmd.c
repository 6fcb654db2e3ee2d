/* sinkcmd.c - `dronegate sink` (also run as `dronegate-sink`): consume the
 * queue and store it (queue.h, CONTRACT.md "Queue").
 *
 *   consumer thread: poll up to --batch-records messages -> decode (poison
 *                    messages counted and skipped) -> one batch to the store
 *                    writer (pipeline/writer.h, the gateway's own writer);
 *                    while it is stored the next batch is polled; once its
 *                    done(status 0) is back -> consumer commit(token)
 *   writer thread:   the store transaction, retried with backoff while the
 *                    store fails (nothing is committed to the broker then)
 *   http thread:     /metrics, /healthz, /readyz on --listen
 *   main thread:     signals; SIGTERM/SIGINT finish the batch in flight,
 *                    commit it, exit 0
 *
 * The broker offset / delivery ack is committed only after the store commit:
 * a crash in between redelivers, and the store's unique (drone_id, seq)
 * makes the second write a no-op, so every message is stored exactly once.
 * Generic over dg_queue_consumer_ops_t: Kafka and AMQP plug in the same way.
 */
#include "sinkcmd.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "queue.h"
#include "../core/buf.h"
#include "../core/config.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/timefmt.h"
#include "../net/worker.h"
#include "../pipeline/writer.h"
#include "../store/store.h"

typedef struct sinkst {
    const dg_config_t             *cfg;
    const dg_store_ops_t          *sops;
    dg_store_t                    *store;
    dg_writer_t                   *writer;
    bool                           writer_stopped;
    const dg_queue_consumer_ops_t *qops;
    void                          *qc;
    pthread_mutex_t                mu;
    pthread_cond_t                 cv;
    bool                           done;        /* the batch in flight came back */
    atomic_int                     stop;
    atomic_int                     broker_down;
    atomic_int                     finished;    /* the consumer loop ended */
    int64_t                        stop_deadline;
    atomic_llong                   lag;
    dg_counter_t                   consumed, poison, commits, commit_errors;
    int                            lfd;
} sinkst_t;

static void on_done(dg_batch_t *b, void *ud)
{
    sinkst_t *s = ud;
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Hand b to the writer (one batch in flight at a time). */
static void submit_batch(sinkst_t *s, dg_batch_t *b)
{
    pthread_mutex_lock(&s->mu);
    s->done = false;
    pthread_mutex_unlock(&s->mu);
    dg_writer_submit(s->writer, b);
}

/* Wait until b is back from the writer; its status. On SIGTERM the wait
 * lasts until --shutdown-timeout; then the writer is stopped, which hands b
 * back not stored (status < 0). */
static int wait_batch(sinkst_t *s, dg_batch_t *b)
{
    pthread_mutex_lock(&s->mu);
    while (!s->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        if (!s->done && atomic_load(&s->stop) && dg_mono_ms() >= s->stop_deadline && !s->writer_stopped) {
            pthread_mutex_unlock(&s->mu);
            dg_warn("sink: the store did not take the batch in flight before --shutdown-timeout: its messages stay in the queue");
            dg_writer_stop(s->writer, dg_mono_ms());
            s->writer_stopped = true;
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return b->status;
}

static void commit(sinkst_t *s, uint64_t token)
{
    if (s->qops->commit(s->qc, token) == 0) dg_inc(&s->commits, 1);
    else dg_inc(&s->commit_errors, 1);
}

/* Two batches: the next one is polled and decoded while the writer stores
 * the one before; a batch's messages are committed only once it is stored,
 * and in order (a commit covers everything polled up to its token). */
static void *consume_main(void *arg)
{
    sinkst_t *s = arg;
    int max = (int)s->cfg->batch_records;
    dg_queue_msg_t *msgs = calloc((size_t)max, sizeof *msgs);
    dg_batch_t *bs[2] = { dg_batch_new(0, (size_t)max), dg_batch_new(0, (size_t)max) };
    if (!msgs || !bs[0] || !bs[1]) {
        dg_error("sink: out of memory");
        free(msgs); dg_batch_free(bs[0]); dg_batch_free(bs[1]);
        atomic_store(&s->finished, 1);
        kill(getpid(), SIGTERM);
        return NULL;
    }
    dg_batch_t *pending = NULL;   /* at the writer */
    uint64_t pending_tok = 0;     /* its last message */
    int cur = 0;
    int64_t next_lag = 0;
    unsigned long poison_logged = 0;
    while (!atomic_load(&s->stop)) {
        if (dg_mono_ms() >= next_lag) {
            int64_t lag = s->qops->lag(s->qc);
            atomic_store(&s->lag, lag);
            atomic_store(&s->broker_down, lag < 0);
            next_lag = dg_mono_ms() + 1000;
        }
        int n = s->qops->poll(s->qc, msgs, max, pending ? 0 : 200);
        if (n < 0) atomic_store(&s->broker_down, 1);
        dg_batch_t *b = bs[cur];
        b->n = 0;
        b->status = 0;
        if (n > 0) {
            atomic_store(&s->broker_down, 0);
            dg_inc(&s->consumed, (uint64_t)n);
        }
        for (int i = 0; i < n; i++) {
            char err[256];
            dg_record_t *r = &b->recs[b->n];
            if (dg_queue_decode_json(msgs[i].value, msgs[i].len, r, err, sizeof err) < 0) {
                dg_inc(&s->poison, 1);
                if (poison_logged++ < 10)
                    dg_warn("sink: skipped a message that is not a telemetry record (%s)%s", err,
                            poison_logged == 10 ? "; further ones are only counted (dronegate_sink_poison_total)" : "");
                continue;
            }
            r->origin = 0;
            b->n++;
        }
        if (pending) {
            int st = wait_batch(s, pending);
            pending = NULL;
            if (st != 0) break;   /* only at shutdown: not stored, not committed */
            commit(s, pending_tok);   /* stored: now, and only now, the broker may forget it */
        }
        if (n <= 0) continue;
        if (b->n) {
            submit_batch(s, b);
            pending = b;
            pending_tok = msgs[n - 1].token;
            cur ^= 1;
        } else {
            commit(s, msgs[n - 1].token);   /* nothing storable (poison only), the batch before is committed */
        }
    }
    if (pending && wait_batch(s, pending) == 0) commit(s, pending_tok);
    dg_batch_free(bs[0]);
    dg_batch_free(bs[1]);
    free(msgs);
    atomic_store(&s->finished, 1);
    return NULL;
}

/* ---- /metrics, /healthz, /readyz ---- */

static void respond(int fd, int status, const char *ctype, const char *body, size_t len)
{
    char h[256];
    int hl = snprintf(h, sizeof h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, status == 200 ? "OK" : status == 404 ? "Not Found" : "Service Unavailable", ctype, len);
    struct part { const void *b; size_t n; } parts[2] = { { h, (size_t)hl }, { body, len } };
    for (int i = 0; i < 2; i++) {
        const char *p = parts[i].b;
        size_t left = parts[i].n;
        while (left) {
            ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
            if (w <= 0) return;
            p += w;
            left -= (size_t)w;
        }
    }
}

static void serve_one(sinkst_t *s, int fd)
{
    struct timeval tv = { 2, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char req[4096];
    size_t got = 0;
    while (got < sizeof req - 1) {
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n")) break;
    }
    req[got] = '\0';
    char path[256] = "";
    if (sscanf(req, "GET %255s HTTP/1.", path) != 1) { respond(fd, 404, "text/plain", "not found\n", 10); return; }
    path[strcspn(path, "?")] = '\0';
    if (!strcmp(path, "/healthz")) { respond(fd, 200, "text/plain", "ok\n", 3); return; }
    if (!strcmp(path, "/readyz")) {
        if (atomic_load(&s->stop)) respond(fd, 503, "text/plain", "draining\n", 9);
        else if (atomic_load(&s->broker_down)) respond(fd, 503, "text/plain", "queue unreachable\n", 18);
        else if (dg_writer_failing(s->writer) || s->sops->ping(s->store) != 0) respond(fd, 503, "text/plain", "store unreachable\n", 18);
        else respond(fd, 200, "text/plain", "ready\n", 6);
        return;
    }
    if (!strcmp(path, "/metrics")) {
        dg_buf_t b = { 0 };
        dg_metrics_render(&b);
        dg_buf_printf(&b, "# HELP dronegate_sink_lag_messages Messages in the queue not yet consumed by this sink's group (-1 unknown).\n"
                          "# TYPE dronegate_sink_lag_messages gauge\ndronegate_sink_lag_messages %lld\n", (long long)atomic_load(&s->lag));
        dg_buf_printf(&b, "# HELP dronegate_sink_consumed_total Messages taken from the queue.\n"
                          "# TYPE dronegate_sink_consumed_total counter\ndronegate_sink_consumed_total %" PRIu64 "\n", (uint64_t)atomic_load(&s->consumed));
        dg_buf_printf(&b, "# HELP dronegate_sink_poison_total Messages skipped because they are not telemetry records.\n"
                          "# TYPE dronegate_sink_poison_total counter\ndronegate_sink_poison_total %" PRIu64 "\n", (uint64_t)atomic_load(&s->poison));
        dg_buf_printf(&b, "# HELP dronegate_sink_commits_total Offset commits (Kafka) / delivery acks (AMQP) after a store commit.\n"
                          "# TYPE dronegate_sink_commits_total counter\ndronegate_sink_commits_total %" PRIu64 "\n", (uint64_t)atomic_load(&s->commits));
        dg_buf_printf(&b, "# HELP dronegate_sink_commit_errors_total Failed offset commits (the messages come again; the store ignores duplicates).\n"
                          "# TYPE dronegate_sink_commit_errors_total counter\ndronegate_sink_commit_errors_total %" PRIu64 "\n", (uint64_t)atomic_load(&s->commit_errors));
        respond(fd, 200, "text/plain; version=0.0.4", (const char *)b.data, b.len);
        dg_buf_free(&b);
        return;
    }
    respond(fd, 404, "text/plain", "not found\n", 10);
}

static void *http_main(void *arg)
{
    sinkst_t *s = arg;
    while (!atomic_load(&s->finished)) {
        struct pollfd p = { .fd = s->lfd, .events = POLLIN };
        if (poll(&p, 1, 200) <= 0) continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        serve_one(s, fd);
        close(fd);
    }
    return NULL;
}

int dg_sink_main(int argc, char **argv, int first)
{
    static dg_config_t cfg;
    static sinkst_t s;
    char err[1024];
    int rc = dg_config_load(&cfg, argc, argv, first, err, sizeof err);
    if (rc == 1) return 0;
    if (rc < 0) { fprintf(stderr, "dronegate sink: %s\n", err); return 2; }
    if (!strcmp(cfg.log_level, "debug")) dg_log_level = DG_LOG_DEBUG;
    else if (!strcmp(cfg.log_level, "warn")) dg_log_level = DG_LOG_WARN;
    else if (!strcmp(cfg.log_level, "error")) dg_log_level = DG_LOG_ERROR;
    if (!cfg.queue[0]) { fprintf(stderr, "dronegate sink: --queue URI is required (the queue to consume)\n"); return 2; }
    s.cfg = &cfg;
    s.lfd = -1;
    atomic_store(&s.lag, -1);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.qops = dg_queue_consumer_ops(cfg.queue, err, sizeof err);
    if (!s.qops) { fprintf(stderr, "dronegate sink: --queue: %s\n", err); return 2; }
    s.sops = dg_store_lookup(cfg.store);
    if (!s.sops) { fprintf(stderr, "dronegate sink: unknown store URI scheme in --store (sqlite:PATH, postgresql://..., influxdb://HOST:PORT/DB)\n"); return 2; }
    if (!s.sops->durable) { fprintf(stderr, "dronegate sink: --store %s stores nothing: the sink would commit offsets of messages it dropped\n", cfg.store); return 2; }
    dg_metrics.store_name = s.sops->scheme;

    char host[256];
    int port = 0;
    if (dg_split_hostport(cfg.listen, host, sizeof host, &port)) { fprintf(stderr, "dronegate sink: --listen %s is not HOST:PORT\n", cfg.listen); return 2; }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    dg_store_config_t scfg = { .fsync = cfg.fsync };
    if (s.sops->open(cfg.store, &scfg, &s.store, err, sizeof err) < 0) { fprintf(stderr, "dronegate sink: %s\n", err); return 1; }
    s.qc = s.qops->open(cfg.queue, cfg.group, (int)cfg.batch_records, err, sizeof err);
    if (!s.qc) { fprintf(stderr, "dronegate sink: --queue: %s\n", err); s.sops->close(s.store); return 2; }

    if (port != 0 && dg_listen_probe(host, port, err, sizeof err) < 0) { fprintf(stderr, "dronegate sink: --listen: %s\n", err); return 1; }
    s.lfd = dg_listen(host, port, &port, err, sizeof err);
    if (s.lfd < 0) { fprintf(stderr, "dronegate sink: --listen: %s\n", err); return 1; }
    s.writer = dg_writer_new(s.sops, s.store, on_done, &s);
    if (!s.writer) { fprintf(stderr, "dronegate sink: out of memory\n"); return 1; }
    dg_writer_set_spool(s.writer, NULL, 0, 4);
    if (dg_writer_start(s.writer)) { fprintf(stderr, "dronegate sink: cannot start the store writer\n"); return 1; }
    dg_info("sink: consuming %s queue into store %s; /metrics /healthz /readyz on %s:%d",
            s.qops->name, s.sops->scheme, host, port);

    pthread_t cth, hth;
    if (pthread_create(&cth, NULL, consume_main, &s) || pthread_create(&hth, NULL, http_main, &s)) {
        fprintf(stderr, "dronegate sink: cannot start threads\n");
        return 1;
    }
    int sig = 0;
    for (;;) {
        if (sigwait(&set, &sig) == 0 && (sig == SIGTERM || sig == SIGINT)) break;
    }
    dg_info("sink: %s received: finishing the batch in flight, committing it, exiting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    s.stop_deadline = dg_mono_ms() + cfg.shutdown_timeout_ms;
    atomic_store(&s.stop, 1);
    pthread_join(cth, NULL);
    pthread_join(hth, NULL);
    if (!s.writer_stopped) dg_writer_stop(s.writer, dg_mono_ms() + 1000);
    dg_writer_free(s.writer);
    s.qops->close(s.qc);
    s.sops->close(s.store);
    close(s.lfd);
    dg_info("sink: stopped cleanly");
    return 0;
}
