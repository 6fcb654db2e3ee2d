/* fuzz_mavlink.c - libFuzzer target for src/mavlink framing: arbitrary bytes
 * into dg_mav_scan; every accepted frame must re-encode (v2) and decode back
 * to the same msgid/sysid/payload, and what the endpoint makes of it (the
 * vehicle state, rows) must hold. */
#include <stdint.h>
#include <string.h>

#include "mavlink/mavlink.h"
#include "mavlink/vehicle.h"
#include "codec/validate.h"

static dg_mav_state_t state;

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void on_frame(const dg_mav_frame_t *f, void *ud)
{
    (void)ud;
    uint8_t out[12 + 255];
    uint8_t ml = 0;
    CHECK(dg_mav_crc_extra(f->msgid, &ml) >= 0);
    int n = dg_mav_encode_v2(out, f->seq, f->sysid, f->compid, f->msgid, f->payload, f->len);
    CHECK(n > 0);
    dg_mav_frame_t g; size_t used;
    CHECK(dg_mav_decode(out, (size_t)n, &g, &used) == DG_MAV_OK);
    CHECK((int)used == n && g.msgid == f->msgid && g.sysid == f->sysid);
    CHECK(memcmp(g.payload, f->payload, sizeof g.payload) == 0);
    /* what the endpoint makes of it: a row (validated like the endpoint does) */
    dg_record_t r;
    if (dg_mav_state_apply(&state, f, 1000, 0, &r)) {
        const char *field; char msg[160];
        (void)dg_record_validate(&r, &field, msg, sizeof msg);
        CHECK(r.status_len <= DG_STATUS_MAX && r.status[r.status_len] == '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dg_mav_stats_t st;
    dg_mav_state_init(&state);
    int ok = dg_mav_scan_stats(data, size, on_frame, NULL, &st);
    CHECK(ok >= 0 && (unsigned)ok == st.ok && st.ok <= size / 8);
    return 0;
}
