/* csp.c - see csp.h. The policy is what web/ needs and nothing more:
 * scripts, styles, the world outline and fetches from the gateway itself
 * ('self' also covers ws:/wss: to the same host in CSP Level 3: Chromium,
 * Firefox, Safari >= 15.4; the live stream's worker connects that way),
 * Leaflet's marker images and the favicon as data: URLs, the live stream in
 * a Web Worker, raster tiles from --map-tiles when configured. No inline
 * script, no style attribute in markup (Leaflet sets styles through the
 * CSSOM, which CSP allows), no plugins, no <base>, no framing
 * (clickjacking), no Referer (the dashboard URL may hold ?token=).
 */
#include "csp.h"

#include <stdio.h>
#include <string.h>

static int host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '-';
}

int dg_csp_tile_source(const char *tmpl, char *out, size_t n)
{
    if (!n) return -1;
    out[0] = '\0';
    if (!tmpl || !tmpl[0]) return 0;
    if (tmpl[0] == '/') return tmpl[1] == '/' ? -1 : 0;   /* "/path": same origin */
    const char *scheme;
    const char *p;
    if (!strncmp(tmpl, "https://", 8)) { scheme = "https://"; p = tmpl + 8; }
    else if (!strncmp(tmpl, "http://", 7)) { scheme = "http://"; p = tmpl + 7; }
    else return -1;
    const char *wild = "";
    if (!strncmp(p, "{s}.", 4)) { wild = "*."; p += 4; }
    const char *h = p;
    while (host_char(*p)) p++;
    size_t hl = (size_t)(p - h);
    if (hl == 0 || h[0] == '.' || h[0] == '-' || p[-1] == '.') return -1;
    const char *port = p;
    if (*p == ':') {
        p++;
        const char *d = p;
        while (*p >= '0' && *p <= '9') p++;
        if (p == d || p - d > 5) return -1;
    }
    size_t pl = (size_t)(p - port);
    if (*p && *p != '/' && *p != '?' && *p != '#') return -1;   /* '@', '{', ';', ' ' ... */
    int w = snprintf(out, n, "%s%s%.*s%.*s", scheme, wild, (int)hl, h, (int)pl, port);
    if (w < 0 || (size_t)w >= n) { out[0] = '\0'; return -1; }
    return 0;
}

int dg_csp_page_headers(char *out, size_t n, const char *tiles)
{
    char src[300];
    if (!n) return -1;
    if (dg_csp_tile_source(tiles, src, sizeof src)) src[0] = '\0';
    int w = snprintf(out, n,
                     "Cache-Control: no-cache\r\n"
                     "Content-Security-Policy: default-src 'self'; img-src 'self' data:%s%s; "
                     "worker-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                     "form-action 'self'; frame-ancestors 'none'\r\n"
                     "Referrer-Policy: no-referrer\r\n"
                     "X-Frame-Options: DENY\r\n",
                     src[0] ? " " : "", src);
    if (w < 0 || (size_t)w >= n) { out[0] = '\0'; return -1; }
    return 0;
}
