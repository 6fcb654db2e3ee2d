/* null.c - the `null:` store: stores nothing, for benchmarks of the network
 * path. Records have already been validated upstream; write_batch() returns
 * 0 at once (so they are acknowledged without being kept: durable = false,
 * and the gateway says so at start), query() and latest() return no rows.
 * Stateless: safe from any thread.
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct dg_store {
    int unused;   /* a real allocation, so open/close pairing is leak-checked */
};

static int null_open(const char *uri, const dg_store_config_t *cfg, dg_store_t **out,
                     char *err, size_t errlen)
{
    *out = calloc(1, sizeof **out);
    if (!*out) {
        if (err && errlen) snprintf(err, errlen, "cannot open the null store: out of memory");
        return -ENOMEM;
    }
    return 0;
}

static int null_write_batch(dg_store_t *s, dg_record_t *recs, size_t n,
                            char *err, size_t errlen)
{
    return 0;
}

static int null_update_drones(dg_store_t *s, const dg_record_t *last, size_t n,
                              char *err, size_t errlen)
{
    return 0;
}

static int null_query(dg_store_t *s, const dg_query_t *q, dg_record_cb cb, void *ud,
                      char *err, size_t errlen)
{
    return 0;
}

static int null_latest(dg_store_t *s, dg_record_cb cb, void *ud, char *err, size_t errlen)
{
    return 0;
}

static int null_last_seq(dg_store_t *s, const char *drone_id, uint64_t *seq, char *err, size_t errlen)
{
    return 1;   /* nothing is ever stored */
}

static int null_ping(dg_store_t *s)
{
    return 0;
}

static void null_close(dg_store_t *s)
{
    free(s);
}

const dg_store_ops_t dg_store_null_ops = {
    .scheme        = "null",
    .durable       = false,
    .open          = null_open,
    .write_batch   = null_write_batch,
    .update_drones = null_update_drones,
    .query         = null_query,
    .latest        = null_latest,
    .last_seq      = null_last_seq,
    .ping          = null_ping,
    .close         = null_close,
};
