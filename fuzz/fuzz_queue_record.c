/* fuzz_queue_record.c - libFuzzer target for the Queue message decoder
 * (queue/record_json.c). Arbitrary bytes must never crash; a message that
 * decodes must carry a valid drone id and pass dg_record_validate(), and
 * re-encoding it must decode to the same record (round trip). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "../src/queue/queue.h"
#include "../src/codec/validate.h"

static int same(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dg_record_t r, o; char err[160];
    if (dg_queue_decode_json((const char *)data, size, &r, err, sizeof err) != 0) {
        if (err[0] == '\0') abort();
        return 0;
    }
    const char *field; char msg[160];
    if (!dg_drone_id_valid(r.drone_id, r.drone_id_len)) abort();
    if (dg_record_validate(&r, &field, msg, sizeof msg) != 0) abort();
    dg_buf_t b = {0};
    dg_queue_encode_json(&r, &b);
    if (dg_queue_decode_json((const char *)b.data, b.len, &o, err, sizeof err) != 0) abort();
    if (o.seq != r.seq || o.ts_ms != r.ts_ms || o.recv_us != r.recv_us ||
        !same(o.lat, r.lat) || !same(o.lon, r.lon) || !same(o.alt, r.alt) ||
        !same(o.speed, r.speed) || !same(o.heading, r.heading) ||
        !same(o.climb, r.climb) || !same(o.battery, r.battery) ||
        o.flags != r.flags || strcmp(o.drone_id, r.drone_id) || strcmp(o.status, r.status))
        abort();
    dg_buf_free(&b);
    return 0;
}
