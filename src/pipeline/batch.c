/* batch.c - record batches and the per-worker batch pool (see batch.h).
 * A batch is used by one thread at a time (its owner worker, then the
 * sink); a pool only by its worker's thread. */
#include "batch.h"

#include <errno.h>
#include <stdlib.h>

dg_batch_t *dg_batch_new(int worker, size_t cap)
{
    dg_batch_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->recs = malloc((cap ? cap : 1) * sizeof *b->recs);
    if (!b->recs) { free(b); return NULL; }
    b->worker = worker;
    b->cap = cap;
    return b;
}

void dg_batch_free(dg_batch_t *b)
{
    if (!b) return;
    free(b->recs);
    free(b);
}

int dg_batch_pool_init(dg_batch_pool_t *p, int worker, int msg_type, size_t batch_records, long budget)
{
    *p = (dg_batch_pool_t){ .worker = worker, .msg_type = msg_type, .batch_records = batch_records,
                            .budget = budget };
    for (long i = 0; i < budget; i++) {
        dg_batch_t *b = dg_batch_new(worker, batch_records);
        if (!b) { dg_batch_pool_free(p); return -ENOMEM; }
        b->msg.type = msg_type;
        b->msg.next = (dg_msg_t *)p->free;   /* msg is the first member */
        p->free = b;
        p->nbatches++;
    }
    return 0;
}

dg_batch_t *dg_batch_pool_get(dg_batch_pool_t *p, bool *over)
{
    *over = false;
    dg_batch_t *b = p->free;
    if (b) {
        p->free = (dg_batch_t *)b->msg.next;
        b->msg.next = NULL;
        b->n = 0;
        return b;
    }
    if (!(b = dg_batch_new(p->worker, p->batch_records))) return NULL;
    b->msg.type = p->msg_type;
    p->nbatches++;
    *over = p->nbatches > p->budget;
    return b;
}

bool dg_batch_pool_put(dg_batch_pool_t *p, dg_batch_t *b)
{
    if (p->nbatches > p->budget) {
        dg_batch_free(b);
        p->nbatches--;
    } else {
        b->n = 0;
        b->msg.next = (dg_msg_t *)p->free;
        p->free = b;
    }
    return p->nbatches <= p->budget && p->free != NULL;
}

void dg_batch_pool_free(dg_batch_pool_t *p)
{
    while (p->free) {
        dg_batch_t *b = p->free;
        p->free = (dg_batch_t *)b->msg.next;
        dg_batch_free(b);
        p->nbatches--;
    }
}
