/* amqp_uri.c - parse `--queue amqp://...` (amqp_uri.h). */
#include "amqp_uri.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode p[0..n) into out (size cap, NUL-terminated). 0, or -1 with
 * err naming `what`: bad escape, too long, or a control character. */
static int decode(const char *p, size_t n, char *out, size_t cap, const char *what,
                  char *err, size_t errlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)p[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)p[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                snprintf(err, errlen, "amqp URI: %s: '%%' must be followed by two hex digits", what);
                return -1;
            }
            c = hi << 4 | lo;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f) {
            snprintf(err, errlen, "amqp URI: %s: control characters are not allowed", what);
            return -1;
        }
        if (o + 1 >= cap) {
            snprintf(err, errlen, "amqp URI: %s is longer than %zu bytes", what, cap - 1);
            return -1;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

static int parse_long(const char *s, long min, long max, long *v)
{
    if (!*s) return -1;
    for (const char *q = s; *q; q++)
        if (*q < '0' || *q > '9') return -1;
    errno = 0;
    char *end;
    long x = strtol(s, &end, 10);
    if (errno || *end || x < min || x > max) return -1;
    *v = x;
    return 0;
}

static int param(dg_amqp_uri_t *u, const char *k, size_t kn, const char *v, size_t vn,
                 char *err, size_t errlen)
{
    char val[256];
    if (kn == 5 && !memcmp(k, "queue", 5)) {
        if (decode(v, vn, u->queue, sizeof u->queue, "queue", err, errlen)) return -1;
        if (!u->queue[0]) { snprintf(err, errlen, "amqp URI: queue must not be empty"); return -1; }
        if (!strncmp(u->queue, "amq.", 4)) {
            snprintf(err, errlen, "amqp URI: queue names starting with \"amq.\" are reserved by the broker");
            return -1;
        }
        return 0;
    }
    if (kn == 8 && !memcmp(k, "exchange", 8)) {
        if (decode(v, vn, u->exchange, sizeof u->exchange, "exchange", err, errlen)) return -1;
        return 0;
    }
    if (decode(v, vn, val, sizeof val, "parameter value", err, errlen)) return -1;
    if (kn == 4 && !memcmp(k, "type", 4)) {
        if (!strcmp(val, "quorum")) u->type = DG_AMQP_QUORUM;
        else if (!strcmp(val, "stream")) u->type = DG_AMQP_STREAM;
        else if (!strcmp(val, "classic")) u->type = DG_AMQP_CLASSIC;
        else {
            snprintf(err, errlen, "amqp URI: type must be quorum, stream or classic, not \"%.40s\"", val);
            return -1;
        }
        return 0;
    }
    if (kn == 6 && !memcmp(k, "offset", 6)) {
        long n;
        if (strcmp(val, "first") && strcmp(val, "last") && strcmp(val, "next") &&
            parse_long(val, 0, 0x7fffffffffffffffL, &n)) {
            snprintf(err, errlen, "amqp URI: offset must be first, last, next or a number");
            return -1;
        }
        snprintf(u->offset, sizeof u->offset, "%.23s", val);
        return 0;
    }
    if (kn == 8 && !memcmp(k, "inflight", 8)) {
        if (parse_long(val, 1, 10000000, &u->inflight)) {
            snprintf(err, errlen, "amqp URI: inflight must be a number of records from 1 to 10000000");
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "amqp URI: unknown parameter \"%.*s\" (known: queue, type, exchange, offset, inflight)",
             (int)(kn > 40 ? 40 : kn), k);
    return -1;
}

const char *dg_amqp_qtype_name(dg_amqp_qtype_t t)
{
    return t == DG_AMQP_STREAM ? "stream" : t == DG_AMQP_CLASSIC ? "classic" : "quorum";
}

int dg_amqp_uri_parse(const char *uri, dg_amqp_uri_t *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    strcpy(u->user, "guest");
    strcpy(u->pass, "guest");
    strcpy(u->host, "localhost");
    u->port = 5672;
    strcpy(u->vhost, "/");
    strcpy(u->queue, "dronegate.telemetry");
    u->type = DG_AMQP_QUORUM;
    strcpy(u->offset, "first");
    u->inflight = 65536;

    if (!uri || strncmp(uri, "amqp://", 7)) {
        snprintf(err, errlen, "amqp URI must start with amqp:// (amqps:// is not supported)");
        return -1;
    }
    const char *p = uri + 7;
    const char *auth_end = p + strcspn(p, "/?#");
    if (*auth_end == '#') {
        snprintf(err, errlen, "amqp URI: a fragment ('#') is not allowed");
        return -1;
    }
    /* userinfo: the last '@' before the path */
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@') at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (decode(p, (size_t)(colon - p), u->user, sizeof u->user, "user", err, errlen)) return -1;
            if (decode(colon + 1, (size_t)(at - colon - 1), u->pass, sizeof u->pass, "password", err, errlen))
                return -1;
        } else if (decode(p, (size_t)(at - p), u->user, sizeof u->user, "user", err, errlen)) {
            return -1;
        }
        if (!u->user[0]) { snprintf(err, errlen, "amqp URI: the user is empty"); return -1; }
        p = at + 1;
    }
    /* host[:port], [v6]:port */
    const char *hend, *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(auth_end - p));
        if (!rb) { snprintf(err, errlen, "amqp URI: '[' without ']' in the host"); return -1; }
        if (rb + 1 < auth_end && rb[1] != ':') {
            snprintf(err, errlen, "amqp URI: garbage after ']' in the host");
            return -1;
        }
        if (rb + 1 < auth_end) port = rb + 2;
        p++;
        hend = rb;
    } else {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        hend = colon ? colon : auth_end;
        if (colon) port = colon + 1;
    }
    if (hend > p) {
        if ((size_t)(hend - p) >= sizeof u->host) {
            snprintf(err, errlen, "amqp URI: the host is longer than %zu bytes", sizeof u->host - 1);
            return -1;
        }
        for (const char *q = p; q < hend; q++) {
            char c = *q;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_' || c == ':')) {
                snprintf(err, errlen, "amqp URI: bad character in the host");
                return -1;
            }
        }
        memcpy(u->host, p, (size_t)(hend - p));
        u->host[hend - p] = '\0';
    }
    if (port) {
        char pb[8];
        size_t pn = (size_t)(auth_end - port);
        long v;
        if (pn == 0 || pn >= sizeof pb) { snprintf(err, errlen, "amqp URI: bad port"); return -1; }
        memcpy(pb, port, pn);
        pb[pn] = '\0';
        if (parse_long(pb, 1, 65535, &v)) {
            snprintf(err, errlen, "amqp URI: the port must be a number from 1 to 65535");
            return -1;
        }
        u->port = (int)v;
    }
    p = auth_end;
    /* /VHOST (one segment, percent-decoded; empty = "/") */
    if (*p == '/') {
        p++;
        size_t vn = strcspn(p, "?#");
        if (memchr(p, '/', vn)) {
            snprintf(err, errlen, "amqp URI: the vhost is one path segment (write '/' as %%2F)");
            return -1;
        }
        if (vn && decode(p, vn, u->vhost, sizeof u->vhost, "vhost", err, errlen)) return -1;
        p += vn;
    }
    if (*p == '#') { snprintf(err, errlen, "amqp URI: a fragment ('#') is not allowed"); return -1; }
    if (*p == '?') {
        p++;
        while (*p) {
            size_t n = strcspn(p, "&#");
            if (p[n] == '#') { snprintf(err, errlen, "amqp URI: a fragment ('#') is not allowed"); return -1; }
            if (n) {
                const char *eq = memchr(p, '=', n);
                if (!eq) {
                    snprintf(err, errlen, "amqp URI: parameter \"%.*s\" has no value", (int)(n > 40 ? 40 : n), p);
                    return -1;
                }
                if (param(u, p, (size_t)(eq - p), eq + 1, (size_t)(p + n - eq - 1), err, errlen)) return -1;
            }
            p += n;
            if (*p == '&') p++;
        }
    }
    if (u->exchange[0] && !strncmp(u->exchange, "amq.", 4)) {
        snprintf(err, errlen, "amqp URI: exchange names starting with \"amq.\" are reserved by the broker");
        return -1;
    }
    return 0;
}
