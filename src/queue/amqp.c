/* amqp.c - RabbitMQ (AMQP 0-9-1, rabbitmq-c) publisher and consumer of the
 * queue layer (queue.h, CONTRACT.md "Queue").
 *
 * Publisher (a dg_sink_ops_t, pipeline/sink.h):
 *   workers --submit--> pending FIFO --publisher thread--> basic.publish
 *   (persistent, content_type application/json, message_id DRONE_ID:SEQ,
 *   mandatory) --> in flight (delivery tags) --basic.ack--> done(b, 0)
 *
 *   rabbitmq-c is blocking, so the broker I/O runs on the publisher's own
 *   thread; submit() only appends to the FIFO and wakes the thread through an
 *   eventfd (the thread poll()s the socket and the eventfd together).
 *   The channel is in confirm mode (confirm.select). Each record is one
 *   message with the next delivery tag; a batch remembers the tag of its
 *   last record. `acked` is the highest tag below which every tag is
 *   confirmed (basic.ack with multiple moves it; single acks beyond it wait
 *   in a small sorted set until they join it). Batches are handed back with
 *   status 0 from the head of the in-flight list only, when their last tag is
 *   confirmed, so the drones' cumulative acks follow submission order.
 *
 *   A basic.nack, a basic.return (unroutable), a channel or connection close
 *   or any socket error is a failure: the connection is dropped, every
 *   batch in flight goes back to the head of the FIFO in order, failing()
 *   turns true (/readyz 503) and the thread reconnects with backoff (100 ms
 *   doubling to 2 s) and publishes them again. Nothing is acked that the
 *   broker did not confirm; a retry may leave duplicates in the queue (same
 *   message_id), which the store's unique (drone_id, seq) removes.
 *   failing() turns false again at the next basic.ack (or at a connect with
 *   nothing queued). backlog_full() is failing(): a worker asks only when
 *   its batch pool is exhausted (worker.c), and then drones get 1008.
 *   At most `inflight` (URI) records are published and unconfirmed at once.
 *   connection.blocked (a broker resource alarm) sets failing until the
 *   next basic.ack after connection.unblocked; a publish call that has not
 *   returned for 5 s (the broker stopped reading) also makes failing() true.
 *
 *   publisher_new() connects, declares and selects confirms once: no broker
 *   (5 s connect timeout), bad credentials, an unknown vhost or a queue that
 *   exists with another type is an error at start (exit 2); later outages
 *   are retried.
 *
 *   stop(deadline) keeps publishing until everything is confirmed or the
 *   deadline passes, then hands back what is left with status -1. If the
 *   thread is stuck in a socket write (a broker that stopped reading), stop
 *   shuts the socket down a second after the deadline.
 *
 * Consumer (dg_queue_consumer_ops_t): channel 1 carries basic.qos(2 x prefetch)
 * and basic.consume (manual acks; streams get x-stream-offset), channel 2 the
 * passive queue.declare of lag(). token = connection generation << 48 |
 * delivery tag; commit(token) = basic.ack multiple on the connection that
 * delivered it (a stale generation acks nothing: the broker redelivers those
 * messages and the store dedups them). open() fails only on a bad URI; an
 * unreachable broker makes poll() return -1 (after waiting out a backoff
 * within its timeout) until it connects.
 */
#include "amqp_uri.h"
#include "queue.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/timefmt.h"

#define AMQP_HEARTBEAT_S     30
#define AMQP_CONNECT_TIMEOUT 5      /* s */
#define AMQP_RPC_TIMEOUT     10     /* s */
#define BACKOFF_MIN_MS       100
#define BACKOFF_MAX_MS       2000

/* ---- shared: connect and declare ---- */

/* The broker's reason in a channel.close or connection.close; -1 for
 * another method. */
static int close_text(const amqp_method_t *m, char *out, size_t n)
{
    const amqp_bytes_t *text;
    unsigned code;
    if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *c = m->decoded;
        code = c->reply_code;
        text = &c->reply_text;
    } else if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *c = m->decoded;
        code = c->reply_code;
        text = &c->reply_text;
    } else {
        return -1;
    }
    return snprintf(out, n, "%s closed by the broker: %u %.*s",
                    m->id == AMQP_CHANNEL_CLOSE_METHOD ? "channel" : "connection", code,
                    (int)text->len, (const char *)text->bytes);
}

static void rpc_error(amqp_rpc_reply_t r, const char *what, char *err, size_t errlen)
{
    char why[400];
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(err, errlen, "%s: ok", what);
        break;
    case AMQP_RESPONSE_NONE:
        snprintf(err, errlen, "%s: no reply from the broker", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(err, errlen, "%s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (close_text(&r.reply, why, sizeof why) >= 0)
            snprintf(err, errlen, "%s: %s", what, why);
        else
            snprintf(err, errlen, "%s: broker error (method 0x%08x)", what, r.reply.id);
        break;
    }
}

static amqp_bytes_t bytes(const char *s) { return amqp_cstring_bytes(s); }

/* A connection with channel 1 (and 2 when `channels` is 2) open, or NULL
 * with err. */
static amqp_connection_state_t amqp_connect(const dg_amqp_uri_t *u, int channels, char *err, size_t errlen)
{
    amqp_connection_state_t st = amqp_new_connection();
    if (!st) { snprintf(err, errlen, "out of memory"); return NULL; }
    amqp_socket_t *s = amqp_tcp_socket_new(st);
    if (!s) { snprintf(err, errlen, "out of memory"); amqp_destroy_connection(st); return NULL; }
    struct timeval tv = { AMQP_CONNECT_TIMEOUT, 0 };
    int rc = amqp_socket_open_noblock(s, u->host, u->port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, errlen, "connect to %s:%d: %s", u->host, u->port, amqp_error_string2(rc));
        amqp_destroy_connection(st);
        return NULL;
    }
    struct timeval rpc = { AMQP_RPC_TIMEOUT, 0 };
    amqp_set_rpc_timeout(st, &rpc);
    /* capabilities: connection.blocked (the broker tells a publisher it
     * stops reading, resource alarm) and authentication_failure_close (a
     * clear error for bad credentials; rabbitmq-c's default, replaced here) */
    amqp_table_entry_t caps[2] = {
        { bytes("authentication_failure_close"), { AMQP_FIELD_KIND_BOOLEAN, { .boolean = 1 } } },
        { bytes("connection.blocked"), { AMQP_FIELD_KIND_BOOLEAN, { .boolean = 1 } } },
    };
    amqp_table_entry_t prop = { bytes("capabilities"), { AMQP_FIELD_KIND_TABLE, { .table = { 2, caps } } } };
    amqp_table_t props = { 1, &prop };
    amqp_rpc_reply_t r = amqp_login_with_properties(st, u->vhost, 0, AMQP_DEFAULT_FRAME_SIZE, AMQP_HEARTBEAT_S,
                                                    &props, AMQP_SASL_METHOD_PLAIN, u->user, u->pass);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        rpc_error(r, "login", err, errlen);
        amqp_destroy_connection(st);
        return NULL;
    }
    for (int ch = 1; ch <= channels; ch++) {
        amqp_channel_open(st, (amqp_channel_t)ch);
        r = amqp_get_rpc_reply(st);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            rpc_error(r, "channel.open", err, errlen);
            amqp_destroy_connection(st);
            return NULL;
        }
    }
    return st;
}

/* Declare the durable queue (x-queue-type) on channel 1, and, when an
 * exchange is named, a durable topic exchange bound to it with "#" (every
 * drone id). 0 or -1 with err (the connection is then unusable). */
static int amqp_declare(amqp_connection_state_t st, const dg_amqp_uri_t *u, char *err, size_t errlen)
{
    amqp_table_entry_t e[1];
    e[0].key = bytes("x-queue-type");
    e[0].value.kind = AMQP_FIELD_KIND_UTF8;
    e[0].value.value.bytes = bytes(dg_amqp_qtype_name(u->type));
    amqp_table_t args = { 1, e };
    amqp_queue_declare(st, 1, bytes(u->queue), 0, 1, 0, 0, args);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(st);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char what[300];
        snprintf(what, sizeof what, "queue.declare %s (durable, x-queue-type %s)", u->queue,
                 dg_amqp_qtype_name(u->type));
        rpc_error(r, what, err, errlen);
        return -1;
    }
    if (u->exchange[0]) {
        amqp_exchange_declare(st, 1, bytes(u->exchange), bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
        r = amqp_get_rpc_reply(st);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            rpc_error(r, "exchange.declare (durable topic)", err, errlen);
            return -1;
        }
        amqp_queue_bind(st, 1, bytes(u->queue), bytes(u->exchange), bytes("#"), amqp_empty_table);
        r = amqp_get_rpc_reply(st);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            rpc_error(r, "queue.bind", err, errlen);
            return -1;
        }
    }
    return 0;
}

/* ---- publisher ---- */

typedef struct {
    dg_batch_t *b;
    uint64_t    last;          /* delivery tag of its last record */
} amqp_entry_t;

typedef struct amqp_pub {
    dg_amqp_uri_t   u;
    dg_sink_done_fn done;
    void           *ud;

    pthread_mutex_t mu;
    dg_batch_t     *head, *tail;   /* pending FIFO (msg.next), under mu */
    bool            stopping;
    int64_t         deadline;
    int             efd;           /* eventfd: wakes the thread */
    atomic_int      failing;
    atomic_int      sockfd;        /* -1 when not connected (stop's watchdog) */
    atomic_llong    writing_since; /* mono ms a publish began, 0 when none */
    bool            blocked;       /* connection.blocked (publisher thread) */

    /* publisher thread only */
    pthread_t       thr;
    bool            started;
    amqp_connection_state_t st;
    amqp_entry_t   *infl;          /* ring of batches in flight */
    size_t          infl_cap, infl_head, infl_n;
    uint64_t        next_tag;      /* tag of the next publish (1 after confirm.select) */
    uint64_t        acked;         /* every tag <= acked is confirmed */
    uint64_t       *single;        /* sorted single acks > acked + 1 */
    size_t          nsingle, single_cap;
    int             backoff_ms;
    dg_buf_t        body;
    char            err[512];
} amqp_pub_t;

static void wake(amqp_pub_t *p)
{
    uint64_t one = 1;
    ssize_t n = write(p->efd, &one, sizeof one);
    (void)n;
}

static void set_failing(amqp_pub_t *p, const char *why)
{
    if (!atomic_exchange(&p->failing, 1)) dg_warn("amqp: %s (retrying; nothing is acked meanwhile)", why);
}

static void clear_failing(amqp_pub_t *p)
{
    if (atomic_exchange(&p->failing, 0)) dg_info("amqp: the broker confirms again");
}

static int infl_push(amqp_pub_t *p, dg_batch_t *b, uint64_t last)
{
    if (p->infl_n == p->infl_cap) {
        size_t cap = p->infl_cap ? p->infl_cap * 2 : 64;
        amqp_entry_t *n = malloc(cap * sizeof *n);
        if (!n) return -1;
        for (size_t i = 0; i < p->infl_n; i++) n[i] = p->infl[(p->infl_head + i) % p->infl_cap];
        free(p->infl);
        p->infl = n;
        p->infl_cap = cap;
        p->infl_head = 0;
    }
    p->infl[(p->infl_head + p->infl_n) % p->infl_cap] = (amqp_entry_t){ b, last };
    p->infl_n++;
    return 0;
}

static amqp_entry_t *infl_at(amqp_pub_t *p, size_t i) { return &p->infl[(p->infl_head + i) % p->infl_cap]; }

static void infl_pop(amqp_pub_t *p)
{
    p->infl_head = (p->infl_head + 1) % p->infl_cap;
    p->infl_n--;
}

/* Confirmations: move `acked` (multiple), or remember a single tag. */
static void confirm(amqp_pub_t *p, uint64_t tag, bool multiple)
{
    if (tag <= p->acked) return;
    if (multiple) {
        p->acked = tag;
    } else if (tag == p->acked + 1) {
        p->acked = tag;
    } else {
        size_t i = 0;
        while (i < p->nsingle && p->single[i] < tag) i++;
        if (i < p->nsingle && p->single[i] == tag) return;
        if (p->nsingle == p->single_cap) {
            size_t cap = p->single_cap ? p->single_cap * 2 : 64;
            uint64_t *n = realloc(p->single, cap * sizeof *n);
            if (!n) return;   /* not counted: that batch waits for a reconnect */
            p->single = n;
            p->single_cap = cap;
        }
        memmove(p->single + i + 1, p->single + i, (p->nsingle - i) * sizeof *p->single);
        p->single[i] = tag;
        p->nsingle++;
    }
    size_t k = 0;
    while (k < p->nsingle && p->single[k] <= p->acked + 1) {
        if (p->single[k] == p->acked + 1) p->acked++;
        k++;
    }
    if (k) {
        memmove(p->single, p->single + k, (p->nsingle - k) * sizeof *p->single);
        p->nsingle -= k;
    }
}

/* Hand back, in order, the batches at the head whose last tag is confirmed. */
static void hand_back_confirmed(amqp_pub_t *p)
{
    while (p->infl_n && infl_at(p, 0)->last <= p->acked) {
        dg_batch_t *b = infl_at(p, 0)->b;
        infl_pop(p);
        dg_inc(&dg_metrics.queue_published, b->n);
        b->status = 0;
        p->done(b, p->ud);
    }
}

/* Drop the connection; everything in flight goes back to the head of the
 * pending FIFO, in order, to be published again. */
static void drop_conn(amqp_pub_t *p, const char *why)
{
    set_failing(p, why);
    if (p->st) {
        atomic_store(&p->sockfd, -1);
        amqp_destroy_connection(p->st);
        p->st = NULL;
    }
    pthread_mutex_lock(&p->mu);
    for (size_t i = p->infl_n; i-- > 0;) {
        dg_batch_t *b = infl_at(p, i)->b;
        b->msg.next = (dg_msg_t *)p->head;
        p->head = b;
        if (!p->tail) p->tail = b;
    }
    pthread_mutex_unlock(&p->mu);
    p->infl_head = p->infl_n = 0;
    p->acked = 0;
    p->next_tag = 1;
    p->nsingle = 0;
}

/* A publish that has not returned for this long means the broker stopped
 * reading (memory or disk alarm, a stalled network): failing() says so. */
#define WRITE_STALL_MS 5000

static int pub_open(amqp_pub_t *p)
{
    char err[400];
    amqp_connection_state_t st = amqp_connect(&p->u, 1, err, sizeof err);
    if (!st) { snprintf(p->err, sizeof p->err, "%s", err); return -1; }
    if (amqp_declare(st, &p->u, err, sizeof err) != 0) {
        snprintf(p->err, sizeof p->err, "%s", err);
        amqp_destroy_connection(st);
        return -1;
    }
    amqp_confirm_select(st, 1);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(st);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        rpc_error(r, "confirm.select", p->err, sizeof p->err);
        amqp_destroy_connection(st);
        return -1;
    }
    p->st = st;
    p->blocked = false;
    p->next_tag = 1;
    p->acked = 0;
    p->nsingle = 0;
    atomic_store(&p->sockfd, amqp_get_sockfd(st));
    return 0;
}

/* Publish one batch; its records take the next delivery tags. */
static int publish_batch(amqp_pub_t *p, dg_batch_t *b)
{
    amqp_bytes_t exchange = bytes(p->u.exchange);
    for (size_t i = 0; i < b->n; i++) {
        const dg_record_t *r = &b->recs[i];
        char mid[DG_DRONE_ID_MAX + 24];
        if (r->flags & DG_REC_HAS_SEQ)
            snprintf(mid, sizeof mid, "%s:%" PRIu64, r->drone_id, r->seq);
        else
            snprintf(mid, sizeof mid, "%s:", r->drone_id);
        p->body.len = 0;
        dg_queue_encode_json(r, &p->body);
        amqp_basic_properties_t props;
        props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
        props.content_type = bytes("application/json");
        props.delivery_mode = 2;   /* persistent */
        props.message_id = bytes(mid);
        amqp_bytes_t body = { p->body.len, p->body.data };
        int rc = amqp_basic_publish(p->st, 1, exchange, bytes(p->u.exchange[0] ? r->drone_id : p->u.queue),
                                    1 /* mandatory */, 0, &props, body);
        if (rc != AMQP_STATUS_OK) {
            snprintf(p->err, sizeof p->err, "basic.publish: %s", amqp_error_string2(rc));
            return -1;
        }
        p->next_tag++;
    }
    return 0;
}

/* Publish pending batches while the window has room. 0, or -1 (the batch
 * that failed is in flight, so drop_conn requeues it). */
static int publish_pending(amqp_pub_t *p)
{
    for (;;) {
        uint64_t unconfirmed = p->next_tag - 1 - p->acked;
        if (unconfirmed >= (uint64_t)p->u.inflight) return 0;
        pthread_mutex_lock(&p->mu);
        dg_batch_t *b = p->head;
        if (b) {
            p->head = (dg_batch_t *)b->msg.next;
            if (!p->head) p->tail = NULL;
            b->msg.next = NULL;
        }
        pthread_mutex_unlock(&p->mu);
        if (!b) return 0;
        atomic_store(&p->writing_since, dg_mono_ms());
        int rc = publish_batch(p, b);
        atomic_store(&p->writing_since, 0);
        if (infl_push(p, b, p->next_tag - 1) != 0) {
            /* no memory for the ring: back to the head, retried later */
            pthread_mutex_lock(&p->mu);
            b->msg.next = (dg_msg_t *)p->head;
            p->head = b;
            if (!p->tail) p->tail = b;
            pthread_mutex_unlock(&p->mu);
            snprintf(p->err, sizeof p->err, "out of memory");
            return -1;
        }
        if (rc) return -1;
    }
}

/* One frame from the broker. 0, or -1 (failure: p->err says why). */
static int handle_frame(amqp_pub_t *p, const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD) return 0;   /* content of a basic.return */
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *m = f->payload.method.decoded;
        confirm(p, m->delivery_tag, m->multiple);
        if (!p->blocked) clear_failing(p);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *m = f->payload.method.decoded;
        snprintf(p->err, sizeof p->err, "the broker refused (basic.nack) delivery tag %" PRIu64 "%s",
                 m->delivery_tag, m->multiple ? " and before" : "");
        return -1;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        const amqp_basic_return_t *m = f->payload.method.decoded;
        snprintf(p->err, sizeof p->err, "a message was returned unroutable: %u %.*s", m->reply_code,
                 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        return -1;
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        close_text(&f->payload.method, p->err, sizeof p->err);
        return -1;
    case AMQP_CONNECTION_BLOCKED_METHOD: {
        const amqp_connection_blocked_t *m = f->payload.method.decoded;
        char why[200];
        snprintf(why, sizeof why, "the broker blocks publishers: %.*s", (int)m->reason.len,
                 (const char *)m->reason.bytes);
        p->blocked = true;
        set_failing(p, why);
        return 0;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        p->blocked = false;
        if (!p->infl_n) clear_failing(p);   /* else at the next basic.ack */
        return 0;
    default:
        return 0;
    }
}

/* Read every frame available now (no wait). 0 or -1. */
static int read_frames(amqp_pub_t *p)
{
    struct timeval zero = { 0, 0 };
    for (;;) {
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(p->st, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT) break;
        if (rc != AMQP_STATUS_OK) {
            snprintf(p->err, sizeof p->err, "connection lost: %s", amqp_error_string2(rc));
            return -1;
        }
        if (handle_frame(p, &f) != 0) return -1;
    }
    amqp_maybe_release_buffers(p->st);
    return 0;
}

/* Wait for the socket or a wake-up, at most ms. */
static void wait_io(amqp_pub_t *p, int ms)
{
    struct pollfd fds[2] = { { p->efd, POLLIN, 0 }, { p->st ? amqp_get_sockfd(p->st) : -1, POLLIN, 0 } };
    if (poll(fds, p->st ? 2 : 1, ms) > 0 && (fds[0].revents & POLLIN)) {
        uint64_t v;
        ssize_t n = read(p->efd, &v, sizeof v);
        (void)n;
    }
}

static void *pub_thread(void *arg)
{
    amqp_pub_t *p = arg;
    int64_t next_try = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        bool stopping = p->stopping, pending = p->head != NULL;
        int64_t deadline = p->deadline;
        pthread_mutex_unlock(&p->mu);
        int64_t now = dg_mono_ms();
        if (stopping && ((!pending && !p->infl_n) || now >= deadline)) break;
        int wait = stopping ? (int)(deadline - now < 100 ? deadline - now : 100) : 1000;

        if (!p->st) {
            if (now < next_try) {
                int left = (int)(next_try - now);
                wait_io(p, left < wait ? left : wait);
                continue;
            }
            if (pub_open(p) != 0) {
                set_failing(p, p->err);
                next_try = dg_mono_ms() + p->backoff_ms;
                p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
                continue;
            }
            p->backoff_ms = BACKOFF_MIN_MS;
            if (!pending) clear_failing(p);
        }
        if (publish_pending(p) != 0 || read_frames(p) != 0) {
            drop_conn(p, p->err);
            next_try = dg_mono_ms() + p->backoff_ms;
            p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
            continue;
        }
        hand_back_confirmed(p);
        /* wait only when nothing can be published now */
        pthread_mutex_lock(&p->mu);
        pending = p->head != NULL;
        pthread_mutex_unlock(&p->mu);
        if (!pending || p->next_tag - 1 - p->acked >= (uint64_t)p->u.inflight) wait_io(p, wait);
    }
    /* given up (stop's deadline): hand everything back in order, status -1 */
    if (p->st) {
        atomic_store(&p->sockfd, -1);
        if (!p->infl_n) amqp_connection_close(p->st, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(p->st);
        p->st = NULL;
    }
    while (p->infl_n) {
        dg_batch_t *b = infl_at(p, 0)->b;
        infl_pop(p);
        b->status = -1;
        p->done(b, p->ud);
    }
    pthread_mutex_lock(&p->mu);
    dg_batch_t *b = p->head;
    p->head = p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (b) {
        dg_batch_t *next = (dg_batch_t *)b->msg.next;
        b->msg.next = NULL;
        b->status = -1;
        p->done(b, p->ud);
        b = next;
    }
    return NULL;
}

void *dg_amqp_publisher_new(const char *uri, dg_sink_done_fn done, void *ud, char *err, size_t errlen)
{
    amqp_pub_t *p = calloc(1, sizeof *p);
    if (!p) { snprintf(err, errlen, "out of memory"); return NULL; }
    if (dg_amqp_uri_parse(uri, &p->u, err, errlen) != 0) { free(p); return NULL; }
    p->done = done;
    p->ud = ud;
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    atomic_init(&p->failing, 0);
    atomic_init(&p->sockfd, -1);
    atomic_init(&p->writing_since, 0);
    p->backoff_ms = BACKOFF_MIN_MS;
    p->next_tag = 1;
    /* connect, declare and confirm.select now: a broker that is not there,
     * bad credentials, an unknown vhost or a queue declared with another
     * type are one sentence at start (the thread keeps this connection) */
    if (pub_open(p) != 0) {
        snprintf(err, errlen, "%s", p->err);
        close(p->efd);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    return p;
}

static int pub_start(void *s)
{
    amqp_pub_t *p = s;
    int rc = pthread_create(&p->thr, NULL, pub_thread, p);
    if (rc) return -rc;
    p->started = true;
    return 0;
}

static void pub_submit(void *s, dg_batch_t *b)
{
    amqp_pub_t *p = s;
    b->msg.next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail) p->tail->msg.next = (dg_msg_t *)b;
    else p->head = b;
    p->tail = b;
    pthread_mutex_unlock(&p->mu);
    wake(p);
}

static int pub_failing(void *s)
{
    amqp_pub_t *p = s;
    int64_t since = atomic_load(&p->writing_since);
    return atomic_load(&p->failing) || (since && dg_mono_ms() - since > WRITE_STALL_MS);
}
static int pub_backlog_full(void *s) { return pub_failing(s); }

static void pub_stop(void *s, int64_t deadline_ms)
{
    amqp_pub_t *p = s;
    if (!p->started) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    p->deadline = deadline_ms;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    /* a thread stuck in a socket write past the deadline: shut the socket */
    for (;;) {
        int64_t left = deadline_ms + 1000 - dg_mono_ms();
        if (left < 0) left = 0;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        if (pthread_timedjoin_np(p->thr, NULL, &ts) == 0) break;
        int fd = atomic_load(&p->sockfd);
        if (fd >= 0) shutdown(fd, SHUT_RDWR);
        if (left == 0) { pthread_join(p->thr, NULL); break; }
    }
    p->started = false;
}

static void pub_free(void *s)
{
    amqp_pub_t *p = s;
    if (!p) return;
    if (p->started) pub_stop(p, dg_mono_ms());
    if (p->st) amqp_destroy_connection(p->st);   /* opened by new(), never started */
    close(p->efd);
    pthread_mutex_destroy(&p->mu);
    free(p->infl);
    free(p->single);
    dg_buf_free(&p->body);
    free(p);
}

const dg_sink_ops_t dg_amqp_publisher_ops = {
    .name = "amqp",
    .start = pub_start,
    .submit = pub_submit,
    .backlog_full = pub_backlog_full,
    .failing = pub_failing,
    .stop = pub_stop,
    .free = pub_free,
};

/* ---- consumer ---- */

typedef struct amqp_cons {
    dg_amqp_uri_t   u;
    int             prefetch;
    pthread_mutex_t mu;
    amqp_connection_state_t st;
    uint64_t        gen;           /* connection generation (token bits 63..48) */
    amqp_envelope_t *env;          /* the last poll's messages */
    int             nenv, cap;
    int             backoff_ms;
    char            err[512];
} amqp_cons_t;

#define TAG_BITS 48
#define TAG_MASK ((UINT64_C(1) << TAG_BITS) - 1)

static void cons_drop(amqp_cons_t *c, const char *why)
{
    if (!c->st) return;
    dg_warn("amqp consumer: %s (reconnecting; unacked messages come back)", why);
    amqp_destroy_connection(c->st);
    c->st = NULL;
}

static int cons_connect(amqp_cons_t *c)
{
    char err[400];
    amqp_connection_state_t st = amqp_connect(&c->u, 2, err, sizeof err);
    if (!st) { snprintf(c->err, sizeof c->err, "%s", err); return -1; }
    if (amqp_declare(st, &c->u, err, sizeof err) != 0) goto fail;
    amqp_basic_qos(st, 1, 0, (uint16_t)c->prefetch, 0);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(st);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) { rpc_error(r, "basic.qos", err, sizeof err); goto fail; }
    amqp_table_entry_t e[1];
    amqp_table_t args = amqp_empty_table;
    if (c->u.type == DG_AMQP_STREAM) {
        e[0].key = bytes("x-stream-offset");
        if (c->u.offset[0] >= '0' && c->u.offset[0] <= '9') {
            e[0].value.kind = AMQP_FIELD_KIND_I64;
            e[0].value.value.i64 = strtoll(c->u.offset, NULL, 10);
        } else {
            e[0].value.kind = AMQP_FIELD_KIND_UTF8;
            e[0].value.value.bytes = bytes(c->u.offset);
        }
        args.num_entries = 1;
        args.entries = e;
    }
    amqp_basic_consume(st, 1, bytes(c->u.queue), amqp_empty_bytes, 0, 0 /* manual acks */, 0, args);
    r = amqp_get_rpc_reply(st);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) { rpc_error(r, "basic.consume", err, sizeof err); goto fail; }
    c->st = st;
    c->gen = (c->gen + 1) & 0xffff;
    if (c->gen == 0) c->gen = 1;
    dg_info("amqp consumer: consuming %s (%s, prefetch %d)", c->u.queue, dg_amqp_qtype_name(c->u.type), c->prefetch);
    return 0;
fail:
    snprintf(c->err, sizeof c->err, "%s", err);
    amqp_destroy_connection(st);
    return -1;
}

static void *cons_open(const char *uri, const char *group, int prefetch, char *err, size_t errlen)
{
    amqp_cons_t *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, errlen, "out of memory"); return NULL; }
    if (dg_amqp_uri_parse(uri, &c->u, err, errlen) != 0) { free(c); return NULL; }
    /* twice the batch: the sink polls the next batch while the writer
     * stores the one before (both unacked until their store commits) */
    c->prefetch = prefetch < 1 ? 2 : prefetch > 32767 ? 65535 : 2 * prefetch;
    c->backoff_ms = BACKOFF_MIN_MS;
    pthread_mutex_init(&c->mu, NULL);
    if (cons_connect(c) != 0) dg_warn("amqp consumer: %s (retrying)", c->err);
    return c;
}

static void free_envelopes(amqp_cons_t *c)
{
    for (int i = 0; i < c->nenv; i++) amqp_destroy_envelope(&c->env[i]);
    c->nenv = 0;
}

/* A frame that is not a delivery arrived where amqp_consume_message wanted
 * one. 0 (ignored) or -1 (the connection must go). */
static int cons_other_frame(amqp_cons_t *c)
{
    amqp_frame_t f;
    struct timeval zero = { 0, 0 };
    int rc = amqp_simple_wait_frame_noblock(c->st, &f, &zero);
    if (rc == AMQP_STATUS_TIMEOUT) return 0;
    if (rc != AMQP_STATUS_OK) {
        snprintf(c->err, sizeof c->err, "connection lost: %s", amqp_error_string2(rc));
        return -1;
    }
    if (f.frame_type != AMQP_FRAME_METHOD) return 0;
    switch (f.payload.method.id) {
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        snprintf(c->err, sizeof c->err, "closed by the broker");
        return -1;
    case AMQP_BASIC_CANCEL_METHOD:
        snprintf(c->err, sizeof c->err, "the broker cancelled the consumer (queue deleted?)");
        return -1;
    default:
        return 0;
    }
}

static int cons_poll(void *s, dg_queue_msg_t *out, int max, int timeout_ms)
{
    amqp_cons_t *c = s;
    pthread_mutex_lock(&c->mu);
    free_envelopes(c);
    if (!c->st) {
        if (cons_connect(c) != 0) {
            pthread_mutex_unlock(&c->mu);
            int ms = c->backoff_ms < timeout_ms ? c->backoff_ms : timeout_ms;
            c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
            if (ms > 0) {
                struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
                nanosleep(&ts, NULL);
            }
            return -1;
        }
        c->backoff_ms = BACKOFF_MIN_MS;
    }
    if (max > c->cap) {
        amqp_envelope_t *n = realloc(c->env, (size_t)max * sizeof *n);
        if (!n) { pthread_mutex_unlock(&c->mu); return 0; }
        c->env = n;
        c->cap = max;
    }
    amqp_maybe_release_buffers(c->st);
    int n = 0;
    while (n < max) {
        struct timeval tv = { 0, 0 };
        if (n == 0) { tv.tv_sec = timeout_ms / 1000; tv.tv_usec = (timeout_ms % 1000) * 1000; }
        amqp_rpc_reply_t r = amqp_consume_message(c->st, &c->env[n], &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            c->nenv = ++n;
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) break;
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            if (cons_other_frame(c) == 0) {
                if (n == 0) continue;
                break;
            }
        } else {
            rpc_error(r, "consume", c->err, sizeof c->err);
        }
        cons_drop(c, c->err);
        if (n == 0) { pthread_mutex_unlock(&c->mu); return -1; }
        break;   /* hand out what came; their commit will find a stale generation */
    }
    for (int i = 0; i < n; i++) {
        out[i].value = c->env[i].message.body.bytes;
        out[i].len = c->env[i].message.body.len;
        out[i].token = c->gen << TAG_BITS | (c->env[i].delivery_tag & TAG_MASK);
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

static int cons_commit(void *s, uint64_t token)
{
    amqp_cons_t *c = s;
    pthread_mutex_lock(&c->mu);
    int rc = -1;
    if (c->st && token >> TAG_BITS == c->gen) {
        int st = amqp_basic_ack(c->st, 1, token & TAG_MASK, 1 /* multiple */);
        if (st == AMQP_STATUS_OK) rc = 0;
        else {
            snprintf(c->err, sizeof c->err, "basic.ack: %s", amqp_error_string2(st));
            cons_drop(c, c->err);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int64_t cons_lag(void *s)
{
    amqp_cons_t *c = s;
    int64_t lag = -1;
    pthread_mutex_lock(&c->mu);
    if (c->st) {
        amqp_queue_declare_ok_t *ok = amqp_queue_declare(c->st, 2, bytes(c->u.queue), 1, 0, 0, 0, amqp_empty_table);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(c->st);
        if (ok && r.reply_type == AMQP_RESPONSE_NORMAL) {
            lag = ok->message_count;
        } else {
            rpc_error(r, "queue.declare (passive)", c->err, sizeof c->err);
            cons_drop(c, c->err);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return lag;
}

static void cons_close(void *s)
{
    amqp_cons_t *c = s;
    if (!c) return;
    free_envelopes(c);
    free(c->env);
    if (c->st) {
        amqp_channel_close(c->st, 1, AMQP_REPLY_SUCCESS);
        amqp_connection_close(c->st, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(c->st);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const dg_queue_consumer_ops_t dg_amqp_consumer_ops = {
    .name = "amqp",
    .open = cons_open,
    .poll = cons_poll,
    .commit = cons_commit,
    .lag = cons_lag,
    .close = cons_close,
};
