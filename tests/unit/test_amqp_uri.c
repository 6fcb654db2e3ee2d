/* test_amqp_uri.c - `--queue amqp://...` parsing (queue/amqp_uri.c). */
#include "check.h"

#include "../../src/queue/amqp_uri.h"

static dg_amqp_uri_t u;
static char err[200];

static int parse(const char *s)
{
    err[0] = '\0';
    return dg_amqp_uri_parse(s, &u, err, sizeof err);
}

TEST(full)
{
    ASSERT_EQ(parse("amqp://alice:s3cret@mq.example.org:5673/prod?queue=tele&type=stream&exchange=drones"), 0);
    ASSERT_STR_EQ(u.user, "alice");
    ASSERT_STR_EQ(u.pass, "s3cret");
    ASSERT_STR_EQ(u.host, "mq.example.org");
    ASSERT_EQ(u.port, 5673);
    ASSERT_STR_EQ(u.vhost, "prod");
    ASSERT_STR_EQ(u.queue, "tele");
    ASSERT_EQ(u.type, DG_AMQP_STREAM);
    ASSERT_STR_EQ(u.exchange, "drones");
    ASSERT_STR_EQ(dg_amqp_qtype_name(u.type), "stream");
}

TEST(defaults)
{
    ASSERT_EQ(parse("amqp://"), 0);
    ASSERT_STR_EQ(u.user, "guest");
    ASSERT_STR_EQ(u.pass, "guest");
    ASSERT_STR_EQ(u.host, "localhost");
    ASSERT_EQ(u.port, 5672);
    ASSERT_STR_EQ(u.vhost, "/");
    ASSERT_STR_EQ(u.queue, "dronegate.telemetry");
    ASSERT_EQ(u.type, DG_AMQP_QUORUM);
    ASSERT_STR_EQ(u.exchange, "");
    ASSERT_STR_EQ(u.offset, "first");
    ASSERT_EQ(u.inflight, 65536);
    ASSERT_EQ(parse("amqp://h/"), 0);          /* empty path: "/" */
    ASSERT_STR_EQ(u.vhost, "/");
    ASSERT_STR_EQ(u.host, "h");
    ASSERT_EQ(parse("amqp://h:1?queue=q"), 0); /* no path */
    ASSERT_EQ(u.port, 1);
    ASSERT_STR_EQ(u.vhost, "/");
    ASSERT_STR_EQ(u.queue, "q");
    ASSERT_EQ(parse("amqp://bob@h"), 0);       /* user without password */
    ASSERT_STR_EQ(u.user, "bob");
    ASSERT_STR_EQ(u.pass, "guest");
}

TEST(percent_decoding)
{
    ASSERT_EQ(parse("amqp://us%40er:p%3Aa%2Fs%25s@h/%2F?queue=a%20b"), 0);
    ASSERT_STR_EQ(u.user, "us@er");
    ASSERT_STR_EQ(u.pass, "p:a/s%s");
    ASSERT_STR_EQ(u.vhost, "/");
    ASSERT_STR_EQ(u.queue, "a b");
    ASSERT_EQ(parse("amqp://h/%2fdev"), 0);    /* lower-case hex */
    ASSERT_STR_EQ(u.vhost, "/dev");
    ASSERT_EQ(parse("amqp://a:b@c@h/v"), 0);   /* the last '@' ends the userinfo */
    ASSERT_STR_EQ(u.pass, "b@c");
    ASSERT_STR_EQ(u.host, "h");
    ASSERT_EQ(parse("amqp://[::1]:5674/"), 0);
    ASSERT_STR_EQ(u.host, "::1");
    ASSERT_EQ(u.port, 5674);
}

TEST(type_offset_inflight)
{
    ASSERT_EQ(parse("amqp://h/?type=classic"), 0);
    ASSERT_EQ(u.type, DG_AMQP_CLASSIC);
    ASSERT_EQ(parse("amqp://h/?type=quorum&offset=last&inflight=10"), 0);
    ASSERT_EQ(u.type, DG_AMQP_QUORUM);
    ASSERT_STR_EQ(u.offset, "last");
    ASSERT_EQ(u.inflight, 10);
    ASSERT_EQ(parse("amqp://h/?offset=12345&&queue=q&"), 0);
    ASSERT_STR_EQ(u.offset, "12345");
}

static void rejects(const char *s, const char *why)
{
    if (parse(s) != -1)
        fprintf(stderr, "FAIL accepted: %s\n", s), check__cur_failed = 1;
    else if (!strstr(err, why))
        fprintf(stderr, "FAIL %s: error \"%s\" lacks \"%s\"\n", s, err, why), check__cur_failed = 1;
}

TEST(errors)
{
    rejects("http://h/", "amqp://");
    rejects("amqps://h/", "amqp://");
    rejects(NULL, "amqp://");
    rejects("amqp://h:0/", "port");
    rejects("amqp://h:65536/", "port");
    rejects("amqp://h:x/", "port");
    rejects("amqp://h:/", "port");
    rejects("amqp://h/?type=lazy", "type must be");
    rejects("amqp://h/?queue=", "queue must not be empty");
    rejects("amqp://h/?queue=amq.x", "reserved");
    rejects("amqp://h/?exchange=amq.topic", "reserved");
    rejects("amqp://h/?qeue=x", "unknown parameter");
    rejects("amqp://h/?queue", "no value");
    rejects("amqp://h/a/b", "one path segment");
    rejects("amqp://h/%2", "two hex digits");
    rejects("amqp://h/%zz", "two hex digits");
    rejects("amqp://u%00:p@h/", "control");
    rejects("amqp://h/?queue=a%0Ab", "control");
    rejects("amqp://:p@h/", "user is empty");
    rejects("amqp://h/#f", "fragment");
    rejects("amqp://h/?queue=q#f", "fragment");
    rejects("amqp://[::1/", "']'");
    rejects("amqp://[::1]x/", "after ']'");
    rejects("amqp://h o/", "bad character");
    rejects("amqp://h/?offset=-1", "offset");
    rejects("amqp://h/?inflight=0", "inflight");
    rejects("amqp://h/?inflight=99999999999999999999", "inflight");
    char big[400] = "amqp://h/?queue=";
    memset(big + strlen(big), 'q', 300);
    rejects(big, "longer than 255");
}

int main(void)
{
    RUN(full);
    RUN(defaults);
    RUN(percent_decoding);
    RUN(type_offset_inflight);
    RUN(errors);
    return check_summary("amqp_uri");
}
