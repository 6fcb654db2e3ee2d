/* auth.h - drone tokens: lowercase hex HMAC-SHA256(secret, drone_id).
 * Pure functions, any thread. */
#ifndef DG_AUTH_H
#define DG_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define DG_TOKEN_LEN 64

/* Write the token (64 hex chars + NUL) for drone_id into out. 0 or -1. */
int  dg_auth_token(const char *secret, const char *drone_id, size_t id_len, char out[DG_TOKEN_LEN + 1]);
/* Constant-time check that `token` is the drone's token. */
bool dg_auth_check(const char *secret, const char *drone_id, size_t id_len,
                   const char *token, size_t token_len);

#endif
