/* fuzz_ws.c - libFuzzer target for src/ws: arbitrary client bytes into a
 * WebSocket session, plus the pure frame/UTF-8 functions.
 *
 * Besides "no crash, no leak, no UB", it checks a differential property:
 * the same input fed in one call, in 4 chunks split at points derived from
 * the data, and (for inputs <= 512 bytes) one byte at a time must give the
 * same result code, the same messages, the same bytes sent and the same
 * close/pong callbacks. Delivered TEXT must be valid UTF-8 and no message may
 * exceed max_message. Behaviour of the callbacks (return 1008, call
 * dg_ws_close, make `send` fail) is decided by message content or by a hash
 * of the input, so every feeding pattern sees the same decisions.
 *
 * Run: see scripts/run-fuzz.sh (corpus fuzz/corpus/ws, dictionary fuzz/ws.dict).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws/ws.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

typedef struct fz {
    uint64_t h;            /* hash of every event, in order */
    dg_ws_session_t *s;
    uint64_t max;
    unsigned sends;
    unsigned fail_send_at; /* 0 = never */
} fz_t;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t mix_u(uint64_t h, uint64_t v) { return mix(h, &v, sizeof(v)); }

static const dg_ws_callbacks_t CB;

static int on_message(void *ud, int op, uint8_t *data, size_t len)
{
    fz_t *z = ud;
    CHECK(op == DG_WS_OP_TEXT || op == DG_WS_OP_BINARY);
    CHECK(data != NULL);
    CHECK(len <= z->max);
    if (op == DG_WS_OP_TEXT) CHECK(dg_utf8_update(DG_UTF8_ACCEPT, data, len) == DG_UTF8_ACCEPT);
    z->h = mix(mix_u(mix_u(z->h, 1), (uint64_t)op << 32 | len), data, len);
    if (len) data[len - 1] ^= 0;  /* the callee may write to data */
    if (len && data[0] == '!') return DG_WS_CLOSE_POLICY;
    if (len && data[0] == '~') dg_ws_close(z->s, DG_WS_CLOSE_GOING_AWAY, "drain", &CB, z);
    if (len && data[0] == '?') return 5000;  /* not sendable: becomes 1011 */
    return 0;
}

static int on_send(void *ud, const void *data, size_t len)
{
    fz_t *z = ud;
    z->sends++;
    z->h = mix(mix_u(z->h, 2), data, len);
    if (z->fail_send_at && z->sends == z->fail_send_at) return -1;
    return 0;
}

static void on_close(void *ud, uint16_t code, const char *reason, size_t len)
{
    fz_t *z = ud;
    CHECK(code == DG_WS_CLOSE_NO_STATUS || dg_ws_close_code_valid(code));
    CHECK(len <= 123);
    CHECK(dg_utf8_update(DG_UTF8_ACCEPT, (const uint8_t *)reason, len) == DG_UTF8_ACCEPT);
    z->h = mix(mix_u(mix_u(z->h, 3), code), reason, len);
}

static void on_pong(void *ud)
{
    fz_t *z = ud;
    z->h = mix_u(z->h, 4);
}

static const dg_ws_callbacks_t CB = { on_message, on_send, on_close, on_pong };

/* Feed data cut at cuts[0..ncut) (ascending). Returns the result code;
 * *hash gets the event hash (result included). */
static int run(const uint8_t *data, size_t size, const size_t *cuts, size_t ncut,
               uint64_t max, unsigned fail_send_at, uint64_t *hash)
{
    uint8_t *buf = malloc(size ? size : 1);
    dg_ws_session_t s;
    fz_t z = { .h = 0xcbf29ce484222325ull, .s = &s, .max = max, .fail_send_at = fail_send_at };
    int rc = 0;
    size_t from = 0;

    if (size) memcpy(buf, data, size);
    dg_ws_session_init(&s, max);
    for (size_t k = 0; k <= ncut && rc == 0; k++) {
        size_t to = k < ncut ? cuts[k] : size;
        rc = dg_ws_feed(&s, buf + from, to - from, &CB, &z);
        CHECK(rc == 0 || (rc >= 1000 && rc <= 4999));
        CHECK(s.hdr_have < sizeof(s.hdr));
        CHECK(s.msg_len <= s.msg_cap && s.msg_cap <= max);
        from = to;
    }
    if (rc) {
        /* once over: the same code, nothing processed, nothing sent */
        uint64_t before = z.h;
        CHECK(dg_ws_feed(&s, buf, size, &CB, &z) == rc);
        CHECK(z.h == before);
        CHECK(s.msg == NULL);
    }
    dg_ws_session_free(&s);
    free(buf);
    *hash = mix_u(z.h, (uint64_t)rc);
    return rc;
}

static void pure_functions(const uint8_t *data, size_t size, uint64_t h0)
{
    dg_ws_frame_t f;
    int r = dg_ws_parse_header(data, size, &f);
    CHECK(r == -1 || r == DG_WS_INCOMPLETE || (r >= 2 && r <= 14 && (size_t)r <= size));
    if (r > 0) {
        CHECK(f.hdr_len == r && f.rsv < 8 && f.opcode < 16);
        CHECK(f.len < (1ull << 63));
        uint8_t w[10];
        size_t wl = dg_ws_write_header(w, f.opcode, f.len);
        dg_ws_frame_t g;
        CHECK(dg_ws_parse_header(w, wl, &g) == (int)wl && g.len == f.len && g.opcode == f.opcode);
    }

    /* UTF-8: one pass equals two passes split anywhere */
    size_t cut = size ? (size_t)(h0 % (size + 1)) : 0;
    uint32_t a = dg_utf8_update(DG_UTF8_ACCEPT, data, size);
    uint32_t b = dg_utf8_update(dg_utf8_update(DG_UTF8_ACCEPT, data, cut), data + cut, size - cut);
    CHECK(a == b);

    /* unmask: word-at-a-time equals the byte loop at any offset */
    if (size >= 4) {
        uint8_t *x = malloc(size), *y = malloc(size);
        uint64_t off = h0 >> 8;
        memcpy(x, data, size);
        memcpy(y, data, size);
        dg_ws_unmask(x + cut / 2, size - cut / 2, data, off);
        for (size_t i = cut / 2; i < size; i++) y[i] ^= data[(off + (i - cut / 2)) & 3];
        CHECK(memcmp(x, y, size) == 0);
        free(x);
        free(y);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h0 = mix(0xcbf29ce484222325ull, data, size);
    uint64_t max = (h0 & 3) == 0 ? 100 : DG_WS_MAX_MESSAGE_DEFAULT;
    unsigned fail_at = (h0 & 0x70) == 0 ? (unsigned)(h0 >> 40) % 4 + 1 : 0;
    uint64_t ha, hb, hc;

    pure_functions(data, size, h0);

    int ra = run(data, size, NULL, 0, max, fail_at, &ha);

    size_t cuts[3];
    for (int k = 0; k < 3; k++) cuts[k] = size ? (size_t)((h0 >> (16 * k)) % (size + 1)) : 0;
    for (int i = 0; i < 3; i++)        /* sort the three cut points */
        for (int j = i + 1; j < 3; j++)
            if (cuts[j] < cuts[i]) { size_t t = cuts[i]; cuts[i] = cuts[j]; cuts[j] = t; }
    int rb = run(data, size, cuts, 3, max, fail_at, &hb);
    CHECK(ra == rb && ha == hb);

    if (size <= 512) {
        size_t every[512];
        for (size_t i = 0; i < size; i++) every[i] = i + 1;
        int rc = run(data, size, every, size ? size - 1 : 0, max, fail_at, &hc);
        CHECK(ra == rc && ha == hc);
    }
    return 0;
}
