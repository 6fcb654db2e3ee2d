/* test_pipeline_pool.c - unit tests of a worker's batch pool
 * (src/pipeline/batch.c): the budget is allocated up front, a get past it
 * allocates one more and says "over budget", batches over budget are freed
 * on return, and put() says when a paused worker may read again.
 */
#include "check.h"
#include "pipeline/batch.h"

TEST(budget_over_budget_and_resume)
{
    dg_batch_pool_t p;
    ASSERT_EQ(dg_batch_pool_init(&p, 3, 1, 16, 2), 0);
    ASSERT_EQ(p.nbatches, 2);
    bool over = true;
    dg_batch_t *a = dg_batch_pool_get(&p, &over);
    ASSERT(a && !over);
    ASSERT_EQ(a->worker, 3);
    ASSERT_EQ(a->msg.type, 1);
    ASSERT_EQ(a->cap, 16);
    a->n = 5;
    dg_batch_t *b = dg_batch_pool_get(&p, &over);
    ASSERT(b && !over);
    dg_batch_t *c = dg_batch_pool_get(&p, &over);   /* past the budget */
    ASSERT(c && over);
    ASSERT_EQ(c->msg.type, 1);
    ASSERT_EQ(p.nbatches, 3);
    ASSERT_EQ(dg_batch_pool_put(&p, c), false);      /* freed, but no free batch yet */
    ASSERT_EQ(p.nbatches, 2);
    ASSERT_EQ(dg_batch_pool_put(&p, a), true);       /* within budget with a free one */
    dg_batch_t *d = dg_batch_pool_get(&p, &over);
    ASSERT(d == a && !over);
    ASSERT_EQ(d->n, 0);                              /* handed out empty */
    ASSERT_EQ(dg_batch_pool_put(&p, d), true);
    ASSERT_EQ(dg_batch_pool_put(&p, b), true);
    dg_batch_pool_free(&p);
    ASSERT_EQ(p.nbatches, 0);
    ASSERT(p.free == NULL);
}

int main(void)
{
    RUN(budget_over_budget_and_resume);
    return check_summary("pipeline_pool");
}
