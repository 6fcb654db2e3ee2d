/* drone.c - a drone program on libdronegate: flies a small circle and sends
 * one telemetry sample per tick through the library, answers commands, and
 * flushes at the end. It drives the client from its own poll(2) loop (the
 * way a drone's existing event loop would); --thread lets the library run
 * its own thread instead.
 *
 *   cc -o drone drone.c $(pkg-config --cflags --libs dronegate)
 *   ./drone --url ws://127.0.0.1:8080 --id drone-1 --count 1000 --rate 10
 *
 * Options (all optional except --id):
 *   --url URL          ws://HOST:PORT, wss://HOST:PORT, grpc://HOST:PORT or grpcs://HOST:PORT
 *                      (default ws://127.0.0.1:8080)
 *   --format json|pb   ws://, wss://: subprotocol dronegate.json.v1 (default) or dronegate.pb.v1
 *   --id ID            drone id
 *   --token T          bearer token (default: $DRONEGATE_TOKEN)
 *   --count N          samples to send, 0 = until SIGINT/SIGTERM (default 0)
 *   --rate R           samples per second, 0 = as fast as the queue takes them (default 10)
 *   --ts0 MS           timestamp of sample i is MS + i (default: the clock)
 *   --queue-max N      queue bound (default 65536)   --policy refuse|drop
 *   --batch N --window N --max-rate N --ping-ms N --backoff-min-ms N --backoff-max-ms N
 *   --flush-ms N       flush deadline at the end (default 10000)
 *   --queue-file PATH  keep the queue in this file too (survives a crash); --sync: fdatasync each
 *   --resume           with --queue-file: sample numbering continues after the file's last seq
 *                      (sample i has seq i + 1 when the first run started at seq 1)
 *   --ca FILE          CA bundle for wss://          --insecure   no verification
 *   --sni NAME         TLS server name (SNI and the name verified; default: the URL's host)
 *   --thread           run the client on its own thread
 *   --quiet            no per-event lines
 * At the end one line of JSON with the counters goes to stdout; exit status
 * 0 when every accepted sample was acked, 3 when some were left unacked.
 */
#include <dronegate/client.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_flag;
static int quiet;

static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_ack(void *user, uint64_t seq)
{
    (void)user; (void)seq;
}

static void on_error(void *user, const dg_client_error_t *e)
{
    (void)user;
    if (!quiet)
        fprintf(stderr, "drone: %s error %s seq=%llu %s %s\n", e->from_server ? "gateway" : "link",
                e->code, (unsigned long long)e->seq, e->field, e->message);
}

static void on_state(void *user, dg_client_state_t s, const char *detail)
{
    (void)user;
    if (!quiet) fprintf(stderr, "drone: state %s%s%s\n", dg_client_state_name(s), *detail ? ": " : "", detail);
}

static void on_command(void *user, const dg_client_command_t *cmd)
{
    dg_client_t **cp = user;
    if (!quiet) fprintf(stderr, "drone: command %s %s %s\n", cmd->id, cmd->name, cmd->args_json);
    int known = !strcmp(cmd->name, "return_to_home") || !strcmp(cmd->name, "land");
    dg_client_command_ack(*cp, cmd->id, known ? "accepted" : "rejected", known ? "" : "unknown command");
}

int main(int argc, char **argv)
{
    dg_client_config_t cfg;
    dg_client_config_init(&cfg);
    cfg.url = "ws://127.0.0.1:8080";
    cfg.token = getenv("DRONEGATE_TOKEN");
    long long count = 0, ts0 = 0;
    double rate = 10;
    int flush_ms = 10000, use_thread = 0, resume = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (!strcmp(a, name) && v && ++i)
        if (OPT("--url")) cfg.url = v;
        else if (OPT("--id")) cfg.drone_id = v;
        else if (OPT("--token")) cfg.token = v;
        else if (OPT("--format")) cfg.format = !strcmp(v, "pb") ? DG_FORMAT_PROTOBUF : DG_FORMAT_JSON;
        else if (OPT("--count")) count = atoll(v);
        else if (OPT("--rate")) rate = atof(v);
        else if (OPT("--ts0")) ts0 = atoll(v);
        else if (OPT("--queue-max")) cfg.queue_max = (size_t)atoll(v);
        else if (OPT("--policy")) cfg.full_policy = !strcmp(v, "drop") ? DG_FULL_DROP_OLDEST : DG_FULL_REFUSE_NEWEST;
        else if (OPT("--batch")) cfg.batch_max = (unsigned)atoi(v);
        else if (OPT("--window")) cfg.window = (unsigned)atoi(v);
        else if (OPT("--max-rate")) cfg.max_rate = (unsigned)atoi(v);
        else if (OPT("--ping-ms")) cfg.ping_interval_ms = (unsigned)atoi(v);
        else if (OPT("--backoff-min-ms")) cfg.backoff_min_ms = (unsigned)atoi(v);
        else if (OPT("--backoff-max-ms")) cfg.backoff_max_ms = (unsigned)atoi(v);
        else if (OPT("--connect-timeout-ms")) cfg.connect_timeout_ms = (unsigned)atoi(v);
        else if (OPT("--flush-ms")) flush_ms = atoi(v);
        else if (OPT("--queue-file")) cfg.queue_file = v;
        else if (!strcmp(a, "--sync")) cfg.queue_file_sync = 1;
        else if (!strcmp(a, "--resume")) resume = 1;
        else if (OPT("--ca")) cfg.tls_ca_file = v;
        else if (OPT("--sni")) cfg.tls_server_name = v;
        else if (!strcmp(a, "--insecure")) cfg.tls_insecure = 1;
        else if (!strcmp(a, "--thread")) use_thread = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else { fprintf(stderr, "drone: unknown or incomplete option %s (see examples/drone.c)\n", a); return 2; }
#undef OPT
    }
    dg_client_t *c = NULL;
    cfg.cb = (dg_client_callbacks_t){ .on_ack = on_ack, .on_error = on_error,
                                      .on_command = on_command, .on_state = on_state };
    cfg.user = &c;
    char err[256];
    c = dg_client_open(&cfg, err, sizeof err);
    if (!c) { fprintf(stderr, "drone: %s\n", err); return 2; }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (use_thread && dg_client_start(c)) { fprintf(stderr, "drone: cannot start the client thread\n"); return 2; }

    long long sent = 0, full = 0;
    if (resume) {   /* the samples the last run gave to send are in the file */
        dg_client_stats_t st0;
        dg_client_stats(c, &st0);
        sent = (long long)st0.next_seq - 1;
        if (!quiet) fprintf(stderr, "drone: resuming at sample %lld (%llu unacked replayed)\n", sent,
                            (unsigned long long)st0.replayed);
    }
    int64_t start = mono_ms();
    long long sent0 = sent;
    while (!stop_flag && (count == 0 || sent < count)) {
        /* samples due by now */
        long long due = rate > 0 ? sent0 + (long long)((mono_ms() - start) * rate / 1000.0) + 1 : sent + 4096;
        if (count && due > count) due = count;
        while (sent < due) {
            double t = (double)sent / 100.0;
            dg_sample_t s = {
                .timestamp_ms = ts0 ? ts0 + sent : 0,
                .latitude = 47.3977 + 0.001 * sin(t), .longitude = 8.5456 + 0.001 * cos(t),
                .altitude = 488.0 + fmod((double)sent, 100.0),
                .speed = 12.5, .heading = fmod(t * 57.29578, 360.0), .battery = 100.0 - fmod(t, 100.0),
                .has = DG_HAS_SPEED | DG_HAS_HEADING | DG_HAS_BATTERY,
                .status = "airborne",
            };
            int rc = dg_client_send(c, &s, NULL);
            if (rc == DG_CLIENT_EFULL) { full++; if (rate <= 0) break; }   /* rate 0: wait for room */
            else if (rc < 0) { fprintf(stderr, "drone: send: %s\n", dg_client_strerror(rc)); return 1; }
            if (rc != DG_CLIENT_EFULL || rate > 0) sent++;
        }
        int wait = rate > 0 ? (int)(1000.0 / rate) + 1 : 5;
        if (use_thread) {
            poll(NULL, 0, wait);
        } else {
            int to = dg_client_timeout_ms(c);
            if (to < 0 || to > wait) to = wait;
            struct pollfd pf = { .fd = dg_client_fd(c), .events = (short)dg_client_events(c) };
            int r = poll(&pf, pf.fd >= 0 ? 1 : 0, to);
            if (r < 0 && errno != EINTR) { perror("poll"); return 1; }
            dg_client_process(c, r > 0 ? pf.revents : 0);
        }
    }
    long left = dg_client_flush(c, flush_ms);   /* wait for the acks */
    dg_client_stats_t st;
    dg_client_stats(c, &st);
    dg_client_close(c, 0);
    printf("{\"given\":%llu,\"refused_full\":%llu,\"dropped_oldest\":%llu,\"acked\":%llu,\"sent\":%llu,"
           "\"resent\":%llu,\"frames\":%llu,\"connects\":%llu,\"sessions\":%llu,\"skipped_by_session\":%llu,"
           "\"server_errors\":%llu,\"left\":%ld,\"next_seq\":%llu,\"replayed\":%llu}\n",
           (unsigned long long)st.accepted, (unsigned long long)st.refused_full,
           (unsigned long long)st.dropped_oldest, (unsigned long long)st.acked, (unsigned long long)st.sent,
           (unsigned long long)st.resent, (unsigned long long)st.frames, (unsigned long long)st.connects,
           (unsigned long long)st.sessions, (unsigned long long)st.skipped_by_session,
           (unsigned long long)st.server_errors, left, (unsigned long long)st.next_seq,
           (unsigned long long)st.replayed);
    (void)full;
    return left ? 3 : 0;
}
