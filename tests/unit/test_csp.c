/* test_csp.c - unit tests of src/http/csp.c: the dashboard's security
 * headers and the tile server's CSP source (no directive injection). */
#include <string.h>

#include "check.h"
#include "http/csp.h"

static const char *src(const char *tmpl, int *rc)
{
    static char out[300];
    *rc = dg_csp_tile_source(tmpl, out, sizeof out);
    return out;
}

TEST(tile_source_valid)
{
    int rc;
    ASSERT_STR_EQ(src("https://tiles.example.org/{z}/{x}/{y}.png", &rc), "https://tiles.example.org"); ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(src("http://10.0.0.5:8081/t/{z}/{x}/{y}.png", &rc), "http://10.0.0.5:8081"); ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(src("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png", &rc), "https://*.tile.openstreetmap.org");
    ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(src("https://t.example?z={z}&x={x}&y={y}", &rc), "https://t.example"); ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(src("/tiles/{z}/{x}/{y}.png", &rc), ""); ASSERT_EQ(rc, 0);   /* same origin: 'self' */
    ASSERT_STR_EQ(src("", &rc), ""); ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(src(NULL, &rc), ""); ASSERT_EQ(rc, 0);
}

TEST(tile_source_refused)
{
    static const char *bad[] = {
        "https://a.example;script-src *;/{z}/{x}/{y}", "https://a.example /{z}", "https://a'b/{z}",
        "https://user@a.example/{z}", "//a.example/{z}/{x}/{y}", "ftp://a.example/{z}", "data:,x",
        "https://{s}/{z}", "https://a.{s}.example/{z}", "https://.example/{z}", "https:///{z}",
        "https://a.example:/{z}", "https://a.example:123456/{z}", "https://[::1]/{z}", "javascript:x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc;
        const char *o = src(bad[i], &rc);
        if (rc != -1 || o[0]) CHECK__FAIL("%s accepted as \"%s\"", bad[i], o);
    }
}

TEST(page_headers)
{
    char h[DG_CSP_HEADERS_MAX];
    ASSERT_EQ(dg_csp_page_headers(h, sizeof h, NULL), 0);
    ASSERT(strstr(h, "Content-Security-Policy: default-src 'self'; img-src 'self' data:; worker-src 'self'; "
                     "connect-src 'self';"));
    ASSERT(strstr(h, "frame-ancestors 'none'\r\n"));
    ASSERT(strstr(h, "Referrer-Policy: no-referrer\r\n"));
    ASSERT(strstr(h, "X-Frame-Options: DENY\r\n"));
    ASSERT(!strstr(h, "unsafe"));
    ASSERT_EQ(dg_csp_page_headers(h, sizeof h, "https://{s}.tiles.example:8443/{z}/{x}/{y}.png"), 0);
    ASSERT(strstr(h, "img-src 'self' data: https://*.tiles.example:8443; worker-src"));
    ASSERT_EQ(dg_csp_page_headers(h, sizeof h, "https://x;script-src 'unsafe-inline'/{z}"), 0);
    ASSERT(strstr(h, "img-src 'self' data:; worker-src"));   /* refused source: nothing added */
    ASSERT(!strstr(h, "unsafe"));
    /* every line ends in CRLF, nothing else breaks a line */
    for (const char *p = h; *p; p++) {
        if (*p == '\n' && (p == h || p[-1] != '\r')) CHECK__FAIL("bare LF at %zu", (size_t)(p - h));
        if (*p == '\r' && p[1] != '\n') CHECK__FAIL("bare CR at %zu", (size_t)(p - h));
    }
    char small[40];
    ASSERT_EQ(dg_csp_page_headers(small, sizeof small, NULL), -1);
    ASSERT_STR_EQ(small, "");
}

int main(void)
{
    RUN(tile_source_valid);
    RUN(tile_source_refused);
    RUN(page_headers);
    return check_summary("test_csp");
}
