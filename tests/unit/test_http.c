/* test_http.c - unit tests of src/http/http.c that need no connection:
 * dg_http_query_param (percent decoding, limits, control characters).
 *
 * Shared file: engineer "httpsec" wrote the query_param_* tests (issue 8,
 * 1.8: NUL bytes were accepted in query values and cut them short for every
 * caller that used strlen/strtoll on the result).
 */
#include <string.h>

#include "check.h"
#include "http/http.h"

static int qp(const char *q, const char *key, char *out, size_t outlen)
{
    return dg_http_query_param(q, strlen(q), key, out, outlen);
}

TEST(query_param_basic)
{
    char v[64];
    ASSERT_EQ(qp("a=1&b=two&c=", "b", v, sizeof v), 1); ASSERT_STR_EQ(v, "two");
    ASSERT_EQ(qp("a=1&b=two&c=", "a", v, sizeof v), 1); ASSERT_STR_EQ(v, "1");
    ASSERT_EQ(qp("a=1&b=two&c=", "c", v, sizeof v), 1); ASSERT_STR_EQ(v, "");
    ASSERT_EQ(qp("a=1&b=two&c", "c", v, sizeof v), 1);  ASSERT_STR_EQ(v, "");
    ASSERT_EQ(qp("a=1&b=two", "d", v, sizeof v), 0);
    ASSERT_EQ(qp("ab=1", "a", v, sizeof v), 0);
    ASSERT_EQ(qp("", "a", v, sizeof v), 0);
    ASSERT_EQ(qp("x=a%2Cb+c%41%7e", "x", v, sizeof v), 1); ASSERT_STR_EQ(v, "a,b cA~");
    ASSERT_EQ(qp("t=%C3%A9", "t", v, sizeof v), 1); ASSERT_STR_EQ(v, "\xc3\xa9");   /* UTF-8 passes */
}

TEST(query_param_malformed_and_long)
{
    char v[8];
    ASSERT_EQ(qp("x=%", "x", v, sizeof v), -1);
    ASSERT_EQ(qp("x=%4", "x", v, sizeof v), -1);
    ASSERT_EQ(qp("x=%zz", "x", v, sizeof v), -1);
    ASSERT_EQ(qp("x=1234567", "x", v, sizeof v), 1);     /* 7 chars + NUL fit */
    ASSERT_EQ(qp("x=12345678", "x", v, sizeof v), -1);   /* one more does not: never truncated */
    ASSERT_EQ(qp("x=%31%32%33%34%35%36%37%38", "x", v, sizeof v), -1);
}

TEST(query_param_rejects_nul)
{
    char v[64];
    ASSERT_EQ(qp("from=0%00junk", "from", v, sizeof v), -1);
    ASSERT_EQ(qp("limit=5%00", "limit", v, sizeof v), -1);
    ASSERT_EQ(qp("token=%00", "token", v, sizeof v), -1);
    ASSERT_EQ(qp("drones=a%00b", "drones", v, sizeof v), -1);
    /* a raw NUL inside the query (the length says it is part of it) */
    ASSERT_EQ(dg_http_query_param("x=a\0b", 5, "x", v, sizeof v), -1);
    /* other parameters are not affected by a NUL in one */
    ASSERT_EQ(qp("a=%00&b=ok", "b", v, sizeof v), 1); ASSERT_STR_EQ(v, "ok");
}

TEST(query_param_rejects_control_characters)
{
    char v[64];
    static const char *bad[] = { "%01", "%09", "%0a", "%0A", "%0d", "%1b", "%1f", "%7f", "%7F", "a%0d%0aSet-Cookie:x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char q[64];
        snprintf(q, sizeof q, "x=%s", bad[i]);
        if (qp(q, "x", v, sizeof v) != -1) CHECK__FAIL("x=%s accepted", bad[i]);
    }
    ASSERT_EQ(dg_http_query_param("x=a\tb", 5, "x", v, sizeof v), -1);
    ASSERT_EQ(dg_http_query_param("x=a\x7f", 5, "x", v, sizeof v), -1);
    ASSERT_EQ(qp("x=%20%7e%21", "x", v, sizeof v), 1); ASSERT_STR_EQ(v, " ~!");   /* printable: fine */
}

int main(void)
{
    RUN(query_param_basic);
    RUN(query_param_malformed_and_long);
    RUN(query_param_rejects_nul);
    RUN(query_param_rejects_control_characters);
    return check_summary("test_http");
}
