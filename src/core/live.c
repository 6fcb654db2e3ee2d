/* live.c - live stream fan-out and conflation (see live.h).
 *
 * Thread: everything here runs on worker threads. A chunk is written by one
 * worker, then read-only and shared by the workers it is posted to; the last
 * one to drop its reference frees it.
 */
#include "live.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "hash.h"
#include "metrics.h"
#include "timefmt.h"
#include "../codec/jsonw.h"
#include "../codec/views.h"
#include "../net/worker.h"

enum { EV_TELEMETRY = 0, EV_OTHER = 1 };

typedef struct ev_ent {
    uint32_t off, len;         /* the framed event in chunk->data */
    uint8_t  kind;             /* EV_TELEMETRY events may be conflated */
    uint8_t  idlen;
    char     id[DG_DRONE_ID_MAX + 1];
} ev_ent_t;

struct dg_live_chunk {
    atomic_int refs;
    size_t     n, cap;
    ev_ent_t  *ev;
    dg_buf_t   data;
};

typedef struct live_msg {
    dg_msg_t         msg;
    dg_live_chunk_t *ch;
} live_msg_t;

/* Conflation map entry: the latest telemetry frame of one drone. */
typedef struct cf_ent {
    char     id[DG_DRONE_ID_MAX + 1];
    uint8_t  idlen;
    uint8_t  used, dirty;
    dg_buf_t frame;
} cf_ent_t;

struct dg_live_watch {
    struct dg_live_watch *next;     /* the worker's watchers */
    dg_conn_t *conn;
    char      *ids_mem;             /* filter ids, one block */
    char     **ids;                 /* sorted; NULL = all drones */
    size_t     nids;
    cf_ent_t  *cf;                  /* open addressing, cf_cap slots */
    size_t     cf_cap, cf_used;
    uint32_t  *dirty;               /* indexes into cf, in arrival order */
    size_t     ndirty, dirty_cap;
    /* the initial snapshot, sent in chunks as the output drains */
    bool       snap_active;         /* chunks left to send */
    bool       pumping;             /* in dg_live_on_drained (no recursion) */
    dg_registry_pos_t snap_pos;     /* where the next chunk starts */
};

/* Per worker (worker.h ext, slot live_slot). */
typedef struct live_worker {
    dg_live_chunk_t      *open;        /* events published during this loop iteration */
    struct dg_live_watch *watchers;
    atomic_int            nwatchers;   /* read by other workers (dg_live_flush) */
} live_worker_t;

static int live_slot = -1;   /* dg_live_register */

static inline live_worker_t *LW(dg_worker_t *w) { return w->ext[live_slot]; }
static inline dg_live_conn_t *L(dg_conn_t *c) { return dg_live_conn(c); }

static int ws_send(void *ud, const void *p, size_t n) { return dg_conn_send(ud, p, n); }
static int on_message(void *ud, int op, uint8_t *d, size_t n) { return 0; }   /* watchers only listen */
static const dg_ws_callbacks_t ws_cb = { .on_message = on_message, .send = ws_send };

bool dg_live_active(dg_worker_t *w)
{
    return atomic_load_explicit(&w->srv->live_watchers, memory_order_relaxed) > 0;
}

/* ---- publishing ---- */

static dg_live_chunk_t *open_chunk(dg_worker_t *w)
{
    live_worker_t *lv = LW(w);
    if (!lv->open) {
        dg_live_chunk_t *ch = calloc(1, sizeof *ch);
        if (!ch) return NULL;
        atomic_init(&ch->refs, 1);
        lv->open = ch;
    }
    return lv->open;
}

/* Append one event: `json` framed as a WebSocket text frame. */
static void add_event(dg_worker_t *w, int kind, const char *id, size_t idlen, const dg_buf_t *json)
{
    dg_live_chunk_t *ch = open_chunk(w);
    if (!ch) return;
    if (ch->n == ch->cap) {
        size_t nc = ch->cap ? ch->cap * 2 : 64;
        ev_ent_t *ne = realloc(ch->ev, nc * sizeof *ne);
        if (!ne) return;
        ch->ev = ne;
        ch->cap = nc;
    }
    uint8_t hdr[10];
    size_t hl = dg_ws_write_header(hdr, DG_WS_OP_TEXT, json->len);
    ev_ent_t *e = &ch->ev[ch->n];
    e->off = (uint32_t)ch->data.len;
    if (dg_buf_append(&ch->data, hdr, hl) || dg_buf_append(&ch->data, json->data, json->len)) return;
    e->len = (uint32_t)(hl + json->len);
    e->kind = (uint8_t)kind;
    e->idlen = (uint8_t)idlen;
    memcpy(e->id, id, idlen);
    e->id[idlen] = '\0';
    ch->n++;
}


void dg_live_publish_record(dg_worker_t *w, const dg_record_t *r)
{
    dg_buf_t *b = &w->scratch;
    int first = 0;
    b->len = 0;
    dg_buf_puts(b, "{\"type\":\"telemetry\",\"drone_id\":");
    dg_jw_str(b, r->drone_id, r->drone_id_len);
    dg_view_record_members(b, &first, r);
    dg_buf_printf(b, ",\"received_us\":%lld}", (long long)r->recv_us);   /* for fan-out latency */
    add_event(w, EV_TELEMETRY, r->drone_id, r->drone_id_len, b);
}

void dg_live_publish_presence(dg_worker_t *w, const char *drone_id, bool online, int64_t at_ms)
{
    if (!dg_live_active(w)) return;
    dg_buf_t *b = &w->scratch;
    char ts[32];
    size_t idlen = strlen(drone_id);
    b->len = 0;
    dg_buf_puts(b, online ? "{\"type\":\"online\",\"drone_id\":" : "{\"type\":\"offline\",\"drone_id\":");
    dg_jw_str(b, drone_id, idlen);
    dg_buf_puts(b, ",\"at\":");
    dg_jw_str(b, ts, dg_format_rfc3339(at_ms, ts));
    dg_buf_puts(b, "}");
    add_event(w, EV_OTHER, drone_id, idlen, b);
}

void dg_live_publish_command(dg_worker_t *w, const dg_command_t *c)
{
    if (!dg_live_active(w)) return;
    dg_buf_t *b = &w->scratch;
    b->len = 0;
    dg_buf_puts(b, "{\"type\":\"command\",\"command\":");
    dg_command_json(b, c);
    dg_buf_puts(b, "}");
    add_event(w, EV_OTHER, c->drone_id, strlen(c->drone_id), b);
}

void dg_live_chunk_unref(dg_live_chunk_t *ch)
{
    if (!ch || atomic_fetch_sub(&ch->refs, 1) != 1) return;
    free(ch->ev);
    dg_buf_free(&ch->data);
    free(ch);
}

void dg_live_on_msg(dg_worker_t *w, dg_msg_t *m, bool deliver)
{
    live_msg_t *lm = (live_msg_t *)m;
    if (deliver) dg_live_deliver(w, lm->ch);
    dg_live_chunk_unref(lm->ch);
    free(lm);
}

void dg_live_close(dg_conn_t *c, uint16_t code, const char *reason)
{
    if (c->dead) return;
    uint8_t was = c->cork;
    c->cork = 1;
    dg_ws_close(&L(c)->ws, code, reason, &ws_cb, c);
    c->cork = was;
    dg_conn_close(c, false);
}

void dg_live_flush(dg_worker_t *w)
{
    dg_live_chunk_t *ch = LW(w)->open;
    if (!ch) return;
    LW(w)->open = NULL;
    if (ch->n) {
        dg_server_t *srv = w->srv;
        for (int i = 0; i < srv->nworkers; i++) {
            dg_worker_t *o = srv->workers[i];
            if (atomic_load_explicit(&LW(o)->nwatchers, memory_order_relaxed) == 0) continue;
            if (o == w) { dg_live_deliver(w, ch); continue; }
            live_msg_t *m = malloc(sizeof *m);
            if (!m) continue;
            m->msg.type = DG_MSG_LIVE;
            m->msg.handle = dg_live_on_msg;
            atomic_fetch_add(&ch->refs, 1);
            m->ch = ch;
            dg_worker_post(o, &m->msg);
        }
    }
    dg_live_chunk_unref(ch);
}

/* ---- watchers ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool wants(const struct dg_live_watch *lw, const char *id)
{
    if (!lw->ids) return true;
    return bsearch(&id, lw->ids, lw->nids, sizeof *lw->ids, cmp_str) != NULL;
}

static uint32_t hash_id(const char *s, size_t n)
{
    return dg_fnv1a32(s, n);
}

/* Keep `frame` as the latest telemetry of drone id; count what it replaces. */
static void conflate(struct dg_live_watch *lw, const char *id, size_t idlen, const uint8_t *frame, size_t len)
{
    if (lw->cf_used * 2 >= lw->cf_cap) {
        size_t nc = lw->cf_cap ? lw->cf_cap * 2 : 64;
        cf_ent_t *nt = calloc(nc, sizeof *nt);
        uint32_t *nd = realloc(lw->dirty, nc * sizeof *nd);
        if (!nt || !nd) { free(nt); if (nd) lw->dirty = nd; return; }
        lw->dirty = nd;
        lw->dirty_cap = nc;
        /* rehash; dirty order is rebuilt in the old order */
        uint32_t *remap = malloc((lw->cf_cap ? lw->cf_cap : 1) * sizeof *remap);
        for (size_t i = 0; i < lw->cf_cap; i++) {
            if (!lw->cf[i].used) continue;
            size_t j = hash_id(lw->cf[i].id, lw->cf[i].idlen) & (nc - 1);
            while (nt[j].used) j = (j + 1) & (nc - 1);
            nt[j] = lw->cf[i];
            if (remap) remap[i] = (uint32_t)j;
        }
        for (size_t k = 0; k < lw->ndirty && remap; k++) lw->dirty[k] = remap[lw->dirty[k]];
        free(remap);
        free(lw->cf);
        lw->cf = nt;
        lw->cf_cap = nc;
    }
    size_t j = hash_id(id, idlen) & (lw->cf_cap - 1);
    while (lw->cf[j].used && !(lw->cf[j].idlen == idlen && !memcmp(lw->cf[j].id, id, idlen)))
        j = (j + 1) & (lw->cf_cap - 1);
    cf_ent_t *e = &lw->cf[j];
    if (!e->used) {
        e->used = 1;
        memcpy(e->id, id, idlen);
        e->id[idlen] = '\0';
        e->idlen = (uint8_t)idlen;
        lw->cf_used++;
    }
    if (e->dirty) dg_inc(&dg_metrics.live_skipped, 1);
    else {
        e->dirty = 1;
        lw->dirty[lw->ndirty++] = (uint32_t)j;
    }
    e->frame.len = 0;
    dg_buf_append(&e->frame, frame, len);
}

void dg_live_deliver(dg_worker_t *w, dg_live_chunk_t *ch)
{
    for (struct dg_live_watch *lw = LW(w)->watchers, *next; lw; lw = next) {
        next = lw->next;            /* a failing write closes (and frees) lw */
        dg_conn_t *c = lw->conn;
        if (c->dead || c->closing) continue;
        uint8_t was = c->cork;
        c->cork = 1;
        for (size_t i = 0; i < ch->n && !c->dead; i++) {
            const ev_ent_t *e = &ch->ev[i];
            if (!wants(lw, e->id)) continue;
            const uint8_t *frame = (const uint8_t *)ch->data.data + e->off;
            if (e->kind == EV_TELEMETRY && (lw->ndirty || c->out.len >= DG_LIVE_HIGH))
                conflate(lw, e->id, e->idlen, frame, e->len);
            else
                dg_conn_send(c, frame, e->len);
        }
        if (c->dead) continue;
        c->cork = was;
        if (!was) dg_conn_flush(c);
    }
}

static bool want_cb(void *ud, const char *id) { return wants(ud, id); }

/* Append the next snapshot chunk to c's output: {"type":"snapshot",
 * "drones":[about DG_LIVE_SNAPSHOT_CHUNK],"final":bool}, in registry table
 * order (dg_registry_scan: O(chunk), no sort, no full copy). Memory: one
 * chunk. */
static void snapshot_chunk(dg_conn_t *c, struct dg_live_watch *lw)
{
    dg_drone_state_t *v = malloc((DG_LIVE_SNAPSHOT_CHUNK + DG_REGISTRY_SCAN_SLACK) * sizeof *v);
    bool done = false;
    long n = v ? dg_registry_scan(c->w->srv->registry, &lw->snap_pos, DG_LIVE_SNAPSHOT_CHUNK,
                                  lw->ids ? want_cb : NULL, lw, v, &done) : -1;
    if (n < 0) return;              /* ENOMEM: try again at the next drain */
    dg_buf_t b = { 0 };
    dg_buf_puts(&b, "{\"type\":\"snapshot\",\"drones\":[");
    for (long i = 0; i < n; i++) {
        if (i) dg_buf_puts(&b, ",");
        dg_view_drone_json(&b, &v[i]);
    }
    dg_buf_puts(&b, done ? "],\"final\":true}" : "],\"final\":false}");
    if (done) lw->snap_active = false;
    free(v);
    dg_ws_send(DG_WS_OP_TEXT, b.data, b.len, &ws_cb, c);
    dg_buf_free(&b);
}

void dg_live_on_drained(dg_conn_t *c)
{
    struct dg_live_watch *lw = L(c)->lw;
    if (!lw || lw->pumping || (!lw->ndirty && !lw->snap_active) || c->dead || c->closing) return;
    lw->pumping = true;
    for (;;) {
        uint8_t was = c->cork;
        c->cork = 1;
        for (size_t k = 0; k < lw->ndirty; k++) {
            cf_ent_t *e = &lw->cf[lw->dirty[k]];
            e->dirty = 0;
            dg_conn_send(c, e->frame.data, e->frame.len);
        }
        lw->ndirty = 0;
        if (lw->snap_active && c->out.len < DG_LIVE_LOW && !c->dead) snapshot_chunk(c, lw);
        c->cork = was;
        if (c->dead) return;        /* lw is gone with the connection */
        if (was) break;             /* the caller flushes; its flush calls us again */
        dg_conn_flush(c);           /* the nested call returns at once (pumping) */
        if (c->dead) return;
        if (c->closing || !lw->snap_active || c->out.len >= DG_LIVE_LOW) break;
    }
    lw->pumping = false;
}

static void parse_filter(struct dg_live_watch *lw, const char *filter)
{
    if (!filter || !*filter) return;
    size_t n = 1;
    for (const char *p = filter; *p; p++) n += *p == ',';
    lw->ids_mem = strdup(filter);
    lw->ids = calloc(n, sizeof *lw->ids);
    if (!lw->ids_mem || !lw->ids) return;
    char *save = NULL;
    for (char *t = strtok_r(lw->ids_mem, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (dg_drone_id_valid(t, strlen(t))) lw->ids[lw->nids++] = t;
    qsort(lw->ids, lw->nids, sizeof *lw->ids, cmp_str);
}

void dg_live_start(dg_conn_t *c, const char *filter)
{
    dg_worker_t *w = c->w;
    memset(L(c), 0, sizeof *L(c));
    dg_conn_set_ops(c, &dg_live_conn_ops);
    dg_ws_session_init(&L(c)->ws, 64 * 1024);
    struct dg_live_watch *lw = calloc(1, sizeof *lw);
    if (!lw) { dg_conn_close(c, true); return; }
    lw->conn = c;
    parse_filter(lw, filter);
    L(c)->lw = lw;
    live_worker_t *lv = LW(w);
    lw->next = lv->watchers;
    lv->watchers = lw;
    atomic_fetch_add(&lv->nwatchers, 1);
    atomic_fetch_add(&w->srv->live_watchers, 1);

    /* initial snapshot of the latest state of each (wanted) drone: in
     * chunks, each one sent when the output has drained (dg_live_on_drained) */
    lw->snap_active = true;
    dg_live_on_drained(c);
}

void dg_live_on_data(dg_conn_t *c, uint8_t *p, size_t n)
{
    int rc = dg_ws_feed(&L(c)->ws, p, n, &ws_cb, c);
    if (rc > 0 && !c->dead) dg_conn_close(c, false);
}

void dg_live_on_close(dg_conn_t *c)
{
    dg_worker_t *w = c->w;
    struct dg_live_watch *lw = L(c)->lw;
    dg_ws_session_free(&L(c)->ws);
    if (!lw) return;
    live_worker_t *lv = LW(w);
    for (struct dg_live_watch **pp = &lv->watchers; *pp; pp = &(*pp)->next)
        if (*pp == lw) { *pp = lw->next; break; }
    atomic_fetch_sub(&lv->nwatchers, 1);
    atomic_fetch_sub(&w->srv->live_watchers, 1);
    for (size_t i = 0; i < lw->cf_cap; i++) dg_buf_free(&lw->cf[i].frame);
    free(lw->cf);
    free(lw->dirty);
    free(lw->ids);
    free(lw->ids_mem);
    free(lw);
    L(c)->lw = NULL;
}

/* ---- the live watcher's connection handlers (conn.h) ---- */

static void live_on_writable(dg_conn_t *c)
{
    if (c->out.len < DG_LIVE_LOW) dg_live_on_drained(c);   /* conflated states */
}

static void live_on_tick(dg_conn_t *c, int64_t now)
{
    /* watchers are kept alive by our pings; their silence is normal */
    if (now - L(c)->last_ping_ms >= c->w->srv->cfg->ping_interval_ms && !L(c)->ws.closed) {
        L(c)->last_ping_ms = now;
        uint8_t was = c->cork;
        c->cork = 1;
        dg_conn_send(c, "\x89\x00", 2);   /* ping, empty payload */
        c->cork = was;
        dg_conn_flush(c);
    }
}

static void live_on_drain(dg_conn_t *c)
{
    dg_live_close(c, DG_WS_CLOSE_GOING_AWAY, "server shutting down");
}

/* As for drones (ingest.c): FIN only after the watcher's close frame. */
static bool live_on_linger(dg_conn_t *c, uint8_t *p, size_t n)
{
    return dg_ws_feed(&L(c)->ws, p, n, &ws_cb, c) > 0;
}

const dg_conn_ops_t dg_live_conn_ops = {
    .name = "live",
    .transport = DG_TR_LIVE,
    .on_data = dg_live_on_data,
    .on_writable = live_on_writable,
    .on_close = dg_live_on_close,
    .on_tick = live_on_tick,
    .on_drain = live_on_drain,
    .on_linger = live_on_linger,
};

/* ---- the live stream's per-worker state (worker.h ext) ---- */

static void *live_worker_init(dg_worker_t *w)
{
    live_worker_t *lv = calloc(1, sizeof *lv);
    if (lv) atomic_init(&lv->nwatchers, 0);
    return lv;
}

/* After the worker's connections (the watchers) are gone. */
static void live_worker_free(dg_worker_t *w, void *p)
{
    live_worker_t *lv = p;
    dg_live_chunk_unref(lv->open);
    free(lv);
}

static const dg_worker_ext_t live_ext = {
    .name = "live stream", .init = live_worker_init, .free = live_worker_free,
};

int dg_live_register(void)
{
    int slot = dg_worker_ext_register(&live_ext);
    if (slot < 0) return -1;
    live_slot = slot;
    return 0;
}
