/* command_body.h - the body of POST /api/v1/drones/{id}/commands:
 *
 *   {"name": "goto", "args": {"lat": 47.4, "lon": 8.5, "alt": 500}}
 *
 * name: 1-32 bytes of [a-z0-9_] (required). args: a JSON object (optional,
 * "{}" when absent), at most DG_CMD_ARGS_MAX bytes, kept as the operator
 * wrote it. The whole body must be strict RFC 8259 JSON (dg_json_validate:
 * strings with valid escapes, valid UTF-8, paired surrogates, no raw control
 * characters; strict numbers and literals), so what reaches the drone and the
 * dashboards is valid UTF-8 JSON and can never make a WebSocket peer fail the
 * connection with 1007 (or its JSON parser fail).
 * "goto" needs args lat [-90,90], lon [-180,180], alt [-1000,100000].
 */
#ifndef DG_COMMAND_BODY_H
#define DG_COMMAND_BODY_H

#include <stddef.h>

#include "../core/commands.h"

typedef struct dg_command_body {
    char   name[DG_CMD_NAME_MAX + 1];
    char   args[DG_CMD_ARGS_MAX + 1];   /* the body's args text, NUL-terminated */
    size_t args_len;
} dg_command_body_t;

/* Parse and validate body js[0..len). 0, or -1 with a reason for the client
 * (HTTP 400) in err[0..errlen). Pure, thread-safe. */
int dg_command_body_parse(const char *js, size_t len, dg_command_body_t *out, char *err, size_t errlen);

#endif
