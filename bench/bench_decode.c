/* bench_decode.c - throughput of the JSON telemetry decoder (codec layer only).
 *
 *   bench_decode [N]    N = messages per case (default 2000000)
 *
 * Cases, each decoding the same frame repeatedly with one reused decoder on
 * one thread (what a worker does), every record validated and delivered to
 * a sink that touches it:
 *   single    one full telemetry object per frame (the contract's example)
 *   batch100  an array of 100 full objects per frame (varying values)
 *   minimal   one object with only seq + the required fields
 * each twice: with the single-pass fast path (json_fast.c, the default) and
 * with the full decoder only ("/full": dg_json_decoder_set_fast(d, false)).
 * Worst cases (issue 8 1.2: decode cost must be linear in the frame size for
 * every input), 1 MiB frames each, printed as ns/byte (thread CPU time) and
 * the decoder's work units per byte (dg_json_decoder_work):
 *   deep          [[[[...]]]] (refused by the pre-scan at level 65)
 *   deep-limit    arrays nested 63 deep, repeated (the most parent-link steps)
 *   tiny-tokens   [0,0,0,...] (~500,000 tokens; elements are not objects)
 *   escapes       one string of \u00e9\n escapes
 *   huge-number   a 1 MB number in an unknown field
 *   invalid-objs  ~95,000 objects with a bad seq (one error each)
 * Prints msgs/s and MB/s of JSON input, by wall clock and by the thread's CPU
 * time (the latter is steadier on a shared machine: time spent descheduled
 * is not counted, cache and SMT interference still is). Targets (see docs): >= 1,000,000
 * msgs/s in batches and enough headroom for 300,000 msgs/s single-message
 * frames once the WebSocket and store layers add their cost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/json_telemetry.h"
#include "worst_frames.h"           /* dg_worst_frame: shared with tests/unit/test_codec.c */

typedef struct stats { long records, errors; double sum; } stats_t;

static void on_record(void *ud, const dg_record_t *r)
{
    stats_t *s = ud;
    s->records++;
    s->sum += r->lat + r->alt + (double)r->seq;
}

static void on_error(void *ud, const dg_decode_error_t *e)
{
    stats_t *s = ud;
    if (s->errors++ == 0) fprintf(stderr, "bench: unexpected error: %s\n", e->message);
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(const char *name, dg_json_decoder_t *d, const char *frame, size_t len,
               int per_frame, long msgs)
{
    stats_t st = { 0, 0, 0 };
    dg_decode_sink_t sink = { .on_record = on_record, .on_error = on_error, .on_command_ack = NULL, .ud = &st };
    long frames = msgs / per_frame;
    if (frames < 1) frames = 1;
    /* warm up: grows the token array, faults in the pages */
    for (int i = 0; i < 100; i++) dg_json_decode(d, frame, len, 0, 0, &sink);
    st.records = 0;
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < frames; i++) {
        int rc = dg_json_decode(d, frame, len, 1795514400000, 1795514400000000, &sink);
        if (rc != per_frame) { fprintf(stderr, "bench: %s: rc %d\n", name, rc); return -1; }
    }
    double dt = clock_s(CLOCK_MONOTONIC) - t0, ct = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    double n = (double)frames * per_frame;
    printf("%-14s %5zu B/frame %3d msgs/frame  %9.0f msgs/s  %6.1f MB/s  %5.0f ns/msg"
           "  | on-CPU: %9.0f msgs/s  %6.1f MB/s  (%ld msgs, %.2f s wall)\n",
           name, len, per_frame, n / dt, (double)frames * (double)len / dt / 1e6, dt / n * 1e9,
           n / ct, (double)frames * (double)len / ct / 1e6, st.records, dt);
    return st.errors ? -1 : 0;
}

static void on_error_quiet(void *ud, const dg_decode_error_t *e)
{
    stats_t *s = ud;
    (void)e;
    s->errors++;
}

#define WORST_SIZE DG_WORST_SIZE

static void run_worst(dg_json_decoder_t *d, long msgs)
{
    char *buf = malloc(WORST_SIZE + 1);
    if (!buf) return;
    long reps = msgs / 20000;               /* 2,000,000 -> 100 frames of 1 MiB per case */
    if (reps < 3) reps = 3;
    for (int kind = 0; kind < DG_WORST_KINDS; kind++) {
        size_t n = dg_worst_frame(kind, buf);
        stats_t st = { 0, 0, 0 };
        dg_decode_sink_t sink = { .on_record = on_record, .on_error = on_error_quiet, .on_command_ack = NULL, .ud = &st };
        dg_json_decode(d, buf, n, 0, 0, &sink);          /* warm up */
        double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        for (long i = 0; i < reps; i++) dg_json_decode(d, buf, n, 1795514400000, 0, &sink);
        double ct = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        printf("worst %-15s %7zu B  %7.2f ns/byte  %5.2f work/byte  %8.2f ms/frame  (%ld frames)\n",
               dg_worst_name[kind], n, ct / (double)reps / (double)n * 1e9,
               (double)dg_json_decoder_work(d) / (double)n, ct / (double)reps * 1e3, reps);
    }
    free(buf);
}

int main(int argc, char **argv)
{
    long msgs = argc > 1 ? atol(argv[1]) : 2000000;
    if (msgs < 100) msgs = 100;

    const char *single =
        "{\"seq\": 42, \"timestamp\": \"2026-11-24T10:00:00.123Z\", "
        "\"latitude\": 47.397742, \"longitude\": 8.545594, \"altitude\": 488.2, "
        "\"speed\": 12.5, \"heading\": 271.0, \"climb\": -0.4, \"battery\": 76.5, "
        "\"status\": \"airborne\"}";
    const char *minimal = "{\"seq\":42,\"latitude\":47.397742,\"longitude\":8.545594,\"altitude\":488.2}";

    size_t cap = 64 * 1024;
    char *batch = malloc(cap);
    if (!batch) return 1;
    size_t n = dg_batch100_frame(batch, cap);

    dg_json_decoder_t *d = dg_json_decoder_new(1 << 16);
    if (!d) return 1;
    int rc = 0;
    for (int full = 0; full < 2; full++) {
        dg_json_decoder_set_fast(d, !full);
        rc |= run(full ? "single/full" : "single", d, single, strlen(single), 1, msgs);
        rc |= run(full ? "batch100/full" : "batch100", d, batch, n, 100, msgs);
        rc |= run(full ? "minimal/full" : "minimal", d, minimal, strlen(minimal), 1, msgs);
    }
    dg_json_decoder_free(d);
    d = dg_json_decoder_new(0);             /* the server's default token limit */
    if (!d) return 1;
    run_worst(d, msgs);
    dg_json_decoder_free(d);
    free(batch);
    return rc ? 1 : 0;
}
