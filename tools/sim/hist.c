/* hist.c - log-bucketed latency histogram (HDR-histogram style).
 *
 * Values are microseconds. 0..127 have one bucket each; above that, each
 * power of two is split into 64 equal sub-buckets, so a bucket is at most
 * 1/64 (1.6%) of its value wide. 2688 buckets cover up to 2^46 us (2 years),
 * 21 KiB per worker; recording is a bit scan and one increment, so every
 * acked message is recorded, none is sampled and nothing is sorted.
 *
 * A worker writes its own histogram (relaxed atomics, single writer); the
 * main thread snapshots and merges them for the reports.
 */
#include "sim.h"

#include <string.h>

uint32_t sim_hist_index(uint64_t v)
{
    if (v < 128) return (uint32_t)v;
    int msb = 63 - __builtin_clzll(v);          /* >= 7 */
    int shift = msb - 6;                        /* >= 1 */
    uint32_t idx = 128 + (uint32_t)(shift - 1) * SIM_HIST_SUB +
                   (uint32_t)((v >> shift) - SIM_HIST_SUB);
    return idx < SIM_HIST_BUCKETS ? idx : SIM_HIST_BUCKETS - 1;
}

void sim_hist_range(uint32_t idx, uint64_t *lo, uint64_t *hi)
{
    if (idx < 128) { *lo = *hi = idx; return; }
    uint32_t shift = (idx - 128) / SIM_HIST_SUB + 1;
    uint64_t mant = (idx - 128) % SIM_HIST_SUB + SIM_HIST_SUB;
    *lo = mant << shift;
    *hi = ((mant + 1) << shift) - 1;
}

void sim_hist_add(sim_hist_t *h, uint64_t us)
{
    sim_add(&h->b[sim_hist_index(us)], 1);
    sim_add(&h->count, 1);
    sim_add(&h->sum, us);
    if (us > sim_get(&h->max))
        atomic_store_explicit(&h->max, us, memory_order_relaxed);
}

void sim_hist_snap_add(sim_hist_snap_t *s, const sim_hist_t *h)
{
    for (uint32_t i = 0; i < SIM_HIST_BUCKETS; i++) s->b[i] += sim_get(&h->b[i]);
    s->count += sim_get(&h->count);
    s->sum += sim_get(&h->sum);
    uint64_t m = sim_get(&h->max);
    if (m > s->max) s->max = m;
}

void sim_hist_snap_sub(sim_hist_snap_t *out, const sim_hist_snap_t *a,
                       const sim_hist_snap_t *b)
{
    uint64_t count = 0, hi = 0;
    for (uint32_t i = 0; i < SIM_HIST_BUCKETS; i++) {
        out->b[i] = a->b[i] >= b->b[i] ? a->b[i] - b->b[i] : 0;
        if (out->b[i]) { count += out->b[i]; hi = i; }
    }
    out->count = count;
    out->sum = a->sum >= b->sum ? a->sum - b->sum : 0;
    /* The interval's max is only known to bucket precision. */
    uint64_t lo, top;
    sim_hist_range((uint32_t)hi, &lo, &top);
    out->max = count ? (top < a->max ? top : a->max) : 0;
}

uint64_t sim_hist_quantile(const sim_hist_snap_t *s, double q)
{
    if (!s->count) return 0;
    if (q < 0) q = 0;
    if (q > 1) q = 1;
    uint64_t rank = (uint64_t)(q * (double)s->count + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > s->count) rank = s->count;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < SIM_HIST_BUCKETS; i++) {
        seen += s->b[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            sim_hist_range(i, &lo, &hi);
            uint64_t v = lo + (hi - lo) / 2;
            return v < s->max ? v : s->max;
        }
    }
    return s->max;
}

void sim_code_add(sim_code_count_t *t, const char *code, size_t len, uint64_t n)
{
    char c[sizeof t[0].code];
    if (len >= sizeof c) len = sizeof c - 1;
    /* Codes end up as JSON keys: keep them to [A-Za-z0-9._-]. */
    for (size_t i = 0; i < len; i++) {
        char x = code[i];
        c[i] = (x >= 'a' && x <= 'z') || (x >= 'A' && x <= 'Z') || (x >= '0' && x <= '9') ||
               x == '.' || x == '_' || x == '-' ? x : '_';
    }
    c[len] = '\0';
    for (int i = 0; i < SIM_CODE_SLOTS; i++) {
        if (t[i].n == 0) {
            memcpy(t[i].code, c, len + 1);
            t[i].n = n;
            return;
        }
        if (strcmp(t[i].code, c) == 0) {
            t[i].n += n;
            return;
        }
    }
    /* Table full: fold into the last slot as "other". */
    strcpy(t[SIM_CODE_SLOTS - 1].code, "other");
    t[SIM_CODE_SLOTS - 1].n += n;
}

void sim_code_inc(sim_code_count_t *t, const char *code, size_t len)
{
    sim_code_add(t, code, len, 1);
}
