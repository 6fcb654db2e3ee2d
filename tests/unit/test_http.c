/* test_http.c - unit tests of the HTTP query-string parsing in
 * src/http/http.c (dg_http_query_param): exact key match (no prefix or
 * suffix matches), first occurrence wins, empty and missing values,
 * percent and '+' decoding, malformed escapes, and the output bound (a
 * value that does not fit with its NUL is -1, never truncated).
 */
#include <string.h>

#include "check.h"
#include "http/http.h"

static char out[64];

static int qp(const char *q, const char *key) { memset(out, '#', sizeof out); return dg_http_query_param(q, strlen(q), key, out, sizeof out); }

TEST(finds_exact_keys)
{
    ASSERT_EQ(qp("from=1&to=2&limit=3", "from"), 1);  ASSERT_STR_EQ(out, "1");
    ASSERT_EQ(qp("from=1&to=2&limit=3", "to"), 1);    ASSERT_STR_EQ(out, "2");
    ASSERT_EQ(qp("from=1&to=2&limit=3", "limit"), 1); ASSERT_STR_EQ(out, "3");
    ASSERT_EQ(qp("from=1&to=2", "format"), 0);
    /* no prefix / suffix matches */
    ASSERT_EQ(qp("tokens=a&xtoken=b&toke=c", "token"), 0);
    ASSERT_EQ(qp("tokens=a&token=b", "token"), 1); ASSERT_STR_EQ(out, "b");
    /* the first occurrence wins */
    ASSERT_EQ(qp("limit=5&limit=6", "limit"), 1); ASSERT_STR_EQ(out, "5");
    /* keys are case-sensitive */
    ASSERT_EQ(qp("Limit=5", "limit"), 0);
}

TEST(empty_and_missing_values)
{
    ASSERT_EQ(qp("token=", "token"), 1);  ASSERT_STR_EQ(out, "");
    ASSERT_EQ(qp("token", "token"), 1);   ASSERT_STR_EQ(out, "");
    ASSERT_EQ(qp("a=1&token&b=2", "token"), 1); ASSERT_STR_EQ(out, "");
    ASSERT_EQ(qp("", "token"), 0);
    ASSERT_EQ(qp("&&&", "token"), 0);
    ASSERT_EQ(qp("=x", "token"), 0);
    ASSERT_EQ(qp("&token=v&", "token"), 1); ASSERT_STR_EQ(out, "v");
    /* '=' inside the value is kept */
    ASSERT_EQ(qp("token=a=b", "token"), 1); ASSERT_STR_EQ(out, "a=b");
}

TEST(decoding)
{
    ASSERT_EQ(qp("s=a+b%20c", "s"), 1);      ASSERT_STR_EQ(out, "a b c");
    ASSERT_EQ(qp("s=%41%62%2b%26", "s"), 1); ASSERT_STR_EQ(out, "Ab+&");
    ASSERT_EQ(qp("s=%e2%82%AC", "s"), 1);    ASSERT_STR_EQ(out, "\xe2\x82\xac");
    ASSERT_EQ(qp("t=2026-11-24T10%3A00%3A00Z", "t"), 1); ASSERT_STR_EQ(out, "2026-11-24T10:00:00Z");
    /* malformed escapes */
    ASSERT_EQ(qp("s=%", "s"), -1);
    ASSERT_EQ(qp("s=%4", "s"), -1);
    ASSERT_EQ(qp("s=%4&x=1", "s"), -1);
    ASSERT_EQ(qp("s=%zz", "s"), -1);
    ASSERT_EQ(qp("s=%g1", "s"), -1);
    /* a malformed other parameter does not matter */
    ASSERT_EQ(qp("x=%zz&s=ok", "s"), 1); ASSERT_STR_EQ(out, "ok");
    /* only the given length counts */
    const char *q = "s=abc&t=1";
    ASSERT_EQ(dg_http_query_param(q, 4, "s", out, sizeof out), 1); ASSERT_STR_EQ(out, "ab");
    ASSERT_EQ(dg_http_query_param(q, 5, "t", out, sizeof out), 0);
}

TEST(output_bound)
{
    char small[4];
    ASSERT_EQ(dg_http_query_param("s=abc", 5, "s", small, sizeof small), 1); ASSERT_STR_EQ(small, "abc");
    ASSERT_EQ(dg_http_query_param("s=abcd", 6, "s", small, sizeof small), -1);
    ASSERT_EQ(dg_http_query_param("s=%41%42%43", 11, "s", small, sizeof small), 1); ASSERT_STR_EQ(small, "ABC");
    ASSERT_EQ(dg_http_query_param("s=%41%42%43%44", 14, "s", small, sizeof small), -1);
    /* a 600-byte token into a 600-byte buffer: -1, not a truncated token */
    char q[700], tok[600];
    memcpy(q, "token=", 6);
    memset(q + 6, 'a', 600);
    ASSERT_EQ(dg_http_query_param(q, 606, "token", tok, sizeof tok), -1);
    ASSERT_EQ(dg_http_query_param(q, 605, "token", tok, sizeof tok), 1);
    ASSERT_EQ(strlen(tok), 599);
}

/* engineer "httpsec": NUL and control characters in query values (issue 8, 1.8) */
static int qp2(const char *q, const char *key, char *o, size_t olen)
{
    return dg_http_query_param(q, strlen(q), key, o, olen);
}

TEST(query_param_basic)
{
    char v[64];
    ASSERT_EQ(qp2("a=1&b=two&c=", "b", v, sizeof v), 1); ASSERT_STR_EQ(v, "two");
    ASSERT_EQ(qp2("a=1&b=two&c=", "a", v, sizeof v), 1); ASSERT_STR_EQ(v, "1");
    ASSERT_EQ(qp2("a=1&b=two&c=", "c", v, sizeof v), 1); ASSERT_STR_EQ(v, "");
    ASSERT_EQ(qp2("a=1&b=two&c", "c", v, sizeof v), 1);  ASSERT_STR_EQ(v, "");
    ASSERT_EQ(qp2("a=1&b=two", "d", v, sizeof v), 0);
    ASSERT_EQ(qp2("ab=1", "a", v, sizeof v), 0);
    ASSERT_EQ(qp2("", "a", v, sizeof v), 0);
    ASSERT_EQ(qp2("x=a%2Cb+c%41%7e", "x", v, sizeof v), 1); ASSERT_STR_EQ(v, "a,b cA~");
    ASSERT_EQ(qp2("t=%C3%A9", "t", v, sizeof v), 1); ASSERT_STR_EQ(v, "\xc3\xa9");   /* UTF-8 passes */
}

TEST(query_param_malformed_and_long)
{
    char v[8];
    ASSERT_EQ(qp2("x=%", "x", v, sizeof v), -1);
    ASSERT_EQ(qp2("x=%4", "x", v, sizeof v), -1);
    ASSERT_EQ(qp2("x=%zz", "x", v, sizeof v), -1);
    ASSERT_EQ(qp2("x=1234567", "x", v, sizeof v), 1);     /* 7 chars + NUL fit */
    ASSERT_EQ(qp2("x=12345678", "x", v, sizeof v), -1);   /* one more does not: never truncated */
    ASSERT_EQ(qp2("x=%31%32%33%34%35%36%37%38", "x", v, sizeof v), -1);
}

TEST(query_param_rejects_nul)
{
    char v[64];
    ASSERT_EQ(qp2("from=0%00junk", "from", v, sizeof v), -1);
    ASSERT_EQ(qp2("limit=5%00", "limit", v, sizeof v), -1);
    ASSERT_EQ(qp2("token=%00", "token", v, sizeof v), -1);
    ASSERT_EQ(qp2("drones=a%00b", "drones", v, sizeof v), -1);
    /* a raw NUL inside the query (the length says it is part of it) */
    ASSERT_EQ(dg_http_query_param("x=a\0b", 5, "x", v, sizeof v), -1);
    /* other parameters are not affected by a NUL in one */
    ASSERT_EQ(qp2("a=%00&b=ok", "b", v, sizeof v), 1); ASSERT_STR_EQ(v, "ok");
}

TEST(query_param_rejects_control_characters)
{
    char v[64];
    static const char *bad[] = { "%01", "%09", "%0a", "%0A", "%0d", "%1b", "%1f", "%7f", "%7F", "a%0d%0aSet-Cookie:x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char q[64];
        snprintf(q, sizeof q, "x=%s", bad[i]);
        if (qp2(q, "x", v, sizeof v) != -1) CHECK__FAIL("x=%s accepted", bad[i]);
    }
    ASSERT_EQ(dg_http_query_param("x=a\tb", 5, "x", v, sizeof v), -1);
    ASSERT_EQ(dg_http_query_param("x=a\x7f", 5, "x", v, sizeof v), -1);
    ASSERT_EQ(qp2("x=%20%7e%21", "x", v, sizeof v), 1); ASSERT_STR_EQ(v, " ~!");   /* printable: fine */
}

int main(void)
{
    RUN(finds_exact_keys);
    RUN(empty_and_missing_values);
    RUN(decoding);
    RUN(output_bound);
    RUN(query_param_basic);
    RUN(query_param_malformed_and_long);
    RUN(query_param_rejects_nul);
    RUN(query_param_rejects_control_characters);
    return check_summary("http");
}
