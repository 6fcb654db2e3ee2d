/* fleet.c - see fleet.h.
 *
 * Why PostgreSQL LISTEN/NOTIFY and not a protocol of our own: the gateways
 * of a fleet share the store already; NOTIFY is transactional (sent at the
 * commit of the row it announces, so the receiver always finds the row),
 * needs no addresses of the other gateways and no membership protocol, and
 * costs one connection per gateway. What it does not do: deliver to a
 * gateway that is not connected at the moment of the commit (a listener
 * that reconnects misses what was sent meanwhile) - covered by the pick-up
 * on connect below (a drone's pending rows are read when it connects) and
 * by command expiry.
 */
#include "fleet.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <postgresql/libpq-fe.h>
#include <openssl/rand.h>

#include "../codec/jsonw.h"
#include "../core/commands.h"
#include "../core/ingest.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/live.h"
#include "../core/timefmt.h"
#include "../net/worker.h"

#define CHANNEL   "dronegate_commands"
#define MOVED     "dronegate_moved"   /* "<previous instance> <drone id>" */
#define PRESENCE  "dronegate_presence" /* "<instance> 1|0 <drone id>", "<instance> reset" */
#define VIEW_MS   1000                 /* how often the other gateways' drone states are read */
#define EV_CHUNK  1024                 /* fleet events per worker message */
#define QCAP      65536          /* presence events waiting for the database */
#define TXN_MAX   512            /* events per transaction */

typedef struct ev {
    char id[DG_DRONE_ID_MAX + 1];
    bool online;
} ev_t;

struct dg_fleet {
    dg_server_t    *srv;
    char           *conninfo;
    char            instance[65];
    pthread_t       thr;
    int             efd;          /* wakes the fleet thread */
    atomic_int      stop;

    pthread_mutex_t qmu;          /* presence queue (ring) */
    ev_t           *q;
    size_t          qhead, qlen;
    uint64_t        qdropped;

    pthread_mutex_t pmu;          /* the read-pool side's connection */
    PGconn         *pc;

    /* fleet view (fleet thread only) */
    struct fleet_msg *out;        /* events being gathered for worker 0 */
    char            xmin[32];     /* xid8 text: our previous snapshot's xmin */
    int64_t         next_view_ms; /* monotonic */
};

/* ---- the fleet view: other gateways' drones in our registry and live stream ----
 *
 * The fleet thread gathers events (presence notifications, drone states read
 * from the drones table) and posts them in chunks to worker 0, which applies
 * them to the registry and publishes what changed to the live stream, as it
 * does for its own drones. Instance names are interned for the process's
 * life (the registry keeps pointers to them). */

enum { FE_REC, FE_ON, FE_OFF, FE_RESET };

typedef struct fev {
    uint8_t     kind;
    const char *inst;             /* interned; FE_RESET: NULL = every other gateway */
    dg_record_t rec;              /* FE_REC: the state; FE_ON/FE_OFF: drone_id only */
} fev_t;

typedef struct fleet_msg {
    dg_msg_t msg;
    size_t   n;
    fev_t    ev[EV_CHUNK];
} fleet_msg_t;

#define MAX_NAMES 1024
static char g_names[MAX_NAMES][65];   /* fleet thread writes; never changes once written */
static atomic_int g_nnames;

static const char *intern(const char *name)
{
    int n = atomic_load(&g_nnames);
    for (int i = 0; i < n; i++)
        if (!strcmp(g_names[i], name)) return g_names[i];
    if (n == MAX_NAMES || strlen(name) > 64) return NULL;
    snprintf(g_names[n], sizeof g_names[n], "%s", name);
    atomic_store(&g_nnames, n + 1);
    return g_names[n];
}

static void went_offline(void *ud, const char *id)
{
    dg_worker_t *w = ud;
    if (dg_live_active(w)) dg_live_publish_presence(w, id, false, dg_now_ms());
}

/* Worker 0. */
static void on_fleet_msg(dg_worker_t *w, dg_msg_t *m, bool deliver)
{
    fleet_msg_t *fm = (fleet_msg_t *)m;
    dg_registry_t *reg = w->srv->registry;
    for (size_t i = 0; deliver && i < fm->n; i++) {
        fev_t *e = &fm->ev[i];
        int64_t now = dg_now_ms();
        switch (e->kind) {
        case FE_REC:
            if (dg_registry_update_remote(reg, &e->rec) && dg_live_active(w)) dg_live_publish_record(w, &e->rec);
            break;
        case FE_ON:
        case FE_OFF:
            if (dg_registry_set_remote(reg, e->rec.drone_id, e->rec.drone_id_len,
                                       e->kind == FE_ON ? e->inst : NULL, e->inst, now) && dg_live_active(w))
                dg_live_publish_presence(w, e->rec.drone_id, e->kind == FE_ON, now);
            break;
        case FE_RESET:
            dg_registry_clear_remote(reg, e->inst, went_offline, w, now);
            break;
        }
    }
    free(fm);
}

static void post_events(dg_fleet_t *f)
{
    if (!f->out || !f->out->n) return;
    dg_worker_post(f->srv->workers[0], &f->out->msg);
    f->out = NULL;
}

static fev_t *emit(dg_fleet_t *f, int kind, const char *inst)
{
    if (f->out && f->out->n == EV_CHUNK) post_events(f);
    if (!f->out) {
        if (!(f->out = malloc(sizeof *f->out))) return NULL;   /* the view misses it; the next change heals */
        f->out->msg.type = DG_MSG_FLEET;
        f->out->msg.handle = on_fleet_msg;
        f->out->msg.next = NULL;
        f->out->n = 0;
    }
    fev_t *e = &f->out->ev[f->out->n++];
    e->kind = (uint8_t)kind;
    e->inst = inst;
    dg_record_init(&e->rec);
    return e;
}

static void emit_presence(dg_fleet_t *f, int kind, const char *inst, const char *drone)
{
    size_t len = strlen(drone);
    if (!dg_drone_id_valid(drone, len)) return;
    fev_t *e = emit(f, kind, inst);
    if (!e) return;
    memcpy(e->rec.drone_id, drone, len + 1);
    e->rec.drone_id_len = (uint8_t)len;
}

static const char sql_ddl[] =
    "CREATE TABLE IF NOT EXISTS dronegate_presence ("
    "  drone_id text PRIMARY KEY,"
    "  instance text NOT NULL,"
    "  since    timestamptz NOT NULL DEFAULT now())";
/* The upsert also tells the gateway that held the drone until now (if
 * another one) to let its connection go: 4409 across the fleet. Every
 * sub-statement sees the snapshot before the upsert, so `old` is the
 * previous holder. Only a move notifies: a fleet connecting at once sends
 * no notifications. */
static const char sql_online[] =
    "WITH old AS (SELECT instance FROM dronegate_presence WHERE drone_id = $1),"
    " up AS (INSERT INTO dronegate_presence (drone_id, instance, since) VALUES ($1, $2, now())"
    "  ON CONFLICT (drone_id) DO UPDATE SET instance = excluded.instance, since = excluded.since),"
    " mv AS (SELECT pg_notify('" MOVED "', old.instance || ' ' || $1) FROM old WHERE old.instance <> $2)"
    " SELECT pg_notify('" PRESENCE "', $2 || ' 1 ' || $1), (SELECT count(*) FROM mv)";
static const char sql_offline[] =
    "WITH del AS (DELETE FROM dronegate_presence WHERE drone_id = $1 AND instance = $2 RETURNING drone_id)"
    " SELECT pg_notify('" PRESENCE "', $2 || ' 0 ' || drone_id) FROM del";
/* A gateway that starts (rows left by a crash) or stops cleanly: all of its
 * rows go, one notification tells the others. */
static const char sql_reset[] =
    "WITH del AS (DELETE FROM dronegate_presence WHERE instance = $1)"
    " SELECT pg_notify('" PRESENCE "', $1 || ' reset')";
static const char sql_presence_all[] =
    "SELECT drone_id, instance FROM dronegate_presence WHERE instance <> $1";
/* What the other gateways' writers changed in drones since our last look:
 * rows of transactions at or after the xmin of our previous snapshot (every
 * transaction before it had ended then, so we saw it), none of ours. */
static const char sql_view[] =
    "SELECT drone_id, (extract(epoch FROM \"timestamp\") * 1000)::int8,"
    " (extract(epoch FROM last_seen) * 1000000)::int8, latitude, longitude, altitude,"
    " speed, heading, climb, battery, status, last_seq"
    " FROM drones WHERE fleet_txid >= $1::xid8 AND instance <> $2";
static const char sql_pending_of[] =
    "SELECT id FROM commands WHERE drone_id = $1 AND status = 'pending' ORDER BY created_at LIMIT 64";
static const char sql_where[] =
    "SELECT instance FROM dronegate_presence WHERE drone_id = $1";
static const char sql_known[] =
    "(SELECT 1 FROM drones WHERE drone_id = $1) UNION ALL"
    " (SELECT 1 FROM telemetry_seq WHERE drone_id = $1 LIMIT 1)";
/* The row and its announcement in one statement: the notification goes out
 * at the commit, after the row is visible. */
static const char sql_create[] =
    "WITH ins AS (INSERT INTO commands (id, drone_id, name, args, status, message, created_at, updated_at)"
    "  VALUES ($1, $2, $3, $4, 'pending', '', to_timestamp($5::float8 / 1000), to_timestamp($5::float8 / 1000))"
    "  RETURNING id)"
    " SELECT pg_notify('" CHANNEL "', $6 || ' ' || id) FROM ins";

/* "<instance> ...": the instance name (the drone id alphabet, 1-64
 * characters) is checked and copied; the rest after the space, or NULL. */
static const char *take_instance(const char *p, char instance[65])
{
    if (!p) return NULL;
    const char *sp = strchr(p, ' ');
    if (!sp || !dg_drone_id_valid(p, (size_t)(sp - p))) return NULL;
    memcpy(instance, p, (size_t)(sp - p));
    instance[sp - p] = '\0';
    return sp + 1;
}

int dg_fleet_parse_notify(const char *p, char instance[65], char cmd_id[33])
{
    const char *id = take_instance(p, instance);
    if (!id || strlen(id) != DG_CMD_ID_LEN) return -1;
    for (size_t i = 0; i < DG_CMD_ID_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return -1;
    memcpy(cmd_id, id, DG_CMD_ID_LEN + 1);
    return 0;
}

/* ---- presence queue ---- */

void dg_fleet_presence(dg_fleet_t *f, const char *drone_id, bool online)
{
    if (!f) return;
    pthread_mutex_lock(&f->qmu);
    if (f->qlen == QCAP) {                 /* the database is away: the oldest event goes */
        f->qhead = (f->qhead + 1) % QCAP;
        f->qlen--;
        f->qdropped++;
    }
    ev_t *e = &f->q[(f->qhead + f->qlen) % QCAP];
    snprintf(e->id, sizeof e->id, "%s", drone_id);
    e->online = online;
    f->qlen++;
    pthread_mutex_unlock(&f->qmu);
    uint64_t one = 1;
    ssize_t r = write(f->efd, &one, sizeof one);
    (void)r;
}

/* ---- the fleet thread ---- */

static void quiet(void *ud, const char *msg) { (void)ud; (void)msg; }   /* "already exists, skipping" */

static PGconn *connect_db(dg_fleet_t *f, char *err, size_t errlen)
{
    PGconn *c = PQconnectdb(f->conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", c ? PQerrorMessage(c) : "out of memory");
        err[strcspn(err, "\n")] = '\0';
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQexec(c, "SET TIME ZONE 'UTC'");
    PQclear(r);
    return c;
}

static bool cmd_ok(PGconn *c, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return true;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
    msg[strcspn(msg, "\n")] = '\0';
    dg_warn("fleet: %s failed: %s", what, msg);
    return false;
}

/* A command announced for (or left pending for) a drone of ours: into the
 * in-memory table, then to the drone's worker. */
static void take_command(dg_fleet_t *f, const char *cmd_id)
{
    dg_server_t *srv = f->srv;
    dg_command_t cmd;
    char err[256];
    if (!srv->store_ops->get_command) return;
    int rc = srv->store_ops->get_command(srv->store, cmd_id, &cmd, err, sizeof err);
    if (rc) {
        if (rc < 0) dg_warn("fleet: reading command %s failed: %s", cmd_id, err);
        return;
    }
    if (cmd.status != DG_CMD_PENDING || !srv->commands) return;
    if (dg_commands_restore(srv->commands, &cmd) != 0) return;   /* known here already, or no memory */
    if (dg_ingest_post_command(srv, &cmd) == 0)
        dg_debug("fleet: command %s from another gateway handed to drone %s", cmd.id, cmd.drone_id);
    /* else: the drone left meanwhile; pending here, sent if it comes back, else expired */
}

/* "<instance> <drone id>": the drone connected to another gateway; the
 * named one (us?) closes its connection with 4409. */
int dg_fleet_parse_moved(const char *p, char instance[65], char drone[DG_DRONE_ID_MAX + 1])
{
    const char *d = take_instance(p, instance);
    size_t dl = d ? strlen(d) : 0;
    if (!d || !dg_drone_id_valid(d, dl)) return -1;
    memcpy(drone, d, dl + 1);
    return 0;
}

static void on_moved(dg_fleet_t *f, const char *payload)
{
    char inst[65], drone[DG_DRONE_ID_MAX + 1];
    if (dg_fleet_parse_moved(payload, inst, drone)) {
        dg_warn("fleet: ignoring a malformed notification on " MOVED);
        return;
    }
    if (strcmp(inst, f->instance)) return;   /* another gateway let it go */
    if (dg_ingest_replaced_elsewhere(f->srv, drone) == 0)
        dg_debug("fleet: drone %s connected to another gateway: its connection here closes with 4409", drone);
}

static void on_notify(dg_fleet_t *f, const char *payload)
{
    char inst[65], id[33];
    if (dg_fleet_parse_notify(payload, inst, id)) {
        dg_warn("fleet: ignoring a malformed notification on " CHANNEL);
        return;
    }
    if (strcmp(inst, f->instance)) return;   /* another gateway's drone */
    take_command(f, id);
}

/* "<instance> 1 <drone>" / "<instance> 0 <drone>" / "<instance> reset". */
int dg_fleet_parse_presence(const char *p, char instance[65], char drone[DG_DRONE_ID_MAX + 1])
{
    const char *rest = take_instance(p, instance);
    if (!rest) return -1;
    if (!strcmp(rest, "reset")) { drone[0] = '\0'; return 2; }
    if ((rest[0] != '0' && rest[0] != '1') || rest[1] != ' ') return -1;
    size_t dl = strlen(rest + 2);
    if (!dg_drone_id_valid(rest + 2, dl)) return -1;
    memcpy(drone, rest + 2, dl + 1);
    return rest[0] - '0';
}

static void on_presence(dg_fleet_t *f, const char *payload)
{
    char inst[65], drone[DG_DRONE_ID_MAX + 1];
    int k = dg_fleet_parse_presence(payload, inst, drone);
    if (k < 0) {
        dg_warn("fleet: ignoring a malformed notification on " PRESENCE);
        return;
    }
    if (!strcmp(inst, f->instance)) return;   /* our own */
    const char *in = intern(inst);
    if (!in) return;
    if (k == 2) emit(f, FE_RESET, in);
    else emit_presence(f, k ? FE_ON : FE_OFF, in, drone);
}

static void drain_notifies(dg_fleet_t *f, PGconn *c)
{
    PGnotify *n;
    while ((n = PQnotifies(c))) {
        if (!strcmp(n->relname, MOVED)) on_moved(f, n->extra);
        else if (!strcmp(n->relname, PRESENCE)) on_presence(f, n->extra);
        else on_notify(f, n->extra);
        PQfreemem(n);
    }
    post_events(f);
}

/* Everything the presence table says about other gateways, after a
 * (re)connect: notifications sent while we were away are lost. */
static bool load_presence(dg_fleet_t *f, PGconn *c)
{
    const char *vals[1] = { f->instance };
    PGresult *r = PQexecParams(c, sql_presence_all, 1, NULL, vals, NULL, NULL, 0);
    bool ok = cmd_ok(c, r, "reading dronegate_presence");
    if (ok) {
        emit(f, FE_RESET, NULL);
        for (int i = 0; i < PQntuples(r); i++) {
            const char *in = intern(PQgetvalue(r, i, 1));
            if (in) emit_presence(f, FE_ON, in, PQgetvalue(r, i, 0));
        }
        post_events(f);
    }
    PQclear(r);
    return ok;
}

static double col_f(PGresult *r, int row, int col, uint32_t *flags, uint32_t flag)
{
    if (PQgetisnull(r, row, col)) return NAN;
    *flags |= flag;
    return strtod(PQgetvalue(r, row, col), NULL);
}

/* Read what the other gateways' writers changed in drones since our
 * previous snapshot. false when the connection failed. */
static bool poll_view(dg_fleet_t *f, PGconn *c)
{
    PGresult *r = PQexec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    bool ok = cmd_ok(c, r, "view BEGIN");
    PQclear(r);
    char xmin[32] = "";
    if (ok) {
        r = PQexec(c, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text");
        ok = cmd_ok(c, r, "snapshot xmin") && PQntuples(r) == 1;
        if (ok) snprintf(xmin, sizeof xmin, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    if (ok && f->xmin[0]) {
        const char *vals[2] = { f->xmin, f->instance };
        r = PQexecParams(c, sql_view, 2, NULL, vals, NULL, NULL, 0);
        ok = cmd_ok(c, r, "reading the other gateways' drones");
        for (int i = 0; ok && i < PQntuples(r); i++) {
            const char *id = PQgetvalue(r, i, 0);
            size_t len = strlen(id);
            if (!dg_drone_id_valid(id, len) || PQgetisnull(r, i, 3) || PQgetisnull(r, i, 4) || PQgetisnull(r, i, 5))
                continue;
            fev_t *e = emit(f, FE_REC, NULL);
            if (!e) break;
            dg_record_t *rec = &e->rec;
            memcpy(rec->drone_id, id, len + 1);
            rec->drone_id_len = (uint8_t)len;
            rec->recv_us = strtoll(PQgetvalue(r, i, 2), NULL, 10);
            if (PQgetisnull(r, i, 1)) {
                rec->ts_ms = rec->recv_us / 1000;
            } else {
                rec->ts_ms = strtoll(PQgetvalue(r, i, 1), NULL, 10);
                rec->flags |= DG_REC_HAS_TS;
            }
            uint32_t unused = 0;
            rec->lat = col_f(r, i, 3, &unused, 0);
            rec->lon = col_f(r, i, 4, &unused, 0);
            rec->alt = col_f(r, i, 5, &unused, 0);
            rec->speed = col_f(r, i, 6, &rec->flags, DG_REC_HAS_SPEED);
            rec->heading = col_f(r, i, 7, &rec->flags, DG_REC_HAS_HEADING);
            rec->climb = col_f(r, i, 8, &rec->flags, DG_REC_HAS_CLIMB);
            rec->battery = col_f(r, i, 9, &rec->flags, DG_REC_HAS_BATTERY);
            if (!PQgetisnull(r, i, 10)) {
                const char *st = PQgetvalue(r, i, 10);
                size_t sl = strnlen(st, DG_STATUS_MAX);
                memcpy(rec->status, st, sl);
                rec->status[sl] = '\0';
                rec->status_len = (uint8_t)sl;
                rec->flags |= DG_REC_HAS_STATUS;
            }
            if (!PQgetisnull(r, i, 11)) {
                rec->seq = (uint64_t)strtoll(PQgetvalue(r, i, 11), NULL, 10);
                rec->flags |= DG_REC_HAS_SEQ;
            }
        }
        PQclear(r);
        post_events(f);
    }
    if (ok) {
        r = PQexec(c, "COMMIT");
        ok = cmd_ok(c, r, "view COMMIT");
        PQclear(r);
    }
    if (!ok) {
        if (PQstatus(c) == CONNECTION_OK) PQclear(PQexec(c, "ROLLBACK"));
        return PQstatus(c) == CONNECTION_OK;   /* a query error (e.g. a v2 schema) is not a lost link */
    }
    snprintf(f->xmin, sizeof f->xmin, "%s", xmin);
    return true;
}

/* Apply queued presence events in one transaction; the events leave the
 * queue only after the commit. false when the connection failed. */
static bool flush_presence(dg_fleet_t *f, PGconn *c)
{
    for (;;) {
        ev_t batch[64];
        size_t n = 0;
        pthread_mutex_lock(&f->qmu);
        uint64_t dropped = f->qdropped;
        f->qdropped = 0;
        while (n < sizeof batch / sizeof batch[0] && n < f->qlen) {
            batch[n] = f->q[(f->qhead + n) % QCAP];
            n++;
        }
        pthread_mutex_unlock(&f->qmu);
        if (dropped) dg_warn("fleet: %" PRIu64 " presence events dropped while the database was away", dropped);
        if (!n) return true;
        PGresult *r = PQexec(c, "BEGIN");
        bool ok = cmd_ok(c, r, "presence BEGIN");
        PQclear(r);
        for (size_t i = 0; ok && i < n; i++) {
            const char *vals[2] = { batch[i].id, f->instance };
            r = PQexecParams(c, batch[i].online ? sql_online : sql_offline, 2, NULL, vals, NULL, NULL, 0);
            ok = cmd_ok(c, r, "presence update");
            PQclear(r);
        }
        if (ok) {
            r = PQexec(c, "COMMIT");
            ok = cmd_ok(c, r, "presence COMMIT");
            PQclear(r);
        }
        if (!ok) {
            if (PQstatus(c) == CONNECTION_OK) PQclear(PQexec(c, "ROLLBACK"));
            return false;
        }
        pthread_mutex_lock(&f->qmu);
        size_t k = n < f->qlen ? n : f->qlen;   /* overflow may have dropped some meanwhile */
        f->qhead = (f->qhead + k) % QCAP;
        f->qlen -= k;
        pthread_mutex_unlock(&f->qmu);
        /* commands left pending for drones that just came here (their
         * gateway died, or the announcement was missed) */
        for (size_t i = 0; i < n; i++) {
            if (!batch[i].online) continue;
            const char *vals[1] = { batch[i].id };
            r = PQexecParams(c, sql_pending_of, 1, NULL, vals, NULL, NULL, 0);
            if (cmd_ok(c, r, "pending commands")) {
                for (int row = 0; row < PQntuples(r); row++) take_command(f, PQgetvalue(r, row, 0));
            }
            PQclear(r);
        }
        drain_notifies(f, c);
    }
}

static PGconn *setup(dg_fleet_t *f, bool first)
{
    char err[512];
    PGconn *c = connect_db(f, err, sizeof err);
    if (!c) {
        dg_warn("fleet: cannot connect to PostgreSQL: %s (retrying)", err);
        return NULL;
    }
    PGresult *r = PQexec(c, sql_ddl);
    bool ok = cmd_ok(c, r, "creating dronegate_presence");
    PQclear(r);
    if (ok && first) {
        /* rows of an earlier run of this instance (a crash leaves them) */
        const char *vals[1] = { f->instance };
        r = PQexecParams(c, sql_reset, 1, NULL, vals, NULL, NULL, 0);
        ok = cmd_ok(c, r, "clearing stale presence");
        PQclear(r);
    }
    if (ok) {
        r = PQexec(c, "LISTEN " CHANNEL "; LISTEN " MOVED "; LISTEN " PRESENCE);
        ok = cmd_ok(c, r, "LISTEN");
        PQclear(r);
    }
    if (ok) ok = load_presence(f, c);   /* after LISTEN: nothing falls between */
    if (!ok) { PQfinish(c); return NULL; }
    return c;
}

static void *run(void *arg)
{
    dg_fleet_t *f = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    PGconn *c = NULL;
    bool first = true;
    int backoff = 100;
    while (!atomic_load(&f->stop)) {
        if (!c) {
            c = setup(f, first);
            if (!c) {
                struct pollfd p = { .fd = f->efd, .events = POLLIN };
                poll(&p, 1, backoff);
                if (backoff < 5000) backoff *= 2;
                continue;
            }
            if (first) dg_info("fleet: instance %s listening on " CHANNEL " (commands reach drones on any gateway)", f->instance);
            else dg_info("fleet: reconnected to PostgreSQL");
            first = false;
            backoff = 100;
        }
        if (!flush_presence(f, c)) { PQfinish(c); c = NULL; continue; }
        int64_t now = dg_mono_ms();
        if (now >= f->next_view_ms) {
            f->next_view_ms = now + VIEW_MS;
            if (!poll_view(f, c)) { PQfinish(c); c = NULL; continue; }
            drain_notifies(f, c);
        }
        int wait = (int)(f->next_view_ms - dg_mono_ms());
        struct pollfd p[2] = { { .fd = PQsocket(c), .events = POLLIN }, { .fd = f->efd, .events = POLLIN } };
        if (poll(p, 2, wait < 0 ? 0 : wait) < 0 && errno != EINTR) continue;
        if (p[1].revents & POLLIN) {
            uint64_t v;
            ssize_t rr = read(f->efd, &v, sizeof v);
            (void)rr;
        }
        if (p[0].revents) {
            if (!PQconsumeInput(c)) {
                dg_warn("fleet: lost the PostgreSQL connection (reconnecting)");
                PQfinish(c);
                c = NULL;
                continue;
            }
            drain_notifies(f, c);
        }
    }
    if (c && flush_presence(f, c)) {
        /* a clean stop: no drone is held here any more */
        const char *vals[1] = { f->instance };
        PGresult *r = PQexecParams(c, sql_reset, 1, NULL, vals, NULL, NULL, 0);
        PQclear(r);
    }
    PQfinish(c);
    free(f->out);   /* events gathered after the workers stopped */
    f->out = NULL;
    return NULL;
}

/* ---- the read-pool side: a command for a drone not connected here ---- */

typedef struct cmd_job {
    dg_read_job_t j;              /* first: dg_read_job_free() frees the block */
    dg_fleet_t   *f;
    char          drone[DG_DRONE_ID_MAX + 1];
    char          name[DG_CMD_NAME_MAX + 1];
    char          args[];
} cmd_job_t;

static void job_fail(dg_read_job_t *j, int status, const char *msg)
{
    j->status = status;
    snprintf(j->err, sizeof j->err, "%s", msg);
}

static void run_cmd_job(dg_server_t *srv, dg_read_job_t *jj)
{
    cmd_job_t *j = (cmd_job_t *)jj;
    dg_fleet_t *f = j->f;
    char err[512];
    pthread_mutex_lock(&f->pmu);
    if (f->pc && PQstatus(f->pc) != CONNECTION_OK) { PQfinish(f->pc); f->pc = NULL; }
    if (!f->pc && !(f->pc = connect_db(f, err, sizeof err))) {
        dg_warn("fleet: cannot route a command: %s", err);
        job_fail(jj, 503, "store unavailable");
        goto out;
    }
    const char *v1[1] = { j->drone };
    PGresult *r = PQexecParams(f->pc, sql_where, 1, NULL, v1, NULL, NULL, 0);
    if (!cmd_ok(f->pc, r, "presence lookup")) { PQclear(r); job_fail(jj, 503, "store unavailable"); goto out; }
    char inst[65] = "";
    if (PQntuples(r) == 1) snprintf(inst, sizeof inst, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!inst[0] || !strcmp(inst, f->instance)) {
        /* no gateway holds it (a row naming us is stale: we do not) */
        bool known = dg_registry_get(srv->registry, j->drone, strlen(j->drone), false) != NULL;
        if (!known) {
            r = PQexecParams(f->pc, sql_known, 1, NULL, v1, NULL, NULL, 0);
            if (!cmd_ok(f->pc, r, "drone lookup")) { PQclear(r); job_fail(jj, 503, "store unavailable"); goto out; }
            known = PQntuples(r) > 0;
            PQclear(r);
        }
        job_fail(jj, known ? 409 : 404, known ? "drone is offline" : "unknown drone");
        goto out;
    }
    unsigned char rnd[DG_CMD_ID_LEN / 2];
    char id[DG_CMD_ID_LEN + 1];
    if (RAND_bytes(rnd, sizeof rnd) != 1) { job_fail(jj, 500, "could not create the command"); goto out; }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof rnd; i++) {
        id[2 * i] = hex[rnd[i] >> 4];
        id[2 * i + 1] = hex[rnd[i] & 15];
    }
    id[DG_CMD_ID_LEN] = '\0';
    char now[32];
    snprintf(now, sizeof now, "%" PRId64, dg_now_ms());
    const char *vals[6] = { id, j->drone, j->name, j->args, now, inst };
    r = PQexecParams(f->pc, sql_create, 6, NULL, vals, NULL, NULL, 0);
    bool ok = cmd_ok(f->pc, r, "creating a command for another gateway");
    PQclear(r);
    if (!ok) { job_fail(jj, 503, "store unavailable"); goto out; }
    dg_inc(&dg_metrics.commands[DG_CMD_PENDING], 1);
    dg_buf_puts(&jj->body, "{\"id\":");
    dg_jw_str(&jj->body, id, strlen(id));
    dg_buf_puts(&jj->body, ",\"status\":\"pending\",\"instance\":");
    dg_jw_str(&jj->body, inst, strlen(inst));
    dg_buf_puts(&jj->body, "}");
    jj->status = 202;
    jj->ctype = "application/json";
out:
    pthread_mutex_unlock(&f->pmu);
}

dg_read_job_t *dg_fleet_command_job(dg_fleet_t *f, const char *drone_id, const char *name,
                                    const char *args, size_t args_len)
{
    if (!args || !args_len) { args = "{}"; args_len = 2; }
    if (args_len > DG_CMD_ARGS_MAX) args_len = DG_CMD_ARGS_MAX;
    cmd_job_t *j = calloc(1, sizeof *j + args_len + 1);
    if (!j) return NULL;
    j->f = f;
    snprintf(j->drone, sizeof j->drone, "%s", drone_id);
    snprintf(j->name, sizeof j->name, "%s", name);
    memcpy(j->args, args, args_len);
    j->args[args_len] = '\0';
    j->j.run = run_cmd_job;
    return &j->j;
}

/* ---- start / stop ---- */

dg_fleet_t *dg_fleet_start(dg_server_t *srv, const char *store_uri, const char *instance,
                           char *err, size_t errlen)
{
    if (errlen) err[0] = '\0';
    if (strncasecmp(store_uri, "postgresql:", 11) && strncasecmp(store_uri, "postgres:", 9)) return NULL;
    dg_fleet_t *f = calloc(1, sizeof *f);
    if (!f) { snprintf(err, errlen, "out of memory"); return NULL; }
    f->srv = srv;
    f->efd = -1;
    snprintf(f->instance, sizeof f->instance, "%s", instance);
    pthread_mutex_init(&f->qmu, NULL);
    pthread_mutex_init(&f->pmu, NULL);
    if (dg_pg_conninfo(store_uri, &f->conninfo, err, errlen) < 0) goto fail;
    if (!(f->q = calloc(QCAP, sizeof *f->q))) { snprintf(err, errlen, "out of memory"); goto fail; }
    if ((f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) { snprintf(err, errlen, "eventfd: %s", strerror(errno)); goto fail; }
    if (pthread_create(&f->thr, NULL, run, f)) { snprintf(err, errlen, "cannot start the fleet thread"); goto fail; }
    return f;
fail:
    if (f->efd >= 0) close(f->efd);
    free(f->q);
    free(f->conninfo);
    pthread_mutex_destroy(&f->qmu);
    pthread_mutex_destroy(&f->pmu);
    free(f);
    return NULL;
}

void dg_fleet_stop(dg_fleet_t *f)
{
    if (!f) return;
    atomic_store(&f->stop, 1);
    uint64_t one = 1;
    ssize_t r = write(f->efd, &one, sizeof one);
    (void)r;
    pthread_join(f->thr, NULL);
    PQfinish(f->pc);
    close(f->efd);
    free(f->q);
    free(f->conninfo);
    pthread_mutex_destroy(&f->qmu);
    pthread_mutex_destroy(&f->pmu);
    free(f);
}
