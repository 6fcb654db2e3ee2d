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
#include "../codec/jsonw.h"
#include "../codec/number.h"
#include "../core/commands.h"
#include "../core/ingest.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/reads.h"
#include "../core/server.h"
#include "../core/timefmt.h"
#include "../net/worker.h"

#define DG_DEFAULT_LIMIT 1000
#define DG_MAX_LIMIT     100000

static void send_buf(dg_conn_t *c, int status, const char *ctype, dg_buf_t *b)
{
    dg_http_respond(c, status, ctype, b->data, b->len, NULL);
}

static void w_time(dg_buf_t *b, int64_t ms)
{
    char ts[32];
    size_t n = dg_format_rfc3339(ms, ts);
    dg_jw_str(b, ts, n);
}

/* The optional fields of a record as JSON members. */
static void w_fields(dg_buf_t *b, int *first, const dg_record_t *r)
{
    dg_jw_key(b, first, "latitude");  dg_jw_double(b, r->lat);
    dg_jw_key(b, first, "longitude"); dg_jw_double(b, r->lon);
    dg_jw_key(b, first, "altitude");  dg_jw_double(b, r->alt);
    if (r->flags & DG_REC_HAS_SPEED)   { dg_jw_key(b, first, "speed");   dg_jw_double(b, r->speed); }
    if (r->flags & DG_REC_HAS_HEADING) { dg_jw_key(b, first, "heading"); dg_jw_double(b, r->heading); }
    if (r->flags & DG_REC_HAS_CLIMB)   { dg_jw_key(b, first, "climb");   dg_jw_double(b, r->climb); }
    if (r->flags & DG_REC_HAS_BATTERY) { dg_jw_key(b, first, "battery"); dg_jw_double(b, r->battery); }
    if (r->flags & DG_REC_HAS_STATUS)  { dg_jw_key(b, first, "status");  dg_jw_str(b, r->status, r->status_len); }
}

void dg_api_record_members(dg_buf_t *b, int *first, const dg_record_t *r)
{
    if (r->flags & DG_REC_HAS_SEQ) { dg_jw_key(b, first, "seq"); dg_jw_u64(b, r->seq); }
    dg_jw_key(b, first, "timestamp");
    w_time(b, r->ts_ms);
    w_fields(b, first, r);
}

void dg_api_drone_json(dg_buf_t *b, const dg_drone_state_t *s)
{
    int first = 1;
    dg_buf_puts(b, "{");
    dg_jw_key(b, &first, "id");
    dg_jw_str(b, s->id, strlen(s->id));
    dg_jw_key(b, &first, "online");
    dg_buf_puts(b, s->online ? "true" : "false");
    dg_jw_key(b, &first, "last_seen");
    if (s->last_seen_ms) w_time(b, s->last_seen_ms); else dg_buf_puts(b, "null");
    if (s->has_last) {
        if (s->last.flags & DG_REC_HAS_SEQ) { dg_jw_key(b, &first, "seq"); dg_jw_u64(b, s->last.seq); }
        dg_jw_key(b, &first, "timestamp");
        w_time(b, s->last.ts_ms);
        w_fields(b, &first, &s->last);
    }
    dg_buf_puts(b, "}");
}

static void get_drones(dg_conn_t *c)
{
    dg_drone_state_t *v = NULL;
    long n = dg_registry_snapshot(c->w->srv->registry, &v);
    if (n < 0) { dg_http_error(c, 500, "out of memory"); return; }
    dg_buf_t b = { 0 };
    dg_buf_puts(&b, "{\"drones\":[");
    for (long i = 0; i < n; i++) {
        if (i) dg_buf_puts(&b, ",");
        dg_api_drone_json(&b, &v[i]);
    }
    dg_buf_puts(&b, "]}");
    free(v);
    send_buf(c, 200, "application/json", &b);
    dg_buf_free(&b);
}

static void get_drone(dg_conn_t *c, const char *id, size_t idlen)
{
    dg_drone_t *d = dg_registry_get(c->w->srv->registry, id, idlen, false);
    if (!d) { dg_http_error(c, 404, "unknown drone"); return; }
    dg_drone_state_t s;
    dg_registry_state(c->w->srv->registry, d, &s);
    dg_buf_t b = { 0 };
    dg_api_drone_json(&b, &s);
    send_buf(c, 200, "application/json", &b);
    dg_buf_free(&b);
}

/* ---- history ---- */

enum fmt { FMT_JSON, FMT_CSV, FMT_GEOJSON };

typedef struct hist_ctx {
    dg_buf_t *b;
    enum fmt  fmt;
    size_t    n;
} hist_ctx_t;

static void csv_num(dg_buf_t *b, bool has, double v)
{
    if (has) dg_jw_double(b, v);
    dg_buf_puts(b, ",");
}

static int hist_row(void *ud, const dg_record_t *r)
{
    hist_ctx_t *h = ud;
    dg_buf_t *b = h->b;
    if (h->fmt == FMT_CSV) {
        char ts[32];
        dg_buf_append(b, r->drone_id, r->drone_id_len);
        dg_buf_puts(b, ",");
        dg_buf_append(b, ts, dg_format_rfc3339(r->ts_ms, ts));
        dg_buf_puts(b, ",");
        if (r->flags & DG_REC_HAS_SEQ) dg_jw_u64(b, r->seq);
        dg_buf_puts(b, ",");
        csv_num(b, true, r->lat);
        csv_num(b, true, r->lon);
        csv_num(b, true, r->alt);
        csv_num(b, r->flags & DG_REC_HAS_SPEED, r->speed);
        csv_num(b, r->flags & DG_REC_HAS_HEADING, r->heading);
        csv_num(b, r->flags & DG_REC_HAS_CLIMB, r->climb);
        csv_num(b, r->flags & DG_REC_HAS_BATTERY, r->battery);
        if (r->flags & DG_REC_HAS_STATUS) {
            /* RFC 4180 quoting: status may hold commas or quotes */
            dg_buf_puts(b, "\"");
            for (size_t i = 0; i < r->status_len; i++) {
                if (r->status[i] == '"') dg_buf_puts(b, "\"");
                dg_buf_append(b, &r->status[i], 1);
            }
            dg_buf_puts(b, "\"");
        }
        dg_buf_puts(b, ",");
        dg_buf_append(b, ts, dg_format_rfc3339(r->recv_us / 1000, ts));
        dg_buf_puts(b, "\r\n");
    } else if (h->fmt == FMT_JSON) {
        int first = 1;
        if (h->n) dg_buf_puts(b, ",");
        dg_buf_puts(b, "{");
        if (r->flags & DG_REC_HAS_SEQ) { dg_jw_key(b, &first, "seq"); dg_jw_u64(b, r->seq); }
        dg_jw_key(b, &first, "timestamp");
        w_time(b, r->ts_ms);
        w_fields(b, &first, r);
        dg_jw_key(b, &first, "received_at");
        w_time(b, r->recv_us / 1000);
        dg_buf_puts(b, "}");
    } else {
        int first = 1;
        if (h->n) dg_buf_puts(b, ",");
        dg_buf_puts(b, "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Point\",\"coordinates\":[");
        dg_jw_double(b, r->lon);
        dg_buf_puts(b, ",");
        dg_jw_double(b, r->lat);
        dg_buf_puts(b, ",");
        dg_jw_double(b, r->alt);
        dg_buf_puts(b, "]},\"properties\":{");
        dg_jw_key(b, &first, "drone_id");
        dg_jw_str(b, r->drone_id, r->drone_id_len);
        if (r->flags & DG_REC_HAS_SEQ) { dg_jw_key(b, &first, "seq"); dg_jw_u64(b, r->seq); }
        dg_jw_key(b, &first, "timestamp");
        w_time(b, r->ts_ms);
        if (r->flags & DG_REC_HAS_SPEED)   { dg_jw_key(b, &first, "speed");   dg_jw_double(b, r->speed); }
        if (r->flags & DG_REC_HAS_HEADING) { dg_jw_key(b, &first, "heading"); dg_jw_double(b, r->heading); }
        if (r->flags & DG_REC_HAS_CLIMB)   { dg_jw_key(b, &first, "climb");   dg_jw_double(b, r->climb); }
        if (r->flags & DG_REC_HAS_BATTERY) { dg_jw_key(b, &first, "battery"); dg_jw_double(b, r->battery); }
        if (r->flags & DG_REC_HAS_STATUS)  { dg_jw_key(b, &first, "status");  dg_jw_str(b, r->status, r->status_len); }
        dg_jw_key(b, &first, "received_at");
        w_time(b, r->recv_us / 1000);
        dg_buf_puts(b, "}}");
    }
    h->n++;
    return 0;
}

/* Read pool thread: the history of j->id as the whole response body. */
static void run_history(dg_server_t *srv, dg_read_job_t *j)
{
    dg_buf_t *b = &j->body;
    hist_ctx_t h = { b, (enum fmt)j->fmt, 0 };
    if (h.fmt == FMT_CSV) dg_buf_puts(b, "drone_id,timestamp,seq,latitude,longitude,altitude,speed,heading,climb,battery,status,received_at\r\n");
    else if (h.fmt == FMT_JSON) {
        dg_buf_puts(b, "{\"drone_id\":");
        dg_jw_str(b, j->id, strlen(j->id));
        dg_buf_puts(b, ",\"telemetry\":[");
    } else dg_buf_puts(b, "{\"type\":\"FeatureCollection\",\"features\":[");
    char err[256] = "";
    if (srv->store_ops->query(srv->store, &j->q, hist_row, &h, err, sizeof err) < 0) {
        dg_warn("history query failed: %s", err);
        j->status = 503;
        snprintf(j->err, sizeof j->err, "store unavailable");
        return;
    }
    if (h.fmt != FMT_CSV) dg_buf_puts(b, "]}");
    static const char *ct[] = { "application/json", "text/csv; charset=utf-8", "application/geo+json" };
    j->status = 200;
    j->ctype = ct[h.fmt];
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
    enum fmt f = FMT_JSON;
    if ((rc = dg_http_query_param(q, qlen, "format", val, sizeof val)) != 0) {
        if (rc > 0 && !strcmp(val, "json")) f = FMT_JSON;
        else if (rc > 0 && !strcmp(val, "csv")) f = FMT_CSV;
        else if (rc > 0 && !strcmp(val, "geojson")) f = FMT_GEOJSON;
        else { dg_http_error(c, 400, "format must be json, csv or geojson"); return; }
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
    dg_http_respond(c, 200, "text/plain", "ready\n", 6, NULL);
}

static void get_metrics(dg_conn_t *c)
{
    dg_buf_t b = { 0 };
    if (dg_metrics_render(&b)) { dg_buf_free(&b); dg_http_error(c, 500, "out of memory"); return; }
    dg_buf_printf(&b, "# HELP dronegate_drones_known Drones in the registry.\n# TYPE dronegate_drones_known gauge\n"
                      "dronegate_drones_known %zu\n", dg_registry_count(c->w->srv->registry));
    send_buf(c, 200, "text/plain; version=0.0.4", &b);
    dg_buf_free(&b);
}

/* ---- commands ---- */

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

static bool tok_is(const char *js, const jsmntok_t *t, const char *s)
{
    size_t n = strlen(s);
    return t->type == JSMN_STRING && (size_t)(t->end - t->start) == n && !memcmp(js + t->start, s, n);
}

/* Index after the token i and all its children. */
static int skip(const jsmntok_t *t, int n, int i)
{
    int end = t[i].end;
    i++;
    while (i < n && t[i].start < end) i++;
    return i;
}

/* Every primitive must be a JSON literal or number (jsmn is lax there). */
static bool primitives_ok(const char *js, const jsmntok_t *t, int n)
{
    for (int i = 0; i < n; i++) {
        if (t[i].type != JSMN_PRIMITIVE) continue;
        const char *p = js + t[i].start;
        size_t l = (size_t)(t[i].end - t[i].start);
        double d;
        if ((l == 4 && !memcmp(p, "true", 4)) || (l == 5 && !memcmp(p, "false", 5)) ||
            (l == 4 && !memcmp(p, "null", 4)) || dg_parse_double(p, l, &d) == 0)
            continue;
        return false;
    }
    return true;
}

/* Number member `key` of the object token at index obj; 1 found, 0 absent, -1 wrong type. */
static int obj_num(const char *js, const jsmntok_t *t, int n, int obj, const char *key, double *out)
{
    int i = obj + 1;
    for (int k = 0; k < t[obj].size && i < n; k++) {
        if (tok_is(js, &t[i], key)) {
            const jsmntok_t *v = &t[i + 1];
            if (v->type != JSMN_PRIMITIVE) return -1;
            return dg_parse_double(js + v->start, (size_t)(v->end - v->start), out) == 0 ? 1 : -1;
        }
        i = skip(t, n, i + 1);
    }
    return 0;
}

static void post_command(dg_conn_t *c, dg_http_req_t *r, const char *id, size_t idlen)
{
    dg_server_t *srv = c->w->srv;
    const char *js = r->body.data ? r->body.data : "";
    size_t len = r->body.len;
    jsmntok_t t[256];
    jsmn_parser p;
    jsmn_init(&p);
    int n = jsmn_parse(&p, js, len, t, 256);
    if (n < 1 || t[0].type != JSMN_OBJECT || (size_t)t[0].end != len || !primitives_ok(js, t, n)) {
        /* allow trailing whitespace after the object */
        size_t e = n >= 1 ? (size_t)t[0].end : 0;
        while (e < len && (js[e] == ' ' || js[e] == '\n' || js[e] == '\r' || js[e] == '\t')) e++;
        if (n < 1 || t[0].type != JSMN_OBJECT || e != len || !primitives_ok(js, t, n)) {
            dg_http_error(c, 400, "body must be a JSON object {\"name\":\"...\",\"args\":{...}}");
            return;
        }
    }
    char name[DG_CMD_NAME_MAX + 1] = "";
    int args_tok = -1;
    int i = 1;
    for (int k = 0; k < t[0].size && i < n; k++) {
        if (tok_is(js, &t[i], "name")) {
            const jsmntok_t *v = &t[i + 1];
            size_t l = (size_t)(v->end - v->start);
            if (v->type != JSMN_STRING || l < 1 || l > DG_CMD_NAME_MAX) {
                dg_http_error(c, 400, "name must be a string of 1-32 characters [a-z0-9_]");
                return;
            }
            for (size_t q = 0; q < l; q++) {
                char ch = js[v->start + q];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) {
                    dg_http_error(c, 400, "name must be a string of 1-32 characters [a-z0-9_]");
                    return;
                }
            }
            memcpy(name, js + v->start, l);
            name[l] = '\0';
        } else if (tok_is(js, &t[i], "args")) {
            if (t[i + 1].type != JSMN_OBJECT) { dg_http_error(c, 400, "args must be a JSON object"); return; }
            args_tok = i + 1;
        }
        i = skip(t, n, i + 1);
    }
    if (!name[0]) { dg_http_error(c, 400, "missing name"); return; }
    const char *args = "{}";
    size_t args_len = 2;
    if (args_tok >= 0) {
        args = js + t[args_tok].start;
        args_len = (size_t)(t[args_tok].end - t[args_tok].start);
        if (args_len > DG_CMD_ARGS_MAX) { dg_http_error(c, 400, "args too large (at most 4096 bytes)"); return; }
    }
    if (!strcmp(name, "goto")) {
        double lat, lon, alt;
        if (args_tok < 0 || obj_num(js, t, n, args_tok, "lat", &lat) != 1 || lat < -90 || lat > 90 ||
            obj_num(js, t, n, args_tok, "lon", &lon) != 1 || lon < -180 || lon > 180 ||
            obj_num(js, t, n, args_tok, "alt", &alt) != 1 || alt < -1000 || alt > 100000) {
            dg_http_error(c, 400, "goto needs args {\"lat\": [-90,90], \"lon\": [-180,180], \"alt\": [-1000,100000]}");
            return;
        }
    }
    char idz[DG_DRONE_ID_MAX + 1];
    memcpy(idz, id, idlen);
    idz[idlen] = '\0';
    dg_drone_t *d = dg_registry_get(srv->registry, id, idlen, false);
    dg_conn_ref_t ref;
    if (!d || !dg_registry_conn(srv->registry, d, &ref)) {
        dg_http_error(c, d ? 409 : 404, d ? "drone is offline" : "unknown drone");
        return;
    }
    dg_command_t cmd;
    if (dg_commands_create(srv->commands, idz, name, args, args_len, dg_now_ms(), &cmd)) {
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
    char full[1600];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", root, rel) >= sizeof full) return 0;
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
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
    dg_http_respond(c, 200, ctype_of(rel), b.data, b.len, "Cache-Control: no-cache\r\n");
    dg_buf_free(&b);
    return 1;
}

static const char index_html[] =
    "<!doctype html><html><head><meta charset=utf-8><title>dronegate</title></head><body>"
    "<h1>dronegate</h1><p>Telemetry gateway. Endpoints:</p><ul>"
    "<li><a href=\"/api/v1/drones\">/api/v1/drones</a></li>"
    "<li>/api/v1/drones/{id}/telemetry?from=&amp;to=&amp;limit=&amp;format=json|csv|geojson</li>"
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
            dg_http_respond(c, 200, "text/html; charset=utf-8", index_html, sizeof index_html - 1, NULL);
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
    if (path_is(path, plen, "/api/v1/drones")) {
        if (!get) { dg_http_error(c, 405, "method not allowed"); return 1; }
        get_drones(c);
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
