/* test_auth.c - unit tests of src/core/auth.c: drone tokens are lowercase hex
 * HMAC-SHA256(secret, drone_id) (RFC 4231 vector), and dg_auth_check accepts
 * exactly that token: no prefix, no extension, no other case, no change in
 * any position, nothing empty.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "core/auth.h"

#define ID "drone-1"
#define TOK "2885e794ad6c97accd75a34bfba51eb1069a786ee8a4fe20334f6cd2b700637c"  /* k3y, drone-1 */

static bool check(const char *secret, const char *id, const char *tok, size_t len)
{
    return dg_auth_check(secret, id, strlen(id), tok, len);
}

TEST(token_known_vectors)
{
    char out[DG_TOKEN_LEN + 1];
    /* RFC 4231 test case 2 */
    const char *msg = "what do ya want for nothing?";
    ASSERT_EQ(dg_auth_token("Jefe", msg, strlen(msg), out), 0);
    ASSERT_STR_EQ(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    ASSERT_EQ(dg_auth_token("k3y", ID, strlen(ID), out), 0);
    ASSERT_STR_EQ(out, TOK);
    ASSERT_EQ(strlen(out), DG_TOKEN_LEN);
    /* only id_len bytes of the id count */
    ASSERT_EQ(dg_auth_token("k3y", ID "xyz", strlen(ID), out), 0);
    ASSERT_STR_EQ(out, TOK);
}

TEST(check_accepts_exactly_the_token)
{
    ASSERT(check("k3y", ID, TOK, strlen(TOK)));
    /* other secret, other drone */
    ASSERT(!check("k3Y", ID, TOK, strlen(TOK)));
    ASSERT(!check("k3y", "drone-2", TOK, strlen(TOK)));
    ASSERT(!check("", ID, TOK, strlen(TOK)));
}

TEST(check_rejects_length_changes)
{
    char buf[256];
    /* appended characters (the valid token as a prefix) */
    snprintf(buf, sizeof buf, "%sa", TOK);
    ASSERT(!check("k3y", ID, buf, strlen(buf)));
    snprintf(buf, sizeof buf, "%s%s", TOK, TOK);
    ASSERT(!check("k3y", ID, buf, strlen(buf)));
    /* truncated, empty, over-long */
    ASSERT(!check("k3y", ID, TOK, DG_TOKEN_LEN - 1));
    ASSERT(!check("k3y", ID, TOK, 1));
    ASSERT(!check("k3y", ID, "", 0));
    memset(buf, 'a', sizeof buf);
    ASSERT(!check("k3y", ID, buf, sizeof buf));
}

TEST(check_rejects_any_changed_character)
{
    char buf[DG_TOKEN_LEN + 1];
    for (size_t i = 0; i < DG_TOKEN_LEN; i++) {
        memcpy(buf, TOK, sizeof buf);
        buf[i] = buf[i] == '0' ? '1' : '0';
        if (check("k3y", ID, buf, DG_TOKEN_LEN)) CHECK__FAIL("token changed at %zu accepted", i);
    }
    /* upper-case hex is another string */
    memcpy(buf, TOK, sizeof buf);
    for (size_t i = 0; i < DG_TOKEN_LEN; i++) if (buf[i] >= 'a') buf[i] = (char)(buf[i] - 32);
    ASSERT(!check("k3y", ID, buf, DG_TOKEN_LEN));
}

/* ---- merged from a second branch ---- */

static bool eq(const char *given, const char *want)
{
    return dg_auth_token_eq(given, strlen(given), want, strlen(want));
}

TEST(drone_token_known_value)
{
    char tok[DG_TOKEN_LEN + 1];
    /* python3: hmac.new(b"k", b"d1", hashlib.sha256).hexdigest() */
    ASSERT_EQ(dg_auth_token("k", "d1", 2, tok), 0);
    ASSERT_STR_EQ(tok, "34fa3937023a99d09c7745bbdda43d3ca259115b025013aa13462195b5aec7d6");
    ASSERT(dg_auth_check("k", "d1", 2, tok, DG_TOKEN_LEN));
    ASSERT(!dg_auth_check("k", "d2", 2, tok, DG_TOKEN_LEN));
    ASSERT(!dg_auth_check("K", "d1", 2, tok, DG_TOKEN_LEN));
}

TEST(drone_token_edges)
{
    char tok[DG_TOKEN_LEN + 2];
    ASSERT_EQ(dg_auth_token("k", "d1", 2, tok), 0);
    ASSERT(!dg_auth_check("k", "d1", 2, tok, DG_TOKEN_LEN - 1));   /* a prefix */
    tok[DG_TOKEN_LEN] = 'a'; tok[DG_TOKEN_LEN + 1] = '\0';
    ASSERT(!dg_auth_check("k", "d1", 2, tok, DG_TOKEN_LEN + 1));   /* something appended */
    ASSERT(!dg_auth_check("k", "d1", 2, "", 0));
    ASSERT(!dg_auth_check("k", "d1", 2, NULL, 0));
}

TEST(operator_token_exact)
{
    ASSERT(eq("secret-token", "secret-token"));
    ASSERT(!eq("secret-tokenX", "secret-token"));
    ASSERT(!eq("secret-toke", "secret-token"));
    ASSERT(!eq("Secret-token", "secret-token"));
    ASSERT(!eq("", "secret-token"));
    ASSERT(!eq("", ""));                 /* not configured: nothing matches */
    ASSERT(!eq("x", ""));
    ASSERT(!dg_auth_token_eq(NULL, 0, "a", 1));
    /* a NUL inside the given bytes is compared, not a terminator */
    ASSERT(!dg_auth_token_eq("ab\0c", 4, "ab", 2));
}

TEST(operator_token_lengths)
{
    static char want[DG_OPERATOR_TOKEN_MAX + 2], given[DG_OPERATOR_TOKEN_MAX + 2];
    for (size_t n = 1; n <= DG_OPERATOR_TOKEN_MAX; n = n < 240 ? n + 1 : n + 13) {
        memset(want, 'a' + (int)(n % 26), n);
        memcpy(given, want, n);
        if (!dg_auth_token_eq(given, n, want, n)) CHECK__FAIL("token of %zu chars does not match itself", n);
        given[n - 1] ^= 1;                  /* the last character differs */
        if (dg_auth_token_eq(given, n, want, n)) CHECK__FAIL("last character of %zu ignored", n);
    }
    memset(want, 'z', DG_OPERATOR_TOKEN_MAX);
    memcpy(given, want, DG_OPERATOR_TOKEN_MAX);
    ASSERT(dg_auth_token_eq(given, DG_OPERATOR_TOKEN_MAX, want, DG_OPERATOR_TOKEN_MAX));
    given[DG_OPERATOR_TOKEN_MAX] = 'z';
    ASSERT(!dg_auth_token_eq(given, DG_OPERATOR_TOKEN_MAX + 1, want, DG_OPERATOR_TOKEN_MAX));
    want[DG_OPERATOR_TOKEN_MAX] = 'z';      /* over the limit on both sides: still refused */
    ASSERT(!dg_auth_token_eq(given, DG_OPERATOR_TOKEN_MAX + 1, want, DG_OPERATOR_TOKEN_MAX + 1));
    /* the first 248 (what once fitted a header copy) are not the token */
    ASSERT(!dg_auth_token_eq(given, 248, want, DG_OPERATOR_TOKEN_MAX));
}

TEST(host_names_the_gateway)
{
    static const char *ok[] = {
        "", "127.0.0.1", "127.0.0.1:8080", "10.1.2.3:80", "[::1]:8080", "[::1]", "[2001:db8::5]:443",
        "[::ffff:10.0.0.1]", "localhost", "LOCALHOST:8080", "dronebox", "dronebox:8080", "x",
        "gw.example.com", "GW.Example.COM:443", "ops.example.net", "pinned.example:8443", "gw.local:1",
    };
    static const char *bad[] = {
        "evil.example", "evil.example:8080", "gw.example.com.evil.example", "example.com",
        "pinned.example", "pinned.example:9", "127.0.0.1.evil.example", "localhost.", "evil.example.",
        "evil.example:", "evil.example:80:80", "evil.example:8o", ":8080", "[::1", "[::1]x", "[evil.example]",
        "[fe80::1%eth0]", "a b.example", "evil.example;x", "gw.example.com@evil.example", "ev\x01il.example",
    };
    const char *allowed = " gw.example.com, ops.example.net ,pinned.example:8443";
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!dg_auth_host_ok(ok[i], "gw.local:8080", allowed)) CHECK__FAIL("Host \"%s\" refused", ok[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (dg_auth_host_ok(bad[i], "gw.local:8080", allowed)) CHECK__FAIL("Host \"%s\" accepted", bad[i]);
    ASSERT(dg_auth_host_ok(NULL, NULL, NULL));
    ASSERT(!dg_auth_host_ok("evil.example", NULL, NULL));
    ASSERT(!dg_auth_host_ok("evil.example", "0.0.0.0:8080", ""));
    ASSERT(dg_auth_host_ok("evil.example", "0.0.0.0:8080", "*"));     /* check off */
    ASSERT(dg_auth_host_ok("api.example.org:8080", "api.example.org:8080", ""));   /* --listen NAME:PORT */
}

int main(void)
{
    RUN(token_known_vectors);
    RUN(check_accepts_exactly_the_token);
    RUN(check_rejects_length_changes);
    RUN(check_rejects_any_changed_character);
    RUN(drone_token_known_value);
    RUN(drone_token_edges);
    RUN(operator_token_exact);
    RUN(operator_token_lengths);
    RUN(host_names_the_gateway);
    return check_summary("auth");
}
