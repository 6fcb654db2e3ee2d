/* fuzz_grpc_frame.c - libFuzzer target for the gRPC length-prefixed message
 * framing (dg_grpc_frame): split arbitrary bytes into messages the way
 * grpc.c does. Invariants: a complete message lies inside the input, never
 * exceeds max; the split consumes the input front to back and stops at the
 * first incomplete, compressed or oversized message; each message found is
 * then decoded as a DroneMessage (codec/pb_telemetry.c) without a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/pb_telemetry.h"
#include "grpc/grpc.h"

static void on_record(void *ud, const dg_record_t *r) { (void)ud; (void)r; }
static void on_error(void *ud, const dg_decode_error_t *e) { (void)ud; (void)e; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    size_t max = size ? buf[0] * 16u : 64;
    size_t off = 0;
    dg_decode_sink_t sink = { on_record, on_error, NULL, NULL, NULL };
    for (;;) {
        long len = dg_grpc_frame(buf + off, size - off, max);
        if (len < 0) {
            if (len == DG_GRPC_MORE && size - off >= 5 && buf[off] == 0) {
                uint32_t want = (uint32_t)buf[off + 1] << 24 | (uint32_t)buf[off + 2] << 16 |
                                (uint32_t)buf[off + 3] << 8 | buf[off + 4];
                if (want <= max && size - off - 5 >= want) abort();   /* was complete */
            }
            if (len == DG_GRPC_COMPRESSED && buf[off] == 0) abort();
            if (len != DG_GRPC_MORE && len != DG_GRPC_COMPRESSED && len != DG_GRPC_TOO_BIG) abort();
            break;
        }
        if ((size_t)len > max || off + 5 + (size_t)len > size) abort();
        dg_pb_decode(buf + off + 5, (size_t)len, 0, 0, &sink);
        off += 5 + (size_t)len;
    }
    free(buf);
    return 0;
}
