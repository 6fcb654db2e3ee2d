/* commands.h - operator commands to drones: creation, status transitions,
 * expiry. An in-memory table shared by all threads (one mutex: commands are
 * rare next to telemetry; lookups by id and by drone are hashed); every
 * change is also persisted through the store writer and published on the
 * live stream by the caller.
 *
 * Status machine:
 *   pending -> sent -> accepted -> done
 *   pending | sent | accepted -> rejected | expired
 *   (a drone may answer done or rejected without accepted first)
 */
#ifndef DG_COMMANDS_H
#define DG_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "metrics.h"
#include "record.h"

#define DG_CMD_ID_LEN    32   /* hex chars */
#define DG_CMD_NAME_MAX  32
#define DG_CMD_MSG_MAX   255
#define DG_CMD_ARGS_MAX  4096
#define DG_CMD_MAX_OPEN_PER_DRONE 64       /* open = pending, sent or accepted */
#define DG_CMD_MAX_OPEN_TOTAL     100000

typedef struct dg_command {
    char     id[DG_CMD_ID_LEN + 1];
    char     drone_id[DG_DRONE_ID_MAX + 1];
    char     name[DG_CMD_NAME_MAX + 1];
    char     args[DG_CMD_ARGS_MAX + 1];   /* JSON object text, "{}" when none */
    int      status;                      /* enum dg_cmdstat (metrics.h) */
    char     message[DG_CMD_MSG_MAX + 1];
    int64_t  created_ms, updated_ms;
} dg_command_t;

typedef struct dg_commands dg_commands_t;

dg_commands_t *dg_commands_new(long timeout_ms);
void           dg_commands_free(dg_commands_t *t);

const char *dg_command_status_name(int status);
/* Any status by name; -1 when unknown. */
int         dg_command_status_from_name(const char *s);
/* -1 when not a drone-reportable status (accepted|rejected|done). */
int         dg_command_status_parse(const char *s, size_t n);

/* Caps on open (not final) commands, per drone and in total (defaults
 * DG_CMD_MAX_OPEN_PER_DRONE, DG_CMD_MAX_OPEN_TOTAL). */
void dg_commands_set_limits(dg_commands_t *t, size_t per_drone, size_t total);
/* Open commands of drone_id, or of all drones when drone_id is NULL. */
size_t dg_commands_open(dg_commands_t *t, const char *drone_id);

/* Create a pending command; *out receives a copy (with its new id). 0,
 * -EAGAIN (the drone has its maximum of open commands: HTTP 429), -ENOSPC
 * (the table has its maximum in total: HTTP 503), -ENOMEM or -EIO. args must
 * be a JSON object text that is valid UTF-8 (dg_command_body_parse makes it). */
int  dg_commands_create(dg_commands_t *t, const char *drone_id, const char *name,
                        const char *args, size_t args_len, int64_t now_ms, dg_command_t *out);
/* Take back a command of an earlier run (read from the store at start):
 * kept as it is (status, times). 0, 1 when the id is known already, or
 * -ENOMEM. Commands must come oldest first. */
int  dg_commands_restore(dg_commands_t *t, const dg_command_t *c);
/* Copy of a command by id: 0, or -1 when unknown. */
int  dg_commands_get(dg_commands_t *t, const char *id, size_t id_len, dg_command_t *out);
/* Apply a transition. When drone_id is not NULL the command must belong to
 * it. 0 and *out updated when the status changed; -1 unknown command (or
 * another drone's); -2 transition not allowed (final state, or backwards). */
int  dg_commands_set(dg_commands_t *t, const char *id, size_t id_len, const char *drone_id,
                     int status, const char *msg, size_t msg_len, int64_t now_ms, dg_command_t *out);
/* Pending commands of a drone (oldest first), copied into out[0..max).
 * Returns the count. */
size_t dg_commands_pending(dg_commands_t *t, const char *drone_id, dg_command_t *out, size_t max);
/* Expire every command not final after the timeout (counted from its
 * creation); calls cb for each, after releasing the lock. Also
 * forgets final commands older than 10 timeouts (memory bound; they stay
 * in the store). */
void dg_commands_expire(dg_commands_t *t, int64_t now_ms, void (*cb)(void *ud, const dg_command_t *c), void *ud);

/* Tests: the longest chain of the by-id (which = 0) or by-drone (1) hash
 * index (both grow at load 1, so lookups stay O(1) at any fleet size). */
size_t dg_commands__longest_chain(dg_commands_t *t, int which);

/* JSON object of a command (the REST and live representation). */
int  dg_command_json(dg_buf_t *b, const dg_command_t *c);

#endif
