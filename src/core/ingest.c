/* ingest.c - see ingest.h.
 *
 * Per message: decode (zero-copy, from the worker's read buffer), validate,
 * rate-limit, copy into the worker's open batch, remember the newest record
 * for the registry (one registry update per frame, not per message).
 * Acks: when a batch is durable, each connection's highest seq is noted;
 * acks are then sent at most once per --ack-interval per connection.
 */
#include "ingest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "live.h"
#include "log.h"
#include "metrics.h"
#include "reads.h"
#include "timefmt.h"
#include "../codec/json_telemetry.h"
#include "../codec/jsonw.h"
#include "../fleet/fleet.h"
#include "../codec/pb_telemetry.h"
#include "../net/worker.h"

/* The drone channel tables' family tag (conn.h dg_conn_ops_t.family). */
const char dg_ingest_family = 'd';

static inline dg_drone_chan_t *D(dg_conn_t *c) { return dg_drone_chan(c); }

/* Per worker (worker.h ext, slot ingest_slot): the JSON decoder, the
 * connections owing an ack, the timer that sends them. */
typedef struct ingest_worker {
    dg_json_decoder_t *dec;
    dg_conn_t         *ack_list;   /* linked through dg_drone_chan_t.ack_next */
    ev_timer           ack_timer;  /* deferred (coalesced) acks */
} ingest_worker_t;

static int ingest_slot = -1;   /* dg_ingest_register */

static inline ingest_worker_t *IW(dg_worker_t *w) { return w->ext[ingest_slot]; }

static int  ws_send(void *ud, const void *p, size_t n) { return dg_conn_send(ud, p, n); }

/* Frame and send a message as one write (header and payload corked). */
static void send_msg(dg_conn_t *c, int opcode, const void *p, size_t n);
static int  on_message(void *ud, int opcode, uint8_t *data, size_t len);
static void on_close_frame(void *ud, uint16_t code, const char *reason, size_t len) { (void)ud; (void)code; (void)reason; (void)len; }

static const dg_ws_callbacks_t ws_cb = {
    .on_message = on_message,
    .send = ws_send,
    .on_close = on_close_frame,
    .on_pong = NULL,
};

static int command_frame(dg_buf_t *b, const dg_command_t *cmd);

/* Deliver a command frame to a drone connection owned by another worker. */
typedef struct dg_command_msg {
    dg_msg_t     msg;
    uint32_t     slot, gen;
    dg_command_t cmd;      /* framed by the receiving connection's transport */
} dg_command_msg_t;

typedef struct dg_close_msg {
    dg_msg_t msg;
    uint32_t slot, gen;
    uint16_t code;
} dg_close_msg_t;

/* Inbox handlers (another worker's requests about a drone connection of ours). */
static void on_close_msg(dg_worker_t *w, dg_msg_t *m, bool deliver)
{
    dg_close_msg_t *cm = (dg_close_msg_t *)m;
    dg_conn_t *c = deliver ? dg_worker_conn(w, cm->slot, cm->gen) : NULL;
    if (c && dg_ingest_is_channel(c)) dg_ingest_close(c, cm->code, "replaced by a newer connection of the same drone");
    free(cm);
}

/* Ask the worker holding ref to close it with 4409 (any thread). */
static int post_replaced(struct dg_server *srv, dg_conn_ref_t ref)
{
    if (ref.worker < 0 || ref.worker >= srv->nworkers) return -1;
    dg_close_msg_t *m = calloc(1, sizeof *m);
    if (!m) return -1;
    m->msg.type = DG_MSG_CLOSE;
    m->msg.handle = on_close_msg;
    m->slot = ref.slot;
    m->gen = ref.gen;
    m->code = DG_WS_CLOSE_REPLACED;
    dg_worker_post(srv->workers[ref.worker], &m->msg);
    return 0;
}

static void (*noconn_command)(dg_worker_t *w, uint32_t gen, const dg_command_t *cmd);

void dg_ingest_set_noconn_command(void (*fn)(dg_worker_t *w, uint32_t gen, const dg_command_t *cmd))
{
    noconn_command = fn;
}

static void on_command_msg(dg_worker_t *w, dg_msg_t *m, bool deliver)
{
    dg_command_msg_t *cm = (dg_command_msg_t *)m;
    if (deliver && cm->slot == DG_INGEST_SLOT_NOCONN && noconn_command) {
        noconn_command(w, cm->gen, &cm->cmd);
        free(cm);
        return;
    }
    dg_conn_t *c = deliver ? dg_worker_conn(w, cm->slot, cm->gen) : NULL;
    if (c && dg_ingest_is_channel(c)) dg_ingest_send_command(c, &cm->cmd);
    free(cm);
}

/* ---- the session message ----
 *
 * {"type":"session","last_seq":N|null} is the first message after the
 * upgrade. N comes from the registry (kept up to date as batches become
 * durable); when the registry does not know it (first connection since the
 * start), the store is asked on the read pool, never on this thread: reads
 * of the connection stop meanwhile, bytes that came with the upgrade are
 * stashed, commands wait. A store without last_seq (NULL op) counts as
 * "nothing stored" at the first connection of the run. */

#define DG_WS_CLOSE_TRY_AGAIN 1013

static void session_send(dg_conn_t *c, int known, uint64_t seq)
{
    dg_worker_t *w = c->w;
    dg_drone_t *d = D(c)->drone;
    D(c)->session_wait = 0;
    D(c)->io->session(c, known, seq);
    if (c->dead || c->closing) return;
    /* commands queued while the drone was offline or between connections */
    dg_command_t pend[8];
    size_t np = dg_commands_pending(w->srv->commands, dg_drone_id(d, NULL), pend, 8);
    for (size_t i = 0; i < np; i++) dg_ingest_send_command(c, &pend[i]);
    if (c->paused) {   /* stopped for the store read (not on the worker's pause list) */
        c->paused = 0;
        dg_conn_update_events(c);
    }
    dg_buf_t st = D(c)->stash;
    D(c)->stash = (dg_buf_t){ 0 };
    if (st.len && !c->dead) c->ops->on_data(c, (uint8_t *)st.data, st.len);
    dg_buf_free(&st);
}

/* Read pool thread. */
static void read_last_seq(dg_server_t *srv, dg_read_job_t *j)
{
    uint64_t seq = 0;
    int rc = srv->store_ops->last_seq(srv->store, j->id, &seq, j->err, sizeof j->err);
    j->found = rc == 0 ? 1 : rc == 1 ? 0 : -1;
    j->seq = seq;
    j->status = rc < 0 ? 503 : 200;
}

/* Worker thread, from the inbox. */
static void on_last_seq(dg_worker_t *w, dg_read_job_t *j)
{
    dg_conn_t *c = dg_worker_conn(w, j->slot, j->gen);
    if (!c || !dg_ingest_is_channel(c) || c->closing || !D(c)->session_wait) goto out;
    if (j->found < 0) {
        dg_warn("last stored seq of drone %s: %s", j->id, j->err[0] ? j->err : "store read not done");
        dg_ingest_close(c, DG_WS_CLOSE_TRY_AGAIN, "store unavailable: retry later");
        goto out;
    }
    dg_registry_set_last_seq(w->srv->registry, D(c)->drone, j->found, j->seq);
    uint64_t seq = 0;
    int known = dg_registry_last_seq(w->srv->registry, D(c)->drone, &seq);
    session_send(c, known, seq);
    if (!c->dead) dg_conn_flush(c);
out:
    dg_read_job_free(j);
}

static void session_start(dg_conn_t *c)
{
    dg_server_t *srv = c->w->srv;
    uint64_t seq = 0;
    int known = dg_registry_last_seq(srv->registry, D(c)->drone, &seq);
    if (known < 0 && (!srv->store_ops->last_seq || !srv->reads)) {
        /* the store cannot tell: nothing stored as far as we know (durable
         * batches of this run raise it from here) */
        dg_registry_set_last_seq(srv->registry, D(c)->drone, 0, 0);
        known = 0;
    }
    if (known >= 0) {
        session_send(c, known, seq);
        return;
    }
    dg_read_job_t *j = calloc(1, sizeof *j);
    if (j) {
        j->run = read_last_seq;
        j->done = on_last_seq;
        j->w = c->w;
        j->slot = c->slot;
        j->gen = c->gen;
        j->found = -1;   /* also when the pool stops before running it */
        snprintf(j->id, sizeof j->id, "%s", dg_drone_id(D(c)->drone, NULL));
        if (dg_reads_submit(srv->reads, j) == 0) {
            c->paused = 1;
            dg_conn_update_events(c);
            return;
        }
        dg_read_job_free(j);
    }
    dg_ingest_close(c, DG_WS_CLOSE_TRY_AGAIN, "too busy: retry later");
}

void dg_ingest_start(dg_conn_t *c, dg_drone_t *d)
{
    dg_ingest_start_io(c, d, &dg_ws_json_io, &dg_ingest_conn_ops);
}

void dg_ingest_start_io(dg_conn_t *c, dg_drone_t *d, const dg_drone_io_t *io, const dg_conn_ops_t *ops)
{
    dg_worker_t *w = c->w;
    const dg_config_t *cfg = w->srv->cfg;
    memset(D(c), 0, sizeof *D(c));
    dg_conn_set_ops(c, ops);
    D(c)->io = io;
    if (io->ws) dg_ws_session_init(&D(c)->ws, (uint64_t)cfg->max_message);
    D(c)->drone = d;
    D(c)->tokens = (double)cfg->max_msg_rate;
    D(c)->tokens_ms = dg_mono_ms();
    D(c)->last_ping_ms = c->last_rx_ms;
    dg_conn_ref_t ref = { w->id, c->slot, c->gen }, old;
    int replaced = dg_registry_attach(w->srv->registry, d, ref, &old, dg_now_ms());
    dg_fleet_presence(w->srv->fleet, dg_drone_id(d, NULL), true);
    if (!replaced) dg_live_publish_presence(w, dg_drone_id(d, NULL), true, dg_now_ms());
    D(c)->session_wait = 1;   /* the session message goes first */
    if (replaced) {
        if (old.worker == w->id) {
            dg_conn_t *oc = dg_worker_conn(w, old.slot, old.gen);
            if (oc && dg_ingest_is_channel(oc))
                dg_ingest_close(oc, DG_WS_CLOSE_REPLACED, "replaced by a newer connection of the same drone");
        } else {
            post_replaced(w->srv, old);
        }
    }
    session_start(c);
}

int dg_ingest_replaced_elsewhere(struct dg_server *srv, const char *drone_id)
{
    dg_conn_ref_t ref;
    if (!dg_registry_find_conn(srv->registry, drone_id, strlen(drone_id), &ref)) return -1;
    return post_replaced(srv, ref);
}

void dg_ingest_on_close(dg_conn_t *c)
{
    if (!D(c)->ws.closed) dg_metrics_close(1006);
    dg_ws_session_free(&D(c)->ws);
    dg_ingest_release(c);
}

void dg_ingest_release(dg_conn_t *c)
{
    dg_worker_t *w = c->w;
    dg_buf_free(&D(c)->stash);
    if (D(c)->io && D(c)->io->release) D(c)->io->release(c);
    dg_conn_ref_t ref = { w->id, c->slot, c->gen };
    if (D(c)->drone && dg_registry_detach(w->srv->registry, D(c)->drone, ref, dg_now_ms())) {
        dg_drone_state_t st;
        dg_registry_state(w->srv->registry, D(c)->drone, &st);
        if (!st.online)   /* else it moved to another gateway of the fleet: still online */
            dg_live_publish_presence(w, dg_drone_id(D(c)->drone, NULL), false, dg_now_ms());
        dg_fleet_presence(w->srv->fleet, dg_drone_id(D(c)->drone, NULL), false);
    }
    dg_registry_release(w->srv->registry, D(c)->drone);   /* the pin of dg_registry_get(create) */
    /* unlink from the ack and pause lists */
    if (D(c)->ack_dirty) {
        for (dg_conn_t **pp = &IW(w)->ack_list; *pp; pp = &D(*pp)->ack_next)
            if (*pp == c) { *pp = D(c)->ack_next; break; }
        D(c)->ack_dirty = 0;
    }
    if (c->paused) {
        for (dg_conn_t **pp = &w->paused_list; *pp; pp = &(*pp)->pause_next)
            if (*pp == c) { *pp = c->pause_next; break; }
        c->paused = 0;
    }
}

void dg_ingest_close(dg_conn_t *c, uint16_t code, const char *reason)
{
    if (c->dead) return;
    D(c)->io->close(c, code, reason);
}

static void ws_close(dg_conn_t *c, uint16_t code, const char *reason)
{
    if (!D(c)->ws.closed) {
        dg_metrics_close(code);
        uint8_t was = c->cork;
        c->cork = 1;
        dg_ws_close(&D(c)->ws, code, reason, &ws_cb, c);
        c->cork = was;
    }
    dg_conn_close(c, false);
}

static void send_msg(dg_conn_t *c, int opcode, const void *p, size_t n)
{
    uint8_t was = c->cork;
    c->cork = 1;
    dg_ws_send(opcode, p, n, &ws_cb, c);
    c->cork = was;
    if (!was) dg_conn_flush(c);
}

void dg_ingest_ping(dg_conn_t *c)
{
    send_msg(c, DG_WS_OP_PING, "dg", 2);
}

/* ---- decoding ---- */

/* Error replies per frame: the first DG_FRAME_MAX_ERRORS rejected messages
 * of one WebSocket message are reported one by one, the rest are counted and
 * reported once ({"type":"error","code":"too_many_errors","suppressed":N}).
 * So a 1 MiB frame of tiny invalid messages costs at most ~15 KB of replies
 * instead of ~10 MB (which used to hit the output cap mid-decode). */
#define DG_FRAME_MAX_ERRORS 100

/* The receive time of the WebSocket read being processed (0: none): every
 * message of one read was received at the same moment, and one clock read
 * per message was ~4.5 % of the gateway's CPU at window 256 (perf). */
static __thread int64_t rx_read_us;
/* The newest record taken in and not yet given to the registry: flushed at
 * the end of each message, or within a WebSocket read at the end of the
 * read (one stripe lock per read, not per message: ~4 % at window 256).
 * Folded only while both records have a seq (the rule is then "highest
 * seq", which folds); otherwise the pending one goes to the registry first,
 * so the result is always the one of updates record by record. */
static __thread dg_record_t rx_last;
static __thread dg_drone_t *rx_last_drone;   /* whose record it is; NULL: none pending */
/* Messages taken in during the current WebSocket read, added to
 * dronegate_received_total once at its end: a locked add per message on
 * a counter every worker writes was 11 % of the gateway's CPU at window 256
 * (perf: the cache line moving between the workers). */
static __thread uint64_t rx_count, rx_count_pb;   /* JSON, dronegate.pb.v1 */

static void rx_flush_last(dg_conn_t *c)
{
    if (!rx_last_drone) return;
    dg_registry_update(c->w->srv->registry, rx_last_drone, &rx_last);
    rx_last_drone = NULL;
}

static void rx_fold_last(dg_conn_t *c, const dg_record_t *rec)
{
    if (rx_last_drone && (rx_last_drone != D(c)->drone ||
                          !((rec->flags & DG_REC_HAS_SEQ) && (rx_last.flags & DG_REC_HAS_SEQ))))
        rx_flush_last(c);
    if (!rx_last_drone || dg_registry_supersedes(rec, &rx_last)) {
        rx_last = *rec;
        rx_last_drone = D(c)->drone;
    }
}

typedef struct frame_ctx {
    dg_conn_t   *c;
    uint16_t     fail;      /* close code to fail with (rate limit) */
    uint32_t     errors;    /* error replies sent for this frame */
    uint64_t     suppressed;/* errors over DG_FRAME_MAX_ERRORS, not sent */
    dg_buf_t    *out;
} frame_ctx_t;

/* Decoding stops once the connection is going away or the frame failed. */
static bool frame_stop(void *ud)
{
    frame_ctx_t *f = ud;
    return f->fail || f->c->dead || f->c->closing;
}

static bool rate_ok(dg_conn_t *c)
{
    long rate = c->w->srv->cfg->max_msg_rate;
    if (rate <= 0) return true;
    if (D(c)->tokens < 1.0) {
        int64_t now = dg_mono_ms();
        double add = (double)(now - D(c)->tokens_ms) * (double)rate / 1000.0;
        D(c)->tokens_ms = now;
        D(c)->tokens += add;
        if (D(c)->tokens > (double)rate) D(c)->tokens = (double)rate;
        if (D(c)->tokens < 1.0) return false;
    }
    D(c)->tokens -= 1.0;
    return true;
}

static void on_record(void *ud, const dg_record_t *rec)
{
    frame_ctx_t *f = ud;
    dg_conn_t *c = f->c;
    if (f->fail) return;
    if (!rate_ok(c)) {
        f->fail = DG_WS_CLOSE_POLICY;
        dg_inc(&dg_metrics.rejected[DG_REJ_RATE_LIMIT], 1);
        return;
    }
    dg_record_t r = *rec;
    size_t idlen;
    const char *id = dg_drone_id(D(c)->drone, &idlen);
    memcpy(r.drone_id, id, idlen + 1);
    r.drone_id_len = (uint8_t)idlen;
    r.origin = dg_origin_pack((unsigned)c->w->id, c->slot, c->gen);
    if ((r.flags & DG_REC_HAS_SEQ) && (!D(c)->has_in || r.seq > D(c)->max_in)) {
        D(c)->max_in = r.seq;
        D(c)->has_in = true;
    }
    dg_worker_append(c->w, &r);
    if (dg_live_active(c->w)) dg_live_publish_record(c->w, &r);
    rx_fold_last(c, &r);
}

static void on_error(void *ud, const dg_decode_error_t *err)
{
    frame_ctx_t *f = ud;
    dg_conn_t *c = f->c;
    int json = !strcmp(err->code, "invalid_json"), pb = !strcmp(err->code, "invalid_protobuf");
    dg_inc(&dg_metrics.rejected[json ? DG_REJ_INVALID_JSON : pb ? DG_REJ_INVALID_PROTOBUF : DG_REJ_INVALID_FIELD], 1);
    if (f->errors >= DG_FRAME_MAX_ERRORS) {
        f->suppressed++;
        return;
    }
    f->errors++;
    D(c)->io->error(c, err, 0);
}

/* ---- WebSocket JSON (dronegate.json.v1) output ---- */

static void ws_json_error(dg_conn_t *c, const dg_decode_error_t *err, uint64_t suppressed)
{
    if (suppressed) {
        char msg[192];
        int k = snprintf(msg, sizeof msg,
                         "{\"type\":\"error\",\"code\":\"too_many_errors\",\"suppressed\":%" PRIu64
                         ",\"message\":\"%" PRIu64 " more rejected messages in this frame were not reported\"}",
                         suppressed, suppressed);
        if (k > 0 && (size_t)k < sizeof msg) send_msg(c, DG_WS_OP_TEXT, msg, (size_t)k);
        return;
    }
    dg_buf_t *b = &c->w->scratch;
    b->len = 0;
    int first = 1;
    dg_buf_puts(b, "{\"type\":\"error\"");
    first = 0;
    if (err->has_seq) { dg_jw_key(b, &first, "seq"); dg_jw_u64(b, err->seq); }
    dg_jw_key(b, &first, "code");
    dg_jw_str(b, err->code, strlen(err->code));
    if (err->field) { dg_jw_key(b, &first, "field"); dg_jw_str(b, err->field, strlen(err->field)); }
    dg_jw_key(b, &first, "message");
    dg_jw_str(b, err->message, strlen(err->message));
    dg_buf_puts(b, "}");
    send_msg(c, DG_WS_OP_TEXT, b->data, b->len);
}

static void ws_json_session(dg_conn_t *c, int known, uint64_t seq)
{
    char msg[64];
    int len = known == 1 ? snprintf(msg, sizeof msg, "{\"type\":\"session\",\"last_seq\":%" PRIu64 "}", seq)
                         : snprintf(msg, sizeof msg, "{\"type\":\"session\",\"last_seq\":null}");
    send_msg(c, DG_WS_OP_TEXT, msg, (size_t)len);
}

static void ws_json_ack(dg_conn_t *c, uint64_t seq)
{
    char msg[64];
    int len = snprintf(msg, sizeof msg, "{\"type\":\"ack\",\"seq\":%" PRIu64 "}", seq);
    send_msg(c, DG_WS_OP_TEXT, msg, (size_t)len);
}

static void ws_json_command(dg_conn_t *c, const dg_command_t *cmd)
{
    dg_buf_t *b = &c->w->scratch;
    if (command_frame(b, cmd) == 0) send_msg(c, DG_WS_OP_TEXT, b->data, b->len);
}

static bool ws_closed(dg_conn_t *c) { return D(c)->ws.closed; }

void dg_ingest_ws_send(dg_conn_t *c, int opcode, const void *p, size_t n) { send_msg(c, opcode, p, n); }
void dg_ingest_ws_close(dg_conn_t *c, uint16_t code, const char *reason) { ws_close(c, code, reason); }
bool dg_ingest_ws_closed(dg_conn_t *c) { return ws_closed(c); }

const dg_drone_io_t dg_ws_json_io = {
    .name = "dronegate.json.v1", .transport = DG_TR_WEBSOCKET, .ws = true,
    .session = ws_json_session, .ack = ws_json_ack, .error = ws_json_error,
    .command = ws_json_command, .close = ws_close, .closed = ws_closed,
};

/* ---- WebSocket protobuf (dronegate.pb.v1) output: one ServerMessage per binary frame ---- */

static void ws_pb_send(dg_conn_t *c, int rc)
{
    if (rc == 0) send_msg(c, DG_WS_OP_BINARY, c->w->scratch.data, c->w->scratch.len);
}

static void ws_pb_session(dg_conn_t *c, int known, uint64_t seq) { ws_pb_send(c, dg_pb_session(&c->w->scratch, known, seq)); }
static void ws_pb_ack(dg_conn_t *c, uint64_t seq) { ws_pb_send(c, dg_pb_ack(&c->w->scratch, seq)); }
static void ws_pb_command(dg_conn_t *c, const dg_command_t *cmd)
{
    ws_pb_send(c, dg_pb_command(&c->w->scratch, cmd->id, cmd->name, cmd->args));
}

static void ws_pb_error(dg_conn_t *c, const dg_decode_error_t *err, uint64_t suppressed)
{
    if (suppressed) {
        char msg[128];
        snprintf(msg, sizeof msg, "%" PRIu64 " more rejected messages were not reported", suppressed);
        ws_pb_send(c, dg_pb_error(&c->w->scratch, false, 0, "too_many_errors", NULL, msg));
        return;
    }
    ws_pb_send(c, dg_pb_error(&c->w->scratch, err->has_seq, err->seq, err->code, err->field, err->message));
}

const dg_drone_io_t dg_ws_pb_io = {
    .name = "dronegate.pb.v1", .transport = DG_TR_WEBSOCKET, .ws = true,
    .session = ws_pb_session, .ack = ws_pb_ack, .error = ws_pb_error,
    .command = ws_pb_command, .close = ws_close, .closed = ws_closed,
};

static void on_command_ack(void *ud, const dg_command_ack_t *ack)
{
    frame_ctx_t *f = ud;
    dg_conn_t *c = f->c;
    dg_worker_t *w = c->w;
    int st = dg_command_status_parse(ack->status, ack->status_len);
    if (st < 0) return;   /* the decoder validated it already */
    dg_command_t cmd;
    int rc = dg_commands_set(w->srv->commands, ack->id, ack->id_len, dg_drone_id(D(c)->drone, NULL), st,
                             ack->message, ack->message_len, dg_now_ms(), &cmd);
    if (rc == 0) dg_ingest_command_changed(w, &cmd);
    else if (rc == -1) dg_debug("command_ack for unknown command from %s", dg_drone_id(D(c)->drone, NULL));
}

void dg_ingest_command_changed(dg_worker_t *w, const dg_command_t *cmd)
{
    dg_inc(&dg_metrics.commands[cmd->status], 1);
    dg_writer_put_command(w->srv->writer, cmd);
    dg_live_publish_command(w, cmd);
}

static int command_frame(dg_buf_t *b, const dg_command_t *cmd)
{
    int first = 1, rc = 0;
    b->len = 0;
    rc |= dg_buf_puts(b, "{");
    rc |= dg_jw_key(b, &first, "type"); rc |= dg_buf_puts(b, "\"command\"");
    rc |= dg_jw_key(b, &first, "id");   rc |= dg_jw_str(b, cmd->id, strlen(cmd->id));
    rc |= dg_jw_key(b, &first, "name"); rc |= dg_jw_str(b, cmd->name, strlen(cmd->name));
    rc |= dg_jw_key(b, &first, "args"); rc |= dg_buf_puts(b, cmd->args);
    rc |= dg_buf_puts(b, "}");
    return rc;
}

void dg_ingest_send_command(dg_conn_t *c, const dg_command_t *cmd)
{
    dg_worker_t *w = c->w;
    if (c->dead || c->closing || D(c)->io->closed(c)) return;   /* stays pending; expires */
    if (D(c)->session_wait) return;   /* stays pending: sent after the session message */
    D(c)->io->command(c, cmd);
    dg_command_t st;
    if (dg_commands_set(w->srv->commands, cmd->id, strlen(cmd->id), NULL, DG_CMD_SENT, NULL, 0, dg_now_ms(), &st) == 0)
        dg_ingest_command_changed(w, &st);
}

static void post_command(struct dg_server *srv, dg_conn_ref_t ref, const dg_command_t *cmd)
{
    dg_command_msg_t *m = malloc(sizeof *m);
    if (!m) return;   /* stays pending; sent when the drone reconnects, or expires */
    m->msg.type = DG_MSG_COMMAND;
    m->msg.handle = on_command_msg;
    m->slot = ref.slot;
    m->gen = ref.gen;
    m->cmd = *cmd;
    dg_worker_post(srv->workers[ref.worker], &m->msg);
}

int dg_ingest_dispatch_command(dg_worker_t *w, const dg_command_t *cmd)
{
    dg_conn_ref_t ref;
    if (!dg_registry_find_conn(w->srv->registry, cmd->drone_id, strlen(cmd->drone_id), &ref)) return -1;
    if (ref.worker == w->id && ref.slot == DG_INGEST_SLOT_NOCONN) {
        if (noconn_command) noconn_command(w, ref.gen, cmd);
    } else if (ref.worker == w->id) {
        dg_conn_t *c = dg_worker_conn(w, ref.slot, ref.gen);
        if (c && dg_ingest_is_channel(c)) dg_ingest_send_command(c, cmd);
    } else if (ref.worker >= 0 && ref.worker < w->srv->nworkers) {
        post_command(w->srv, ref, cmd);
    }
    return 0;
}

int dg_ingest_post_command(struct dg_server *srv, const dg_command_t *cmd)
{
    dg_conn_ref_t ref;
    if (!dg_registry_find_conn(srv->registry, cmd->drone_id, strlen(cmd->drone_id), &ref)) return -1;
    if (ref.worker < 0 || ref.worker >= srv->nworkers) return -1;
    post_command(srv, ref, cmd);
    return 0;
}

static void on_expired(void *ud, const dg_command_t *cmd)
{
    dg_ingest_command_changed(ud, cmd);
}

void dg_ingest_expire_commands(dg_worker_t *w)
{
    dg_commands_expire(w->srv->commands, dg_now_ms(), on_expired, w);
}

static int on_message(void *ud, int opcode, uint8_t *data, size_t len)
{
    dg_conn_t *c = ud;
    if (D(c)->io->message) return c->dead || c->closing ? 0 : D(c)->io->message(c, opcode, data, len);
    bool pb = D(c)->io == &dg_ws_pb_io;
    if (opcode != (pb ? DG_WS_OP_BINARY : DG_WS_OP_TEXT)) {
        dg_inc(&dg_metrics.rejected[DG_REJ_BINARY], 1);   /* the frame type this subprotocol does not carry */
        return DG_WS_CLOSE_UNSUPPORTED;
    }
    return pb ? dg_ingest_pb(c, data, len, rx_read_us) : dg_ingest_json(c, data, len);
}

/* After one transport message: the registry's newest record, the summary
 * of suppressed errors, the close code. */
static int message_done(dg_conn_t *c, frame_ctx_t *f)
{
    if (!rx_read_us) rx_flush_last(c);   /* within a WebSocket read: once at its end */
    if (f->suppressed && !c->dead && !c->closing) D(c)->io->error(c, NULL, f->suppressed);
    return f->fail;
}

int dg_ingest_json(dg_conn_t *c, const uint8_t *data, size_t len)
{
    if (c->dead || c->closing) return 0;   /* going away: nothing more is taken in */
    frame_ctx_t f = { .c = c, .out = &c->w->scratch };
    dg_decode_sink_t sink = { on_record, on_error, on_command_ack, &f, frame_stop };
    int64_t now_us = rx_read_us ? rx_read_us : dg_now_us();
    int n = dg_json_decode(IW(c->w)->dec, (const char *)data, len, now_us / 1000, now_us, &sink);
    if (n > 0) {
        if (rx_read_us) rx_count += (uint64_t)n;     /* counted at the read's end */
        else            dg_inc(&dg_metrics.received_json, (uint64_t)n);
    }
    return message_done(c, &f);
}

int dg_ingest_pb(dg_conn_t *c, const uint8_t *data, size_t len, int64_t now_us)
{
    if (c->dead || c->closing) return 0;
    frame_ctx_t f = { .c = c, .out = &c->w->scratch };
    dg_decode_sink_t sink = { on_record, on_error, on_command_ack, &f, frame_stop };
    if (!now_us) now_us = dg_now_us();
    int n = dg_pb_decode(data, len, now_us / 1000, now_us, &sink);
    if (n > 0) {
        if (rx_read_us) rx_count_pb += (uint64_t)n;  /* within a read: counted at its end */
        else dg_inc(D(c)->io->transport == DG_TR_GRPC ? &dg_metrics.received_grpc_pb : &dg_metrics.received_ws_pb,
                    (uint64_t)n);
    }
    return message_done(c, &f);
}

int64_t dg_ingest_read_begin(void)
{
    return rx_read_us = dg_now_us();
}

void dg_ingest_read_end(dg_conn_t *c)
{
    rx_read_us = 0;
    rx_flush_last(c);
    if (rx_count) {
        dg_inc(&dg_metrics.received_json, rx_count);
        rx_count = 0;
    }
    if (rx_count_pb) {
        dg_inc(D(c)->io->transport == DG_TR_GRPC ? &dg_metrics.received_grpc_pb : &dg_metrics.received_ws_pb,
               rx_count_pb);
        rx_count_pb = 0;
    }
}

void dg_ingest_on_data(dg_conn_t *c, uint8_t *p, size_t n)
{
    if (D(c)->session_wait) {
        /* came with the upgrade request; reads are stopped until the
         * session message is out, so this is at most one read */
        if (dg_buf_append(&D(c)->stash, p, n)) dg_conn_close(c, true);
        return;
    }
    dg_ingest_read_begin();
    int rc = dg_ws_feed(&D(c)->ws, p, n, &ws_cb, c);
    dg_ingest_read_end(c);
    if (rc > 0 && !c->dead) {
        /* failed by the session or close handshake done: one count per close */
        uint16_t sent = D(c)->ws.close_code;
        dg_metrics_close(sent ? sent : (uint16_t)rc);
        dg_conn_close(c, false);
    }
}

/* ---- acks ---- */

void dg_ingest_batch_done(dg_worker_t *w, dg_batch_t *b)
{
    if (b->status != 0) return;   /* not durable: no ack, the drone will resend */
    uint32_t last_slot = UINT32_MAX, last_gen = 0;
    dg_conn_t *c = NULL;
    const dg_record_t *gr = NULL;   /* first record of the run: its drone's highest durable seq (session message) */
    uint64_t gmax = 0;
    for (size_t i = 0; i < b->n; i++) {
        const dg_record_t *r = &b->recs[i];
        if (!(r->flags & DG_REC_HAS_SEQ)) continue;
        if (!gr || gr->drone_id_len != r->drone_id_len || memcmp(gr->drone_id, r->drone_id, r->drone_id_len)) {
            if (gr) dg_registry_raise_last_seq(w->srv->registry, gr->drone_id, gr->drone_id_len, gmax);
            gr = r;
            gmax = 0;
        }
        if (dg_origin_slot(r->origin) != last_slot || dg_origin_gen(r->origin) != last_gen) {
            last_slot = dg_origin_slot(r->origin);
            last_gen = dg_origin_gen(r->origin);
            c = dg_worker_conn(w, last_slot, last_gen);
            if (c && !dg_ingest_is_channel(c)) c = NULL;
        }
        if (r->seq > gmax) gmax = r->seq;
        if (!c || c->closing || D(c)->io->closed(c)) continue;   /* closed: no more acks */
        if (r->flags & DG_REC_REJECTED_REUSED) {   /* not stored (store.h): never acked, reported */
            dg_decode_error_t e = { .seq = r->seq, .has_seq = true, .code = "seq_reused", .field = NULL };
            snprintf(e.message, sizeof e.message, "seq %" PRIu64 " is already stored with another timestamp: not stored; "
                     "continue after the last stored seq", r->seq);
            if (!D(c)->has_rej || r->seq > D(c)->rej_max) {
                D(c)->rej_max = r->seq;
                D(c)->has_rej = true;
            }
            D(c)->io->error(c, &e, 0);
            continue;
        }
        if (!D(c)->has_pending || r->seq > D(c)->ack_pending) {
            D(c)->ack_pending = r->seq;
            D(c)->has_pending = true;
        }
        /* a redelivery of something acked already is acked again */
        if (D(c)->has_sent && r->seq <= D(c)->ack_sent) D(c)->reack = true;
        if (!D(c)->ack_dirty) {
            D(c)->ack_dirty = 1;
            D(c)->ack_next = IW(w)->ack_list;
            IW(w)->ack_list = c;
        }
    }
    if (gr) dg_registry_raise_last_seq(w->srv->registry, gr->drone_id, gr->drone_id_len, gmax);
}

void dg_ingest_flush_acks(dg_worker_t *w, bool force)
{
    int64_t now = dg_mono_ms();
    long iv = w->srv->cfg->ack_interval_ms;
    dg_conn_t **pp = &IW(w)->ack_list;
    uint64_t acks = 0;
    while (*pp) {
        dg_conn_t *c = *pp;
        if (!force && now - D(c)->last_ack_ms < iv) { pp = &D(c)->ack_next; continue; }
        *pp = D(c)->ack_next;
        D(c)->ack_dirty = 0;
        D(c)->ack_next = NULL;
        if (D(c)->has_pending && (!D(c)->has_sent || D(c)->ack_pending > D(c)->ack_sent ||
                                       D(c)->reack)) {
            D(c)->reack = false;
            D(c)->ack_sent = D(c)->ack_pending;
            D(c)->has_sent = true;
            D(c)->last_ack_ms = now;
            acks++;
            D(c)->io->ack(c, D(c)->ack_pending);
        }
    }
    if (acks) dg_inc(&dg_metrics.acks_sent, acks);   /* one locked add per pass */
}

/* ---- the drone channel's connection handlers (conn.h) ---- */

static void ingest_on_tick(dg_conn_t *c, int64_t now)
{
    const dg_config_t *cfg = c->w->srv->cfg;
    if (!D(c)->ws.closed) {
        if (now - c->last_rx_ms >= cfg->idle_timeout_ms) {
            dg_ingest_close(c, DG_WS_CLOSE_GOING_AWAY, "idle timeout");
        } else if (now - c->last_rx_ms >= cfg->ping_interval_ms &&
                   now - D(c)->last_ping_ms >= cfg->ping_interval_ms) {
            D(c)->last_ping_ms = now;
            dg_ingest_ping(c);
        }
    } else if (now - c->last_rx_ms >= 5000) {
        dg_conn_close(c, true);   /* close handshake never completed */
    }
}

static void ingest_on_drain(dg_conn_t *c)
{
    dg_ingest_close(c, DG_WS_CLOSE_GOING_AWAY, "server shutting down");
}

/* After our close frame: the peer's close frame ends the handshake (data
 * frames are skipped by the closed session); only then is FIN sent. */
static bool ingest_on_linger(dg_conn_t *c, uint8_t *p, size_t n)
{
    return dg_ws_feed(&D(c)->ws, p, n, &ws_cb, c) > 0;
}

static void ingest_on_backlog_full(dg_conn_t *c)
{
    dg_ingest_close(c, DG_WS_CLOSE_POLICY, "backlog full: the store is unavailable, retry later");
}

const dg_conn_ops_t dg_ingest_conn_ops = {
    .name = "websocket",
    .transport = DG_TR_WEBSOCKET,
    .store_fed = true,
    .family = &dg_ingest_family,
    .on_data = dg_ingest_on_data,
    .on_close = dg_ingest_on_close,
    .on_tick = ingest_on_tick,
    .on_drain = ingest_on_drain,
    .on_backlog_full = ingest_on_backlog_full,
    .on_linger = ingest_on_linger,
};

/* ---- the loop's fixed points (worker.h) ---- */

static void hook_tick(dg_worker_t *w)
{
    if (w->id == 0) dg_ingest_expire_commands(w);
}

/* Before the loop blocks: publish to the live stream, then arm the ack
 * timer when acks are owed (sent once the interval has passed). */
static void hook_before_sleep(dg_worker_t *w)
{
    dg_live_flush(w);
    ingest_worker_t *iw = IW(w);
    if (iw->ack_list && !ev_is_active(&iw->ack_timer)) {
        double iv = (double)w->srv->cfg->ack_interval_ms / 1000.0;
        ev_timer_set(&iw->ack_timer, iv > 0.002 ? iv / 2 : 0.001, 0.0);
        ev_timer_start(w->loop, &iw->ack_timer);
    }
}

const dg_worker_hooks_t dg_ingest_worker_hooks = {
    .batch_done = dg_ingest_batch_done,
    .after_inbox = dg_ingest_flush_acks,
    .tick = hook_tick,
    .before_sleep = hook_before_sleep,
};

/* ---- the drone channel's per-worker state (worker.h ext) ---- */

static void on_ack_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop; (void)revents;
    dg_ingest_flush_acks(t->data, false);
}

static void *ingest_worker_init(dg_worker_t *w)
{
    ingest_worker_t *iw = calloc(1, sizeof *iw);
    if (!iw) return NULL;
    if (!(iw->dec = dg_json_decoder_new(1u << 20))) { free(iw); return NULL; }
    ev_timer_init(&iw->ack_timer, on_ack_timer, 0.05, 0.0);
    iw->ack_timer.data = w;
    return iw;
}

static void ingest_worker_free(dg_worker_t *w, void *p)
{
    ingest_worker_t *iw = p;
    if (w->loop) ev_timer_stop(w->loop, &iw->ack_timer);
    dg_json_decoder_free(iw->dec);
    free(iw);
}

static const dg_worker_ext_t ingest_ext = {
    .name = "drone channel", .init = ingest_worker_init, .free = ingest_worker_free,
};

int dg_ingest_register(void)
{
    int slot = dg_worker_ext_register(&ingest_ext);
    if (slot < 0 || dg_live_register()) return -1;
    ingest_slot = slot;
    return 0;
}

