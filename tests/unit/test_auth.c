/* test_auth.c - unit tests of src/core/auth.c: drone tokens, the operator
 * token comparison (exact, full length, up to DG_OPERATOR_TOKEN_MAX), and
 * which Host headers name the gateway (DNS rebinding). */
#include <string.h>

#include "check.h"
#include "core/auth.h"

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
    RUN(drone_token_known_value);
    RUN(drone_token_edges);
    RUN(operator_token_exact);
    RUN(operator_token_lengths);
    RUN(host_names_the_gateway);
    return check_summary("test_auth");
}
