/* fuzz_amqp_uri.c - libFuzzer target for the `--queue amqp://` URI parser
 * (queue/amqp_uri.c). Arbitrary bytes must never crash; an error has a
 * sentence; a parsed URI holds NUL-terminated fields without control
 * characters, a port in 1..65535 and a non-empty queue name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/queue/amqp_uri.h"

static void clean(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap) abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 8);
    memcpy(s, "amqp://", 7);
    /* an odd first byte: dropped, and the scheme prepended (to reach past it) */
    size_t off = 0;
    if (size && (data[0] & 1)) { off = 7; data++; size--; }
    memcpy(s + off, data, size);
    s[off + size] = '\0';
    dg_amqp_uri_t u;
    char err[200];
    err[0] = '\0';
    if (dg_amqp_uri_parse(s, &u, err, sizeof err) != 0) {
        if (!err[0]) abort();
    } else {
        clean(u.user, sizeof u.user);
        clean(u.pass, sizeof u.pass);
        clean(u.host, sizeof u.host);
        clean(u.vhost, sizeof u.vhost);
        clean(u.queue, sizeof u.queue);
        clean(u.exchange, sizeof u.exchange);
        if (u.port < 1 || u.port > 65535 || !u.queue[0] || u.inflight < 1) abort();
    }
    free(s);
    return 0;
}
