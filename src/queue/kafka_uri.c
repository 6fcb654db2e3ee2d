/* kafka_uri.c - kafka:// URIs (kafka_uri.h). */
#include "kafka_uri.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode p[0..n) into out (cap bytes with the NUL). -1 when it does
 * not fit, a %XX is malformed or decodes to NUL. */
static int pct_decode(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval(p[i + 1]), l = hexval(p[i + 2]);
            if (h < 0 || l < 0 || (h | l) == 0) return -1;
            c = (char)(h << 4 | l);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* One HOST:PORT of the broker list: host non-empty (a name, IPv4, or
 * [IPv6]), port 1-65535. */
static int hostport_ok(const char *p, size_t n)
{
    const char *colon = NULL;
    for (size_t i = n; i-- > 0;) if (p[i] == ':') { colon = p + i; break; }
    if (!colon || colon == p) return 0;
    size_t hl = (size_t)(colon - p), pl = n - hl - 1;
    if (pl == 0 || pl > 5) return 0;
    long port = 0;
    for (size_t i = 0; i < pl; i++) {
        if (colon[1 + i] < '0' || colon[1 + i] > '9') return 0;
        port = port * 10 + (colon[1 + i] - '0');
    }
    if (port < 1 || port > 65535) return 0;
    if (p[0] == '[') return hl >= 3 && p[hl - 1] == ']';
    for (size_t i = 0; i < hl; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static int topic_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 249 || !strcmp(t, ".") || !strcmp(t, "..")) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

int dg_kafka_uri_parse(const char *uri, dg_kafka_uri_t *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (!uri || strncmp(uri, "kafka://", 8) != 0) {
        snprintf(err, errlen, "a Kafka URI starts with kafka://");
        return -1;
    }
    const char *p = uri + 8;
    size_t hl = strcspn(p, "/?#");
    if (p[hl] == '#') { snprintf(err, errlen, "a Kafka URI has no #fragment"); return -1; }
    if (hl == 0) { snprintf(err, errlen, "kafka:// needs at least one HOST:PORT broker"); return -1; }
    if (hl >= sizeof u->brokers) { snprintf(err, errlen, "the Kafka broker list is too long"); return -1; }
    for (const char *b = p, *end = p + hl; b < end;) {
        const char *comma = memchr(b, ',', (size_t)(end - b));
        size_t bl = comma ? (size_t)(comma - b) : (size_t)(end - b);
        if (!hostport_ok(b, bl)) {
            snprintf(err, errlen, "'%.*s' in the Kafka URI is not HOST:PORT (port 1-65535)", (int)(bl > 200 ? 200 : bl), b);
            return -1;
        }
        b += bl + (comma ? 1 : 0);
        if (comma && b == end) { snprintf(err, errlen, "the Kafka broker list ends with a comma"); return -1; }
    }
    memcpy(u->brokers, p, hl);
    u->brokers[hl] = '\0';
    p += hl;

    snprintf(u->topic, sizeof u->topic, "%s", DG_KAFKA_DEFAULT_TOPIC);
    if (*p == '/') {
        p++;
        size_t tl = strcspn(p, "?#");
        if (p[tl] == '#') { snprintf(err, errlen, "a Kafka URI has no #fragment"); return -1; }
        if (tl > 0) {
            if (pct_decode(p, tl, u->topic, sizeof u->topic) || !topic_ok(u->topic)) {
                snprintf(err, errlen, "the Kafka topic must be 1-249 characters of [A-Za-z0-9._-]");
                return -1;
            }
        }
        p += tl;
    }
    if (*p == '?') {
        p++;
        while (*p) {
            size_t pl = strcspn(p, "&#");
            if (p[pl] == '#') { snprintf(err, errlen, "a Kafka URI has no #fragment"); return -1; }
            if (pl == 0) { p++; continue; }
            const char *eq = memchr(p, '=', pl);
            if (!eq || eq == p) {
                snprintf(err, errlen, "Kafka URI parameter '%.*s' is not name=value", (int)(pl > 100 ? 100 : pl), p);
                return -1;
            }
            char name[128], value[512];
            if (pct_decode(p, (size_t)(eq - p), name, sizeof name) ||
                pct_decode(eq + 1, pl - (size_t)(eq - p) - 1, value, sizeof value)) {
                snprintf(err, errlen, "Kafka URI parameter '%.*s' is too long or badly %%-encoded", (int)(pl > 100 ? 100 : pl), p);
                return -1;
            }
            if (!strcmp(name, "group")) {
                if (!value[0] || strlen(value) >= sizeof u->group) { snprintf(err, errlen, "group= needs a name (at most 255 bytes)"); return -1; }
                memcpy(u->group, value, strlen(value) + 1);
            } else if (!strcmp(name, "format")) {
                value[64] = 0;   /* for the message */
                if (strcmp(value, "json") != 0) {
                    snprintf(err, errlen, "format=%s is not available in this build (format=json is)", value);
                    return -1;
                }
            } else if (!strcmp(name, "bootstrap.servers") || !strcmp(name, "metadata.broker.list")) {
                snprintf(err, errlen, "set the brokers in the URI's HOST:PORT list, not with %s=", name);
                return -1;
            } else {
                if (u->nprops == DG_KAFKA_MAX_PROPS) { snprintf(err, errlen, "at most %d librdkafka properties in a Kafka URI", DG_KAFKA_MAX_PROPS); return -1; }
                memcpy(u->props[u->nprops].name, name, sizeof name);
                memcpy(u->props[u->nprops].value, value, sizeof value);
                u->nprops++;
            }
            p += pl;
            if (*p == '&') p++;
        }
    } else if (*p) {
        snprintf(err, errlen, "unexpected '%.20s' in the Kafka URI", p);
        return -1;
    }
    return 0;
}
