/* kafka.c - Kafka publisher (a sink, pipeline/sink.h) and consumer
 * (queue.h) on librdkafka.
 *
 * Publisher: an idempotent producer (enable.idempotence=true, acks=all).
 * submit() only queues the batch (any thread, no I/O); the publisher's own
 * thread produces every record (key = drone id, value = dg_queue_encode_json,
 * header content-type: application/json) and serves the delivery reports.
 * A batch is handed back with status 0 only when every one of its records
 * got a successful delivery report, and batches are handed back in the
 * order they were submitted (one FIFO for all workers, so per worker too):
 * the drone's cumulative ack can never cover a record that failed. A record
 * whose delivery failed (message.timeout.ms passed, broker errors beyond
 * librdkafka's own retries) makes its whole batch be produced again once all
 * of the batch's reports are in: duplicates in the topic are possible, the
 * store's unique (drone_id, seq) removes them in the sink.
 *
 * Memory: the FIFO holds only batches of the workers' fixed pools; what
 * librdkafka buffers is bounded by queue.buffering.max.messages/kbytes (when
 * full, produce waits for reports). failing() is true from a delivery error
 * or "all brokers down" until the next successful delivery or metadata
 * answer; backlog_full() = failing() (the publisher has no disk backlog).
 *
 * Consumer: a consumer group (group.id), enable.auto.commit=false,
 * enable.auto.offset.store=false, auto.offset.reset=earliest; commit(token)
 * commits, per partition, the offset after the last message polled with a
 * token <= token, synchronously.
 */
#include "queue.h"
#include "kafka_uri.h"

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
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "../core/log.h"
#include "../core/metrics.h"

#define CONNECT_CHECK_MS 5000   /* a broker must answer metadata at start within this */
#define RETRY_BACKOFF_MS 200    /* before a batch with a failed record is produced again */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Apply the URI's properties after our defaults (so the URI may override
 * e.g. linger.ms), except the ones that carry the promises. */
static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen)
{
    char e[256];
    if (rd_kafka_conf_set(conf, k, v, e, sizeof e) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "librdkafka property %s=%s: %s", k, v, e);
        return -1;
    }
    return 0;
}

static int conf_uri(rd_kafka_conf_t *conf, const dg_kafka_uri_t *u, const char *const *locked,
                    char *err, size_t errlen)
{
    for (size_t i = 0; i < u->nprops; i++) {
        for (const char *const *l = locked; *l; l++)
            if (!strcmp(u->props[i].name, *l)) {
                snprintf(err, errlen, "%s cannot be changed in the Kafka URI (dronegate's acks depend on it)", *l);
                return -1;
            }
        if (conf_set(conf, u->props[i].name, u->props[i].value, err, errlen)) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* publisher                                                            */
/* ------------------------------------------------------------------ */

typedef struct pnode {
    struct pnode *next;
    dg_batch_t   *b;
    size_t        produced;     /* records handed to librdkafka in this round */
    size_t        outstanding;  /* produced, report not in yet */
    size_t        ok;           /* successful reports this round */
    bool          failed;       /* a report of this round failed: produce again */
    int64_t       retry_at;     /* monotonic ms */
} pnode_t;

typedef struct kpub {
    rd_kafka_t       *rk;
    rd_kafka_topic_t *rkt;
    char              topic[250];
    dg_sink_done_fn   done;
    void             *ud;
    pthread_t         th;
    bool              started;
    int               efd;          /* submit / stop wake-up */
    int               qfd;          /* librdkafka main queue has events */
    pthread_mutex_t   mu;
    pnode_t          *in_head, *in_tail;  /* submitted, not taken by the thread */
    int64_t           deadline;     /* stop(): set with stopping */
    atomic_int        stopping;
    bool              closed;       /* the thread is gone: submit hands back at once (under mu) */
    atomic_int        failing;
    /* thread only */
    pnode_t          *head, *tail;  /* in flight, submission order */
    dg_buf_t          val;
} kpub_t;

static void wake(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n;
}

static void drain_fd(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) > 0) {}
}

static void pub_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kpub_t *p = opaque;
    pnode_t *n = m->_private;
    n->outstanding--;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        n->ok++;
        dg_inc(&dg_metrics.queue_published, 1);
        if (atomic_exchange(&p->failing, 0)) dg_info("kafka: deliveries succeed again");
    } else {
        /* said once per failing period (the next success says it is over) */
        if (!atomic_exchange(&p->failing, 1) && !atomic_load(&p->stopping))
            dg_warn("kafka: delivery of %.*s seq %" PRIu64 " failed: %s (its batch is produced again; nothing of it is acked until then)",
                    (int)m->key_len, (const char *)m->key, n->b->recs[0].seq, rd_kafka_err2str(m->err));
        n->failed = true;
    }
}

static void pub_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kpub_t *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || rd_kafka_fatal_error(rk, NULL, 0)) {
        if (!atomic_exchange(&p->failing, 1)) dg_warn("kafka: %s", reason);
    } else {
        dg_debug("kafka: %s", reason);
    }
}

static void pub_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 2) dg_warn("kafka: %s: %s", fac, buf);
    else dg_debug("kafka: %s: %s", fac, buf);
}

/* Produce what is left of n's round. 0 done, 1 librdkafka's queue is full. */
static int produce_node(kpub_t *p, pnode_t *n)
{
    while (n->produced < n->b->n) {
        const dg_record_t *r = &n->b->recs[n->produced];
        p->val.len = 0;
        dg_queue_encode_json(r, &p->val);
        rd_kafka_resp_err_t e = rd_kafka_producev(p->rk,
            RD_KAFKA_V_RKT(p->rkt),
            RD_KAFKA_V_KEY(r->drone_id, r->drone_id_len),
            RD_KAFKA_V_VALUE(p->val.data, p->val.len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("content-type", "application/json", 16),
            RD_KAFKA_V_OPAQUE(n),
            RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) return 1;
        if (e) {
            /* not queued (e.g. a fatal producer error): count it as a failed delivery */
            dg_warn("kafka: produce failed: %s", rd_kafka_err2str(e));
            n->failed = true;
            atomic_store(&p->failing, 1);
            n->produced = n->b->n;
            return 0;
        }
        n->produced++;
        n->outstanding++;
    }
    return 0;
}

static void *pub_main(void *arg)
{
    kpub_t *p = arg;
    int64_t last_probe = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        if (p->in_head) {
            if (p->tail) p->tail->next = p->in_head; else p->head = p->in_head;
            p->tail = p->in_tail;
            p->in_head = p->in_tail = NULL;
        }
        bool stopping = atomic_load(&p->stopping);
        int64_t deadline = p->deadline;
        pthread_mutex_unlock(&p->mu);

        int64_t now = mono_ms();
        int64_t wait = 100;
        bool qfull = false;
        for (pnode_t *n = p->head; n && !qfull; n = n->next) {
            if (n->failed && n->outstanding == 0) {
                if (now < n->retry_at) { if (n->retry_at - now < wait) wait = n->retry_at - now; continue; }
                if (n->retry_at == 0) { n->retry_at = now + RETRY_BACKOFF_MS; if (RETRY_BACKOFF_MS < wait) wait = RETRY_BACKOFF_MS; continue; }
                n->failed = false; n->produced = 0; n->ok = 0; n->retry_at = 0;   /* a new round */
            }
            if (!n->failed && n->produced < n->b->n && produce_node(p, n)) qfull = true;
        }
        rd_kafka_poll(p->rk, 0);   /* delivery reports, errors */
        /* hand back, in submission order, every batch whose records are all delivered */
        while (p->head && p->head->ok == p->head->b->n && p->head->outstanding == 0) {
            pnode_t *n = p->head;
            p->head = n->next;
            if (!p->head) p->tail = NULL;
            n->b->status = 0;
            p->done(n->b, p->ud);
            free(n);
        }
        if (stopping && (!p->head || mono_ms() >= deadline)) break;
        /* nothing in flight and failing: ask a broker whether it is back */
        if (!p->head && atomic_load(&p->failing) && mono_ms() - last_probe >= 1000) {
            const struct rd_kafka_metadata *md = NULL;
            if (rd_kafka_metadata(p->rk, 0, p->rkt, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                rd_kafka_metadata_destroy(md);
                if (atomic_exchange(&p->failing, 0)) dg_info("kafka: a broker answers again");
            }
            last_probe = mono_ms();
            continue;
        }
        if (qfull) wait = 5;
        struct pollfd fds[2] = { { .fd = p->efd, .events = POLLIN }, { .fd = p->qfd, .events = POLLIN } };
        if (poll(fds, 2, (int)wait) > 0) {
            if (fds[0].revents) drain_fd(p->efd);
            if (fds[1].revents) drain_fd(p->qfd);
        }
    }
    /* Deadline passed with batches still undelivered: purge what librdkafka
     * holds, take its reports, hand the rest back not acked. */
    if (p->head) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        int64_t until = mono_ms() + 2000;
        for (;;) {
            bool out = false;
            for (pnode_t *n = p->head; n; n = n->next) if (n->outstanding) { out = true; break; }
            if (!out || mono_ms() >= until) break;
            rd_kafka_poll(p->rk, 50);
        }
        size_t left = 0;
        while (p->head) {
            pnode_t *n = p->head;
            p->head = n->next;
            bool all = n->ok == n->b->n && n->outstanding == 0;
            n->b->status = all ? 0 : -1;
            if (!all) left += n->b->n;
            p->done(n->b, p->ud);
            if (n->outstanding == 0) free(n);   /* else a late report may still name it: keep it (one node) */
        }
        p->tail = NULL;
        if (left) dg_warn("kafka: %zu records were not confirmed by the broker before the deadline: not acked (the drones resend them)", left);
    }
    /* batches submitted after this point (a worker finishing its drain
     * after the deadline) are handed back at once, not acked */
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    pnode_t *late = p->in_head;
    p->in_head = p->in_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (late) {
        pnode_t *n = late;
        late = n->next;
        n->b->status = -1;
        p->done(n->b, p->ud);
        free(n);
    }
    return NULL;
}

void *dg_kafka_publisher_new(const char *uri, dg_sink_done_fn done, void *ud, char *err, size_t errlen)
{
    dg_kafka_uri_t u;
    if (dg_kafka_uri_parse(uri, &u, err, errlen)) return NULL;
    if (u.group[0]) { snprintf(err, errlen, "group= is for dronegate sink, not for the gateway's --queue"); return NULL; }
    kpub_t *p = calloc(1, sizeof *p);
    if (!p) { snprintf(err, errlen, "out of memory"); return NULL; }
    p->done = done;
    p->ud = ud;
    p->efd = p->qfd = -1;
    pthread_mutex_init(&p->mu, NULL);
    snprintf(p->topic, sizeof p->topic, "%s", u.topic);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const char *const locked[] = { "enable.idempotence", "acks", "request.required.acks", NULL };
    char e[512];
    if (conf_set(conf, "bootstrap.servers", u.brokers, err, errlen) ||
        conf_set(conf, "enable.idempotence", "true", err, errlen) ||
        conf_set(conf, "acks", "all", err, errlen) ||
        conf_set(conf, "linger.ms", "2", err, errlen) ||
        conf_set(conf, "message.timeout.ms", "10000", err, errlen) ||
        conf_set(conf, "queue.buffering.max.messages", "200000", err, errlen) ||
        conf_set(conf, "queue.buffering.max.kbytes", "131072", err, errlen) ||
        conf_set(conf, "client.id", "dronegate", err, errlen) ||
        conf_uri(conf, &u, locked, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, pub_dr);
    rd_kafka_conf_set_error_cb(conf, pub_error);
    rd_kafka_conf_set_log_cb(conf, pub_log);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!p->rk) { rd_kafka_conf_destroy(conf); snprintf(err, errlen, "cannot create the Kafka producer: %s", e); goto fail; }
    p->rkt = rd_kafka_topic_new(p->rk, p->topic, NULL);
    if (!p->rkt) { snprintf(err, errlen, "cannot use topic %s: %s", p->topic, rd_kafka_err2str(rd_kafka_last_error())); goto fail; }
    /* a broker must answer now: a gateway that cannot reach any says so at start */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t me = rd_kafka_metadata(p->rk, 0, p->rkt, &md, CONNECT_CHECK_MS);
    if (me) {
        snprintf(err, errlen, "no Kafka broker of %s answered within %d s (%s): start the brokers or fix the URI",
                 u.brokers, CONNECT_CHECK_MS / 1000, rd_kafka_err2str(me));
        goto fail;
    }
    rd_kafka_metadata_destroy(md);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->qfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0 || p->qfd < 0) { snprintf(err, errlen, "eventfd: %s", strerror(errno)); goto fail; }
    rd_kafka_queue_t *mq = rd_kafka_queue_get_main(p->rk);
    static const uint64_t one = 1;
    rd_kafka_queue_io_event_enable(mq, p->qfd, &one, sizeof one);
    rd_kafka_queue_destroy(mq);
    return p;
fail:
    if (p->rkt) rd_kafka_topic_destroy(p->rkt);
    if (p->rk) rd_kafka_destroy(p->rk);
    if (p->efd >= 0) close(p->efd);
    if (p->qfd >= 0) close(p->qfd);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
}

static int pub_start(void *s)
{
    kpub_t *p = s;
    int rc = pthread_create(&p->th, NULL, pub_main, p);
    if (rc) return -rc;
    p->started = true;
    return 0;
}

static void pub_submit(void *s, dg_batch_t *b)
{
    kpub_t *p = s;
    pnode_t *n = calloc(1, sizeof *n);
    if (!n) {
        /* cannot track it: hand it back not acked (the drone resends) */
        dg_error("kafka: out of memory for a batch: not acked");
        b->status = -ENOMEM;
        p->done(b, p->ud);
        return;
    }
    n->b = b;
    pthread_mutex_lock(&p->mu);
    if (p->closed) {
        pthread_mutex_unlock(&p->mu);
        free(n);
        b->status = -1;
        p->done(b, p->ud);
        return;
    }
    if (p->in_tail) p->in_tail->next = n; else p->in_head = n;
    p->in_tail = n;
    pthread_mutex_unlock(&p->mu);
    wake(p->efd);
}

static int pub_failing(void *s) { return atomic_load(&((kpub_t *)s)->failing); }

static void pub_stop(void *s, int64_t deadline_ms)
{
    kpub_t *p = s;
    if (!p->started) return;
    pthread_mutex_lock(&p->mu);
    p->deadline = deadline_ms;
    atomic_store(&p->stopping, 1);
    pthread_mutex_unlock(&p->mu);
    wake(p->efd);
    pthread_join(p->th, NULL);
    p->started = false;
}

static void pub_free(void *s)
{
    kpub_t *p = s;
    if (!p) return;
    rd_kafka_topic_destroy(p->rkt);
    rd_kafka_destroy(p->rk);
    close(p->efd);
    close(p->qfd);
    dg_buf_free(&p->val);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

const dg_sink_ops_t dg_kafka_publisher_ops = {
    .name = "kafka",
    .start = pub_start,
    .submit = pub_submit,
    .backlog_full = pub_failing,
    .failing = pub_failing,
    .stop = pub_stop,
    .free = pub_free,
};

/* ------------------------------------------------------------------ */
/* consumer                                                             */
/* ------------------------------------------------------------------ */

typedef struct kmark { int32_t partition; int64_t offset; uint64_t token; } kmark_t;

typedef struct kcons {
    rd_kafka_t         *rk;
    char                topic[250];
    rd_kafka_message_t **held;      /* messages of the last poll */
    int                 nheld, capheld;
    kmark_t            *marks;      /* polled, not committed: (partition, offset, token) */
    size_t              nmarks, capmarks;
    uint64_t            next_token;
    atomic_int          down;
} kcons_t;

static void cons_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kcons_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
        rd_kafka_fatal_error(rk, NULL, 0)) {
        if (err != RD_KAFKA_RESP_ERR__TRANSPORT && !atomic_exchange(&c->down, 1)) dg_warn("kafka: %s", reason);
    } else {
        dg_debug("kafka: %s", reason);
    }
}

static void *cons_open(const char *uri, const char *group, int prefetch, char *err, size_t errlen)
{
    dg_kafka_uri_t u;
    if (dg_kafka_uri_parse(uri, &u, err, errlen)) return NULL;
    const char *g = group && group[0] ? group : u.group[0] ? u.group : "dronegate-sink";
    kcons_t *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, errlen, "out of memory"); return NULL; }
    snprintf(c->topic, sizeof c->topic, "%s", u.topic);
    c->capheld = prefetch > 0 ? prefetch : 1024;
    c->held = calloc((size_t)c->capheld, sizeof *c->held);
    if (!c->held) { free(c); snprintf(err, errlen, "out of memory"); return NULL; }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const char *const locked[] = { "enable.auto.commit", "enable.auto.offset.store", "group.id", NULL };
    char e[512];
    if (conf_set(conf, "bootstrap.servers", u.brokers, err, errlen) ||
        conf_set(conf, "group.id", g, err, errlen) ||
        conf_set(conf, "enable.auto.commit", "false", err, errlen) ||
        conf_set(conf, "enable.auto.offset.store", "false", err, errlen) ||
        conf_set(conf, "auto.offset.reset", "earliest", err, errlen) ||
        conf_set(conf, "client.id", "dronegate-sink", err, errlen) ||
        conf_uri(conf, &u, locked, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        free(c->held); free(c);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_error_cb(conf, cons_error);
    rd_kafka_conf_set_log_cb(conf, pub_log);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!c->rk) { rd_kafka_conf_destroy(conf); snprintf(err, errlen, "cannot create the Kafka consumer: %s", e); free(c->held); free(c); return NULL; }
    rd_kafka_poll_set_consumer(c->rk);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t me = rd_kafka_metadata(c->rk, 0, NULL, &md, CONNECT_CHECK_MS);
    if (me) {
        snprintf(err, errlen, "no Kafka broker of %s answered within %d s (%s): start the brokers or fix the URI",
                 u.brokers, CONNECT_CHECK_MS / 1000, rd_kafka_err2str(me));
        rd_kafka_destroy(c->rk); free(c->held); free(c);
        return NULL;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, c->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(c->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (se) {
        snprintf(err, errlen, "cannot subscribe to %s: %s", c->topic, rd_kafka_err2str(se));
        rd_kafka_destroy(c->rk); free(c->held); free(c);
        return NULL;
    }
    dg_info("kafka: consumer group %s on topic %s at %s (offsets committed after the store commit)", g, c->topic, u.brokers);
    return c;
}

static void release_held(kcons_t *c)
{
    for (int i = 0; i < c->nheld; i++) rd_kafka_message_destroy(c->held[i]);
    c->nheld = 0;
}

static int cons_poll(void *cv, dg_queue_msg_t *out, int max, int timeout_ms)
{
    kcons_t *c = cv;
    release_held(c);
    if (max > c->capheld) max = c->capheld;
    int n = 0;
    int64_t until = mono_ms() + timeout_ms;
    while (n < max) {
        int t = n ? 0 : (int)(until - mono_ms());
        if (t < 0) t = 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, t);
        if (!m) { if (n || t == 0) break; continue; }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) dg_debug("kafka: consume: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (!n && mono_ms() >= until) break;
            continue;
        }
        if (c->nmarks == c->capmarks) {
            size_t nc = c->capmarks ? c->capmarks * 2 : 1024;
            kmark_t *nm = realloc(c->marks, nc * sizeof *nm);
            if (!nm) { rd_kafka_message_destroy(m); break; }   /* not consumed further this time: seek back below */
            c->marks = nm;
            c->capmarks = nc;
        }
        atomic_store(&c->down, 0);
        uint64_t tok = ++c->next_token;
        c->marks[c->nmarks++] = (kmark_t){ m->partition, m->offset, tok };
        c->held[c->nheld++] = m;
        out[n].value = m->payload;
        out[n].len = m->len;
        out[n].token = tok;
        n++;
    }
    if (n == 0 && atomic_load(&c->down)) return -1;
    return n;
}

static int cons_commit(void *cv, uint64_t token)
{
    kcons_t *c = cv;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    size_t keep = 0;
    for (size_t i = 0; i < c->nmarks; i++) {
        kmark_t *k = &c->marks[i];
        if (k->token > token) { c->marks[keep++] = *k; continue; }
        rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(l, c->topic, k->partition);
        if (!tp) tp = rd_kafka_topic_partition_list_add(l, c->topic, k->partition);
        if (k->offset + 1 > tp->offset) tp->offset = k->offset + 1;
    }
    int rc = 0;
    if (l->cnt) {
        rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, l, 0 /* sync */);
        if (e) {
            dg_warn("kafka: offset commit failed: %s (the messages come again and the store ignores the duplicates)", rd_kafka_err2str(e));
            rc = -1;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    /* forgotten either way: a failed commit (e.g. after a rebalance took the
     * partition away) only means those messages come again, and the store
     * ignores them; keeping the marks would grow them without bound */
    c->nmarks = keep;
    return rc;
}

static int64_t cons_lag(void *cv)
{
    kcons_t *c = cv;
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(c->rk, &a) || !a) return -1;
    int64_t lag = 0;
    bool any_err = false;
    if (a->cnt) rd_kafka_position(c->rk, a);
    for (int i = 0; i < a->cnt; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(c->rk, a->elems[i].topic, a->elems[i].partition, &lo, &hi, 500);
        if (e) { any_err = true; break; }
        int64_t pos = a->elems[i].offset;
        if (pos < 0) {
            /* nothing consumed yet in this run: from the committed offset */
            rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(one, a->elems[i].topic, a->elems[i].partition);
            pos = rd_kafka_committed(c->rk, one, 500) == 0 && one->elems[0].offset >= 0 ? one->elems[0].offset : lo;
            rd_kafka_topic_partition_list_destroy(one);
        }
        if (hi > pos) lag += hi - pos;
    }
    rd_kafka_topic_partition_list_destroy(a);
    if (any_err) { atomic_store(&c->down, 1); return -1; }
    atomic_store(&c->down, 0);
    return lag;
}

static void cons_close(void *cv)
{
    kcons_t *c = cv;
    if (!c) return;
    release_held(c);
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    free(c->held);
    free(c->marks);
    free(c);
}

const dg_queue_consumer_ops_t dg_kafka_consumer_ops = {
    .name = "kafka",
    .open = cons_open,
    .poll = cons_poll,
    .commit = cons_commit,
    .lag = cons_lag,
    .close = cons_close,
};
