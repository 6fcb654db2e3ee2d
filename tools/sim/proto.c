/* proto.c - the drone's commands and their command_acks.
 *
 *   command return_to_home | land | goto {lat, lon, alt} -> "accepted", later "done"
 *           anything else                                 -> "rejected"
 *
 * Commands arrive decoded by libdronegate (on_command, any transport), with
 * args as JSON text; the scanner below is a small tolerant one (our own
 * server's output) that finds the args' member spans without copying. The
 * acks go back through dg_client_command_ack.
 *
 * A new command while one is in progress finishes the old one with
 * status "done" and message "superseded" (the operator sees a final state).
 *
 * Runs on the drone's worker thread.
 */
#include "sim.h"

#include <math.h>
#include <string.h>

#include "codec/number.h"
#include "dronegate/client.h"

typedef struct jv {
    const char *p;   /* strings: content without quotes; others: the raw text */
    size_t      n;
    char        t;   /* 's' string, 'o' object, 'a' array, 'v' number/literal */
} jv_t;

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* p just after an opening quote; returns the closing quote or NULL. */
static const char *str_end(const char *p, const char *e)
{
    while (p < e) {
        if (*p == '\\') { p += 2; continue; }
        if (*p == '"') return p;
        p++;
    }
    return NULL;
}

static const char *scan_value(const char *p, const char *e, jv_t *v)
{
    p = skip_ws(p, e);
    if (p >= e) return NULL;
    if (*p == '"') {
        const char *q = str_end(p + 1, e);
        if (!q) return NULL;
        v->t = 's';
        v->p = p + 1;
        v->n = (size_t)(q - p - 1);
        return q + 1;
    }
    if (*p == '{' || *p == '[') {
        const char *s = p;
        int depth = 0;
        while (p < e) {
            char c = *p;
            if (c == '"') {
                const char *q = str_end(p + 1, e);
                if (!q) return NULL;
                p = q + 1;
                continue;
            }
            if (c == '{' || c == '[') depth++;
            else if ((c == '}' || c == ']') && --depth == 0) {
                v->t = *s == '{' ? 'o' : 'a';
                v->p = s;
                v->n = (size_t)(p + 1 - s);
                return p + 1;
            }
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' &&
           *p != '\t' && *p != '\r' && *p != '\n')
        p++;
    if (p == s) return NULL;
    v->t = 'v';
    v->p = s;
    v->n = (size_t)(p - s);
    return p;
}

/* Next member of an object whose '{' has been consumed. 1, 0 at the end, -1. */
static int obj_next(const char **pp, const char *e, jv_t *k, jv_t *v)
{
    const char *p = skip_ws(*pp, e);
    if (p < e && *p == ',') p = skip_ws(p + 1, e);
    if (p < e && *p == '}') { *pp = p + 1; return 0; }
    if (p >= e || *p != '"') return -1;
    p = scan_value(p, e, k);
    if (!p) return -1;
    p = skip_ws(p, e);
    if (p >= e || *p != ':') return -1;
    p = scan_value(p + 1, e, v);
    if (!p) return -1;
    *pp = p;
    return 1;
}

static bool is(const jv_t *v, const char *lit)
{
    size_t n = strlen(lit);
    return v->n == n && memcmp(v->p, lit, n) == 0;
}

static bool num(const jv_t *v, double *out)
{
    return v->t == 'v' && dg_parse_double(v->p, v->n, out) == 0 && isfinite(*out);
}

/* ---------------------------------------------------------- command_acks */

void sim_proto_cmd_ack(sim_worker_t *w, sim_drone_t *d, const char *id, size_t id_len,
                       const char *status, const char *message)
{
    char idz[201];
    if (id_len > 200) id_len = 200;
    memcpy(idz, id, id_len);
    idz[id_len] = '\0';
    if (!d->lc || dg_client_command_ack(d->lc, idz, status, message && *message ? message : NULL)) return;
    sim_mark_dirty(w, d);   /* re-read its events: the write may be partial */
    if (!strcmp(status, "accepted")) sim_add(&w->st.cmd_accepted, 1);
    else if (!strcmp(status, "rejected")) sim_add(&w->st.cmd_rejected, 1);
    else sim_add(&w->st.cmd_done, 1);
}

/* Called after every mission step and when a connection opens: report a
 * finished command, or keep it for the next connection. */
void sim_proto_check_cmd(sim_worker_t *w, sim_drone_t *d)
{
    if (d->m.cmd_event) {
        d->m.cmd_event = 0;
        if (d->cmd_id_len) {
            d->cmd_done_pending = 1;
            d->cmd_done_msg = d->m.cmd_msg;
        }
    }
    if (d->cmd_done_pending && d->state == SIM_D_OPEN) {
        sim_proto_cmd_ack(w, d, d->cmd_id, d->cmd_id_len, "done", d->cmd_done_msg);
        d->cmd_done_pending = 0;
        d->cmd_id_len = 0;
    }
}

static void on_command(sim_worker_t *w, sim_drone_t *d, const jv_t *id,
                       const jv_t *name, const jv_t *args)
{
    sim_add(&w->st.cmd_received, 1);
    if (!id || id->t != 's' || id->n == 0) {
        sim_log(w, "%s: command without an id ignored", d->id);
        return;
    }
    if (id->n >= sizeof d->cmd_id) {
        sim_proto_cmd_ack(w, d, id->p, id->n, "rejected", "command id longer than 95 bytes");
        return;
    }
    int cmd = SIM_CMD_NONE;
    if (name && name->t == 's') {
        if (is(name, "return_to_home")) cmd = SIM_CMD_RTH;
        else if (is(name, "land")) cmd = SIM_CMD_LAND;
        else if (is(name, "goto")) cmd = SIM_CMD_GOTO;
    }
    if (cmd == SIM_CMD_NONE) {
        sim_proto_cmd_ack(w, d, id->p, id->n, "rejected", "unknown command");
        return;
    }
    double lat = NAN, lon = NAN, alt = NAN;
    bool has_alt = false;
    if (cmd == SIM_CMD_GOTO && args && args->t == 'o') {
        const char *p = args->p + 1, *e = args->p + args->n;
        jv_t k, v;
        while (obj_next(&p, e, &k, &v) == 1) {
            double x;
            if ((is(&k, "lat") || is(&k, "latitude")) && num(&v, &x)) lat = x;
            else if ((is(&k, "lon") || is(&k, "longitude")) && num(&v, &x)) lon = x;
            else if ((is(&k, "alt") || is(&k, "altitude")) && num(&v, &x)) { alt = x; has_alt = true; }
        }
    }
    /* Bring the mission up to date, and report what finished meanwhile. */
    sim_mission_step(&d->m, w->now);
    sim_proto_check_cmd(w, d);

    /* Validate before superseding: a rejected command leaves the old one alone. */
    sim_mission_t trial = d->m;
    const char *why;
    if (sim_mission_command(&trial, cmd, lat, lon, alt, has_alt, &why) != 0) {
        sim_proto_cmd_ack(w, d, id->p, id->n, "rejected", why);
        return;
    }
    if (d->cmd_id_len && d->m.cmd != SIM_CMD_NONE)
        sim_proto_cmd_ack(w, d, d->cmd_id, d->cmd_id_len, "done", "superseded");
    d->m = trial;
    memcpy(d->cmd_id, id->p, id->n);
    d->cmd_id_len = (uint8_t)id->n;
    d->cmd_done_pending = 0;
    sim_proto_cmd_ack(w, d, id->p, id->n, "accepted", "");
    /* Already satisfied (e.g. land while landed): cmd_event is set, "done" now. */
    sim_proto_check_cmd(w, d);
}

void sim_proto_command(sim_worker_t *w, sim_drone_t *d, const char *id, size_t id_len,
                       const char *name, size_t name_len, const char *args, size_t args_len)
{
    jv_t i = { id, id_len, 's' }, n = { name, name_len, 's' }, a = { 0 };
    if (!args_len || !scan_value(args, args + args_len, &a)) a.t = 0;
    on_command(w, d, &i, &n, a.t ? &a : NULL);
}
