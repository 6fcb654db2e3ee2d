/* auth.h - drone tokens (lowercase hex HMAC-SHA256(secret, drone_id)) and
 * operator token comparison. Pure functions, any thread. */
#ifndef DG_AUTH_H
#define DG_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define DG_TOKEN_LEN 64
/* Longest operator token (--operator-token, --operator-read-token) in
 * characters; a longer configured token is refused at start, a longer
 * presented token never matches. */
#define DG_OPERATOR_TOKEN_MAX 1024

/* Write the token (64 hex chars + NUL) for drone_id into out. 0 or -1. */
int  dg_auth_token(const char *secret, const char *drone_id, size_t id_len, char out[DG_TOKEN_LEN + 1]);
/* Constant-time check that `token` is the drone's token. */
bool dg_auth_check(const char *secret, const char *drone_id, size_t id_len,
                   const char *token, size_t token_len);
/* Is `given` exactly the configured operator token `want`? False when want
 * is empty (not configured) or either is longer than DG_OPERATOR_TOKEN_MAX.
 * Compares SHA-256 digests of both with CRYPTO_memcmp, so the time taken
 * depends neither on where they differ nor on the length of `want`. */
bool dg_auth_token_eq(const char *given, size_t given_len, const char *want, size_t want_len);

/* Does an HTTP Host header value name this gateway, so that a page whose
 * origin is that host is really on the gateway (not an attacker's DNS name
 * rebound to the gateway's address)? True for: no Host; an IP literal (v4,
 * or [v6]: an address cannot be rebound); a name without a dot (localhost,
 * a LAN host name: resolved locally, not by a DNS zone an attacker owns);
 * the host of `listen` (--listen HOST:PORT); a name in `allowed` (comma
 * list, case-insensitive, "name" or "name:port"; "*" = any). The port is
 * not compared otherwise (behind a proxy it is the proxy's). */
bool dg_auth_host_ok(const char *host, const char *listen, const char *allowed);

#endif
