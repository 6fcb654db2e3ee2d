/* fuzz_kafka_uri.c - libFuzzer target for the kafka:// URI parser
 * (queue/kafka_uri.c). Never crashes; an accepted URI has a broker list and
 * a topic of the allowed characters, every error is a sentence. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/queue/kafka_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[4096];
    if (size >= sizeof s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    dg_kafka_uri_t u;
    char err[256];
    err[0] = '\0';
    if (dg_kafka_uri_parse(s, &u, err, sizeof err) != 0) {
        if (!err[0]) abort();
        return 0;
    }
    if (!u.brokers[0] || !strchr(u.brokers, ':') || !u.topic[0]) abort();
    if (strspn(u.topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(u.topic)) abort();
    if (u.nprops > DG_KAFKA_MAX_PROPS) abort();
    for (size_t i = 0; i < u.nprops; i++) if (!u.props[i].name[0]) abort();
    return 0;
}
