/* Worst-case decoder inputs (issue 8 1.2), shared by bench/bench_decode.c
 * (ns/byte, work/byte) and tests/unit/test_codec.c (decode_work_is_linear:
 * the decoder's deterministic work counter must stay linear in the size).
 * One definition so the bench measures exactly what the test bounds. */
#ifndef DG_BENCH_WORST_FRAMES_H
#define DG_BENCH_WORST_FRAMES_H

#include <stdio.h>
#include <string.h>

#define DG_WORST_SIZE  (1u << 20)
#define DG_WORST_KINDS 6

static const char *const dg_worst_name[DG_WORST_KINDS] = {
    "deep", "deep-at-limit", "tiny-tokens", "escapes", "huge-number", "invalid-objects"
};

/* Fills buf (DG_WORST_SIZE + 1 bytes) with worst case `kind`; returns the length. */
static inline size_t dg_worst_frame(int kind, char *buf)
{
    static const char lla[] = "\"latitude\":47.397742,\"longitude\":8.545594,\"altitude\":488.2";
    size_t n = 0, cap = DG_WORST_SIZE;
    switch (kind) {
    case 0:                                           /* 1 MB of nesting: [[[[...]]]] */
        memset(buf, '[', cap / 2);
        memset(buf + cap / 2, ']', cap / 2);
        return cap;
    case 1:                                           /* nesting at the limit, repeated */
        buf[n++] = '[';
        while (n + 200 < cap) {
            if (n > 1) buf[n++] = ',';
            for (int k = 0; k < 63; k++) buf[n++] = '[';
            for (int k = 0; k < 63; k++) buf[n++] = ']';
        }
        buf[n++] = ']';
        return n;
    case 2:                                           /* many tiny tokens: [0,0,0,...] */
        buf[n++] = '[';
        while (n + 4 < cap) { buf[n++] = '0'; buf[n++] = ','; }
        buf[n++] = '0';
        buf[n++] = ']';
        return n;
    case 3:                                           /* a long string of escapes */
        n += (size_t)snprintf(buf, cap, "{%s,\"x\":\"", lla);
        while (n + 16 < cap) { memcpy(buf + n, "\\u00e9\\n", 8); n += 8; }
        buf[n++] = '"';
        buf[n++] = '}';
        return n;
    case 4:                                           /* a huge number in an unknown field */
        n += (size_t)snprintf(buf, cap, "{%s,\"x\":1", lla);
        memset(buf + n, '7', cap - n - 1);
        n = cap - 1;
        buf[n++] = '}';
        return n;
    default:                                          /* ~95,000 objects that fail validation */
        buf[n++] = '[';
        while (n + 16 < cap) {
            if (n > 1) buf[n++] = ',';
            memcpy(buf + n, "{\"seq\":-1}", 10);
            n += 10;
        }
        buf[n++] = ']';
        return n;
    }
}

/* The common case, for comparison: bench_decode's batch100 (100 full
 * telemetry objects with varying values, ~18.7 KB) into buf[0..cap); returns
 * the length (cap >= 20,000). Also a fast-path input of test_json_fast.c and
 * fuzz_json_fast.c. */
static inline size_t dg_batch100_frame(char *buf, size_t cap)
{
    size_t n = 0;
    buf[n++] = '[';
    for (int k = 0; k < 100; k++) {
        n += (size_t)snprintf(buf + n, cap - n,
            "%s{\"seq\":%d,\"timestamp\":\"2026-11-24T10:00:%02d.%03dZ\","
            "\"latitude\":%.6f,\"longitude\":%.6f,\"altitude\":%.1f,"
            "\"speed\":%.1f,\"heading\":%.1f,\"climb\":%.1f,\"battery\":%.1f,"
            "\"status\":\"airborne\"}",
            k ? "," : "", 1000 + k, k % 60, (k * 37) % 1000,
            47.397742 + k * 1e-5, 8.545594 - k * 1e-5, 488.2 + k * 0.1,
            12.5 + k % 7, (double)((k * 13) % 360), -0.4 + k % 3 * 0.2, 76.5 - k * 0.05);
    }
    buf[n++] = ']';
    return n;
}

#endif
