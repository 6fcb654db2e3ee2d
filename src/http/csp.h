/* csp.h - the security headers of dashboard responses (files under
 * --web-root and the built-in page): Content-Security-Policy,
 * Referrer-Policy, X-Frame-Options, Cache-Control. Pure functions, any
 * thread. (X-Content-Type-Options: nosniff is on every response:
 * dg_http_respond.)
 */
#ifndef DG_CSP_H
#define DG_CSP_H

#include <stddef.h>

/* Enough for the headers with the longest tile source dg_csp_tile_source
 * accepts. */
#define DG_CSP_HEADERS_MAX 768

/* Write the header lines (each ending in \r\n, NUL-terminated) into out.
 * `tiles` is the --map-tiles URL template (NULL or "" = none): its origin is
 * added to img-src so the browser may load the tiles; a template whose
 * origin cannot be written safely adds nothing. 0, or -1 when out is too
 * small (out is then ""). */
int dg_csp_page_headers(char *out, size_t n, const char *tiles);

/* The CSP source of a tile URL template: "https://tiles.example.org:8443"
 * for "https://tiles.example.org:8443/{z}/{x}/{y}.png"; the wildcard source
 * of *.tile.osm.org (https) for "https://{s}.tile.osm.org/{z}/..." (each
 * {s} subdomain); "" for a same-origin "/path" (covered
 * by 'self') or no template. -1 (out "") for anything else: another scheme,
 * "//host", user info, characters outside a host name (a ';' or space would
 * inject directives), "{s}" other than as the first label. */
int dg_csp_tile_source(const char *tmpl, char *out, size_t n);

#endif
