/* bench_mavlink.c - MAVLink framing decode speed: a datagram of 10
 * GLOBAL_POSITION_INT v2 frames scanned N times; prints frames/s.
 * Run: make build/bench/bench_mavlink && build/bench/bench_mavlink [iters] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mavlink/mavlink.h"

static unsigned long sink;
static void on_frame(const dg_mav_frame_t *f, void *ud)
{
    (void)ud;
    dg_mav_gpi_t g;
    dg_mav_get_gpi(f, &g);
    sink += (unsigned long)g.lat;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 200000;
    uint8_t buf[10 * 40], p[28];
    size_t n = 0;
    for (int i = 0; i < 10; i++) {
        for (int j = 0; j < 28; j++) p[j] = (uint8_t)(i * 31 + j + 1);
        n += (size_t)dg_mav_encode_v2(buf + n, (uint8_t)i, 1, 1, 33, p, sizeof p);
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    long frames = 0;
    for (long k = 0; k < iters; k++) frames += dg_mav_scan(buf, n, on_frame, NULL, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("bench_mavlink: %ld frames in %.3f s: %.2f M frames/s (sink %lu)\n", frames, s, frames / s / 1e6, sink);
    return 0;
}
