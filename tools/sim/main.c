/* main.c - dronegate-sim: flags, start-up, reports, signals.
 *
 * Every flag --name has an environment variable DRONEGATE_SIM_NAME (dashes
 * become underscores); the flag wins. The main thread starts the workers,
 * then waits for signals with sigtimedwait() and prints a report line every
 * second (stderr) until the duration is over or SIGINT/SIGTERM arrives; it
 * then tells the workers to stop (they drain acks for up to --drain s and close
 * each connection with 1000), joins them and prints the final report
 * (stdout; one JSON object with --json). A second signal aborts at once.
 *
 * Exit status: 0 when the run happened, 1 when no drone could connect at all,
 * 2 for bad flags or a start-up failure.
 */
#include "sim.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define DEFAULT_URL   "ws://127.0.0.1:8080"
#define AUTO_SPREAD   20000   /* connections per source address before auto-spreading */

static void usage(FILE *f)
{
    fputs(
"usage: dronegate-sim [flags]   (each flag also as env DRONEGATE_SIM_<NAME>)\n"
"  --url ws://HOST:PORT   server (default " DEFAULT_URL "); drones connect to /ws/{id}\n"
"                         (grpc: grpc://HOST:PORT or http://HOST:PORT, the --grpc-listen port)\n"
"  --transport T          ws-json (default; also \"ws\"), ws-pb (WebSocket dronegate.pb.v1),\n"
"                         grpc (dronegate.v1.Telemetry/Stream over h2c) or mavlink\n"
"                         (below)\n"
"  --drones N             simulated drones, one connection each (default 20)\n"
"  --rate HZ              messages per second per drone (default 1; 0 = as fast\n"
"                         as the ack window allows)\n"
"  --batch K              messages per frame (default 1; K > 1 sends JSON arrays;\n"
"                         ws-pb/grpc: one message per frame, K of them per write)\n"
"  --tick MS              with --rate: write each drone's due messages every MS\n"
"                         ms, one frame each, in one write (default 0: one write\n"
"                         per message); ack latency counts from the due time\n"
"  --window W             max unacked messages per drone (default 1000)\n"
"  --duration S           seconds to send (default 10; 0 = until SIGINT/SIGTERM)\n"
"  --drain S              after sending, wait up to S seconds for outstanding acks (default 5)\n"
"  --prefix P             drone id prefix (default sim-; ids P0000, P0001, ...)\n"
"  --source-addrs LIST    local IPv4 source addresses, e.g. 127.0.0.1-127.0.0.40\n"
"                         or a,b,c (default: kernel's choice; spread over\n"
"                         127.0.0.x automatically above 20000 loopback drones)\n"
"  --auth-secret S        send Authorization: Bearer hex(HMAC-SHA256(S, id))\n"
"  --ramp N               new connections per second at start (default 2000)\n"
"  --threads T            worker threads (default 1)\n"
"  --timestamps MODE      ms | rfc3339 | mix (default mix: odd drones RFC 3339)\n"
"  --seed N               mission layout seed (default 1)\n"
"  --airborne             start every drone in the air at its cruise altitude,\n"
"                         somewhere along its first mission (default: on the\n"
"                         ground, taking off within 5 s); for demos\n"
"  --transport mavlink    each drone is a MAVLink vehicle over UDP (HEARTBEAT 1 Hz, then\n"
"                         GLOBAL_POSITION_INT + SYS_STATUS + VFR_HUD in one datagram\n"
"                         per message; --rate 0 = as fast as possible); no acks:\n"
"                         the report reads the gateway's /metrics (at --url)\n"
"  --mavlink-port P       with --transport mavlink: the gateway's UDP port (default 14550)\n"
"  --json                 final report as one JSON object on stdout\n"
"  --quiet                no per-second report and no diagnostics\n"
"  --help\n", f);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dronegate-sim: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ---------------------------------------------------------------- parsing */

static uint64_t parse_uint(const char *name, const char *v, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-' || x < lo || x > hi)
        die("--%s must be an integer from %llu to %llu (got \"%s\").", name,
            (unsigned long long)lo, (unsigned long long)hi, v);
    return x;
}

static double parse_num(const char *name, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x) || x < lo || x > hi)
        die("--%s must be a number from %g to %g (got \"%s\").", name, lo, hi, v);
    return x;
}

static bool parse_bool(const char *name, const char *v)
{
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        return true;
    if (!*v || !strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
        return false;
    die("DRONEGATE_SIM_%s must be 1/true/yes or 0/false/no (got \"%s\").", name, v);
}

static void parse_url(sim_config_t *c, const char *url)
{
    if (strlen(url) >= sizeof c->url) die("--url is too long.");
    snprintf(c->url, sizeof c->url, "%s", url);
    const char *p;
    if (!strncasecmp(url, "ws://", 5)) p = url + 5;
    else if (!strncasecmp(url, "wss://", 6))
        die("--url %s: TLS (wss://) is not supported; point the simulator at the plain ws:// listener.", url);
    else if (!strncasecmp(url, "http://", 7)) p = url + 7;
    else if (!strncasecmp(url, "grpc://", 7)) p = url + 7;
    else die("--url must look like ws://HOST:PORT (got \"%s\").", url);

    const char *hs = p, *he, *port = NULL;
    size_t plen = 0;
    if (*p == '[') {
        he = strchr(p, ']');
        if (!he) die("--url %s: missing ']' after the IPv6 address.", url);
        hs = p + 1;
        p = he + 1;
    } else {
        while (*p && *p != ':' && *p != '/' && *p != '?') p++;
        he = p;
    }
    if ((size_t)(he - hs) == 0 || (size_t)(he - hs) >= sizeof c->host) die("--url %s: bad host.", url);
    memcpy(c->host, hs, (size_t)(he - hs));
    c->host[he - hs] = '\0';
    if (*p == ':') {
        port = ++p;
        while (isdigit((unsigned char)*p)) p++;
        plen = (size_t)(p - port);
        if (plen == 0 || plen > 5) die("--url %s: bad port.", url);
    }
    char portbuf[8] = "80";
    if (port) {
        memcpy(portbuf, port, plen);
        portbuf[plen] = '\0';
        if (atoi(portbuf) < 1 || atoi(portbuf) > 65535) die("--url %s: port out of range.", url);
    }
    const char *path = p, *q = strchr(p, '?');
    size_t pathlen = q ? (size_t)(q - path) : strlen(path);
    if (pathlen && path[0] != '/') die("--url %s: unexpected text after the port.", url);
    while (pathlen && path[pathlen - 1] == '/') pathlen--;
    /* "ws://h:p/ws" is accepted as a spelling of "ws://h:p". */
    if (pathlen == 3 && !memcmp(path, "/ws", 3)) pathlen = 0;
    if (pathlen >= sizeof c->path) die("--url path is too long.");
    memcpy(c->path, path, pathlen);
    c->path[pathlen] = '\0';
    if (q) {
        if (strlen(q + 1) >= sizeof c->query) die("--url query is too long.");
        snprintf(c->query, sizeof c->query, "%s", q + 1);
    }
    bool v6 = strchr(c->host, ':') != NULL;
    snprintf(c->hosthdr, sizeof c->hosthdr, "%s%s%s:%s", v6 ? "[" : "", c->host, v6 ? "]" : "", portbuf);

    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = c->nsrc ? AF_INET : AF_UNSPEC };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(c->host, portbuf, &hints, &res);
    if (rc || !res)
        die("cannot resolve %s: %s%s", c->host, gai_strerror(rc),
            c->nsrc ? " (--source-addrs needs an IPv4 server address)" : "");
    memcpy(&c->dst, res->ai_addr, res->ai_addrlen);
    c->dst_len = res->ai_addrlen;
    freeaddrinfo(res);
}

static void add_src(sim_config_t *c, uint32_t host_order)
{
    if (c->nsrc >= 65536) die("--source-addrs: more than 65536 addresses.");
    c->src = realloc(c->src, (c->nsrc + 1) * sizeof *c->src);
    if (!c->src) die("out of memory");
    c->src[c->nsrc++].s_addr = htonl(host_order);
}

static void parse_sources(sim_config_t *c, const char *v)
{
    char *copy = strdup(v), *save = NULL;
    if (!copy) die("out of memory");
    c->nsrc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *dash = strchr(tok, '-');
        struct in_addr a, b;
        if (dash) *dash = '\0';
        if (inet_pton(AF_INET, tok, &a) != 1)
            die("--source-addrs: \"%s\" is not an IPv4 address (use A.B.C.D or A.B.C.D-A.B.C.E).", tok);
        b = a;
        if (dash && inet_pton(AF_INET, dash + 1, &b) != 1)
            die("--source-addrs: \"%s\" is not an IPv4 address.", dash + 1);
        uint32_t lo = ntohl(a.s_addr), hi = ntohl(b.s_addr);
        if (hi < lo) die("--source-addrs: range %s-%s is backwards.", tok, dash + 1);
        for (uint64_t x = lo; x <= hi; x++) add_src(c, (uint32_t)x);
    }
    free(copy);
    if (!c->nsrc) die("--source-addrs is empty.");
}

enum { O_URL = 1, O_DRONES, O_RATE, O_BATCH, O_WINDOW, O_DURATION, O_DRAIN, O_PREFIX, O_SOURCES,
       O_SECRET, O_RAMP, O_JSON, O_QUIET, O_THREADS, O_TS, O_SEED, O_TICK, O_AIRBORNE, O_TRANSPORT, O_MAVPORT, O_HELP };

static const struct option OPTS[] = {
    { "url", required_argument, 0, O_URL },
    { "drones", required_argument, 0, O_DRONES },
    { "rate", required_argument, 0, O_RATE },
    { "batch", required_argument, 0, O_BATCH },
    { "window", required_argument, 0, O_WINDOW },
    { "duration", required_argument, 0, O_DURATION },
    { "drain", required_argument, 0, O_DRAIN },
    { "prefix", required_argument, 0, O_PREFIX },
    { "source-addrs", required_argument, 0, O_SOURCES },
    { "auth-secret", required_argument, 0, O_SECRET },
    { "ramp", required_argument, 0, O_RAMP },
    { "json", no_argument, 0, O_JSON },
    { "quiet", no_argument, 0, O_QUIET },
    { "threads", required_argument, 0, O_THREADS },
    { "timestamps", required_argument, 0, O_TS },
    { "seed", required_argument, 0, O_SEED },
    { "tick", required_argument, 0, O_TICK },
    { "airborne", no_argument, 0, O_AIRBORNE },
    { "transport", required_argument, 0, O_TRANSPORT },
    { "mavlink-port", required_argument, 0, O_MAVPORT },
    { "help", no_argument, 0, O_HELP },
    { 0, 0, 0, 0 },
};

typedef struct raw_opts {
    const char *url, *sources, *secret, *prefix;
} raw_opts_t;

static void apply(sim_config_t *c, raw_opts_t *r, int opt, const char *name, const char *v, bool env)
{
    switch (opt) {
    case O_URL:      r->url = v; break;
    case O_DRONES:   c->drones = (uint32_t)parse_uint(name, v, 1, 1000000); break;
    case O_RATE:     c->rate = parse_num(name, v, 0, 1000000); break;
    case O_BATCH:    c->batch = (uint32_t)parse_uint(name, v, 1, 4000); break;
    case O_WINDOW:   c->window = (uint32_t)parse_uint(name, v, 1, 1u << 24); break;
    case O_DURATION: c->duration = parse_num(name, v, 0, 1e9); break;
    case O_DRAIN:    c->drain = parse_num(name, v, 0, 1e6); break;
    case O_PREFIX:   r->prefix = v; break;
    case O_SOURCES:  r->sources = v; break;
    case O_SECRET:   r->secret = v; break;
    case O_RAMP:     c->ramp = parse_num(name, v, 1, 1e7); break;
    case O_JSON:     c->json = env ? parse_bool("JSON", v) : 1; break;
    case O_QUIET:    c->quiet = env ? parse_bool("QUIET", v) : 1; break;
    case O_AIRBORNE: c->airborne = env ? parse_bool("AIRBORNE", v) : 1; break;
    case O_MAVPORT:  c->mavlink_port = (int)parse_uint(name, v, 1, 65535); break;
    case O_THREADS:  c->threads = (uint32_t)parse_uint(name, v, 1, 256); break;
    case O_TS:
        if (!strcmp(v, "ms")) c->ts_mode = SIM_TS_MS;
        else if (!strcmp(v, "rfc3339")) c->ts_mode = SIM_TS_RFC3339;
        else if (!strcmp(v, "mix")) c->ts_mode = SIM_TS_MIX;
        else die("--timestamps must be ms, rfc3339 or mix (got \"%s\").", v);
        break;
    case O_TRANSPORT:
        if (!strcmp(v, "ws-json") || !strcmp(v, "ws")) c->transport = SIM_TR_WS_JSON;
        else if (!strcmp(v, "ws-pb")) c->transport = SIM_TR_WS_PB;
        else if (!strcmp(v, "grpc")) c->transport = SIM_TR_GRPC;
        else if (!strcmp(v, "mavlink")) c->transport = SIM_TR_MAVLINK;
        else die("--transport must be ws-json, ws-pb, grpc or mavlink (got \"%s\").", v);
        break;
    case O_SEED:     c->seed = parse_uint(name, v, 0, UINT64_MAX); break;
    case O_TICK:     c->tick_us = (int64_t)(parse_num(name, v, 0, 10000) * 1000); break;
    }
}

static void configure(sim_config_t *c, int argc, char **argv)
{
    *c = (sim_config_t){ .drones = 20, .rate = 1, .batch = 1, .window = 1000, .duration = 10, .drain = 5,
                         .ramp = 2000, .threads = 1, .ts_mode = SIM_TS_MIX, .seed = 1, .mavlink_port = 14550 };
    raw_opts_t r = { .url = DEFAULT_URL, .prefix = "sim-" };

    /* Environment first, flags override. */
    for (const struct option *o = OPTS; o->name; o++) {
        if (o->val == O_HELP) continue;
        char env[64] = "DRONEGATE_SIM_";
        size_t n = strlen(env);
        for (const char *s = o->name; *s && n < sizeof env - 1; s++)
            env[n++] = *s == '-' ? '_' : (char)toupper((unsigned char)*s);
        env[n] = '\0';
        const char *v = getenv(env);
        if (v) apply(c, &r, o->val, o->name, v, true);
    }
    int opt, li;
    while ((opt = getopt_long(argc, argv, "h", OPTS, &li)) != -1) {
        if (opt == O_HELP || opt == 'h') { usage(stdout); exit(0); }
        if (opt == '?') { usage(stderr); exit(2); }
        const char *name = "?";
        for (const struct option *o = OPTS; o->name; o++) if (o->val == opt) name = o->name;
        apply(c, &r, opt, name, optarg, false);
    }
    if (optind < argc) die("unexpected argument \"%s\" (see --help).", argv[optind]);

    if (strlen(r.prefix) >= sizeof c->prefix) die("--prefix is too long.");
    snprintf(c->prefix, sizeof c->prefix, "%s", r.prefix);
    uint32_t digits = 1;
    for (uint32_t x = c->drones - 1; x >= 10; x /= 10) digits++;
    c->id_width = digits < 4 ? 4 : digits;
    size_t idlen = strlen(c->prefix) + c->id_width;
    for (const char *s = c->prefix; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            die("--prefix may only hold A-Z a-z 0-9 . _ - (drone ids are [A-Za-z0-9._-]{1,64}).");
    if (idlen > 64) die("--prefix is too long: drone ids are at most 64 characters.");
    if (c->window < c->batch) die("--window (%u) must be at least --batch (%u).", c->window, c->batch);
    if (r.secret && *r.secret) c->auth_secret = strdup(r.secret);
    if (r.sources && *r.sources) parse_sources(c, r.sources);
    if (c->threads > c->drones) c->threads = c->drones;
    parse_url(c, r.url);

    /* Many loopback connections: spread them over 127.0.0.x automatically. */
    if (!c->nsrc && c->drones > AUTO_SPREAD && c->dst.ss_family == AF_INET &&
        (ntohl(((struct sockaddr_in *)&c->dst)->sin_addr.s_addr) >> 24) == 127) {
        uint32_t n = (c->drones + AUTO_SPREAD - 1) / AUTO_SPREAD;
        for (uint32_t i = 0; i < n; i++) add_src(c, 0x7f000001u + i);
    }

    /* every drone is a libdronegate client (drive.c): the URL it gets
     * names the address resolved once here, so 10,000 reconnecting drones
     * do not resolve the name 10,000 times */
    if (c->transport != SIM_TR_MAVLINK) {
        char a[INET6_ADDRSTRLEN] = "";
        unsigned port = 0;
        if (c->dst.ss_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&c->dst;
            inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a);
            port = ntohs(s6->sin6_port);
        } else {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&c->dst;
            inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a);
            port = ntohs(s4->sin_port);
        }
        bool v6 = c->dst.ss_family == AF_INET6;
        if (c->transport == SIM_TR_GRPC && (c->path[0] || c->query[0]))
            die("--url %s: a gRPC url has no path or query.", c->url);
        snprintf(c->lib_url, sizeof c->lib_url, "%s://%s%s%s:%u%s%s%s",
                 c->transport == SIM_TR_GRPC ? "grpc" : "ws", v6 ? "[" : "", a, v6 ? "]" : "", port,
                 c->path, c->query[0] ? "?" : "", c->query);
    }
}

/* Ports per source address: warn when the connections will not fit. */
static void check_ports(const sim_config_t *c)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    unsigned lo = 32768, hi = 60999;
    if (f) {
        if (fscanf(f, "%u %u", &lo, &hi) != 2) { lo = 32768; hi = 60999; }
        fclose(f);
    }
    uint64_t per = c->nsrc ? (c->drones + c->nsrc - 1) / c->nsrc : c->drones;
    if (hi >= lo && per > (uint64_t)(hi - lo + 1) && !c->quiet)
        fprintf(stderr, "dronegate-sim: warning: %llu connections per source address but only %u local "
                "ports (%u-%u); use --source-addrs 127.0.0.1-127.0.0.%llu\n",
                (unsigned long long)per, hi - lo + 1, lo, hi,
                (unsigned long long)(c->drones / (hi - lo + 1) + 1));
}

static void raise_nofile(const sim_config_t *c)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)c->drones + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need) return;
    if (rl.rlim_max < need) {
        struct rlimit up = { need, need };
        if (setrlimit(RLIMIT_NOFILE, &up) == 0) return;   /* root may raise the hard limit */
    }
    rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        die("--drones %u needs %llu open files but the limit is %llu; raise it (ulimit -n %llu) "
            "or run fewer drones.", c->drones, (unsigned long long)need,
            (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

/* ----------------------------------------------------------------- report */

typedef struct totals {
    uint64_t open, ever_open, handshakes, connect_failures, drops, generated, sent, resent,
             acked, frames, bytes_out, bytes_in, errors, window_stalls, closes, pings,
             cmd_received, cmd_accepted, cmd_rejected, cmd_done, unknown, live;
} totals_t;

static void sum(totals_t *t, sim_worker_t *ws, uint32_t n)
{
    memset(t, 0, sizeof *t);
    for (uint32_t i = 0; i < n; i++) {
        const sim_stats_t *s = &ws[i].st;
#define S(f) t->f += sim_get(&s->f)
        S(open); S(ever_open); S(handshakes); S(connect_failures); S(drops); S(generated);
        S(sent); S(resent); S(acked); S(frames); S(bytes_out); S(bytes_in); S(errors);
        S(window_stalls); S(closes); S(pings); S(cmd_received); S(cmd_accepted);
        S(cmd_rejected); S(cmd_done); S(live);
        t->unknown += sim_get(&s->unknown_msgs);
#undef S
    }
}

static double ms(uint64_t us) { return (double)us / 1000.0; }

static void merge_codes(sim_code_count_t *out, sim_worker_t *ws, uint32_t n, size_t off)
{
    memset(out, 0, sizeof(sim_code_count_t) * SIM_CODE_SLOTS);
    for (uint32_t i = 0; i < n; i++) {
        const sim_code_count_t *t = (const sim_code_count_t *)((const char *)&ws[i] + off);
        for (int k = 0; k < SIM_CODE_SLOTS && t[k].n; k++)
            sim_code_add(out, t[k].code, strlen(t[k].code), t[k].n);
    }
}

static void print_codes_json(FILE *f, const char *name, const sim_code_count_t *t)
{
    fprintf(f, ",\"%s\":{", name);
    for (int k = 0; k < SIM_CODE_SLOTS && t[k].n; k++)
        fprintf(f, "%s\"%s\":%llu", k ? "," : "", t[k].code, (unsigned long long)t[k].n);
    fputc('}', f);
}

static void print_codes_text(FILE *f, const char *name, const sim_code_count_t *t)
{
    if (!t[0].n) return;
    fprintf(f, "  %s:", name);
    for (int k = 0; k < SIM_CODE_SLOTS && t[k].n; k++)
        fprintf(f, " %s=%llu", t[k].code, (unsigned long long)t[k].n);
    fputc('\n', f);
}

/* ------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    sim_config_t cfg;
    configure(&cfg, argc, argv);
    raise_nofile(&cfg);
    if (cfg.transport == SIM_TR_MAVLINK) return sim_mavlink_run(&cfg);
    check_ports(&cfg);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);   /* inherited by the workers */
    signal(SIGPIPE, SIG_IGN);

    sim_shared_t sh = { .start_us = sim_mono_us() };
    atomic_init(&sh.phase, SIM_RUN);
    sim_worker_t *ws = calloc(cfg.threads, sizeof *ws);
    sim_hist_snap_t *cur = calloc(1, sizeof *cur), *prev = calloc(1, sizeof *prev),
                    *iv = calloc(1, sizeof *iv);
    if (!ws || !cur || !prev || !iv) die("out of memory");
    for (uint32_t i = 0; i < cfg.threads; i++) {
        int rc = sim_worker_init(&ws[i], i, &cfg, &sh);
        if (rc) die("cannot set up worker %u: %s", i, strerror(-rc));
    }
    if (!cfg.quiet)
        fprintf(stderr, "dronegate-sim: %u drones -> %s, rate %g Hz%s, batch %u, window %u, %u thread%s%s\n",
                cfg.drones, cfg.url, cfg.rate, cfg.rate == 0 ? " (window-bound)" : "", cfg.batch,
                cfg.window, cfg.threads, cfg.threads == 1 ? "" : "s",
                cfg.auth_secret ? ", auth on" : "");
    sh.start_us = sim_mono_us();
    for (uint32_t i = 0; i < cfg.threads; i++) {
        int rc = pthread_create(&ws[i].th, NULL, sim_worker_main, &ws[i]);
        if (rc) die("cannot start worker thread: %s", strerror(rc));
    }

    int64_t start = sh.start_us, stop_at = 0, next_report = start + 1000000;
    totals_t t, last = { 0 };
    int signals = 0;
    for (;;) {
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        int sig = sigtimedwait(&sigs, NULL, &ts);
        int64_t now = sim_mono_us();
        if (sig > 0) {
            if (++signals == 1) {
                if (!cfg.quiet)
                    fprintf(stderr, "dronegate-sim: %s: stopping, waiting for acks (again to abort)\n",
                            strsignal(sig));
            } else {
                atomic_store(&sh.phase, SIM_ABORT);
            }
        }
        int phase = atomic_load(&sh.phase);
        if (phase == SIM_RUN) {
            bool over = cfg.duration > 0 && now - start >= (int64_t)(cfg.duration * 1e6);
            sum(&t, ws, cfg.threads);
            if (over || signals || t.live == 0) {
                stop_at = now;
                atomic_store(&sh.phase, SIM_STOP);
            }
        }
        if (now >= next_report) {
            next_report += 1000000;
            if (!cfg.quiet) {
                sum(&t, ws, cfg.threads);
                memset(cur, 0, sizeof *cur);
                for (uint32_t i = 0; i < cfg.threads; i++) sim_hist_snap_add(cur, &ws[i].hist);
                sim_hist_snap_sub(iv, cur, prev);
                fprintf(stderr,
                        "[%5.0fs] conn %llu/%u  sent %llu (%llu/s)  acked %llu (%llu/s)  err %llu"
                        "  ack ms p50 %.2f p90 %.2f p99 %.2f max %.2f\n",
                        (double)(now - start) / 1e6, (unsigned long long)t.open, cfg.drones,
                        (unsigned long long)t.sent, (unsigned long long)(t.sent - last.sent),
                        (unsigned long long)t.acked, (unsigned long long)(t.acked - last.acked),
                        (unsigned long long)t.errors, ms(sim_hist_quantile(iv, 0.5)),
                        ms(sim_hist_quantile(iv, 0.9)), ms(sim_hist_quantile(iv, 0.99)), ms(iv->max));
                last = t;
                sim_hist_snap_t *x = prev; prev = cur; cur = x;
            }
        }
        bool all = true;
        for (uint32_t i = 0; i < cfg.threads; i++) all = all && atomic_load(&ws[i].finished);
        if (all) break;
    }
    for (uint32_t i = 0; i < cfg.threads; i++) pthread_join(ws[i].th, NULL);
    if (!stop_at) stop_at = sim_mono_us();

    /* Final report. */
    sum(&t, ws, cfg.threads);
    memset(cur, 0, sizeof *cur);
    for (uint32_t i = 0; i < cfg.threads; i++) sim_hist_snap_add(cur, &ws[i].hist);
    double dur = (double)(stop_at - start) / 1e6;
    if (dur <= 0) dur = 1e-6;
    static sim_code_count_t closes[SIM_CODE_SLOTS], errs[SIM_CODE_SLOTS], http[SIM_CODE_SLOTS];
    merge_codes(closes, ws, cfg.threads, offsetof(sim_worker_t, close_codes));
    merge_codes(errs, ws, cfg.threads, offsetof(sim_worker_t, error_codes));
    merge_codes(http, ws, cfg.threads, offsetof(sim_worker_t, http_codes));
    sim_hist_snap_t *fr = calloc(1, sizeof *fr);
    if (fr) for (uint32_t i = 0; i < cfg.threads; i++) sim_hist_snap_add(fr, &ws[i].hist_frame);
    double fp50 = fr ? ms(sim_hist_quantile(fr, 0.5)) : 0, fp99 = fr ? ms(sim_hist_quantile(fr, 0.99)) : 0,
           fmean = fr && fr->count ? ms(fr->sum / fr->count) : 0;
    free(fr);
    double p50 = ms(sim_hist_quantile(cur, 0.5)), p90 = ms(sim_hist_quantile(cur, 0.9)),
           p99 = ms(sim_hist_quantile(cur, 0.99)), p999 = ms(sim_hist_quantile(cur, 0.999)),
           mx = ms(cur->max), mean = cur->count ? ms(cur->sum / cur->count) : 0;
    if (cfg.json) {
        printf("{\"drones\":%u,\"connected\":%llu,\"sent\":%llu,\"acked\":%llu,\"errors\":%llu,"
               "\"duration_s\":%.3f,\"sent_per_s\":%.1f,\"acked_per_s\":%.1f,"
               "\"ack_latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
               "\"max\":%.3f,\"mean\":%.3f}",
               cfg.drones, (unsigned long long)t.ever_open, (unsigned long long)t.sent,
               (unsigned long long)t.acked, (unsigned long long)t.errors, dur,
               (double)t.sent / dur, (double)t.acked / dur, p50, p90, p99, p999, mx, mean);
        /* with --batch K > 1 at a --rate: latency from when each frame was
         * complete, i.e. without the client's own wait for K samples */
        printf(",\"ack_latency_from_frame_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"mean\":%.3f}", fp50, fp99, fmean);
        print_codes_json(stdout, "closes", closes);
        printf(",\"connect_failures\":%llu", (unsigned long long)t.connect_failures);
        print_codes_json(stdout, "errors_by_code", errs);
        print_codes_json(stdout, "http_status", http);
        printf(",\"handshakes\":%llu,\"drops\":%llu,\"resent\":%llu,\"generated\":%llu,"
               "\"frames\":%llu,\"bytes_sent\":%llu,\"bytes_received\":%llu,\"window_stalls\":%llu,"
               "\"pings\":%llu,\"unknown_messages\":%llu,"
               "\"commands\":{\"received\":%llu,\"accepted\":%llu,\"rejected\":%llu,\"done\":%llu}}\n",
               (unsigned long long)t.handshakes, (unsigned long long)t.drops,
               (unsigned long long)t.resent, (unsigned long long)t.generated,
               (unsigned long long)t.frames, (unsigned long long)t.bytes_out,
               (unsigned long long)t.bytes_in, (unsigned long long)t.window_stalls,
               (unsigned long long)t.pings, (unsigned long long)t.unknown,
               (unsigned long long)t.cmd_received, (unsigned long long)t.cmd_accepted,
               (unsigned long long)t.cmd_rejected, (unsigned long long)t.cmd_done);
    } else {
        printf("dronegate-sim: %u drones, %llu connected, %.1f s\n"
               "  sent %llu (%.0f/s)  acked %llu (%.0f/s)  resent %llu  errors %llu  connect failures %llu\n"
               "  ack latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
               cfg.drones, (unsigned long long)t.ever_open, dur, (unsigned long long)t.sent,
               (double)t.sent / dur, (unsigned long long)t.acked, (double)t.acked / dur,
               (unsigned long long)t.resent, (unsigned long long)t.errors,
               (unsigned long long)t.connect_failures, p50, p90, p99, p999, mx, mean);
        print_codes_text(stdout, "closes", closes);
        print_codes_text(stdout, "errors", errs);
        print_codes_text(stdout, "upgrade refused (HTTP)", http);
        if (t.cmd_received)
            printf("  commands: %llu received, %llu accepted, %llu rejected, %llu done\n",
                   (unsigned long long)t.cmd_received, (unsigned long long)t.cmd_accepted,
                   (unsigned long long)t.cmd_rejected, (unsigned long long)t.cmd_done);
    }
    fflush(stdout);
    int code = t.ever_open ? 0 : 1;
    if (!t.ever_open && !cfg.quiet)
        fprintf(stderr, "dronegate-sim: no drone could connect to %s\n", cfg.url);

    for (uint32_t i = 0; i < cfg.threads; i++) sim_worker_free(&ws[i]);
    free(ws);
    free(cur);
    free(prev);
    free(iv);
    free(cfg.src);
    free(cfg.auth_secret);
    return code;
}
