/* test_grpc.c - the gRPC message framing (5-byte prefix) and the mapping of
 * channel close codes to gRPC status codes. */
#include <string.h>

#include "check.h"
#include "grpc/grpc.h"

TEST(frame_prefix)
{
    uint8_t b[16] = { 0, 0, 0, 0, 3, 'a', 'b', 'c', 0, 0 };
    ASSERT_EQ(dg_grpc_frame(b, 0, 100), DG_GRPC_MORE);
    ASSERT_EQ(dg_grpc_frame(b, 4, 100), DG_GRPC_MORE);   /* prefix incomplete */
    ASSERT_EQ(dg_grpc_frame(b, 7, 100), DG_GRPC_MORE);   /* message incomplete */
    ASSERT_EQ(dg_grpc_frame(b, 8, 100), 3);
    ASSERT_EQ(dg_grpc_frame(b, 10, 100), 3);         /* the next one starts after */
    ASSERT_EQ(dg_grpc_frame(b, 8, 3), 3);            /* max is inclusive */
    ASSERT_EQ(dg_grpc_frame(b, 8, 2), DG_GRPC_TOO_BIG);  /* known from the prefix alone */
    ASSERT_EQ(dg_grpc_frame(b, 5, 2), DG_GRPC_TOO_BIG);
    uint8_t z[5] = { 0, 0, 0, 0, 0 };
    ASSERT_EQ(dg_grpc_frame(z, 5, 100), 0);          /* an empty message: complete, length 0 */
    ASSERT_EQ(dg_grpc_frame(z, 4, 100), DG_GRPC_MORE);
    b[0] = 1;
    ASSERT_EQ(dg_grpc_frame(b, 8, 100), DG_GRPC_COMPRESSED);
    ASSERT_EQ(dg_grpc_frame(b, 1, 100), DG_GRPC_COMPRESSED);   /* known from the flag byte */
    uint8_t big[5] = { 0, 0xff, 0xff, 0xff, 0xff };
    ASSERT_EQ(dg_grpc_frame(big, 5, (size_t)1 << 20), DG_GRPC_TOO_BIG);
}

TEST(status_codes)
{
    ASSERT_EQ(dg_grpc_status_of(1000), 0);     /* OK */
    ASSERT_EQ(dg_grpc_status_of(1001), 14);    /* UNAVAILABLE: drain, idle */
    ASSERT_EQ(dg_grpc_status_of(1013), 14);
    ASSERT_EQ(dg_grpc_status_of(1008), 8);     /* RESOURCE_EXHAUSTED: rate, backlog */
    ASSERT_EQ(dg_grpc_status_of(1009), 8);
    ASSERT_EQ(dg_grpc_status_of(4409), 10);    /* ABORTED: replaced */
    ASSERT_EQ(dg_grpc_status_of(1007), 3);
    ASSERT_EQ(dg_grpc_status_of(1011), 13);
}

int main(void)
{
    RUN(frame_prefix);
    RUN(status_codes);
    return check_summary("grpc");
}
