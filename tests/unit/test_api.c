/* test_api.c - the REST handlers of src/http/api.c without a network: raw
 * HTTP requests are fed to dg_http_on_data() on a connection whose socket is
 * one end of a socketpair; the response is read from the other end.
 *
 * The query parsing lives inside static handlers (get_history, get_drones),
 * so it is driven through them: the history handler runs its store read
 * synchronously (no read pool: srv.reads == NULL) against a fake store whose
 * query() records the dg_query_t it was given (from, to, limit).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "core/commands.h"
#include "core/config.h"
#include "core/registry.h"
#include "core/server.h"
#include "http/http.h"
#include "net/worker.h"
#include "store/store.h"

static void noop_cb(struct ev_loop *l, ev_io *io, int ev) { (void)l; (void)io; (void)ev; }

/* ---- fake store: records the last query ---- */
static dg_query_t last_q;
static char last_q_id[DG_DRONE_ID_MAX + 1];
static int nqueries;

static int fake_query(dg_store_t *s, const dg_query_t *q, dg_record_cb cb, void *ud, char *err, size_t errlen)
{
    (void)s; (void)err; (void)errlen;
    last_q = *q;
    snprintf(last_q_id, sizeof last_q_id, "%s", q->drone_id);
    nqueries++;
    dg_record_t r;
    dg_record_init(&r);
    r.seq = 1;
    r.flags = DG_REC_HAS_SEQ;
    r.ts_ms = 1700000000000;
    r.lat = 1; r.lon = 2; r.alt = 3;
    r.drone_id_len = (uint8_t)strlen(q->drone_id);
    memcpy(r.drone_id, q->drone_id, r.drone_id_len + 1);
    cb(ud, &r);
    return 0;
}

static const dg_store_ops_t fake_ops = { .scheme = "fake", .durable = true, .query = fake_query };

/* ---- fixture ---- */
static dg_config_t cfg;
static dg_server_t srv;

static void setup_server(void)
{
    char *argv[] = { "dronegate", NULL };
    char err[256];
    if (dg_config_load(&cfg, 1, argv, 1, err, sizeof err) != 0) { fprintf(stderr, "config: %s\n", err); abort(); }
    srv.cfg = &cfg;
    srv.store_ops = &fake_ops;
    srv.registry = dg_registry_new();
    srv.accept_ops = &dg_http_conn_ops;
    srv.commands = dg_commands_new(30000);
    const char *ids[] = { "alpha", "bravo", "charlie" };
    for (int i = 0; i < 3; i++) {
        dg_drone_t *d = dg_registry_get(srv.registry, ids[i], strlen(ids[i]), true);
        dg_record_t r;
        dg_record_init(&r);
        r.seq = 1;
        r.flags = DG_REC_HAS_SEQ;
        r.ts_ms = 1700000000000;
        r.drone_id_len = (uint8_t)strlen(ids[i]);
        memcpy(r.drone_id, ids[i], r.drone_id_len + 1);
        dg_registry_update(srv.registry, d, &r);
    }
}

typedef struct resp { int status; char ctype[64]; char body[16384]; } resp_t;

/* One request on a fresh connection; the response parsed. */
static resp_t *request_m(const char *method, const char *target, const char *body)
{
    static resp_t rs;
    memset(&rs, 0, sizeof rs);
    dg_worker_t *w = calloc(1, sizeof *w);
    w->srv = &srv;
    w->loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) abort();
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    dg_conn_t *c = calloc(1, sizeof *c);
    ev_io_init(&c->io, noop_cb, sv[0], EV_READ);
    c->ops = &dg_http_conn_ops;
    c->w = w;
    c->fd = sv[0];
    dg_http_init(c);
    char req[4096];
    int n = body ? snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n%s", method, target, strlen(body), body)
                 : snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", method, target);
    dg_http_on_data(c, (uint8_t *)req, (size_t)n);

    static char raw[65536];
    size_t k = 0;
    for (;;) {
        ssize_t r = read(sv[1], raw + k, sizeof raw - 1 - k);
        if (r <= 0) break;
        k += (size_t)r;
    }
    raw[k] = '\0';
    sscanf(raw, "HTTP/1.1 %d", &rs.status);
    const char *ct = strcasestr(raw, "\r\nContent-Type: ");
    if (ct) sscanf(ct + 16, "%63[^\r;]", rs.ctype);
    const char *b = strstr(raw, "\r\n\r\n");
    if (b) snprintf(rs.body, sizeof rs.body, "%s", b + 4);

    if (!c->dead) dg_http_free(c);
    ev_io_stop(w->loop, &c->io);
    close(sv[0]);
    close(sv[1]);
    dg_buf_free(&c->out);
    dg_buf_free(&dg_http_conn(c)->stash);
    free(c);
    ev_loop_destroy(w->loop);
    free(w->slots);
    free(w->gens);
    free(w);
    return &rs;
}

static resp_t *request(const char *target) { return request_m("GET", target, NULL); }

/* history request: status, and whether the store was asked */
static int hist(const char *query)
{
    char t[1024];
    snprintf(t, sizeof t, "/api/v1/drones/alpha/telemetry%s", query);
    int before = nqueries;
    resp_t *r = request(t);
    if (r->status == 200 && nqueries != before + 1) return -1;
    if (r->status != 200 && nqueries != before) return -2;   /* a refused query never reaches the store */
    return r->status;
}

TEST(history_defaults)
{
    ASSERT_EQ(hist(""), 200);
    ASSERT_STR_EQ(last_q_id, "alpha");
    ASSERT(last_q.from_ms == INT64_MIN);
    ASSERT(last_q.to_ms == INT64_MAX);
    ASSERT_EQ(last_q.limit, 1000);
    resp_t *r = request("/api/v1/drones/alpha/telemetry");
    ASSERT_STR_EQ(r->ctype, "application/json");
}

TEST(history_from_to_limit)
{
    ASSERT_EQ(hist("?from=1700000000000&to=1700000001000&limit=5"), 200);
    ASSERT(last_q.from_ms == 1700000000000);
    ASSERT(last_q.to_ms == 1700000001000);
    ASSERT_EQ(last_q.limit, 5);
    ASSERT_EQ(hist("?from=2023-11-14T22:13:20Z"), 200);
    ASSERT(last_q.from_ms == 1700000000000);
    ASSERT(last_q.to_ms == INT64_MAX);
    /* an unencoded '+' of an offset arrives as ' ' after decoding: taken back */
    ASSERT_EQ(hist("?to=2023-11-14T23:13:20+01:00"), 200);
    ASSERT(last_q.to_ms == 1700000000000);
    ASSERT_EQ(hist("?to=2023-11-14T23:13:20%2B01:00"), 200);
    ASSERT(last_q.to_ms == 1700000000000);
    ASSERT_EQ(hist("?from=5&to=5"), 200);          /* from == to is one instant */
    ASSERT_EQ(hist("?limit=1"), 200);
    ASSERT_EQ(last_q.limit, 1);
    ASSERT_EQ(hist("?limit=100000"), 200);
    ASSERT_EQ(last_q.limit, 100000);
}

TEST(history_bad_parameters)
{
    ASSERT_EQ(hist("?from=yesterday"), 400);
    ASSERT_EQ(hist("?to=2023-13-01T00:00:00Z"), 400);
    ASSERT_EQ(hist("?from="), 400);
    ASSERT_EQ(hist("?from=%zz"), 400);
    ASSERT_EQ(hist("?from=6&to=5"), 400);          /* from after to */
    ASSERT_EQ(hist("?limit=0"), 400);
    ASSERT_EQ(hist("?limit=100001"), 400);
    ASSERT_EQ(hist("?limit=-1"), 400);
    ASSERT_EQ(hist("?limit=5x"), 400);
    ASSERT_EQ(hist("?limit="), 400);
    ASSERT_EQ(hist("?format=xml"), 400);
    ASSERT_EQ(hist("?format="), 400);
}

TEST(history_formats)
{
    static const char *f[][2] = {
        { "json", "application/json" }, { "csv", "text/csv" }, { "geojson", "application/geo+json" },
        { "kml", "application/vnd.google-earth.kml+xml" }, { "gpx", "application/gpx+xml" },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        char t[256];
        snprintf(t, sizeof t, "/api/v1/drones/alpha/telemetry?format=%s", f[i][0]);
        resp_t *r = request(t);
        ASSERT_EQ(r->status, 200);
        ASSERT_STR_EQ(r->ctype, f[i][1]);
    }
}

TEST(history_unknown_or_invalid_drone)
{
    int before = nqueries;
    ASSERT_EQ(request("/api/v1/drones/zulu/telemetry")->status, 404);
    ASSERT_EQ(request("/api/v1/drones/bad%20id/telemetry")->status, 400);
    ASSERT_EQ(nqueries, before);
}

TEST(drones_pages)
{
    resp_t *r = request("/api/v1/drones");
    ASSERT_EQ(r->status, 200);
    ASSERT(strstr(r->body, "\"alpha\"") && strstr(r->body, "\"bravo\"") && strstr(r->body, "\"charlie\""));
    ASSERT(strstr(r->body, "\"next_cursor\":null") != NULL);
    r = request("/api/v1/drones?limit=2");
    ASSERT_EQ(r->status, 200);
    ASSERT(strstr(r->body, "\"alpha\"") && strstr(r->body, "\"bravo\"") && !strstr(r->body, "\"charlie\""));
    ASSERT(strstr(r->body, "\"next_cursor\":\"bravo\"") != NULL);
    r = request("/api/v1/drones?limit=2&cursor=bravo");
    ASSERT_EQ(r->status, 200);
    ASSERT(!strstr(r->body, "\"alpha\"") && !strstr(r->body, "\"bravo\"") && strstr(r->body, "\"charlie\""));
    ASSERT(strstr(r->body, "\"next_cursor\":null") != NULL);
    r = request("/api/v1/drones?limit=10000&cursor=");
    ASSERT_EQ(r->status, 200);
    ASSERT(strstr(r->body, "\"alpha\"") != NULL);
}

TEST(drones_bad_parameters)
{
    ASSERT_EQ(request("/api/v1/drones?limit=0")->status, 400);
    ASSERT_EQ(request("/api/v1/drones?limit=10001")->status, 400);
    ASSERT_EQ(request("/api/v1/drones?limit=")->status, 400);
    ASSERT_EQ(request("/api/v1/drones?limit=2x")->status, 400);
    ASSERT_EQ(request("/api/v1/drones?limit=%zz")->status, 400);
    ASSERT_EQ(request("/api/v1/drones?cursor=bad%20id")->status, 400);
    ASSERT_EQ(request("/api/v1/drones?cursor=a/b")->status, 400);
    ASSERT_EQ(request("/api/v1/drones?cursor=%01")->status, 400);
    ASSERT_EQ(request("/api/v1/drones?cursor=%zz")->status, 400);
    ASSERT_EQ(request("/api/v1/drones?cursor=%00")->status, 400);
    /* longer than any drone id (65 characters) */
    ASSERT_EQ(request("/api/v1/drones?cursor=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")->status, 400);
}

TEST(commands_refused_without_creating)
{
    ASSERT_EQ(request_m("POST", "/api/v1/drones/alpha/commands", "{\"name\":")->status, 400);
    ASSERT_EQ(request_m("POST", "/api/v1/drones/alpha/commands", "{\"name\":\"goto\",\"args\":{\"lat\":91,\"lon\":0,\"alt\":1}}")->status, 400);
    ASSERT_EQ(request_m("POST", "/api/v1/drones/zulu/commands", "{\"name\":\"land\"}")->status, 404);
    resp_t *r = request_m("POST", "/api/v1/drones/alpha/commands", "{\"name\":\"land\"}");
    ASSERT_EQ(r->status, 409);                     /* known, not connected */
    ASSERT(strstr(r->body, "offline") != NULL);
    ASSERT_EQ(request("/api/v1/drones/alpha/commands")->status, 405);
    ASSERT_EQ(request("/api/v1/commands/abc")->status, 404);
    ASSERT_EQ(request("/api/v1/commands/0123456789abcdef0123456789abcdef")->status, 404);  /* fake store: no get_command */
    ASSERT_EQ(request_m("POST", "/api/v1/commands/0123456789abcdef0123456789abcdef", "{}")->status, 405);
}

int main(void)
{
    setup_server();
    RUN(history_defaults);
    RUN(history_from_to_limit);
    RUN(history_bad_parameters);
    RUN(history_formats);
    RUN(history_unknown_or_invalid_drone);
    RUN(drones_pages);
    RUN(drones_bad_parameters);
    RUN(commands_refused_without_creating);
    dg_registry_free(srv.registry);
    dg_commands_free(srv.commands);
    return check_summary("api");
}
