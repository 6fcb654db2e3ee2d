/* proto.c - server -> drone JSON messages and the drone's command_acks.
 *
 *   {"type":"ack","seq":N}                      -> sim_on_ack (cumulative)
 *   {"type":"error","seq":N,"code":"...",...}   -> counted by code
 *   {"type":"command","id":"...","name":"...","args":{...}}
 *        return_to_home | land | goto {lat, lon, alt}  -> "accepted", later "done"
 *        anything else                                 -> "rejected"
 *
 * A frame may hold one object or an array of objects. The scanner is a small
 * tolerant one (this is our own server's output, not untrusted input to
 * validate): it finds member spans without copying; strings stay in their
 * escaped form, which is what we echo back as the command id.
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

/* Append a JSON string body (no quotes) with escaping, truncated to cap. */
static char *put_escaped(char *p, const char *s, size_t cap)
{
    for (size_t i = 0; s[i] && i < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { *p++ = '\\'; *p++ = (char)c; }
        else if (c < 0x20) *p++ = ' ';
        else *p++ = (char)c;
    }
    return p;
}

#define PUTLIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

void sim_proto_cmd_ack(sim_worker_t *w, sim_drone_t *d, const char *id, size_t id_len,
                       const char *status, const char *message)
{
    /* Bounded: 40 + 200 (id) + 10 (status) + 14 + 2 * 200 (escaped message) < 700. */
    char buf[700];
    char *p = buf;
    if (id_len > 200) id_len = 200;
    if (w->cfg->transport != SIM_TR_WS_JSON) {   /* protobuf: the id is kept raw */
        char idz[201];
        memcpy(idz, id, id_len);
        idz[id_len] = '\0';
        size_t n = sim_pb_cmd_ack((uint8_t *)buf, sizeof buf, idz, status, message);
        if (n && sim_send_pb(w, d, (const uint8_t *)buf, n) == 0) goto counted;
        return;
    }
    p = PUTLIT(p, "{\"type\":\"command_ack\",\"id\":\"");
    memcpy(p, id, id_len);               /* kept in its JSON-escaped form */
    p += id_len;
    p = PUTLIT(p, "\",\"status\":\"");
    size_t sl = strlen(status);          /* "accepted" | "rejected" | "done" */
    memcpy(p, status, sl);
    p += sl;
    *p++ = '"';
    if (message && *message) {
        p = PUTLIT(p, ",\"message\":\"");
        p = put_escaped(p, message, 200);
        *p++ = '"';
    }
    *p++ = '}';
    if (sim_send_text(w, d, buf, (size_t)(p - buf)) != 0) return;
counted:
    {
        if (!strcmp(status, "accepted")) sim_add(&w->st.cmd_accepted, 1);
        else if (!strcmp(status, "rejected")) sim_add(&w->st.cmd_rejected, 1);
        else sim_add(&w->st.cmd_done, 1);
    }
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

static void on_object(sim_worker_t *w, sim_drone_t *d, const char *p, const char *e)
{
    jv_t k, v, type = { 0 }, seq = { 0 }, code = { 0 }, id = { 0 }, name = { 0 }, args = { 0 },
                msg = { 0 };
    bool has_type = false, has_seq = false, has_code = false, has_id = false,
         has_name = false, has_args = false, has_msg = false;
    int r;
    while ((r = obj_next(&p, e, &k, &v)) == 1) {
        if (k.n < 2 || k.n > 7) continue;
        if (is(&k, "type")) { type = v; has_type = true; }
        else if (is(&k, "seq")) { seq = v; has_seq = true; }
        else if (is(&k, "code")) { code = v; has_code = true; }
        else if (is(&k, "id")) { id = v; has_id = true; }
        else if (is(&k, "name")) { name = v; has_name = true; }
        else if (is(&k, "args")) { args = v; has_args = true; }
        else if (is(&k, "message")) { msg = v; has_msg = true; }
    }
    if (r < 0 || !has_type || type.t != 's') {
        sim_add(&w->st.unknown_msgs, 1);
        return;
    }
    if (is(&type, "ack")) {
        uint64_t n;
        if (has_seq && seq.t == 'v' && dg_parse_u64(seq.p, seq.n, &n) == 0)
            sim_on_ack(w, d, n);
        else
            sim_add(&w->st.unknown_msgs, 1);
    } else if (is(&type, "error")) {
        sim_add(&w->st.errors, 1);
        if (has_code && code.t == 's') sim_code_inc(w->error_codes, code.p, code.n);
        else sim_code_inc(w->error_codes, "unknown", 7);
        if (has_msg && msg.t == 's' && w->err_log_budget > 0 && w->err_log_budget--)
            sim_log(w, "%s: server error %.*s: %.*s", d->id, has_code ? (int)code.n : 0,
                    code.p ? code.p : "", (int)(msg.n > 200 ? 200 : msg.n), msg.p);
    } else if (is(&type, "command")) {
        on_command(w, d, has_id ? &id : NULL, has_name ? &name : NULL, has_args ? &args : NULL);
    } else {
        sim_add(&w->st.unknown_msgs, 1);
    }
}

void sim_proto_message(sim_worker_t *w, sim_drone_t *d, const char *p, size_t n)
{
    const char *e = p + n;
    p = skip_ws(p, e);
    if (p < e && *p == '{') {
        on_object(w, d, p + 1, e);
        return;
    }
    if (p < e && *p == '[') {
        p++;
        for (;;) {
            jv_t v;
            p = skip_ws(p, e);
            if (p < e && *p == ',') p++;
            p = skip_ws(p, e);
            if (p >= e || *p == ']') return;
            const char *q = scan_value(p, e, &v);
            if (!q) break;
            if (v.t == 'o') on_object(w, d, v.p + 1, v.p + v.n);
            p = q;
        }
    }
    sim_add(&w->st.unknown_msgs, 1);
}
