/* test_kafka_uri.c - kafka:// URIs (queue/kafka_uri.c). */
#include "check.h"

#include "../../src/queue/kafka_uri.h"

static dg_kafka_uri_t u;
static char err[256];

static int bad(const char *s, const char *says)
{
    err[0] = '\0';
    if (dg_kafka_uri_parse(s, &u, err, sizeof err) == 0) { fprintf(stderr, "accepted: %s\n", s); return 0; }
    if (!err[0] || (says && !strstr(err, says))) { fprintf(stderr, "%s -> '%s' (want '%s')\n", s, err, says); return 0; }
    return 1;
}

TEST(minimal_default_topic)
{
    ASSERT_EQ(dg_kafka_uri_parse("kafka://k1:9092", &u, err, sizeof err), 0);
    ASSERT(strcmp(u.brokers, "k1:9092") == 0);
    ASSERT(strcmp(u.topic, "dronegate.telemetry") == 0);
    ASSERT_EQ((long)u.nprops, 0);
    ASSERT(u.group[0] == '\0');
    ASSERT_EQ(dg_kafka_uri_parse("kafka://k1:9092/", &u, err, sizeof err), 0);
    ASSERT(strcmp(u.topic, "dronegate.telemetry") == 0);
}

TEST(full)
{
    ASSERT_EQ(dg_kafka_uri_parse("kafka://k1:9092,10.0.0.2:19092,[::1]:9093/fleet.tel-1_x?compression.type=lz4"
                                 "&group=sinks&linger.ms=5&format=json&ssl.ca.location=%2Fetc%2Fca.pem&&", &u, err, sizeof err), 0);
    ASSERT(strcmp(u.brokers, "k1:9092,10.0.0.2:19092,[::1]:9093") == 0);
    ASSERT(strcmp(u.topic, "fleet.tel-1_x") == 0);
    ASSERT(strcmp(u.group, "sinks") == 0);
    ASSERT_EQ((long)u.nprops, 3);
    ASSERT(strcmp(u.props[0].name, "compression.type") == 0 && strcmp(u.props[0].value, "lz4") == 0);
    ASSERT(strcmp(u.props[1].name, "linger.ms") == 0 && strcmp(u.props[1].value, "5") == 0);
    ASSERT(strcmp(u.props[2].name, "ssl.ca.location") == 0 && strcmp(u.props[2].value, "/etc/ca.pem") == 0);
}

TEST(rejects)
{
    ASSERT(bad("amqp://h:1/x", "kafka://"));
    ASSERT(bad("kafka://", "HOST:PORT"));
    ASSERT(bad("kafka:///t", "HOST:PORT"));
    ASSERT(bad("kafka://host/t", "not HOST:PORT"));
    ASSERT(bad("kafka://host:0/t", "not HOST:PORT"));
    ASSERT(bad("kafka://host:65536/t", "not HOST:PORT"));
    ASSERT(bad("kafka://host:9x/t", "not HOST:PORT"));
    ASSERT(bad("kafka://:9092/t", "not HOST:PORT"));
    ASSERT(bad("kafka://h:1,/t", "comma"));
    ASSERT(bad("kafka://h:1,,h:2/t", "not HOST:PORT"));
    ASSERT(bad("kafka://us er:1/t", "not HOST:PORT"));
    ASSERT(bad("kafka://h:1/a/b", "topic"));
    ASSERT(bad("kafka://h:1/..", "topic"));
    ASSERT(bad("kafka://h:1/t#frag", "fragment"));
    ASSERT(bad("kafka://h:1/t?x", "name=value"));
    ASSERT(bad("kafka://h:1/t?=v", "name=value"));
    ASSERT(bad("kafka://h:1/t?a=%zz", "encoded"));
    ASSERT(bad("kafka://h:1/t?a=%0", "encoded"));
    ASSERT(bad("kafka://h:1/t?a=%00", "encoded"));
    ASSERT(bad("kafka://h:1/t?format=protobuf", "not available in this build"));
    ASSERT(bad("kafka://h:1/t?group=", "group"));
    ASSERT(bad("kafka://h:1/t?bootstrap.servers=x:1", "HOST:PORT list"));
    char big[3000];
    snprintf(big, sizeof big, "kafka://h:1/t?");
    for (int i = 0; i < 40; i++) snprintf(big + strlen(big), sizeof big - strlen(big), "p%d=v&", i);
    ASSERT(bad(big, "at most"));
    memset(big, 'a', sizeof big); memcpy(big, "kafka://h:1/", 12); big[sizeof big - 1] = '\0';
    ASSERT(bad(big, "topic"));
}

int main(void)
{
    RUN(minimal_default_topic);
    RUN(full);
    RUN(rejects);
    return check_summary("test_kafka_uri");
}
