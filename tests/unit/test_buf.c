/* test_buf.c - unit tests of src/core/buf.c: append/printf, and O(1)
 * consumption from the front (an output buffer drained by partial writes
 * must not memmove the rest after every write: issue 8 §1.4). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/buf.h"

TEST(append_printf_free)
{
    dg_buf_t b = { 0 };
    ASSERT_EQ(dg_buf_puts(&b, "abc"), 0);
    ASSERT_EQ(dg_buf_printf(&b, "-%d-", 42), 0);
    ASSERT_EQ(b.len, 7);
    ASSERT_MEM_EQ(b.data, "abc-42-", 7);
    dg_buf_free(&b);
    ASSERT(b.data == NULL);
    ASSERT_EQ(b.len, 0);
    ASSERT_EQ(b.cap, 0);
    dg_buf_free(&b);   /* twice is fine */
}

/* Consuming does not move the remaining bytes: the read position advances. */
TEST(consume_is_o1)
{
    dg_buf_t b = { 0 };
    char chunk[4096];
    for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (char)('a' + i % 26);
    for (int i = 0; i < 256; i++) ASSERT_EQ(dg_buf_append(&b, chunk, sizeof chunk), 0);   /* 1 MiB */
    size_t total = b.len;
    const char *first = b.data;
    dg_buf_consume(&b, 1000);
    ASSERT(b.data == first + 1000);   /* old code: memmove, data unchanged */
    ASSERT_EQ(b.len, total - 1000);
    ASSERT_EQ(b.data[0], 'a' + 1000 % 26);
    /* drain in small writes: every step is O(1), the content stays right */
    size_t off = 1000;
    while (b.len > 7) {
        ASSERT_EQ(b.data[0], 'a' + (off % sizeof chunk) % 26);
        dg_buf_consume(&b, 7);
        off += 7;
    }
    dg_buf_consume(&b, b.len);
    ASSERT_EQ(b.len, 0);
    ASSERT(b.data == first);           /* empty: back to the start of the allocation */
    ASSERT_EQ(b.head, 0);
    dg_buf_consume(&b, 5);             /* more than there is: no-op */
    ASSERT_EQ(b.len, 0);
    dg_buf_free(&b);
}

/* A FIFO in steady state (append a bit, consume a bit) reuses its memory:
 * the dead prefix is reclaimed, capacity does not grow without bound, and
 * bytes come out in order. */
TEST(fifo_steady_state)
{
    dg_buf_t b = { 0 };
    uint32_t next_in = 0, next_out = 0;
    for (int round = 0; round < 200000; round++) {
        uint32_t v[3] = { next_in, next_in + 1, next_in + 2 };
        next_in += 3;
        ASSERT_EQ(dg_buf_append(&b, v, sizeof v), 0);
        size_t take = (round % 3 == 0) ? 2 * sizeof(uint32_t) : 4 * sizeof(uint32_t);
        if (b.len < 4096) take = sizeof(uint32_t);
        take -= take % sizeof(uint32_t);
        if (take > b.len) take = b.len;
        for (size_t k = 0; k < take; k += sizeof(uint32_t)) {
            uint32_t x;
            memcpy(&x, b.data + k, sizeof x);
            ASSERT_EQ(x, next_out);
            next_out++;
        }
        dg_buf_consume(&b, take);
        ASSERT(b.cap + b.head <= 64 * 1024);
    }
    dg_buf_free(&b);
}

/* Reserve after consuming: live bytes keep their content whether the buffer
 * compacts or grows. */
TEST(reserve_after_consume)
{
    dg_buf_t b = { 0 };
    for (int i = 0; i < 1000; i++) ASSERT_EQ(dg_buf_printf(&b, "%04d", i), 0);
    dg_buf_consume(&b, 3000);          /* 1000 bytes live, 3000 dead */
    ASSERT_EQ(dg_buf_reserve(&b, 3000), 0);
    ASSERT(b.cap - b.len >= 3000);
    ASSERT_MEM_EQ(b.data, "0750", 4);
    ASSERT_EQ(dg_buf_reserve(&b, 1 << 20), 0);
    ASSERT(b.cap - b.len >= (1u << 20));
    ASSERT_MEM_EQ(b.data, "0750", 4);
    ASSERT_MEM_EQ(b.data + b.len - 4, "0999", 4);
    dg_buf_free(&b);
}

int main(void)
{
    RUN(append_printf_free);
    RUN(consume_is_o1);
    RUN(fifo_steady_state);
    RUN(reserve_after_consume);
    return check_summary("buf");
}
