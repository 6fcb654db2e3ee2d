/* batch.c - allocation of record batches (see batch.h). Any thread; a batch
 * is used by one thread at a time (its owner worker, then the sink). */
#include "batch.h"

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
