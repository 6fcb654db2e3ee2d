/* fuzz_json_fast.c - differential libFuzzer target: the JSON decoder with its
 * single-pass fast path (json_fast.c, falling back to the full decoder) vs
 * the full decoder alone (dg_json_decoder_set_fast(d, false)).
 *
 *   make build/fuzz/fuzz_json_fast
 *   ./build/fuzz/fuzz_json_fast -dict=fuzz/telemetry.dict fuzz/corpus/json_fast
 *
 * Every sink call is logged in order, field by field (decode_log.h: records
 * bit for bit, NaNs included; errors: code, field, seq, has_seq, message;
 * command acks: id, status, message; each stop() query), and the two logs
 * and return values must be identical, else abort. Each input runs in two setups:
 *   A  default token limit, no stop;
 *   B  a token limit of 40 (frames over it must be refused alike) and a
 *      stop() that ends the batch after k records (k from the input's size).
 * The fast decoder's work counter must stay linear (<= 70 units/byte + 64).
 * At start-up the worst-case frames of bench/worst_frames.h (1 MiB each) and
 * a few fast-shape frames (the benchmark's batch of 100) run through the
 * same comparison once.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_telemetry.h"
#include "decode_log.h"
#include "../bench/worst_frames.h"

#define NOW_MS  INT64_C(1795514400000)
#define RECV_US INT64_C(1795514400000777)

#define FZ_ASSERT(c) do { if (!(c)) { fprintf(stderr, "invariant failed: %s (%s:%d)\n", \
    #c, __FILE__, __LINE__); abort(); } } while (0)

static dg_json_decoder_t *fast_a, *full_a, *fast_b, *full_b;
static dg_dlog_t la, lb;

static int run(dg_json_decoder_t *d, dg_dlog_t *l, const char *buf, size_t size, long stop_after)
{
    dg_decode_sink_t sink = dg_dlog_sink(l, stop_after);
    return dg_json_decode(d, buf, size, NOW_MS, RECV_US, &sink);
}

static void compare(dg_json_decoder_t *fast, dg_json_decoder_t *full, const char *buf, size_t size,
                    long stop_after)
{
    int rf = run(fast, &la, buf, size, stop_after);
    int rs = run(full, &lb, buf, size, stop_after);
    if (rf != rs || !dg_dlog_equal(&la, &lb)) {
        fprintf(stderr, "fast path differs: rc %d vs %d, log %zu vs %zu bytes, frame %.*s\n",
                rf, rs, la.len, lb.len, (int)(size < 300 ? size : 300), buf);
        abort();
    }
    FZ_ASSERT(dg_json_decoder_work(fast) <= 70 * (uint64_t)size + 64);
}

static void compare_both(const char *buf, size_t size)
{
    compare(fast_a, full_a, buf, size, -1);
    compare(fast_b, full_b, buf, size, (long)(size % 5));
}

static void seeds(void)
{
    char *buf = malloc(DG_WORST_SIZE + 1);
    FZ_ASSERT(buf);
    for (int kind = 0; kind < DG_WORST_KINDS; kind++) {
        size_t n = dg_worst_frame(kind, buf);
        compare(fast_a, full_a, buf, n, -1);
    }
    /* the benchmark's batch of 100, and with stops at every point */
    size_t n = dg_batch100_frame(buf, DG_WORST_SIZE);
    for (long stop = -1; stop <= 101; stop++) compare(fast_a, full_a, buf, n, stop);
    compare(fast_b, full_b, buf, n, -1);    /* over the small token limit */
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fast_a) {
        fast_a = dg_json_decoder_new(0);
        full_a = dg_json_decoder_new(0);
        fast_b = dg_json_decoder_new(40);
        full_b = dg_json_decoder_new(40);
        FZ_ASSERT(fast_a && full_a && fast_b && full_b);
        dg_json_decoder_set_fast(full_a, false);
        dg_json_decoder_set_fast(full_b, false);
        seeds();
    }
    /* a private copy, so ASan catches any read past `size` */
    char *buf = malloc(size ? size : 1);
    FZ_ASSERT(buf);
    memcpy(buf, data, size);
    compare_both(buf, size);
    free(buf);
    return 0;
}
