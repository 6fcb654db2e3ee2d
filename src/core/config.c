/* config.c - table-driven flags and DRONEGATE_* environment variables.
 * Parsed once on the main thread before any other thread starts. */
#include "config.h"
#include "version.h"
#include "../codec/jsonw.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum opt_type { OPT_STR, OPT_LONG, OPT_BOOL };

typedef struct opt {
    const char   *name;      /* flag without "--" */
    enum opt_type type;
    size_t        off;
    size_t        size;      /* for strings */
    long          min, max;  /* for numbers */
    const char   *help;
} opt_t;

#define S(f) OPT_STR, offsetof(dg_config_t, f), sizeof(((dg_config_t *)0)->f), 0, 0
#define L(f, lo, hi) OPT_LONG, offsetof(dg_config_t, f), 0, lo, hi
#define B(f) OPT_BOOL, offsetof(dg_config_t, f), 0, 0, 1

static const opt_t opts[] = {
    { "listen",            S(listen),            "HOST:PORT for HTTP, WebSocket, REST and /metrics (default 0.0.0.0:8080)" },
    { "store",             S(store),             "store URI: sqlite:PATH | postgresql://... | influxdb://HOST:PORT/DB | null: (default sqlite:./data/dronegate.db)" },
    { "grpc-listen",       S(grpc_listen),       "HOST:PORT for the gRPC uplink (h2c; off when empty, e.g. 0.0.0.0:50051)" },
    { "mavlink-listen",    S(mavlink_listen),    "HOST:PORT for MAVLink/UDP (not available in this build)" },
    { "queue",             S(queue),             "message broker between gateway and store: kafka://HOST:PORT[,...]/TOPIC[?prop=v] | amqp://...; telemetry is published there, not stored (dronegate sink stores it)" },
    { "group",             S(group),             "dronegate sink: consumer group (default: group= of the --queue URI, else dronegate-sink)" },
    { "auth-secret",       S(auth_secret),       "HMAC secret for drone tokens; empty = auth OFF" },
    { "operator-token",    S(operator_token),    "operator token with command scope (REST, live stream, commands), at most 1024 characters; setting it (or --auth-secret) protects the API" },
    { "operator-read-token", S(operator_read_token), "operator token with read scope (REST reads, live stream), at most 1024 characters" },
    { "allowed-origins",   S(allowed_origins),   "comma list of browser Origins allowed besides the gateway's own (e.g. https://ops.example.com)" },
    { "allowed-hosts",     S(allowed_hosts),     "comma list of DNS names browsers use to reach the gateway (e.g. gw.example.com; * = any); IP addresses and names without a dot (localhost) are always accepted" },
    { "web-root",          S(web_root),          "directory of the dashboard files (default ./web)" },
    { "command-timeout",   L(command_timeout_ms, 100, 86400000), "ms before an unanswered command is expired (default 30000)" },
    { "workers",           L(workers, 0, 256),   "event-loop threads (default: number of cores)" },
    { "max-message",       L(max_message, 64, 1L << 30), "max WebSocket message size in bytes (default 1048576)" },
    { "max-connections",   L(max_connections, 0, 10000000), "max concurrent connections; 0 = the open-file limit less 128 (default 0)" },
    { "registry-max-offline", L(registry_max_offline, 0, 100000000), "offline drones kept in memory; beyond, the longest offline leave it (never the store) (default 200000)" },
    { "handshake-timeout", L(handshake_timeout_ms, 10, 3600000), "ms to complete the HTTP request/upgrade (default 10000)" },
    { "idle-timeout",      L(idle_timeout_ms, 10, 86400000), "ms without any frame before a drone is closed with 1001 (default 60000)" },
    { "http-idle-timeout", L(http_idle_timeout_ms, 10, 86400000), "ms an idle keep-alive HTTP connection is kept open (default 15000)" },
    { "ping-interval",     L(ping_interval_ms, 10, 86400000), "ms of silence before the server pings (default 20000)" },
    { "ack-interval",      L(ack_interval_ms, 0, 60000), "ms between acks to one drone (coalescing; default 0: the ack follows each commit)" },
    { "commit-interval",   L(commit_interval_ms, 0, 10000), "ms a small store transaction waits to grow (default 0 = commit at once; group commit still coalesces under load)" },
    { "max-msg-rate",      L(max_msg_rate, 0, 100000000), "messages/s per drone before close 1008; 0 = unlimited (default 10000)" },
    { "shutdown-timeout",  L(shutdown_timeout_ms, 100, 3600000), "ms allowed for the drain on SIGTERM (default 10000)" },
    { "batch-records",     L(batch_records, 16, 1000000), "records per store batch (default 2048)" },
    { "batch-pool",        L(batch_pool, 2, 4096), "store batches per worker before drones are paused (default 16)" },
    { "max-http-body",     L(max_http_body, 1024, 1L << 30), "max REST request body in bytes (default 65536)" },
    { "spool-dir",         S(spool_dir),         "directory of the on-disk backlog used while the store is down (default: PATH.spool beside a sqlite:PATH store, else ./data/spool)" },
    { "spool-max-mb",      L(spool_max_mb, 0, 1L << 30), "spool size limit in MiB; 0 = no spool (default 1024)" },
    { "fsync",             B(fsync),             "fsync before ack: acked data survives power loss (default off: survives a crash)" },
    { "log-level",         S(log_level),         "debug | info | warn | error (default info)" },
    { "map-tiles",         S(map_tiles),         "dashboard raster tile layer, URL template with {z} {x} {y} (and optional {s}), e.g. https://tile.example.org/{z}/{x}/{y}.png; empty = the offline world outline only (default)" },
    { "instance",          S(instance),          "this gateway's name in logs, metrics (dronegate_build_info), drone state and fleet routing: 1-64 of [A-Za-z0-9._-] (default: the hostname)" },
    { "map-attribution",   S(map_attribution),   "attribution text shown with --map-tiles (e.g. (c) OpenStreetMap contributors)" },
};

static void defaults(dg_config_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "0.0.0.0:8080");
    snprintf(c->store, sizeof c->store, "sqlite:./data/dronegate.db");
    snprintf(c->log_level, sizeof c->log_level, "info");
    snprintf(c->web_root, sizeof c->web_root, "./web");
    c->command_timeout_ms = 30000;
    c->spool_max_mb = 1024;
    c->workers = 0;
    c->max_message = 1048576;
    c->max_connections = 0;
    c->registry_max_offline = 200000;
    c->handshake_timeout_ms = 10000;
    c->idle_timeout_ms = 60000;
    c->http_idle_timeout_ms = 15000;
    c->ping_interval_ms = 20000;
    c->ack_interval_ms = 0;      /* measured: docs/stores-notes.md (bench/bench_window.sh) */
    c->commit_interval_ms = 0;
    c->max_msg_rate = 10000;
    c->shutdown_timeout_ms = 10000;
    c->batch_records = 2048;
    c->batch_pool = 16;
    c->max_http_body = 65536;
}

static void env_name(const char *flag, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "DRONEGATE_");
    for (const char *p = flag; *p && n + 1 < outlen; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

static int set_opt(dg_config_t *c, const opt_t *o, const char *val, const char *src,
                   char *err, size_t errlen)
{
    char *field = (char *)c + o->off;
    switch (o->type) {
    case OPT_STR: {
        size_t len = strlen(val);
        if (len >= o->size) {
            snprintf(err, errlen, "%s %s is too long (at most %zu characters)", src, o->name, o->size - 1);
            return -1;
        }
        memcpy(field, val, len + 1);
        return 0;
    }
    case OPT_LONG: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < o->min || v > o->max) {
            snprintf(err, errlen, "%s %s=%s is not a whole number in [%ld, %ld]", src, o->name, val,
                     o->min, o->max);
            return -1;
        }
        *(long *)field = v;
        return 0;
    }
    case OPT_BOOL:
        if (!strcmp(val, "1") || !strcasecmp(val, "true") || !strcasecmp(val, "yes") || !strcasecmp(val, "on"))
            *(bool *)field = true;
        else if (!strcmp(val, "0") || !strcasecmp(val, "false") || !strcasecmp(val, "no") || !strcasecmp(val, "off") || !*val)
            *(bool *)field = false;
        else {
            snprintf(err, errlen, "%s %s=%s is not a boolean (use 1/0, true/false)", src, o->name, val);
            return -1;
        }
        return 0;
    }
    return -1;
}

void dg_config_usage(FILE *out)
{
    fprintf(out,
            "usage: dronegate [FLAGS]            run the gateway\n"
            "       dronegate token DRONE_ID     print the drone's token for --auth-secret\n"
            "       dronegate sink --queue URI --store URI [--listen HOST:PORT] [--group G]\n"
            "                                    consume the --queue and store it (also: dronegate-sink)\n"
            "       dronegate --version          print the version and git commit\n"
            "       dronegate --help             this text\n\n"
            "Every flag is also an environment variable: --max-message <=> DRONEGATE_MAX_MESSAGE.\n\n");
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        char env[64];
        env_name(opts[i].name, env, sizeof env);
        fprintf(out, "  --%-18s %s\n  %-20s   [%s]\n", opts[i].name,
                opts[i].type == OPT_BOOL ? "" : "VALUE", "", env);
        fprintf(out, "      %s\n", opts[i].help);
    }
}

int dg_config_load(dg_config_t *c, int argc, char **argv, int first, char *err, size_t errlen)
{
    defaults(c);
    size_t nopts = sizeof opts / sizeof opts[0];
    for (size_t i = 0; i < nopts; i++) {
        char env[64];
        env_name(opts[i].name, env, sizeof env);
        const char *v = getenv(env);
        if (v && set_opt(c, &opts[i], v, "environment variable", err, errlen)) return -1;
    }
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { dg_config_usage(stdout); return 1; }
        if (!strcmp(a, "--version")) { printf("dronegate %s (commit %s)\n", DG_VERSION, DG_COMMIT); return 1; }
        if (strncmp(a, "--", 2)) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_t *o = NULL;
        for (size_t k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == nlen && !strncmp(opts[k].name, name, nlen)) { o = &opts[k]; break; }
        if (!o) {
            snprintf(err, errlen, "unknown flag '%s' (see --help)", a);
            return -1;
        }
        const char *val;
        if (eq) val = eq + 1;
        else if (o->type == OPT_BOOL) val = "1";
        else if (i + 1 < argc) val = argv[++i];
        else {
            snprintf(err, errlen, "flag --%s needs a value", o->name);
            return -1;
        }
        if (set_opt(c, o, val, "flag", err, errlen)) return -1;
    }
    if (c->map_tiles[0] && (!strstr(c->map_tiles, "{z}") || !strstr(c->map_tiles, "{x}") ||
                            !strstr(c->map_tiles, "{y}") ||
                            (strncmp(c->map_tiles, "https://", 8) && strncmp(c->map_tiles, "http://", 7) &&
                             c->map_tiles[0] != '/'))) {
        snprintf(err, errlen, "--map-tiles %s: expected an http(s):// or /path URL template with {z}, {x} and {y}",
                 c->map_tiles);
        return -1;
    }
    if (dg_config_instance(c, err, errlen)) return -1;
    if (c->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = n > 0 ? n : 1;
    }
    if (c->workers > 255) c->workers = 255;
    return 0;
}

/* --instance: validated as a drone id is (it goes into log lines, a metric
 * label and NOTIFY payloads); empty = the hostname, its other characters
 * replaced by '-'. */
int dg_config_instance(dg_config_t *c, char *err, size_t errlen)
{
    if (!c->instance[0]) {
        char h[256] = "";
        if (gethostname(h, sizeof h - 1) || !h[0]) snprintf(h, sizeof h, "dronegate");
        size_t n = strnlen(h, 64);
        for (size_t i = 0; i < n; i++)
            c->instance[i] = isalnum((unsigned char)h[i]) || h[i] == '.' || h[i] == '_' || h[i] == '-' ? h[i] : '-';
        c->instance[n] = '\0';
        return 0;
    }
    for (const char *p = c->instance; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') {
            snprintf(err, errlen, "--instance %s: use 1-64 characters of A-Z a-z 0-9 . _ -", c->instance);
            return -1;
        }
    }
    return 0;
}

int dg_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return -1;
        hl = (size_t)(colon - s);
    }
    if (hl >= hostlen) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || p < 0 || p > 65535) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (hl == 0) snprintf(host, hostlen, "0.0.0.0");
    *port = (int)p;
    return 0;
}

int dg_config_web_json(const dg_config_t *c, struct dg_buf *b)
{
    int first = 1, rc = 0;
    rc |= dg_buf_puts(b, "{");
    rc |= dg_jw_key(b, &first, "version");
    rc |= dg_jw_str(b, DG_VERSION, strlen(DG_VERSION));
    rc |= dg_jw_key(b, &first, "commit");
    rc |= dg_jw_str(b, DG_COMMIT, strlen(DG_COMMIT));
    rc |= dg_jw_key(b, &first, "map_tiles");
    rc |= dg_jw_str(b, c->map_tiles, strlen(c->map_tiles));
    rc |= dg_jw_key(b, &first, "map_attribution");
    rc |= dg_jw_str(b, c->map_attribution, strlen(c->map_attribution));
    rc |= dg_buf_puts(b, "}\n");
    return rc ? -12 : 0;
}
