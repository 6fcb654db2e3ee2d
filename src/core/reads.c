/* reads.c - the store read pool and the store health thread (reads.h). */
#include "reads.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "../net/worker.h"

#define QUEUE_MAX      256     /* queued reads beyond this get 503 at once */
#define HEALTH_EVERY_MS 1000

struct dg_reads {
    dg_server_t    *srv;
    pthread_mutex_t mu;
    pthread_cond_t  cv;         /* jobs queued, or stopping */
    pthread_cond_t  hcv;        /* the health thread's sleep (stopping) */
    dg_read_job_t  *head, *tail;
    int             queued;
    int             stopping;
    int             nthreads;
    pthread_t      *threads;
    pthread_t       health;
    int             health_started;
};

void dg_read_job_free(dg_read_job_t *j)
{
    if (!j) return;
    dg_buf_free(&j->body);
    free(j);
}

static void on_read_msg(dg_worker_t *w, dg_msg_t *m, bool deliver)
{
    dg_read_job_t *j = (dg_read_job_t *)m;
    if (deliver && j->done) j->done(w, j);   /* frees j */
    else dg_read_job_free(j);
}

static void reply(dg_read_job_t *j)
{
    j->msg.type = DG_MSG_READ;
    j->msg.handle = on_read_msg;
    dg_worker_post(j->w, &j->msg);
}

static void *reader_main(void *arg)
{
    dg_reads_t *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->head && !r->stopping) pthread_cond_wait(&r->cv, &r->mu);
        if (!r->head) break;            /* stopping, nothing left */
        dg_read_job_t *j = r->head;
        r->head = j->next;
        if (!r->head) r->tail = NULL;
        r->queued--;
        pthread_mutex_unlock(&r->mu);
        j->next = NULL;
        j->run(r->srv, j);
        reply(j);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void check_store(dg_reads_t *r)
{
    int ok = r->srv->store_ops->ping(r->srv->store) == 0;
    if (ok != atomic_load(&r->srv->store_ok))
        dg_debug("store %s", ok ? "answers again" : "does not answer (readyz 503)");
    atomic_store(&r->srv->store_ok, ok);
}

static void *health_main(void *arg)
{
    dg_reads_t *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += HEALTH_EVERY_MS / 1000;
        ts.tv_nsec += (HEALTH_EVERY_MS % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&r->hcv, &r->mu, &ts);
        if (r->stopping) break;
        pthread_mutex_unlock(&r->mu);
        check_store(r);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

dg_reads_t *dg_reads_start(dg_server_t *srv, int threads)
{
    dg_reads_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->srv = srv;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_cond_init(&r->hcv, NULL);
    check_store(r);                     /* /readyz is right from the first request */
    r->threads = calloc((size_t)threads, sizeof *r->threads);
    if (!r->threads) goto fail;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&r->threads[i], NULL, reader_main, r)) goto fail;
        r->nthreads++;
    }
    if (pthread_create(&r->health, NULL, health_main, r)) goto fail;
    r->health_started = 1;
    return r;
fail:
    dg_reads_stop(r);
    return NULL;
}

int dg_reads_submit(dg_reads_t *r, dg_read_job_t *j)
{
    pthread_mutex_lock(&r->mu);
    if (r->stopping || r->queued >= QUEUE_MAX) {
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    j->next = NULL;
    if (r->tail) r->tail->next = j; else r->head = j;
    r->tail = j;
    r->queued++;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void dg_reads_stop(dg_reads_t *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    /* what is still queued is not run: answered 503 */
    dg_read_job_t *left = r->head;
    r->head = r->tail = NULL;
    r->queued = 0;
    pthread_cond_broadcast(&r->cv);
    pthread_cond_broadcast(&r->hcv);
    pthread_mutex_unlock(&r->mu);
    for (dg_read_job_t *j = left, *n; j; j = n) {
        n = j->next;
        j->status = 503;
        snprintf(j->err, sizeof j->err, "server is shutting down");
        reply(j);
    }
    for (int i = 0; i < r->nthreads; i++) pthread_join(r->threads[i], NULL);
    if (r->health_started) pthread_join(r->health, NULL);
    free(r->threads);
    pthread_cond_destroy(&r->cv);
    pthread_cond_destroy(&r->hcv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
