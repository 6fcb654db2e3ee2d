/* main.c - dronegate: parse flags, open the store, start the writer and the
 * worker threads, wait for SIGTERM/SIGINT, drain, exit 0.
 *
 * Threads: main (signals only), one store writer, N workers (event loops).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "commands.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "reads.h"
#include "server.h"
#include "timefmt.h"
#include "ingest.h"
#include "../fleet/fleet.h"
#include "../grpc/grpc.h"
#include "../mavlink/endpoint.h"
#include "../http/http.h"
#include "../net/worker.h"
#include "../queue/queue.h"
#include "../queue/sinkcmd.h"

#define DG_READ_THREADS 4   /* store reads in flight at once (history, commands) */

static void on_batch_done(dg_batch_t *b, void *ud)
{
    dg_server_t *srv = ud;
    dg_worker_post(srv->workers[b->worker], &b->msg);
}

/* Joins the workers and says so (a bounded wait for them in main). */
typedef struct joiner {
    dg_server_t    *srv;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    bool            done;
} joiner_t;

static void *join_workers(void *arg)
{
    joiner_t *j = arg;
    for (int i = 0; i < j->srv->nworkers; i++) dg_worker_join(j->srv->workers[i]);
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

typedef struct restored {
    dg_commands_t *t;
    size_t n, expired;          /* taken back, marked expired */
    int64_t since_ms;           /* created before: overdue */
    const dg_store_ops_t *ops;
    dg_store_t *store;
} restored_t;

static int restore_command(void *ud, const dg_command_t *c)
{
    restored_t *rs = ud;
    if (c->created_ms < rs->since_ms) {
        /* overdue while the gateway was down: expired, counted from its
         * creation (never taken back, never delivered); the row says so */
        dg_command_t x = *c;
        char err[256];
        x.status = DG_CMD_EXPIRED;
        x.updated_ms = dg_now_ms();
        if (rs->ops->put_command && rs->ops->put_command(rs->store, &x, err, sizeof err) == 0) rs->expired++;
        else dg_warn("could not mark command %s expired: %s", c->id, rs->ops->put_command ? err : "store without commands");
        return 0;
    }
    if (dg_commands_restore(rs->t, c) == 0) rs->n++;
    return 0;
}

static int restore_one(void *ud, const dg_record_t *r)
{
    dg_registry_restore(ud, r);
    return 0;
}

/* The store URI for logs: secrets (user:PASS@, password=..., token=...) hidden. */
static void redact_uri(const char *uri, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", uri);
    char *scheme = strstr(out, "://");
    if (scheme) {
        char *user = scheme + 3, *at = strchr(user, '@'), *colon = strchr(user, ':');
        if (at && colon && colon < at) memmove(colon + 4, at, strlen(at) + 1), memcpy(colon, ":***", 4);
    }
    static const char *const keys[] = { "password=", "token=" };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        size_t kl = strlen(keys[k]);
        for (char *p = strstr(out, keys[k]); p; p = strstr(p + 1, keys[k])) {
            char *v = p + kl, *end = v + strcspn(v, " &");
            if (end - v >= 3) { memcpy(v, "***", 3); memmove(v + 3, end, strlen(end) + 1); }
            else memset(v, '*', (size_t)(end - v));
        }
    }
}

static int cmd_token(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dronegate token DRONE_ID [--auth-secret S]\n");
        return 2;
    }
    const char *id = argv[2];
    dg_config_t cfg;
    char err[512];
    if (dg_config_load(&cfg, argc, argv, 3, err, sizeof err) < 0) {
        fprintf(stderr, "dronegate: %s\n", err);
        return 2;
    }
    if (!dg_drone_id_valid(id, strlen(id))) {
        fprintf(stderr, "dronegate: invalid drone id '%s': use 1-64 characters of A-Z a-z 0-9 . _ -\n", id);
        return 2;
    }
    if (!cfg.auth_secret[0]) {
        fprintf(stderr, "dronegate: no secret configured: pass --auth-secret S or set DRONEGATE_AUTH_SECRET\n");
        return 2;
    }
    char tok[DG_TOKEN_LEN + 1];
    if (dg_auth_token(cfg.auth_secret, id, strlen(id), tok)) {
        fprintf(stderr, "dronegate: HMAC failed\n");
        return 1;
    }
    printf("%s\n", tok);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "token")) return cmd_token(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "sink")) return dg_sink_main(argc, argv, 2);
    const char *base = strrchr(argv[0], '/');
    if (!strcmp(base ? base + 1 : argv[0], "dronegate-sink")) return dg_sink_main(argc, argv, 1);

    static dg_config_t cfg;
    static dg_server_t srv;
    char err[1024];
    int rc = dg_config_load(&cfg, argc, argv, 1, err, sizeof err);
    if (rc == 1) return 0;
    if (rc < 0) { fprintf(stderr, "dronegate: %s\n", err); return 2; }
    snprintf(dg_instance, sizeof dg_instance, "%s", cfg.instance);
    if (!strcmp(cfg.log_level, "debug")) dg_log_level = DG_LOG_DEBUG;
    else if (!strcmp(cfg.log_level, "warn")) dg_log_level = DG_LOG_WARN;
    else if (!strcmp(cfg.log_level, "error")) dg_log_level = DG_LOG_ERROR;
    if (cfg.mavlink_forward[0] && !cfg.mavlink_listen[0]) {
        fprintf(stderr, "dronegate: --mavlink-forward needs --mavlink-listen\n");
        return 2;
    }

    /* Every connection is a file descriptor: take the hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (cfg.max_connections == 0)
        cfg.max_connections = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 256 ? (long)rl.rlim_cur - 128 : 1024;
    else if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (long)rl.rlim_cur < cfg.max_connections + 64) {
        /* more connections than descriptors would make accept() fail with
         * EMFILE instead of answering 503: clamp (64 kept for the store,
         * listeners, event loops, logs) */
        long fit = (long)rl.rlim_cur > 128 ? (long)rl.rlim_cur - 64 : (long)rl.rlim_cur / 2;
        dg_warn("--max-connections %ld is above what the open-file limit %ld allows: using %ld "
                "(raise the limit with ulimit -n to allow more)", cfg.max_connections, (long)rl.rlim_cur, fit);
        cfg.max_connections = fit;
    }

    srv.cfg = &cfg;
    srv.started_ms = dg_now_ms();
    if (dg_split_hostport(cfg.listen, srv.host, sizeof srv.host, &srv.port)) {
        fprintf(stderr, "dronegate: --listen %s is not HOST:PORT\n", cfg.listen);
        return 2;
    }
    srv.store_ops = dg_store_lookup(cfg.store);
    if (!srv.store_ops) {
        fprintf(stderr, "dronegate: unknown store URI scheme '%.*s' in --store: use sqlite:PATH, postgresql://..., "
                        "influxdb://HOST:PORT/DB or null:\n", (int)strcspn(cfg.store, ":"), cfg.store);
        return 2;
    }
    dg_metrics.store_name = srv.store_ops->scheme;
    /* --queue: the broker publisher, checked before anything else starts */
    const dg_sink_ops_t *qops = NULL;
    void *pub = NULL;
    char shown_queue[1100] = "";
    if (cfg.queue[0]) {
        redact_uri(cfg.queue, shown_queue, sizeof shown_queue);
        pub = dg_queue_publisher_new(cfg.queue, on_batch_done, &srv, &qops, err, sizeof err);
        if (!pub) { fprintf(stderr, "dronegate: --queue %s: %s\n", shown_queue, err); return 2; }
    }
    dg_store_config_t scfg = { .fsync = cfg.fsync };
    /* Block SIGTERM/SIGINT before the first thread exists (the SQLite store
     * starts its checkpoint thread in open()): a thread that does not block
     * them takes a SIGTERM that arrives before main is in sigwait() and the
     * default action kills the process (exit -15 instead of a drain). */
    sigset_t early;
    sigemptyset(&early);
    sigaddset(&early, SIGTERM);
    sigaddset(&early, SIGINT);
    pthread_sigmask(SIG_BLOCK, &early, NULL);
    if (srv.store_ops->open(cfg.store, &scfg, &srv.store, err, sizeof err) < 0) {
        fprintf(stderr, "dronegate: %s\n", err);
        return 1;
    }
    if (!srv.store_ops->last_seq)
        dg_warn("store %s cannot tell a drone's last stored seq: the session message says null at a drone's "
                "first connection of this run", srv.store_ops->scheme);
    srv.commands = dg_commands_new(cfg.command_timeout_ms);
    srv.registry = dg_registry_new();
    if (!srv.registry) { fprintf(stderr, "dronegate: out of memory\n"); return 1; }
    dg_registry_set_max_offline(srv.registry, (size_t)cfg.registry_max_offline);
    if (srv.store_ops->latest(srv.store, restore_one, srv.registry, err, sizeof err) < 0)
        dg_warn("could not restore the drone registry from the store: %s", err);
    if (srv.commands && srv.store_ops->open_commands) {
        /* commands of an earlier run that did not finish and have not timed
         * out: pending ones go to their drone when it (re)connects, acks of
         * sent/accepted ones are taken, expiry goes on */
        /* every open row: the overdue ones are marked expired (before the
         * writer thread starts: this thread is the only writer here) */
        restored_t rs = { srv.commands, 0, 0, dg_now_ms() - cfg.command_timeout_ms, srv.store_ops, srv.store };
        if (srv.store_ops->open_commands(srv.store, 0, restore_command, &rs, err, sizeof err) < 0)
            dg_warn("could not take back the open commands from the store: %s", err);
        else {
            if (rs.n) dg_info("took back %zu open command%s of an earlier run", rs.n, rs.n > 1 ? "s" : "");
            if (rs.expired) dg_info("%zu command%s of an earlier run expired while the gateway was down", rs.expired, rs.expired > 1 ? "s" : "");
        }
    }

    /* Signals: handled synchronously by main; workers never see them. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    srv.nworkers = (int)cfg.workers;
    srv.workers = calloc((size_t)srv.nworkers, sizeof *srv.workers);
    int port = srv.port;
    /* SO_REUSEPORT would let us share the port with another process (even
     * another dronegate) and silently split the traffic: first make sure the
     * port is free with a plain bind. */
    if (port != 0) {
        int probe = dg_listen_probe(srv.host, port, err, sizeof err);
        if (probe < 0) { fprintf(stderr, "dronegate: %s\n", err); return 1; }
    }
    /* the per-worker state of the drone channel and the live stream (worker.h ext) */
    if (dg_ingest_register()) { fprintf(stderr, "dronegate: too many per-worker extensions\n"); return 1; }
    for (int i = 0; i < srv.nworkers; i++) {
        int bound = 0;
        int fd = dg_listen(srv.host, port, &bound, err, sizeof err);
        if (fd < 0) { fprintf(stderr, "dronegate: %s\n", err); return 1; }
        if (port == 0) port = srv.port = bound;
        srv.accept_ops = &dg_http_conn_ops;   /* connections start as HTTP */
        srv.worker_hooks = &dg_ingest_worker_hooks;
        srv.workers[i] = dg_worker_new(&srv, i, fd);
        if (!srv.workers[i]) { fprintf(stderr, "dronegate: out of memory creating worker %d\n", i); return 1; }
    }
    /* gRPC (h2c) on its own port, in the same workers */
    char ghost[256] = "";
    int gport = 0;
    if (cfg.grpc_listen[0]) {
        if (dg_split_hostport(cfg.grpc_listen, ghost, sizeof ghost, &gport)) {
            fprintf(stderr, "dronegate: --grpc-listen must be HOST:PORT (got \"%s\")\n", cfg.grpc_listen);
            return 2;
        }
        if (gport != 0) {
            int probe = dg_listen_probe(ghost, gport, err, sizeof err);
            if (probe < 0) { fprintf(stderr, "dronegate: --grpc-listen: %s\n", err); return 1; }
        }
        for (int i = 0; i < srv.nworkers; i++) {
            int bound = 0;
            int fd = dg_listen(ghost, gport, &bound, err, sizeof err);
            if (fd < 0) { fprintf(stderr, "dronegate: --grpc-listen: %s\n", err); return 1; }
            if (gport == 0) gport = bound;
            if (dg_worker_listen(srv.workers[i], fd, &dg_grpc_conn_ops)) { close(fd); return 1; }
        }
    }
    /* MAVLink/UDP: one socket, read by worker 0 (its datagram listener) */
    dg_mav_ep_t *mav = NULL;
    int mport = 0;
    if (cfg.mavlink_listen[0] && !(mav = dg_mav_ep_start(&srv, cfg.mavlink_listen, &mport, err, sizeof err))) {
        fprintf(stderr, "dronegate: %s\n", err);
        return 1;
    }
    if (!cfg.auth_secret[0])
        dg_warn("*** auth is OFF: any client can send telemetry as any drone. Set --auth-secret "
                "(DRONEGATE_AUTH_SECRET) in production. ***");
    if (cfg.auth_secret[0] && !cfg.operator_token[0] && !cfg.operator_read_token[0])
        dg_warn("auth is on but no --operator-token is set: the REST API and the live stream refuse every request");
    if (!cfg.auth_secret[0] && (cfg.operator_token[0] || cfg.operator_read_token[0]))
        dg_info("operator tokens are set: the REST API and the live stream require them (drones are not authenticated)");
    if (!srv.store_ops->durable)
        dg_warn("*** null store: telemetry is validated and acked but NOT stored (benchmark mode) ***");
    char shown_store[1100];
    redact_uri(cfg.store, shown_store, sizeof shown_store);
    dg_info("listening on %s:%d (HTTP, WebSocket /ws/{drone_id}, REST /api/v1, /metrics), %d workers, store %s%s, "
            "%zu drones known",
            srv.host, srv.port, srv.nworkers, shown_store, cfg.fsync ? " (fsync before ack)" : "",
            dg_registry_count(srv.registry));
    if (gport) dg_info("gRPC listening on %s:%d (h2c, dronegate.v1.Telemetry/Stream)", ghost, gport);
    if (mav) dg_info("MAVLink listening on udp %s (port %d): vehicles by (address, sysid), drone id mav-{sysid}; "
                     "no acks over UDP; signing %s", cfg.mavlink_listen, mport,
                     !cfg.mavlink_signing_key[0] ? "off" : cfg.mavlink_signing_optional ? "optional" : "required");

    srv.writer = dg_writer_new(srv.store_ops, srv.store, on_batch_done, &srv);
    if (!cfg.spool_dir[0]) {
        int n = !strncmp(cfg.store, "sqlite:", 7)
                    ? snprintf(cfg.spool_dir, sizeof cfg.spool_dir, "%.1000s.spool", cfg.store + 7)
                    : snprintf(cfg.spool_dir, sizeof cfg.spool_dir, "./data/spool");
        (void)n;
    }
    if (srv.writer && srv.store_ops->durable && cfg.spool_max_mb > 0) {
        /* create the parent (./data) when it is missing, like the SQLite path */
        char parent[1024];
        snprintf(parent, sizeof parent, "%s", cfg.spool_dir);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) { *slash = '\0'; mkdir(parent, 0755); }
        int src = dg_writer_set_spool(srv.writer, cfg.spool_dir, (uint64_t)cfg.spool_max_mb << 20,
                                      (size_t)(cfg.batch_pool / 2));
        if (src < 0) {
            fprintf(stderr, "dronegate: cannot use the spool directory %s: %s (set --spool-dir to a writable "
                            "directory, or --spool-max-mb 0 for a memory-only backlog)\n", cfg.spool_dir, strerror(-src));
            return 1;
        }
    } else if (srv.writer) {
        dg_writer_set_spool(srv.writer, NULL, 0, (size_t)(cfg.batch_pool / 2));
    }
    if (srv.writer) dg_writer_set_commit_interval(srv.writer, srv.store_ops->durable ? cfg.commit_interval_ms : 0);
    if (!srv.writer || dg_writer_start(srv.writer)) { fprintf(stderr, "dronegate: cannot start the store writer\n"); return 1; }
    /* Telemetry goes to the store writer, or with --queue to a broker
     * publisher (the writer then only writes commands; dronegate sink stores
     * the telemetry). Both are sinks (sink.h): the acks follow done(). */
    srv.sink_ops = &dg_writer_sink_ops;
    srv.sink = srv.writer;
    if (pub) {
        int qrc = qops->start(pub);
        if (qrc) { fprintf(stderr, "dronegate: --queue %s: cannot start the publisher: %s\n", shown_queue, strerror(-qrc)); return 1; }
        srv.sink_ops = qops;
        srv.sink = pub;
        dg_info("telemetry goes to the %s queue %s (acks follow the broker's confirmation); the store keeps "
                "commands and the registry, dronegate sink stores the telemetry", qops->name, shown_queue);
    }
    if (!(srv.reads = dg_reads_start(&srv, DG_READ_THREADS))) { fprintf(stderr, "dronegate: cannot start the store read threads\n"); return 1; }
    srv.fleet = dg_fleet_start(&srv, cfg.store, cfg.instance, err, sizeof err);   /* NULL unless postgresql:// */
    if (!srv.fleet && err[0]) { fprintf(stderr, "dronegate: fleet: %s\n", err); return 1; }
    for (int i = 0; i < srv.nworkers; i++)
        if (dg_worker_start(srv.workers[i])) { fprintf(stderr, "dronegate: cannot start worker %d\n", i); return 1; }

    int sig = 0;
    while (sigwait(&set, &sig) != 0 || (sig != SIGTERM && sig != SIGINT)) {}
    dg_info("%s received: draining (stop accepting, store and ack what was received, close with 1001)",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    atomic_store(&srv.draining, 1);
    for (int i = 0; i < srv.nworkers; i++) dg_worker_drain(srv.workers[i]);
    if (srv.sink != srv.writer) {
        /* A publisher holds each batch until the broker confirms it, and the
         * workers wait for their batches: if the broker does not confirm
         * within --shutdown-timeout, stop the publisher, which hands back
         * what is unconfirmed (not acked: the drones resend it). */
        joiner_t j = { .srv = &srv, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
        pthread_t jt;
        if (pthread_create(&jt, NULL, join_workers, &j) != 0) join_workers(&j);
        else {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            long ms = cfg.shutdown_timeout_ms + 1000;
            until.tv_sec += ms / 1000;
            until.tv_nsec += (ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
            pthread_mutex_lock(&j.mu);
            while (!j.done && pthread_cond_timedwait(&j.cv, &j.mu, &until) == 0) {}
            bool done = j.done;
            pthread_mutex_unlock(&j.mu);
            if (!done) {
                dg_warn("the broker did not confirm everything within --shutdown-timeout: what is unconfirmed is not acked (the drones resend it)");
                srv.sink_ops->stop(srv.sink, dg_mono_ms());
            }
            pthread_join(jt, NULL);
        }
    } else {
        for (int i = 0; i < srv.nworkers; i++) dg_worker_join(srv.workers[i]);
    }
    dg_fleet_stop(srv.fleet);   /* after the workers: their last presence events are written */
    srv.fleet = NULL;
    dg_reads_stop(srv.reads);   /* replies to the joined workers are freed with them */
    srv.reads = NULL;
    if (srv.sink != srv.writer) srv.sink_ops->stop(srv.sink, dg_mono_ms() + 1000);
    dg_writer_stop(srv.writer, dg_mono_ms() + 1000);
    /* batches handed back after the workers left are freed with the workers */
    for (int i = 0; i < srv.nworkers; i++) dg_worker_free(srv.workers[i]);
    dg_mav_ep_free(mav);
    if (srv.sink != srv.writer) srv.sink_ops->free(srv.sink);
    dg_writer_free(srv.writer);
    srv.store_ops->close(srv.store);
    dg_registry_free(srv.registry);
    dg_commands_free(srv.commands);
    free(srv.workers);
    dg_info("stopped cleanly");
    return 0;
}
