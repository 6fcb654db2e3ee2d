/* test_ws.c - unit tests for src/ws: frame headers, unmasking, accept key,
 * UTF-8 validation, and the session state machine fed with hand-built masked
 * client frames (see mkframe). Single-threaded; no sockets.
 */
#include "check.h"

#include <stdlib.h>

#include "core/buf.h"
#include "ws/ws.h"

static const uint8_t MASK[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* ---- helpers ---- */

/* Build one client frame into out (header + masked payload). Returns its size.
 * len7 >= 0 forces the 7-bit length field (for non-minimal or bogus
 * encodings); -1 picks the minimal one. */
static size_t mkframe_x(uint8_t *out, int fin, int rsv, int op, int masked,
                        const void *payload, size_t len, int len7)
{
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (op & 0x0f));
    if (len7 < 0) len7 = len < 126 ? (int)len : len <= 0xffff ? 126 : 127;
    out[h++] = (uint8_t)((masked ? 0x80 : 0) | len7);
    if (len7 == 126) {
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else if (len7 == 127) {
        for (int i = 0; i < 8; i++) out[h++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (masked) { memcpy(out + h, MASK, 4); h += 4; }
    if (payload && len) {
        memcpy(out + h, payload, len);
        if (masked)
            for (size_t i = 0; i < len; i++) out[h + i] ^= MASK[i & 3];
    }
    return h + (payload ? len : 0);
}

static size_t mkframe(uint8_t *out, int fin, int op, const void *payload, size_t len)
{
    return mkframe_x(out, fin, 0, op, 1, payload, len, -1);
}

/* What the callbacks saw. */
typedef struct rec {
    int       nmsg;
    int       ops[16];
    size_t    lens[16];
    dg_buf_t  msgs;        /* all message payloads, concatenated */
    dg_buf_t  out;         /* all bytes the session sent */
    int       nclose;
    uint16_t  close_code;
    char      reason[128];
    size_t    reason_len;
    int       npong;
    int       ret;         /* what on_message returns */
    int       send_fail;   /* send returns -1 */
    int       close_in_msg; /* on_message calls dg_ws_close(1001) */
    dg_ws_session_t *s;
    const uint8_t *lo, *hi; /* the fed buffer, to check zero copy */
    int       zero_copy;   /* messages whose data lay inside [lo, hi) */
} rec_t;

static int on_message(void *ud, int op, uint8_t *data, size_t len);
static int on_send(void *ud, const void *data, size_t len)
{
    rec_t *r = ud;
    if (r->send_fail) return -1;
    return dg_buf_append(&r->out, data, len) ? -1 : 0;
}
static void on_close(void *ud, uint16_t code, const char *reason, size_t len)
{
    rec_t *r = ud;
    r->nclose++;
    r->close_code = code;
    r->reason_len = len < sizeof(r->reason) ? len : sizeof(r->reason) - 1;
    memcpy(r->reason, reason, r->reason_len);
}
static void on_pong(void *ud) { ((rec_t *)ud)->npong++; }

static const dg_ws_callbacks_t CB = { on_message, on_send, on_close, on_pong };

static int on_message(void *ud, int op, uint8_t *data, size_t len)
{
    rec_t *r = ud;
    if (r->nmsg < 16) { r->ops[r->nmsg] = op; r->lens[r->nmsg] = len; }
    r->nmsg++;
    if (data >= r->lo && data + len <= r->hi && len) r->zero_copy++;
    dg_buf_append(&r->msgs, data, len);
    if (r->close_in_msg) dg_ws_close(r->s, DG_WS_CLOSE_GOING_AWAY, "bye", &CB, r);
    return r->ret;
}

static void rec_free(rec_t *r)
{
    dg_buf_free(&r->msgs);
    dg_buf_free(&r->out);
}

/* Feed all of p (copied: the session unmasks in place) in one call. */
static int feed(dg_ws_session_t *s, rec_t *r, const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, p, n);
    r->lo = c; r->hi = c + n;
    int rc = dg_ws_feed(s, c, n, &CB, r);
    r->lo = r->hi = NULL;
    free(c);
    return rc;
}

/* Feed p in chunks of `chunk` bytes; returns the first non-zero result. */
static int feed_chunks(dg_ws_session_t *s, rec_t *r, const uint8_t *p, size_t n, size_t chunk)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += chunk)
        rc = feed(s, r, p + i, n - i < chunk ? n - i : chunk);
    return rc;
}

/* The k-th frame the server sent (unmasked). 0 or -1 if there is none. */
static int sent_frame(const rec_t *r, int k, int *op, const uint8_t **pl, size_t *len)
{
    const uint8_t *p = (const uint8_t *)r->out.data;
    size_t n = r->out.len, i = 0;
    for (int idx = 0; i < n; idx++) {
        dg_ws_frame_t f;
        int h = dg_ws_parse_header(p + i, n - i, &f);
        if (h <= 0 || f.masked || !f.fin || f.len > n - i - (size_t)h) return -1;
        if (idx == k) {
            *op = f.opcode; *pl = p + i + h; *len = (size_t)f.len;
            return 0;
        }
        i += (size_t)h + (size_t)f.len;
    }
    return -1;
}

static int sent_count(const rec_t *r)
{
    int op, k = 0;
    const uint8_t *pl;
    size_t len;
    while (sent_frame(r, k, &op, &pl, &len) == 0) k++;
    return k;
}

/* The code of the last close frame sent: 1005 for an empty close, 0 if none. */
static int sent_close_code(const rec_t *r)
{
    int op, code = 0;
    const uint8_t *pl;
    size_t len;
    for (int k = 0; sent_frame(r, k, &op, &pl, &len) == 0; k++)
        if (op == DG_WS_OP_CLOSE) code = len >= 2 ? (pl[0] << 8 | pl[1]) : 1005;
    return code;
}

/* Run one stream through a fresh session; expect `want` as the result. */
static int run_stream(rec_t *r, const uint8_t *p, size_t n, uint64_t max)
{
    dg_ws_session_t s;
    dg_ws_session_init(&s, max);
    r->s = &s;
    int rc = feed(&s, r, p, n);
    dg_ws_session_free(&s);
    r->s = NULL;
    return rc;
}

/* ---- frame level ---- */

TEST(header_lengths)
{
    static const uint64_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536,
                                     (1ull << 32) + 5, (1ull << 63) - 1 };
    static const int hl[] = { 6, 6, 6, 8, 8, 8, 14, 14, 14 };
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        uint8_t b[14];
        size_t n = mkframe_x(b, 1, 0, DG_WS_OP_BINARY, 1, NULL, (size_t)lens[k], -1);
        ASSERT_EQ(n, hl[k]);
        dg_ws_frame_t f;
        ASSERT_EQ(dg_ws_parse_header(b, n, &f), hl[k]);
        ASSERT_U64_EQ(f.len, lens[k]);
        ASSERT_EQ(f.hdr_len, hl[k]);
        ASSERT_EQ(f.fin, 1);
        ASSERT_EQ(f.rsv, 0);
        ASSERT_EQ(f.opcode, DG_WS_OP_BINARY);
        ASSERT_EQ(f.masked, 1);
        ASSERT_MEM_EQ(f.mask, MASK, 4);
        /* more bytes after the header do not change the answer */
        uint8_t big[32] = { 0 };
        memcpy(big, b, n);
        ASSERT_EQ(dg_ws_parse_header(big, sizeof(big), &f), hl[k]);

        /* server side writer, same lengths */
        uint8_t w[10];
        size_t wl = dg_ws_write_header(w, DG_WS_OP_TEXT, lens[k]);
        ASSERT_EQ(wl, hl[k] - 4);
        ASSERT_EQ(dg_ws_parse_header(w, wl, &f), (int)wl);
        ASSERT_U64_EQ(f.len, lens[k]);
        ASSERT_EQ(f.masked, 0);
        ASSERT_EQ(f.fin, 1);
        ASSERT_EQ(f.opcode, DG_WS_OP_TEXT);
    }
}

TEST(header_bits_and_errors)
{
    uint8_t b[14];
    dg_ws_frame_t f;
    size_t n = mkframe_x(b, 0, 5, 0xB, 0, NULL, 3, -1);
    ASSERT_EQ(dg_ws_parse_header(b, n, &f), 2);
    ASSERT_EQ(f.fin, 0);
    ASSERT_EQ(f.rsv, 5);
    ASSERT_EQ(f.opcode, 0xB);
    ASSERT_EQ(f.masked, 0);
    ASSERT_U64_EQ(f.len, 3);

    /* non-minimal encodings are accepted */
    n = mkframe_x(b, 1, 0, 1, 1, NULL, 5, 126);
    ASSERT_EQ(dg_ws_parse_header(b, n, &f), 8);
    ASSERT_U64_EQ(f.len, 5);
    n = mkframe_x(b, 1, 0, 1, 1, NULL, 5, 127);
    ASSERT_EQ(dg_ws_parse_header(b, n, &f), 14);
    ASSERT_U64_EQ(f.len, 5);

    /* 64-bit length with the top bit set */
    n = mkframe_x(b, 1, 0, 2, 1, NULL, 0, 127);
    b[2] = 0x80;
    ASSERT_EQ(dg_ws_parse_header(b, n, &f), -1);
}

TEST(header_incomplete_every_split)
{
    static const size_t lens[] = { 0, 125, 126, 65535, 65536, (size_t)1 << 40 };
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        for (int masked = 0; masked <= 1; masked++) {
            uint8_t b[14];
            size_t n = mkframe_x(b, 1, 0, 2, masked, NULL, lens[k], -1);
            for (size_t cut = 0; cut < n; cut++) {
                dg_ws_frame_t f;
                ASSERT_EQ(dg_ws_parse_header(b, cut, &f), DG_WS_INCOMPLETE);
            }
            dg_ws_frame_t f;
            ASSERT_EQ(dg_ws_parse_header(b, n, &f), (int)n);
        }
    }
}

TEST(unmask_matches_byte_loop)
{
    uint8_t src[300], a[320], b[320];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(src); i++) { x = x * 1103515245 + 12345; src[i] = (uint8_t)(x >> 16); }
    static const uint8_t mk[4] = { 0x01, 0x80, 0xfe, 0x5a };
    for (size_t align = 0; align < 8; align++)
        for (size_t len = 0; len < 300; len += (len < 70 ? 1 : 37))
            for (uint64_t off = 0; off < 8; off++) {
                memcpy(a + align, src, len);
                memcpy(b + align, src, len);
                dg_ws_unmask(a + align, len, mk, off + (1ull << 33));
                for (size_t i = 0; i < len; i++) b[align + i] ^= mk[(off + i) & 3];
                ASSERT_MEM_EQ(a + align, b + align, len);
            }
    /* chunked unmasking at odd offsets equals one pass */
    memcpy(a, src, 300);
    memcpy(b, src, 300);
    dg_ws_unmask(a, 300, mk, 0);
    size_t cuts[] = { 0, 1, 4, 7, 19, 64, 65, 131, 300 };
    for (int c = 0; c + 1 < 9; c++)
        dg_ws_unmask(b + cuts[c], cuts[c + 1] - cuts[c], mk, cuts[c]);
    ASSERT_MEM_EQ(a, b, 300);
}

TEST(accept_key)
{
    char out[29];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    ASSERT_EQ(dg_ws_accept_key(key, strlen(key), out), 0);
    /* RFC 6455 section 1.3 (value also checked with `openssl sha1 | base64`) */
    ASSERT_STR_EQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ASSERT_EQ(dg_ws_accept_key(key, 0, out), -1);
    ASSERT_EQ(dg_ws_accept_key(NULL, 24, out), -1);
    char longkey[200];
    memset(longkey, 'A', sizeof(longkey));
    ASSERT_EQ(dg_ws_accept_key(longkey, sizeof(longkey), out), -1);
}

TEST(close_codes_valid)
{
    static const int good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4409, 4999 };
    static const int bad[] = { 0, 1, 999, 1004, 1005, 1006, 1012, 1015, 1016, 1100, 2000, 2999, 5000, 65535 };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) ASSERT(dg_ws_close_code_valid((uint16_t)good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) ASSERT(!dg_ws_close_code_valid((uint16_t)bad[i]));
}

/* ---- UTF-8 ---- */

static uint32_t u8(const char *s) { return dg_utf8_update(DG_UTF8_ACCEPT, (const uint8_t *)s, strlen(s)); }

TEST(utf8_valid)
{
    ASSERT_EQ(u8(""), DG_UTF8_ACCEPT);
    ASSERT_EQ(u8("plain ascii, long enough for the 8-byte path {\"seq\":1}"), DG_UTF8_ACCEPT);
    ASSERT_EQ(u8("\xc3\xa9"), DG_UTF8_ACCEPT);                 /* U+00E9 */
    ASSERT_EQ(u8("\xc2\x80"), DG_UTF8_ACCEPT);                 /* U+0080 */
    ASSERT_EQ(u8("\xdf\xbf"), DG_UTF8_ACCEPT);                 /* U+07FF */
    ASSERT_EQ(u8("\xe0\xa0\x80"), DG_UTF8_ACCEPT);             /* U+0800 */
    ASSERT_EQ(u8("\xe2\x82\xac"), DG_UTF8_ACCEPT);             /* U+20AC */
    ASSERT_EQ(u8("\xed\x9f\xbf"), DG_UTF8_ACCEPT);             /* U+D7FF */
    ASSERT_EQ(u8("\xee\x80\x80"), DG_UTF8_ACCEPT);             /* U+E000 */
    ASSERT_EQ(u8("\xef\xbf\xbf"), DG_UTF8_ACCEPT);             /* U+FFFF */
    ASSERT_EQ(u8("\xf0\x90\x80\x80"), DG_UTF8_ACCEPT);         /* U+10000 */
    ASSERT_EQ(u8("\xf0\x9d\x84\x9e"), DG_UTF8_ACCEPT);         /* U+1D11E */
    ASSERT_EQ(u8("\xf4\x8f\xbf\xbf"), DG_UTF8_ACCEPT);         /* U+10FFFF */
    ASSERT_EQ(u8("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"), DG_UTF8_ACCEPT);
    ASSERT_EQ(u8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), DG_UTF8_ACCEPT);
}

TEST(utf8_invalid)
{
    static const char *bad[] = {
        "\x80", "\xbf", "\xc0\xaf", "\xc1\xbf",             /* lone continuation, overlong 2 */
        "\xe0\x80\xaf", "\xe0\x9f\xbf",                     /* overlong 3 */
        "\xf0\x80\x80\xaf", "\xf0\x8f\xbf\xbf",             /* overlong 4 */
        "\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80", /* surrogates */
        "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf", /* > U+10FFFF */
        "\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80", "\xfe", "\xff",
        "\xc3\x28", "\xe2\x28\xa1", "\xe2\x82\x28", "abcdefgh\xe2\x82zzzzzzzz",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (u8(bad[i]) != DG_UTF8_REJECT) CHECK__FAIL("accepted bad[%zu]", i);
    /* REJECT is sticky */
    ASSERT_EQ(dg_utf8_update(DG_UTF8_REJECT, (const uint8_t *)"abc", 3), DG_UTF8_REJECT);
    ASSERT_EQ(dg_utf8_update(DG_UTF8_REJECT, NULL, 0), DG_UTF8_REJECT);
}

TEST(utf8_truncated_across_chunks)
{
    /* every valid multi-byte sequence split at every point: intermediate
     * state is neither ACCEPT nor REJECT, the rest brings it to ACCEPT */
    static const char *seqs[] = { "\xc3\xa9", "\xe2\x82\xac", "\xed\x9f\xbf", "\xf0\x9d\x84\x9e", "\xf4\x8f\xbf\xbf" };
    for (size_t k = 0; k < 5; k++) {
        const uint8_t *p = (const uint8_t *)seqs[k];
        size_t n = strlen(seqs[k]);
        for (size_t cut = 1; cut < n; cut++) {
            uint32_t st = dg_utf8_update(DG_UTF8_ACCEPT, p, cut);
            ASSERT(st != DG_UTF8_ACCEPT && st != DG_UTF8_REJECT);
            ASSERT_EQ(dg_utf8_update(st, p + cut, n - cut), DG_UTF8_ACCEPT);
        }
    }
    /* ends inside a code point: not ACCEPT (the session turns that into 1007) */
    uint32_t st = u8("abc\xe2\x82");
    ASSERT(st != DG_UTF8_ACCEPT && st != DG_UTF8_REJECT);
}

TEST(utf8_fail_fast)
{
    /* a long ASCII run with one bad byte at every position: the state turns
     * REJECT exactly at that byte, whether fed whole or byte by byte */
    uint8_t b[64];
    for (size_t bad = 0; bad < sizeof(b); bad++) {
        memset(b, 'a', sizeof(b));
        b[bad] = 0xff;
        ASSERT_EQ(dg_utf8_update(DG_UTF8_ACCEPT, b, bad), DG_UTF8_ACCEPT);
        ASSERT_EQ(dg_utf8_update(DG_UTF8_ACCEPT, b, bad + 1), DG_UTF8_REJECT);
        ASSERT_EQ(dg_utf8_update(DG_UTF8_ACCEPT, b, sizeof(b)), DG_UTF8_REJECT);
    }
    /* valid prefix, then the first byte that cannot continue */
    const uint8_t s[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64";
    uint32_t st = DG_UTF8_ACCEPT;
    for (size_t i = 0; i < sizeof(s) - 1; i++) {
        st = dg_utf8_update(st, s + i, 1);
        if (i < 12) ASSERT(st != DG_UTF8_REJECT);
        else ASSERT_EQ(st, DG_UTF8_REJECT);  /* 0x90 after 0xf4 is > U+10FFFF */
    }
}

/* Straightforward reference validator (RFC 3629 table 4). */
static int ref_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t k; uint8_t lo = 0x80, hi = 0xbf;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xc2 && c <= 0xdf) k = 1;
        else if (c == 0xe0) { k = 2; lo = 0xa0; }
        else if (c >= 0xe1 && c <= 0xec) k = 2;
        else if (c == 0xed) { k = 2; hi = 0x9f; }
        else if (c >= 0xee && c <= 0xef) k = 2;
        else if (c == 0xf0) { k = 3; lo = 0x90; }
        else if (c >= 0xf1 && c <= 0xf3) k = 3;
        else if (c == 0xf4) { k = 3; hi = 0x8f; }
        else return 0;
        if (i + k >= n) return 0;  /* truncated */
        if (p[i + 1] < lo || p[i + 1] > hi) return 0;
        for (size_t j = 2; j <= k; j++) if (p[i + j] < 0x80 || p[i + j] > 0xbf) return 0;
        i += k + 1;
    }
    return 1;
}

TEST(utf8_exhaustive_vs_reference)
{
    /* all 1-, 2- and 3-byte strings, and 4-byte strings over a set of
     * interesting bytes: the DFA agrees with the reference */
    uint8_t b[4];
    for (unsigned a = 0; a < 256; a++) {
        b[0] = (uint8_t)a;
        if ((dg_utf8_update(0, b, 1) == DG_UTF8_ACCEPT) != ref_valid(b, 1)) CHECK__FAIL("1 byte %02x", a);
        for (unsigned c = 0; c < 256; c++) {
            b[1] = (uint8_t)c;
            if ((dg_utf8_update(0, b, 2) == DG_UTF8_ACCEPT) != ref_valid(b, 2)) CHECK__FAIL("2 bytes %02x %02x", a, c);
            if (a < 0xe0) continue;  /* 3-byte strings starting < e0 are covered by shorter ones */
            for (unsigned d = 0; d < 256; d++) {
                b[2] = (uint8_t)d;
                if ((dg_utf8_update(0, b, 3) == DG_UTF8_ACCEPT) != ref_valid(b, 3))
                    CHECK__FAIL("3 bytes %02x %02x %02x", a, c, d);
            }
        }
    }
    static const uint8_t pick[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf,
                                    0xe0, 0xed, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff };
    size_t np = sizeof(pick);
    for (unsigned a = 0xf0; a < 0x100; a++)
        for (size_t c = 0; c < np; c++)
            for (size_t d = 0; d < np; d++)
                for (size_t e = 0; e < np; e++) {
                    uint8_t q[4] = { (uint8_t)a, pick[c], pick[d], pick[e] };
                    if ((dg_utf8_update(0, q, 4) == DG_UTF8_ACCEPT) != ref_valid(q, 4))
                        CHECK__FAIL("4 bytes %02x %02x %02x %02x", q[0], q[1], q[2], q[3]);
                }
}

TEST(utf8_fast_path_equals_bytewise)
{
    uint8_t buf[256];
    uint32_t x = 99;
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round % 97) + 1;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245 + 12345;
            uint32_t r = x >> 16;
            /* mostly ASCII with some valid multi-byte and some junk */
            buf[i] = (r % 16 == 0) ? (uint8_t)(0x80 | (r >> 8)) : (uint8_t)(r % 0x7f);
            if (r % 53 == 0 && i + 3 < n) { memcpy(buf + i, "\xe2\x82\xac", 3); i += 2; }
        }
        uint32_t whole = dg_utf8_update(0, buf, n), st = 0;
        for (size_t i = 0; i < n; i++) st = dg_utf8_update(st, buf + i, 1);
        ASSERT_EQ(whole, st);
        ASSERT_EQ(whole == DG_UTF8_ACCEPT, ref_valid(buf, n));
    }
}

/* ---- session ---- */

TEST(session_size)
{
    ASSERT(sizeof(dg_ws_session_t) <= 256);
}

TEST(single_text_zero_copy)
{
    uint8_t b[64];
    size_t n = mkframe(b, 1, DG_WS_OP_TEXT, "{\"seq\":1}", 9);
    rec_t r = { 0 };
    ASSERT_EQ(run_stream(&r, b, n, 0), 0);
    ASSERT_EQ(r.nmsg, 1);
    ASSERT_EQ(r.ops[0], DG_WS_OP_TEXT);
    ASSERT_EQ(r.lens[0], 9);
    ASSERT_EQ(r.zero_copy, 1);
    ASSERT_MEM_EQ(r.msgs.data, "{\"seq\":1}", 9);
    ASSERT_EQ(r.out.len, 0);
    rec_free(&r);
}

TEST(zero_copy_no_alloc_and_split_streams)
{
    /* Two frames in one buffer: both zero copy, msg never allocated.
     * The same frame split across two reads is streamed into s->msg,
     * whose capacity never exceeds the final size, and freed after. */
    uint8_t b[64];
    size_t n = mkframe(b, 1, DG_WS_OP_TEXT, "hello", 5);
    n += mkframe(b + n, 1, DG_WS_OP_BINARY, "\x00\xff", 2);
    rec_t r = { 0 };
    dg_ws_session_t s;
    dg_ws_session_init(&s, 1000);
    r.s = &s;
    ASSERT_EQ(feed(&s, &r, b, n), 0);
    ASSERT_EQ(r.zero_copy, 2);
    ASSERT(s.msg == NULL);

    uint8_t big[400], pl[300];
    memset(pl, 'x', sizeof(pl));
    n = mkframe(big, 1, DG_WS_OP_TEXT, pl, sizeof(pl));
    ASSERT_EQ(feed(&s, &r, big, 100), 0);
    ASSERT(s.msg != NULL);
    ASSERT(s.msg_cap <= sizeof(pl));
    ASSERT_EQ(feed(&s, &r, big + 100, n - 100), 0);
    ASSERT(s.msg == NULL);
    ASSERT_EQ(r.nmsg, 3);
    ASSERT_EQ(r.zero_copy, 2);
    ASSERT_EQ(r.lens[2], 300);
    ASSERT_MEM_EQ(r.msgs.data + 7, pl, 300);

    /* growth is geometric but capped at the frame's final size (500) */
    uint8_t big2[600], pl2[500];
    memset(pl2, 'y', sizeof(pl2));
    n = mkframe(big2, 1, DG_WS_OP_BINARY, pl2, sizeof(pl2));
    ASSERT_EQ(feed(&s, &r, big2, 8 + 300), 0);
    ASSERT_EQ(s.msg_cap, 300);
    ASSERT_EQ(feed(&s, &r, big2 + 308, 100), 0);
    ASSERT_EQ(s.msg_cap, 500);
    ASSERT_EQ(feed(&s, &r, big2 + 408, n - 408), 0);
    ASSERT(s.msg == NULL);
    ASSERT_EQ(r.nmsg, 4);
    ASSERT_EQ(r.lens[3], 500);
    dg_ws_session_free(&s);
    rec_free(&r);
}

/* A stream with a bit of everything that stays open. */
static size_t build_stream(uint8_t *b)
{
    static uint8_t mid[300];
    for (size_t i = 0; i < sizeof(mid); i++) mid[i] = (uint8_t)('a' + i % 26);
    size_t n = 0;
    n += mkframe(b + n, 1, DG_WS_OP_TEXT, "first", 5);
    n += mkframe(b + n, 0, DG_WS_OP_TEXT, "frag\xe2\x82", 6);       /* euro sign split */
    n += mkframe(b + n, 1, DG_WS_OP_PING, "p1", 2);
    n += mkframe(b + n, 0, DG_WS_OP_CONT, "\xac-", 2);
    n += mkframe(b + n, 1, DG_WS_OP_CONT, "end", 3);
    n += mkframe(b + n, 1, DG_WS_OP_BINARY, "\x00\x01\xfe\xff", 4);
    n += mkframe(b + n, 1, DG_WS_OP_TEXT, "", 0);
    n += mkframe(b + n, 1, DG_WS_OP_PONG, "", 0);
    n += mkframe(b + n, 1, DG_WS_OP_TEXT, mid, sizeof(mid));        /* 16-bit length */
    n += mkframe(b + n, 0, DG_WS_OP_BINARY, "", 0);
    n += mkframe(b + n, 1, DG_WS_OP_CONT, "", 0);
    n += mkframe(b + n, 1, DG_WS_OP_TEXT, "\xf0\x9d\x84\x9e", 4);
    return n;
}

TEST(byte_at_a_time_identical)
{
    uint8_t b[1024];
    size_t n = build_stream(b);
    rec_t whole = { 0 };
    ASSERT_EQ(run_stream(&whole, b, n, 0), 0);
    ASSERT_EQ(whole.nmsg, 7);
    ASSERT_EQ(whole.npong, 1);
    ASSERT_EQ(whole.ops[1], DG_WS_OP_TEXT);
    ASSERT_EQ(whole.lens[1], 11);
    ASSERT_MEM_EQ(whole.msgs.data, "firstfrag\xe2\x82\xac-end", 16);
    ASSERT_EQ(whole.ops[2], DG_WS_OP_BINARY);
    ASSERT_EQ(whole.lens[3], 0);
    ASSERT_EQ(whole.lens[4], 300);
    ASSERT_EQ(whole.ops[5], DG_WS_OP_BINARY);
    ASSERT_EQ(whole.lens[5], 0);
    ASSERT_EQ(whole.lens[6], 4);

    for (size_t chunk = 1; chunk <= 17; chunk++) {
        rec_t r = { 0 };
        dg_ws_session_t s;
        dg_ws_session_init(&s, 0);
        r.s = &s;
        ASSERT_EQ(feed_chunks(&s, &r, b, n, chunk), 0);
        ASSERT_EQ(r.nmsg, whole.nmsg);
        ASSERT_MEM_EQ(r.ops, whole.ops, sizeof(r.ops));
        ASSERT_MEM_EQ(r.lens, whole.lens, sizeof(r.lens));
        ASSERT_EQ(r.msgs.len, whole.msgs.len);
        ASSERT_MEM_EQ(r.msgs.data, whole.msgs.data, r.msgs.len);
        ASSERT_EQ(r.out.len, whole.out.len);
        ASSERT_MEM_EQ(r.out.data, whole.out.data, r.out.len);
        ASSERT_EQ(r.npong, 1);
        ASSERT(s.msg == NULL);
        dg_ws_session_free(&s);
        rec_free(&r);
    }
    rec_free(&whole);
}

TEST(fragmented_with_ping)
{
    uint8_t b[128];
    size_t n = 0;
    n += mkframe(b + n, 0, DG_WS_OP_TEXT, "Hello, ", 7);
    n += mkframe(b + n, 1, DG_WS_OP_PING, "are you there", 13);
    n += mkframe(b + n, 1, DG_WS_OP_CONT, "World!", 6);
    rec_t r = { 0 };
    ASSERT_EQ(run_stream(&r, b, n, 0), 0);
    ASSERT_EQ(r.nmsg, 1);
    ASSERT_EQ(r.ops[0], DG_WS_OP_TEXT);
    ASSERT_EQ(r.lens[0], 13);
    ASSERT_MEM_EQ(r.msgs.data, "Hello, World!", 13);
    ASSERT_EQ(r.zero_copy, 0);
    int op; const uint8_t *pl; size_t len;
    ASSERT_EQ(sent_count(&r), 1);
    ASSERT_EQ(sent_frame(&r, 0, &op, &pl, &len), 0);
    ASSERT_EQ(op, DG_WS_OP_PONG);
    ASSERT_EQ(len, 13);
    ASSERT_MEM_EQ(pl, "are you there", 13);
    rec_free(&r);
}

TEST(ping_125_ok)
{
    uint8_t b[256], pl[125];
    memset(pl, 0xa5, sizeof(pl));
    size_t n = mkframe(b, 1, DG_WS_OP_PING, pl, 125);
    rec_t r = { 0 };
    ASSERT_EQ(run_stream(&r, b, n, 0), 0);
    int op; const uint8_t *p; size_t len;
    ASSERT_EQ(sent_frame(&r, 0, &op, &p, &len), 0);
    ASSERT_EQ(op, DG_WS_OP_PONG);
    ASSERT_EQ(len, 125);
    ASSERT_MEM_EQ(p, pl, 125);
    rec_free(&r);
}

/* Expect the stream to fail with `code`: result, close frame sent, no message. */
#define EXPECT_FAIL(buf, n, max, code) do { \
    rec_t r__ = { 0 }; \
    ASSERT_EQ(run_stream(&r__, (buf), (n), (max)), (code)); \
    ASSERT_EQ(sent_close_code(&r__), (code)); \
    ASSERT_EQ(r__.nmsg, 0); \
    rec_free(&r__); \
} while (0)

TEST(protocol_errors)
{
    uint8_t b[512];
    size_t n;

    /* CONT without an open message */
    n = mkframe(b, 1, DG_WS_OP_CONT, "x", 1);
    EXPECT_FAIL(b, n, 0, 1002);

    /* new TEXT / BINARY while a fragmented message is open */
    n = mkframe(b, 0, DG_WS_OP_TEXT, "a", 1);
    n += mkframe(b + n, 1, DG_WS_OP_TEXT, "b", 1);
    EXPECT_FAIL(b, n, 0, 1002);
    n = mkframe(b, 0, DG_WS_OP_BINARY, "a", 1);
    n += mkframe(b + n, 1, DG_WS_OP_TEXT, "b", 1);
    EXPECT_FAIL(b, n, 0, 1002);

    /* unmasked client frame */
    n = mkframe_x(b, 1, 0, DG_WS_OP_TEXT, 0, "hi", 2, -1);
    EXPECT_FAIL(b, n, 0, 1002);

    /* each RSV bit */
    for (int rsv = 1; rsv < 8; rsv++) {
        n = mkframe_x(b, 1, rsv, DG_WS_OP_TEXT, 1, "hi", 2, -1);
        EXPECT_FAIL(b, n, 0, 1002);
    }

    /* reserved opcodes */
    static const int ops[] = { 3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF };
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        n = mkframe(b, 1, ops[k], "", 0);
        EXPECT_FAIL(b, n, 0, 1002);
    }

    /* ping with 126 bytes of payload; fragmented ping, pong, close */
    uint8_t pl[126] = { 0 };
    n = mkframe(b, 1, DG_WS_OP_PING, pl, 126);
    EXPECT_FAIL(b, n, 0, 1002);
    n = mkframe(b, 0, DG_WS_OP_PING, "x", 1);
    EXPECT_FAIL(b, n, 0, 1002);
    n = mkframe(b, 0, DG_WS_OP_PONG, "", 0);
    EXPECT_FAIL(b, n, 0, 1002);
    n = mkframe(b, 0, DG_WS_OP_CLOSE, "\x03\xe8", 2);
    EXPECT_FAIL(b, n, 0, 1002);

    /* 64-bit length with the top bit set */
    n = mkframe_x(b, 1, 0, DG_WS_OP_BINARY, 1, NULL, 0, 127);
    b[2] = 0x80;
    EXPECT_FAIL(b, n, 0, 1002);
}

TEST(fail_before_header_complete)
{
    /* bad first byte / second byte: fails on the partial header */
    uint8_t b[16];
    mkframe_x(b, 1, 4, DG_WS_OP_TEXT, 1, NULL, 70000, -1);
    EXPECT_FAIL(b, 1, 0, 1002);
    mkframe_x(b, 1, 0, DG_WS_OP_TEXT, 0, NULL, 70000, -1);
    EXPECT_FAIL(b, 2, 0, 1002);
    mkframe_x(b, 1, 0, DG_WS_OP_PING, 1, NULL, 126, -1);
    EXPECT_FAIL(b, 2, 0, 1002);
}

TEST(ping_126_fails_without_payload)
{
    /* the header alone is enough; no payload byte is needed */
    uint8_t b[16];
    size_t n = mkframe_x(b, 1, 0, DG_WS_OP_PING, 1, NULL, 126, -1);
    EXPECT_FAIL(b, n, 0, 1002);
}

static size_t mkclose(uint8_t *b, int code, const char *reason, size_t rlen)
{
    uint8_t pl[125];
    size_t n = 0;
    if (code >= 0) { pl[0] = (uint8_t)(code >> 8); pl[1] = (uint8_t)code; n = 2; }
    memcpy(pl + n, reason, rlen);
    return mkframe(b, 1, DG_WS_OP_CLOSE, pl, n + rlen);
}

TEST(close_codes)
{
    static const struct { int code; int want; } cases[] = {
        { 0, 1002 }, { 999, 1002 }, { 1000, 1000 }, { 1001, 1001 }, { 1003, 1003 },
        { 1004, 1002 }, { 1005, 1002 }, { 1006, 1002 }, { 1007, 1007 }, { 1011, 1011 },
        { 1015, 1002 }, { 1016, 1002 }, { 2999, 1002 }, { 3000, 3000 }, { 4999, 4999 },
        { 5000, 1002 }, { 65535, 1002 },
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        uint8_t b[64];
        size_t n = mkclose(b, cases[k].code, "bye", 3);
        rec_t r = { 0 };
        ASSERT_EQ(run_stream(&r, b, n, 0), cases[k].want);
        ASSERT_EQ(sent_close_code(&r), cases[k].want);
        ASSERT_EQ(sent_count(&r), 1);
        if (cases[k].want == cases[k].code) {
            /* valid: echoed, on_close saw code and reason */
            ASSERT_EQ(r.nclose, 1);
            ASSERT_EQ(r.close_code, cases[k].code);
            ASSERT_EQ(r.reason_len, 3);
            ASSERT_MEM_EQ(r.reason, "bye", 3);
        } else {
            ASSERT_EQ(r.nclose, 0);
        }
        rec_free(&r);
    }
}

TEST(close_payload_edge_cases)
{
    uint8_t b[64];
    size_t n;
    rec_t r = { 0 };

    /* empty close: answered with an empty close, result 1005 */
    n = mkframe(b, 1, DG_WS_OP_CLOSE, "", 0);
    ASSERT_EQ(run_stream(&r, b, n, 0), 1005);
    ASSERT_EQ(sent_close_code(&r), 1005);
    ASSERT_EQ(r.out.len, 2);
    ASSERT_EQ(r.nclose, 1);
    ASSERT_EQ(r.close_code, 1005);
    rec_free(&r);

    /* 1-byte payload */
    n = mkframe(b, 1, DG_WS_OP_CLOSE, "\x03", 1);
    EXPECT_FAIL(b, n, 0, 1002);

    /* invalid UTF-8 in the reason */
    n = mkclose(b, 1000, "ok\xff", 3);
    EXPECT_FAIL(b, n, 0, 1007);
    n = mkclose(b, 1000, "\xe2\x82", 2);  /* truncated code point */
    EXPECT_FAIL(b, n, 0, 1007);

    /* 123-byte valid reason is fine */
    char reason[123];
    memset(reason, 'r', sizeof(reason));
    uint8_t bb[256];
    n = mkclose(bb, 1000, reason, sizeof(reason));
    memset(&r, 0, sizeof(r));
    ASSERT_EQ(run_stream(&r, bb, n, 0), 1000);
    ASSERT_EQ(r.reason_len, 123);
    rec_free(&r);
}

TEST(close_then_nothing)
{
    /* data after the peer's close is not processed; feed keeps returning */
    uint8_t b[64];
    size_t n = mkclose(b, 1000, "", 0);
    n += mkframe(b + n, 1, DG_WS_OP_TEXT, "late", 4);
    rec_t r = { 0 };
    dg_ws_session_t s;
    dg_ws_session_init(&s, 0);
    r.s = &s;
    ASSERT_EQ(feed(&s, &r, b, n), 1000);
    ASSERT_EQ(r.nmsg, 0);
    size_t out = r.out.len;
    uint8_t more[16];
    size_t m = mkframe(more, 1, DG_WS_OP_PING, "x", 1);
    ASSERT_EQ(feed(&s, &r, more, m), 1000);
    ASSERT_EQ(r.out.len, out);
    ASSERT_EQ(dg_ws_close(&s, 1000, NULL, &CB, &r), 0);  /* no-op */
    ASSERT_EQ(r.out.len, out);
    dg_ws_session_free(&s);
    rec_free(&r);
}

TEST(too_big_without_payload)
{
    uint8_t b[64];
    /* one frame over the limit: fails from the header alone */
    size_t n = mkframe_x(b, 1, 0, DG_WS_OP_TEXT, 1, NULL, 1001, -1);
    EXPECT_FAIL(b, n, 1000, 1009);
    n = mkframe_x(b, 1, 0, DG_WS_OP_BINARY, 1, NULL, (size_t)1 << 40, -1);
    EXPECT_FAIL(b, n, 0, 1009);
    /* exactly at the limit is fine */
    uint8_t big[1100], pl[1000];
    memset(pl, 'z', sizeof(pl));
    n = mkframe(big, 1, DG_WS_OP_TEXT, pl, 1000);
    rec_t r = { 0 };
    ASSERT_EQ(run_stream(&r, big, n, 1000), 0);
    ASSERT_EQ(r.nmsg, 1);
    rec_free(&r);
    /* fragments adding up over the limit: fails at the second header */
    n = mkframe(big, 0, DG_WS_OP_BINARY, pl, 600);
    n += mkframe_x(big + n, 1, 0, DG_WS_OP_CONT, 1, NULL, 401, -1);
    EXPECT_FAIL(big, n, 1000, 1009);
}

TEST(text_invalid_utf8)
{
    uint8_t b[256];
    size_t n;
    /* whole frame (zero-copy path) */
    n = mkframe(b, 1, DG_WS_OP_TEXT, "ab\xc0\xaf" "cd", 6);
    EXPECT_FAIL(b, n, 0, 1007);
    /* message ends inside a code point */
    n = mkframe(b, 0, DG_WS_OP_TEXT, "ab", 2);
    n += mkframe(b + n, 1, DG_WS_OP_CONT, "\xe2\x82", 2);
    EXPECT_FAIL(b, n, 0, 1007);
    /* a code point split across fragments is fine */
    n = mkframe(b, 0, DG_WS_OP_TEXT, "\xf0\x9d", 2);
    n += mkframe(b + n, 0, DG_WS_OP_CONT, "\x84", 1);
    n += mkframe(b + n, 1, DG_WS_OP_CONT, "\x9e", 1);
    rec_t r = { 0 };
    ASSERT_EQ(run_stream(&r, b, n, 0), 0);
    ASSERT_EQ(r.nmsg, 1);
    rec_free(&r);
}

TEST(text_fail_fast_in_partial_frame)
{
    /* 100-byte text frame; only the header and 10 payload bytes arrive,
     * with a bad byte at 5: the connection fails now */
    uint8_t pl[100], b[128];
    memset(pl, 'a', sizeof(pl));
    pl[5] = 0xff;
    size_t n = mkframe(b, 1, DG_WS_OP_TEXT, pl, sizeof(pl));
    (void)n;
    EXPECT_FAIL(b, 6 + 10, 0, 1007);
    /* same inside a fragmented message: first fragment valid, second
     * fragment's header and first bad byte only */
    n = mkframe(b, 0, DG_WS_OP_TEXT, "ok", 2);
    size_t n2 = mkframe(b + n, 1, DG_WS_OP_CONT, "\xed\xa0\x80zzzz", 7);
    (void)n2;
    EXPECT_FAIL(b, n + 6 + 2, 0, 1007);  /* ed a0: a surrogate, known at a0 */
    /* a valid prefix of a partial frame does not fail */
    pl[5] = 'a';
    n = mkframe(b, 1, DG_WS_OP_TEXT, pl, sizeof(pl));
    rec_t r = { 0 };
    ASSERT_EQ(run_stream(&r, b, 6 + 50, 0), 0);
    ASSERT_EQ(r.out.len, 0);
    rec_free(&r);
}

TEST(on_message_code)
{
    uint8_t b[64];
    size_t n = mkframe(b, 1, DG_WS_OP_TEXT, "spam", 4);
    n += mkframe(b + n, 1, DG_WS_OP_TEXT, "more", 4);
    rec_t r = { .ret = 1008 };
    dg_ws_session_t s;
    dg_ws_session_init(&s, 0);
    r.s = &s;
    ASSERT_EQ(feed(&s, &r, b, n), 1008);
    ASSERT_EQ(r.nmsg, 1);
    ASSERT_EQ(sent_close_code(&r), 1008);
    ASSERT_EQ(sent_count(&r), 1);
    /* again: same code, nothing processed, nothing sent */
    ASSERT_EQ(feed(&s, &r, b, n), 1008);
    ASSERT_EQ(r.nmsg, 1);
    ASSERT_EQ(sent_count(&r), 1);
    dg_ws_session_free(&s);
    rec_free(&r);

    /* a code that may not be sent becomes 1011 */
    rec_t r2 = { .ret = 1006 };
    ASSERT_EQ(run_stream(&r2, b, n, 0), 1011);
    ASSERT_EQ(sent_close_code(&r2), 1011);
    rec_free(&r2);
}

TEST(binary_passthrough)
{
    uint8_t pl[256], b[300];
    for (int i = 0; i < 256; i++) pl[i] = (uint8_t)i;
    size_t n = mkframe(b, 1, DG_WS_OP_BINARY, pl, sizeof(pl));
    rec_t r = { 0 };
    ASSERT_EQ(run_stream(&r, b, n, 0), 0);
    ASSERT_EQ(r.nmsg, 1);
    ASSERT_EQ(r.ops[0], DG_WS_OP_BINARY);
    ASSERT_EQ(r.lens[0], 256);
    ASSERT_MEM_EQ(r.msgs.data, pl, 256);
    ASSERT_EQ(r.zero_copy, 1);
    rec_free(&r);
}

TEST(server_close_handshake)
{
    rec_t r = { 0 };
    dg_ws_session_t s;
    dg_ws_session_init(&s, 0);
    r.s = &s;
    /* 200-byte reason of 2-byte chars: cut at 122 bytes (123 would split one) */
    char reason[201];
    for (int i = 0; i < 100; i++) memcpy(reason + 2 * i, "\xc3\xa9", 2);
    reason[200] = 0;
    ASSERT_EQ(dg_ws_close(&s, DG_WS_CLOSE_GOING_AWAY, reason, &CB, &r), 0);
    ASSERT(s.closed);
    int op; const uint8_t *pl; size_t len;
    ASSERT_EQ(sent_frame(&r, 0, &op, &pl, &len), 0);
    ASSERT_EQ(op, DG_WS_OP_CLOSE);
    ASSERT_EQ(len, 2 + 122);
    ASSERT_EQ(pl[0] << 8 | pl[1], 1001);
    ASSERT_EQ(dg_utf8_update(0, pl + 2, len - 2), DG_UTF8_ACCEPT);
    ASSERT_EQ(dg_ws_close(&s, 1000, "again", &CB, &r), 0);  /* no-op */
    ASSERT_EQ(sent_count(&r), 1);

    /* data is ignored, ping not answered, then the peer's close ends it */
    uint8_t b[128];
    size_t n = mkframe(b, 1, DG_WS_OP_TEXT, "ignored", 7);
    n += mkframe(b + n, 0, DG_WS_OP_BINARY, "x", 1);
    n += mkframe(b + n, 1, DG_WS_OP_PING, "p", 1);
    n += mkframe(b + n, 1, DG_WS_OP_CONT, "\xff", 1);
    ASSERT_EQ(feed_chunks(&s, &r, b, n, 3), 0);
    ASSERT_EQ(r.nmsg, 0);
    ASSERT_EQ(sent_count(&r), 1);
    ASSERT(s.msg == NULL);
    /* a partial data frame while closing is skipped, not buffered */
    n = mkframe(b, 1, DG_WS_OP_BINARY, "0123456789", 10);
    ASSERT_EQ(feed(&s, &r, b, n - 4), 0);
    ASSERT(s.msg == NULL);
    ASSERT_EQ(feed(&s, &r, b + n - 4, 4), 0);
    ASSERT_EQ(r.nmsg, 0);
    n = mkclose(b, 1000, "", 0);
    ASSERT_EQ(feed(&s, &r, b, n), 1001);
    ASSERT_EQ(r.nclose, 1);
    ASSERT_EQ(r.close_code, 1000);
    ASSERT_EQ(sent_count(&r), 1);  /* no second close */
    ASSERT_EQ(feed(&s, &r, b, n), 1001);
    dg_ws_session_free(&s);
    rec_free(&r);
}

TEST(close_from_on_message)
{
    /* on_message calls dg_ws_close; the rest of the buffer is skipped until
     * the peer's close */
    uint8_t b[128];
    size_t n = mkframe(b, 1, DG_WS_OP_TEXT, "one", 3);
    n += mkframe(b + n, 1, DG_WS_OP_TEXT, "two", 3);
    n += mkclose(b + n, 1001, "", 0);
    rec_t r = { .close_in_msg = 1 };
    ASSERT_EQ(run_stream(&r, b, n, 0), 1001);
    ASSERT_EQ(r.nmsg, 1);
    ASSERT_EQ(sent_count(&r), 1);
    ASSERT_EQ(r.nclose, 1);
    rec_free(&r);
}

TEST(close_code_rules_on_send)
{
    rec_t r = { 0 };
    dg_ws_session_t s;
    dg_ws_session_init(&s, 0);
    ASSERT_EQ(dg_ws_close(&s, 0, NULL, &CB, &r), 0);
    ASSERT_EQ(r.out.len, 2);  /* empty close */
    ASSERT_EQ(s.close_code, 1005);
    dg_ws_session_free(&s);
    r.out.len = 0;
    ASSERT_EQ(dg_ws_close(&s, 1006, "x", &CB, &r), 0);
    ASSERT_EQ(sent_close_code(&r), 1011);
    dg_ws_session_free(&s);
    r.out.len = 0;
    ASSERT_EQ(dg_ws_close(&s, 4409, "replaced", &CB, &r), 0);
    ASSERT_EQ(sent_close_code(&r), 4409);
    ASSERT_EQ(r.out.len, 2 + 2 + 8);
    dg_ws_session_free(&s);
    r.out.len = 0;
    ASSERT_EQ(dg_ws_close(&s, 1000, "bad\xff", &CB, &r), 0);  /* bad reason dropped */
    ASSERT_EQ(r.out.len, 4);
    dg_ws_session_free(&s);
    rec_free(&r);
}

TEST(send_failure)
{
    uint8_t b[64];
    size_t n = mkframe(b, 1, DG_WS_OP_PING, "x", 1);
    n += mkframe(b + n, 1, DG_WS_OP_TEXT, "after", 5);
    rec_t r = { .send_fail = 1 };
    dg_ws_session_t s;
    dg_ws_session_init(&s, 0);
    r.s = &s;
    ASSERT_EQ(feed(&s, &r, b, n), 1006);
    ASSERT_EQ(r.nmsg, 0);
    ASSERT_EQ(feed(&s, &r, b, n), 1006);
    dg_ws_session_free(&s);

    /* on_message's dg_ws_close fails to send: the rest of the buffer (even
     * a close from the peer) is not processed, the result stays 1006 */
    n = mkframe(b, 1, DG_WS_OP_TEXT, "one", 3);
    n += mkclose(b + n, 1000, "", 0);
    rec_t r2 = { .send_fail = 1, .close_in_msg = 1 };
    dg_ws_session_init(&s, 0);
    r2.s = &s;
    ASSERT_EQ(feed(&s, &r2, b, n), 1006);
    ASSERT_EQ(r2.nmsg, 1);
    ASSERT_EQ(r2.nclose, 0);
    dg_ws_session_free(&s);
    rec_free(&r2);

    dg_ws_session_init(&s, 0);
    ASSERT_EQ(dg_ws_close(&s, 1001, NULL, &CB, &r), -1);
    ASSERT_EQ(feed(&s, &r, b, n), 1006);
    dg_ws_session_free(&s);
    rec_free(&r);
}

TEST(ws_send_framing)
{
    static const size_t lens[] = { 0, 5, 125, 126, 300, 70000 };
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        uint8_t *pl = malloc(lens[k] + 1);
        memset(pl, 'q', lens[k]);
        rec_t r = { 0 };
        ASSERT_EQ(dg_ws_send(DG_WS_OP_TEXT, pl, lens[k], &CB, &r), 0);
        int op; const uint8_t *p; size_t len;
        ASSERT_EQ(sent_frame(&r, 0, &op, &p, &len), 0);
        ASSERT_EQ(op, DG_WS_OP_TEXT);
        ASSERT_EQ(len, lens[k]);
        ASSERT_MEM_EQ(p, pl, lens[k]);
        ASSERT_EQ(sent_count(&r), 1);
        free(pl);
        rec_free(&r);
    }
}

TEST(pong_callback_and_empty_feed)
{
    uint8_t b[32];
    size_t n = mkframe(b, 1, DG_WS_OP_PONG, "hb", 2);
    rec_t r = { 0 };
    dg_ws_session_t s;
    dg_ws_session_init(&s, 0);
    r.s = &s;
    ASSERT_EQ(dg_ws_feed(&s, NULL, 0, &CB, &r), 0);
    ASSERT_EQ(feed(&s, &r, b, n), 0);
    ASSERT_EQ(r.npong, 1);
    ASSERT_EQ(r.out.len, 0);
    /* NULL on_pong / on_close are allowed */
    dg_ws_callbacks_t cb2 = { on_message, on_send, NULL, NULL };
    uint8_t c[32];
    memcpy(c, b, n);
    ASSERT_EQ(dg_ws_feed(&s, c, n, &cb2, &r), 0);
    n = mkclose(c, 1000, "", 0);
    ASSERT_EQ(dg_ws_feed(&s, c, n, &cb2, &r), 1000);
    dg_ws_session_free(&s);
    rec_free(&r);
}

int main(void)
{
    RUN(header_lengths);
    RUN(header_bits_and_errors);
    RUN(header_incomplete_every_split);
    RUN(unmask_matches_byte_loop);
    RUN(accept_key);
    RUN(close_codes_valid);
    RUN(utf8_valid);
    RUN(utf8_invalid);
    RUN(utf8_truncated_across_chunks);
    RUN(utf8_fail_fast);
    RUN(utf8_exhaustive_vs_reference);
    RUN(utf8_fast_path_equals_bytewise);
    RUN(session_size);
    RUN(single_text_zero_copy);
    RUN(zero_copy_no_alloc_and_split_streams);
    RUN(byte_at_a_time_identical);
    RUN(fragmented_with_ping);
    RUN(ping_125_ok);
    RUN(protocol_errors);
    RUN(fail_before_header_complete);
    RUN(ping_126_fails_without_payload);
    RUN(close_codes);
    RUN(close_payload_edge_cases);
    RUN(close_then_nothing);
    RUN(too_big_without_payload);
    RUN(text_invalid_utf8);
    RUN(text_fail_fast_in_partial_frame);
    RUN(on_message_code);
    RUN(binary_passthrough);
    RUN(server_close_handshake);
    RUN(close_from_on_message);
    RUN(close_code_rules_on_send);
    RUN(send_failure);
    RUN(ws_send_framing);
    RUN(pong_callback_and_empty_feed);
    return check_summary("ws");
}
