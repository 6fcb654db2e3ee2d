/* api.c - operator REST API, health and metrics endpoints.
 *
 * Runs on the worker thread of the HTTP connection, except what reads the
 * store: a history query and a command of an earlier run are run by the
 * read pool (reads.h) and answered when done, so a slow or unreachable
 * database never holds up a worker's drones; /readyz reads the health
 * check's last result. The history limit is capped (DG_MAX_LIMIT).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "csp.h"
#include "../codec/jsonw.h"
#include "../codec/command_body.h"
#include "../codec/number.h"
#include "../codec/views.h"
#include "../core/commands.h"
#include "../core/ingest.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/reads.h"
#include "../core/server.h"
#include "../core/timefmt.h"
#include "../fleet/fleet.h"
#include "../net/worker.h"

#define DG_DEFAULT_LIMIT 1000
#define DG_MAX_LIMIT     100000

static void send_buf(dg_conn_t *c, int status, const char *ctype, dg_buf_t *b)
{
    dg_http_respond(c, status, ctype, b->data, b->len, NULL);
}

/* The views live in codec/views.c; these names stay for http.h's users. */
void dg_api_record_members(dg_buf_t *b, int *first, const dg_record_t *r)
{
    dg_view_record_members(b, first, r);
}

void dg_api_drone_json(dg_buf_t *b, const dg_drone_state_t *s)
{
    dg_view_drone_json(b, s);
}

/* GET /api/v1/drones?limit=N&cursor=C: one page in drone-id order.
 * cursor = the last id of the previous page (clients treat it as opaque:
 * they pass back `next_cursor`, null on the last page). One page costs one
 * pass over the registry with a heap of `limit` entries (no full copy, no
 * full sort): ~10 ms at 100,000 drones, see docs/fleet-notes.md. */
#define DRONES_LIMIT_DEFAULT 1000
#define DRONES_LIMIT_MAX     10000

static void get_drones(dg_conn_t *c, const char *q, size_t qlen)
{
    char val[DG_DRONE_ID_MAX + 2], cursor[DG_DRONE_ID_MAX + 1] = "";
    size_t limit = DRONES_LIMIT_DEFAULT;
    int rc;
    if ((rc = dg_http_query_param(q, qlen, "limit", val, sizeof val)) != 0) {
        char *end;
        long long l = rc > 0 ? strtoll(val, &end, 10) : -1;
        if (rc < 0 || !val[0] || *end || l < 1 || l > DRONES_LIMIT_MAX) {
            dg_http_error(c, 400, "limit must be a whole number in [1, 10000]");
            return;
        }
        limit = (size_t)l;
    }
    if ((rc = dg_http_query_param(q, qlen, "cursor", val, sizeof val)) != 0) {
        if (rc < 0 || (val[0] && !dg_drone_id_valid(val, strlen(val)))) {
            dg_http_error(c, 400, "cursor must be the next_cursor of the previous page");
            return;
        }
        memcpy(cursor, val, strlen(val) + 1);
    }
    dg_drone_state_t *v = malloc(limit * sizeof *v);
    bool more = false;
    long n = v ? dg_registry_page(c->w->srv->registry, cursor, limit, NULL, NULL, v, &more) : -1;
    if (n < 0) { free(v); dg_http_error(c, 503, "out of memory"); return; }
    dg_buf_t b = { 0 };
    dg_buf_puts(&b, "{\"drones\":[");
    for (long i = 0; i < n; i++) {
        if (i) dg_buf_puts(&b, ",");
        dg_api_drone_json(&b, &v[i]);
    }
    dg_buf_puts(&b, "],\"next_cursor\":");
    if (more && n > 0) dg_jw_str(&b, v[n - 1].id, strlen(v[n - 1].id));
    else dg_buf_puts(&b, "null");
    dg_buf_puts(&b, "}");
    free(v);
    send_buf(c, 200, "application/json", &b);
    dg_buf_free(&b);
}

static void submit(dg_conn_t *c, dg_read_job_t *j);

static int on_latest_of(void *ud, const dg_record_t *r)
{
    dg_drone_state_t *s = ud;
    s->has_last = true;
    s->last = *r;
    s->last_seen_ms = r->recv_us / 1000;
    return 1;
}

/* Read pool: the state of a drone the registry no longer holds (evicted
 * beyond --registry-max-offline): offline, its latest stored record. */
static void run_latest_of(dg_server_t *srv, dg_read_job_t *j)
{
    dg_drone_state_t s = { .online = false };
    snprintf(s.id, sizeof s.id, "%s", j->id);
    if (srv->store_ops->latest_of(srv->store, j->id, on_latest_of, &s, j->err, sizeof j->err) < 0) {
        dg_warn("latest state of %s: %s", j->id, j->err);
        j->status = 503;
        snprintf(j->err, sizeof j->err, "store unavailable");
        return;
    }
    if (!s.has_last) {
        j->status = 404;
        snprintf(j->err, sizeof j->err, "unknown drone");
        return;
    }
    dg_api_drone_json(&j->body, &s);
    j->status = 200;
    j->ctype = "application/json";
}

static void get_drone(dg_conn_t *c, const char *id, size_t idlen)
{
    dg_drone_state_t s;
    if (!dg_registry_find_state(c->w->srv->registry, id, idlen, &s)) {
        if (!c->w->srv->store_ops->latest_of) { dg_http_error(c, 404, "unknown drone"); return; }
        dg_read_job_t *j = calloc(1, sizeof *j);
        if (!j) { dg_http_error(c, 503, "out of memory"); return; }
        memcpy(j->id, id, idlen);
        j->id[idlen] = '\0';
        j->run = run_latest_of;
        submit(c, j);
        return;
    }
    dg_buf_t b = { 0 };
    dg_api_drone_json(&b, &s);
    send_buf(c, 200, "application/json", &b);
    dg_buf_free(&b);
}

/* ---- history ---- */

/* Read pool thread: the history of j->id as the whole response body
 * (codec/views.c writes every format). */
static void run_history(dg_server_t *srv, dg_read_job_t *j)
{
    dg_view_hist_t h;
    dg_view_hist_begin(&h, &j->body, j->fmt, j->id);
    char err[256] = "";
    if (srv->store_ops->query(srv->store, &j->q, dg_view_hist_row, &h, err, sizeof err) < 0) {
        dg_warn("history query failed: %s", err);
        j->status = 503;
        snprintf(j->err, sizeof j->err, "store unavailable");
        return;
    }
    if (dg_view_hist_end(&h)) {
        j->status = 500;
        snprintf(j->err, sizeof j->err, "out of memory");
        return;
    }
    j->status = 200;
    j->ctype = dg_view_fmt_ctype(h.fmt);
}

/* Hand a store read to the pool; the connection waits for its reply. No
 * pool (or a full queue): run it here, or refuse with 503. */
static void submit(dg_conn_t *c, dg_read_job_t *j)
{
    dg_server_t *srv = c->w->srv;
    j->w = c->w;
    j->slot = c->slot;
    j->gen = c->gen;
    if (srv->reads) {
        j->done = dg_http_read_done;
        if (dg_reads_submit(srv->reads, j) == 0) { dg_http_await(c); return; }
        dg_read_job_free(j);
        dg_http_error(c, 503, "too many store reads waiting; retry shortly");
        return;
    }
    j->run(srv, j);
    if (j->status >= 400) dg_http_error(c, j->status, j->err);
    else dg_http_respond(c, j->status, j->ctype, j->body.data, j->body.len, NULL);
    dg_read_job_free(j);
}

/* An unencoded '+' of a UTC offset arrives as ' ' after query decoding;
 * RFC 3339 has no spaces there, so take it back. */
static void plus_back(char *s)
{
    for (; *s; s++) if (*s == ' ') *s = '+';
}

static void get_history(dg_conn_t *c, const char *id, size_t idlen, const char *q, size_t qlen)
{
    dg_server_t *srv = c->w->srv;
    char idz[DG_DRONE_ID_MAX + 1], val[128];
    memcpy(idz, id, idlen);
    idz[idlen] = '\0';
    dg_query_t query = { .drone_id = idz, .from_ms = INT64_MIN, .to_ms = INT64_MAX, .limit = DG_DEFAULT_LIMIT };
    int rc;
    if ((rc = dg_http_query_param(q, qlen, "from", val, sizeof val)) != 0) {
        if (rc > 0) plus_back(val);
        if (rc < 0 || dg_parse_time_param(val, strlen(val), &query.from_ms)) {
            dg_http_error(c, 400, "from must be an RFC 3339 time or epoch milliseconds");
            return;
        }
    }
    if ((rc = dg_http_query_param(q, qlen, "to", val, sizeof val)) != 0) {
        if (rc > 0) plus_back(val);
        if (rc < 0 || dg_parse_time_param(val, strlen(val), &query.to_ms)) {
            dg_http_error(c, 400, "to must be an RFC 3339 time or epoch milliseconds");
            return;
        }
    }
    if ((rc = dg_http_query_param(q, qlen, "limit", val, sizeof val)) != 0) {
        char *end;
        long long l = rc > 0 ? strtoll(val, &end, 10) : -1;
        if (rc < 0 || !val[0] || *end || l < 1 || l > DG_MAX_LIMIT) {
            dg_http_error(c, 400, "limit must be a whole number in [1, 100000]");
            return;
        }
        query.limit = (size_t)l;
    }
    int f = DG_VIEW_JSON;
    if ((rc = dg_http_query_param(q, qlen, "format", val, sizeof val)) != 0) {
        if (rc < 0 || (f = dg_view_fmt_parse(val)) < 0) {
            dg_http_error(c, 400, "format must be json, csv, geojson, kml or gpx");
            return;
        }
    }
    if (query.from_ms > query.to_ms) { dg_http_error(c, 400, "from is after to"); return; }
    if (!dg_registry_get(srv->registry, id, idlen, false)) { dg_http_error(c, 404, "unknown drone"); return; }

    dg_read_job_t *j = calloc(1, sizeof *j);
    if (!j) { dg_http_error(c, 503, "out of memory"); return; }
    memcpy(j->id, idz, idlen + 1);
    j->q = query;
    j->q.drone_id = j->id;
    j->fmt = f;
    j->run = run_history;
    submit(c, j);
}

/* ---- health, metrics ---- */

static void get_readyz(dg_conn_t *c)
{
    dg_server_t *srv = c->w->srv;
    if (atomic_load(&srv->draining)) { dg_http_respond(c, 503, "text/plain", "draining\n", 9, NULL); return; }
    bool ok = srv->reads ? atomic_load(&srv->store_ok) : srv->store_ops->ping(srv->store) == 0;
    if (!ok || dg_writer_failing(srv->writer)) {
        dg_http_respond(c, 503, "text/plain", "store unreachable\n", 18, NULL);
        return;
    }
    if (srv->sink != srv->writer && srv->sink_ops->failing(srv->sink)) {
        dg_http_respond(c, 503, "text/plain", "queue unreachable\n", 18, NULL);
        return;
    }
    dg_http_respond(c, 200, "text/plain", "ready\n", 6, NULL);
}

static void get_metrics(dg_conn_t *c)
{
    dg_buf_t b = { 0 };
    if (dg_metrics_render(&b)) { dg_buf_free(&b); dg_http_error(c, 500, "out of memory"); return; }
    dg_buf_printf(&b, "# HELP dronegate_drones_known Drones in the registry.\n# TYPE dronegate_drones_known gauge\n"
                      "dronegate_drones_known %zu\n", dg_registry_count(c->w->srv->registry));
    dg_buf_printf(&b, "# HELP dronegate_registry_offline Offline drones kept in memory (bounded by --registry-max-offline).\n"
                      "# TYPE dronegate_registry_offline gauge\ndronegate_registry_offline %zu\n"
                      "# HELP dronegate_registry_evicted_total Offline drones that left memory (not the store).\n"
                      "# TYPE dronegate_registry_evicted_total counter\ndronegate_registry_evicted_total %llu\n",
                  dg_registry_offline(c->w->srv->registry),
                  (unsigned long long)dg_registry_evicted(c->w->srv->registry));
    send_buf(c, 200, "text/plain; version=0.0.4", &b);
    dg_buf_free(&b);
}

/* ---- commands ---- */

static void post_command(dg_conn_t *c, dg_http_req_t *r, const char *id, size_t idlen)
{
    dg_server_t *srv = c->w->srv;
    dg_command_body_t body;         /* name, and args re-serialised as valid UTF-8 JSON */
    char err[160];
    if (dg_command_body_parse(r->body.data, r->body.len, &body, err, sizeof err)) {
        dg_http_error(c, 400, err);
        return;
    }
    char idz[DG_DRONE_ID_MAX + 1];
    memcpy(idz, id, idlen);
    idz[idlen] = '\0';
    dg_conn_ref_t ref;
    if (!dg_registry_find_conn(srv->registry, id, idlen, &ref) && srv->fleet) {
        /* not connected here: maybe to another gateway of the fleet (fleet.h) */
        dg_read_job_t *j = dg_fleet_command_job(srv->fleet, idz, body.name, body.args, body.args_len);
        if (!j) { dg_http_error(c, 503, "out of memory"); return; }
        submit(c, j);
        return;
    }
    if (!dg_registry_find_conn(srv->registry, id, idlen, &ref)) {
        bool d = dg_registry_get(srv->registry, id, idlen, false) != NULL;   /* existence only */
        dg_http_error(c, d ? 409 : 404, d ? "drone is offline" : "unknown drone");
        return;
    }
    dg_command_t cmd;
    int crc = dg_commands_create(srv->commands, idz, body.name, body.args, body.args_len, dg_now_ms(), &cmd);
    if (crc) {
        if (crc == -EAGAIN)
            dg_http_error(c, 429, "too many open commands for this drone (at most 64 pending, sent or "
                                  "accepted): wait for answers or expiry");
        else if (crc == -ENOSPC)
            dg_http_error(c, 503, "too many open commands in total (at most 100000): try again later");
        else
            dg_http_error(c, 500, "could not create the command");
        return;
    }
    dg_ingest_command_changed(c->w, &cmd);   /* pending: persisted, published */
    if (dg_ingest_dispatch_command(c->w, &cmd) < 0) {
        dg_http_error(c, 409, "drone is offline");
        return;
    }
    dg_command_t now;
    if (dg_commands_get(srv->commands, cmd.id, strlen(cmd.id), &now)) now = cmd;
    dg_buf_t b = { 0 };
    dg_buf_puts(&b, "{\"id\":");
    dg_jw_str(&b, now.id, strlen(now.id));
    dg_buf_puts(&b, ",\"status\":");
    const char *st = dg_command_status_name(now.status);
    dg_jw_str(&b, st, strlen(st));
    dg_buf_puts(&b, "}");
    char loc[96];
    snprintf(loc, sizeof loc, "Location: /api/v1/commands/%s\r\n", now.id);
    dg_http_respond(c, 202, "application/json", b.data, b.len, loc);
    dg_buf_free(&b);
}

/* Read pool thread: a command from the commands table. */
static void run_command(dg_server_t *srv, dg_read_job_t *j)
{
    dg_command_t cmd;
    char err[256];
    int rc = srv->store_ops->get_command(srv->store, j->cmd_id, &cmd, err, sizeof err);
    if (rc < 0) {
        dg_warn("reading a command from the store failed: %s", err);
        j->status = 503;
        snprintf(j->err, sizeof j->err, "store unavailable");
    } else if (rc > 0) {
        j->status = 404;
        snprintf(j->err, sizeof j->err, "unknown command");
    } else {
        dg_command_json(&j->body, &cmd);
        j->status = 200;
        j->ctype = "application/json";
    }
}

static void get_command(dg_conn_t *c, const char *id, size_t idlen)
{
    dg_command_t cmd;
    dg_server_t *srv = c->w->srv;
    if (dg_commands_get(srv->commands, id, idlen, &cmd)) {
        /* not in memory (an earlier run, or forgotten): the commands table */
        if (idlen != DG_CMD_ID_LEN || !srv->store_ops->get_command) { dg_http_error(c, 404, "unknown command"); return; }
        dg_read_job_t *j = calloc(1, sizeof *j);
        if (!j) { dg_http_error(c, 503, "out of memory"); return; }
        memcpy(j->cmd_id, id, idlen);
        j->cmd_id[idlen] = '\0';
        j->run = run_command;
        submit(c, j);
        return;
    }
    dg_buf_t b = { 0 };
    dg_command_json(&b, &cmd);
    send_buf(c, 200, "application/json", &b);
    dg_buf_free(&b);
}

/* ---- static files (the dashboard) ---- */

/* Security headers of every dashboard response (csp.h); the tile server of
 * --map-tiles is added to img-src. */
static void page_headers(dg_conn_t *c, char out[DG_CSP_HEADERS_MAX])
{
    dg_csp_page_headers(out, DG_CSP_HEADERS_MAX, c->w->srv->cfg->map_tiles);
}

static const char *ctype_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot) return "application/octet-stream";
    static const struct { const char *ext, *type; } map[] = {
        { ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
        { ".mjs", "text/javascript; charset=utf-8" }, { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" }, { ".png", "image/png" }, { ".svg", "image/svg+xml" },
        { ".ico", "image/x-icon" }, { ".map", "application/json" }, { ".txt", "text/plain; charset=utf-8" },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(dot, map[i].ext)) return map[i].type;
    return "application/octet-stream";
}

/* Open `rel` (checked by serve_static: components of a safe alphabet, none
 * starting with '.') below the web root without following a symlink below
 * it: every directory is opened with O_NOFOLLOW|O_DIRECTORY relative to the
 * one before, the file with O_NOFOLLOW, so what is served is a file whose
 * real path is inside the real web root, whatever is renamed or linked
 * meanwhile. The root itself may be a symlink (a packaged /usr/share path).
 * O_NONBLOCK: a FIFO in the tree must not block the worker in open(). An
 * fd or -1. */
static int open_below(const char *root, const char *rel)
{
    int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -1;
    const char *p = rel;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char comp[256];
        if (n == 0 || n >= sizeof comp) { close(dfd); return -1; }   /* "//", trailing '/', too long */
        memcpy(comp, p, n);
        comp[n] = '\0';
        int fd = openat(dfd, comp, slash ? O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
                                         : O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        close(dfd);
        if (fd < 0 || !slash) return fd;
        dfd = fd;
        p = slash + 1;
    }
}

/* 1 served, 0 not found (caller decides), response sent on error. */
static int serve_static(dg_conn_t *c, const char *path, size_t plen)
{
    const char *root = c->w->srv->cfg->web_root;
    char rel[512];
    if (plen == 1) snprintf(rel, sizeof rel, "index.html");
    else {
        if (plen - 1 >= sizeof rel) return 0;
        memcpy(rel, path + 1, plen - 1);
        rel[plen - 1] = '\0';
    }
    /* only plain relative paths: no "..", no hidden files, a safe alphabet */
    for (const char *p = rel; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == '/'))
            return 0;
        if ((p == rel || p[-1] == '/') && ch == '.') return 0;
    }
    int fd = open_below(root, rel);
    if (fd < 0) return 0;
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > 64 * 1024 * 1024) { close(fd); return 0; }
    dg_buf_t b = { 0 };
    if (dg_buf_reserve(&b, (size_t)st.st_size + 1)) { close(fd); dg_http_error(c, 500, "out of memory"); return 1; }
    while (b.len < (size_t)st.st_size) {
        ssize_t n = read(fd, b.data + b.len, (size_t)st.st_size - b.len);
        if (n <= 0) { if (n < 0 && errno == EINTR) continue; break; }
        b.len += (size_t)n;
    }
    close(fd);
    char hdrs[DG_CSP_HEADERS_MAX];
    page_headers(c, hdrs);
    dg_http_respond(c, 200, ctype_of(rel), b.data, b.len, hdrs);
    dg_buf_free(&b);
    return 1;
}

static const char index_html[] =
    "<!doctype html><html><head><meta charset=utf-8><title>dronegate</title></head><body>"
    "<h1>dronegate</h1><p>Telemetry gateway. Endpoints:</p><ul>"
    "<li><a href=\"/api/v1/drones\">/api/v1/drones</a></li>"
    "<li>/api/v1/drones/{id}/telemetry?from=&amp;to=&amp;limit=&amp;format=json|csv|geojson|kml|gpx</li>"
    "<li><a href=\"/metrics\">/metrics</a>, <a href=\"/healthz\">/healthz</a>, <a href=\"/readyz\">/readyz</a></li>"
    "<li>WebSocket uplink: /ws/{drone_id}</li></ul></body></html>\n";

static bool path_is(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && !memcmp(p, lit, l);
}

int dg_api_handle(dg_conn_t *c, dg_http_req_t *r, const char *path, size_t plen,
                  const char *q, size_t qlen, int keep_alive)
{
    (void)keep_alive;
    bool get = r->method == HTTP_GET || r->method == HTTP_HEAD;
    if (path_is(path, plen, "/healthz")) {
        if (!get) { dg_http_error(c, 405, "method not allowed"); return 1; }
        dg_http_respond(c, 200, "text/plain", "ok\n", 3, NULL);
        return 1;
    }
    if (path_is(path, plen, "/readyz")) {
        if (!get) { dg_http_error(c, 405, "method not allowed"); return 1; }
        get_readyz(c);
        return 1;
    }
    if (path_is(path, plen, "/metrics")) {
        if (!get) { dg_http_error(c, 405, "method not allowed"); return 1; }
        get_metrics(c);
        return 1;
    }
    bool api = plen >= 5 && !memcmp(path, "/api/", 5);
    if (!api) {
        if (!get) return 0;
        if (serve_static(c, path, plen)) return 1;
        if (path_is(path, plen, "/")) {
            char hdrs[DG_CSP_HEADERS_MAX];
            page_headers(c, hdrs);
            dg_http_respond(c, 200, "text/html; charset=utf-8", index_html, sizeof index_html - 1, hdrs);
            return 1;
        }
        return 0;
    }
    bool post = r->method == HTTP_POST;
    if (post && !dg_http_origin_ok(c, r)) return 1;
    if (!dg_http_operator_ok(c, r, q, qlen, !get)) return 1;
    static const char cpre[] = "/api/v1/commands/";
    if (plen > sizeof cpre - 1 && !memcmp(path, cpre, sizeof cpre - 1)) {
        if (!get) { dg_http_error(c, 405, "method not allowed"); return 1; }
        get_command(c, path + sizeof cpre - 1, plen - (sizeof cpre - 1));
        return 1;
    }
    if (path_is(path, plen, "/api/v1/config")) {    /* the dashboard's settings (config.c) */
        if (!get) { dg_http_error(c, 405, "method not allowed"); return 1; }
        dg_buf_t b = { 0 };
        if (dg_config_web_json(c->w->srv->cfg, &b)) { dg_buf_free(&b); dg_http_error(c, 500, "out of memory"); return 1; }
        send_buf(c, 200, "application/json", &b);
        dg_buf_free(&b);
        return 1;
    }
    if (path_is(path, plen, "/api/v1/drones")) {
        if (!get) { dg_http_error(c, 405, "method not allowed"); return 1; }
        get_drones(c, q, qlen);
        return 1;
    }
    static const char pre[] = "/api/v1/drones/";
    if (plen > sizeof pre - 1 && !memcmp(path, pre, sizeof pre - 1)) {
        const char *id = path + sizeof pre - 1;
        const char *slash = memchr(id, '/', plen - (sizeof pre - 1));
        size_t idlen = slash ? (size_t)(slash - id) : plen - (sizeof pre - 1);
        if (!dg_drone_id_valid(id, idlen)) { dg_http_error(c, 400, "invalid drone id"); return 1; }
        const char *rest = slash ? slash : "";
        size_t rlen = slash ? plen - (size_t)(slash - path) : 0;
        if (rlen == 0) {
            if (!get) { dg_http_error(c, 405, "method not allowed"); return 1; }
            get_drone(c, id, idlen);
            return 1;
        }
        if (path_is(rest, rlen, "/telemetry")) {
            if (!get) { dg_http_error(c, 405, "method not allowed"); return 1; }
            get_history(c, id, idlen, q, qlen);
            return 1;
        }
        if (path_is(rest, rlen, "/commands")) {
            if (!post) { dg_http_error(c, 405, "use POST to send a command"); return 1; }
            post_command(c, r, id, idlen);
            return 1;
        }
    }
    return 0;
}
