/* check.h - minimal unit test harness (libuv style: always-on asserts that
 * print both values). Each test file defines tests with TEST(name) and lists
 * them in main via RUN(name); main ends with `return check_summary("name");`,
 * which prints the closing line "name: N passed, N failed".
 */
#ifndef DG_CHECK_H
#define DG_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int check__passed, check__failed, check__cur_failed;
static const char *check__cur;

#define TEST(name) static void test_##name(void)
#define RUN(name) do { check__cur = #name; check__cur_failed = 0; test_##name(); \
    if (check__cur_failed) check__failed++; else check__passed++; } while (0)

#define CHECK__FAIL(fmt, ...) do { fprintf(stderr, "FAIL %s (%s:%d): " fmt "\n", \
    check__cur, __FILE__, __LINE__, __VA_ARGS__); check__cur_failed = 1; return; } while (0)

#define ASSERT(cond) do { if (!(cond)) CHECK__FAIL("%s", #cond); } while (0)
#define ASSERT_EQ(a, b) do { long long a__ = (long long)(a), b__ = (long long)(b); \
    if (a__ != b__) CHECK__FAIL("%s == %s: %lld != %lld", #a, #b, a__, b__); } while (0)
#define ASSERT_U64_EQ(a, b) do { uint64_t a__ = (uint64_t)(a), b__ = (uint64_t)(b); \
    if (a__ != b__) CHECK__FAIL("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, a__, b__); } while (0)
#define ASSERT_DBL_EQ(a, b) do { double a__ = (a), b__ = (b); \
    if (!(a__ == b__)) CHECK__FAIL("%s == %s: %.17g != %.17g", #a, #b, a__, b__); } while (0)
#define ASSERT_STR_EQ(a, b) do { const char *a__ = (a), *b__ = (b); \
    if (!a__ || !b__ || strcmp(a__, b__)) CHECK__FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, \
        a__ ? a__ : "(null)", b__ ? b__ : "(null)"); } while (0)
#define ASSERT_MEM_EQ(a, b, n) do { if (memcmp((a), (b), (n))) \
    CHECK__FAIL("%s == %s (%zu bytes) differ", #a, #b, (size_t)(n)); } while (0)

static inline int check_summary(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, check__passed, check__failed);
    return check__failed ? 1 : 0;
}

#endif
