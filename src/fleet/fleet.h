/* fleet.h - several gateways over one PostgreSQL store behave as one fleet
 * for operator commands (issue 12 §1).
 *
 * Only with a postgresql:// store (with SQLite there is one machine and
 * nothing changes). No cluster protocol of our own: PostgreSQL is the
 * shared state and LISTEN/NOTIFY the wake-up.
 *
 *   table dronegate_presence (drone_id PK, instance, since): which gateway
 *         holds each drone's connection. Written by the fleet thread from
 *         the connect/disconnect events of this gateway (an upsert on
 *         connect; on disconnect a delete of the row only when it still
 *         names this instance, so a drone that moved on keeps its new row).
 *         At start a gateway deletes the rows naming itself (left by a
 *         crash of its earlier run).
 *
 *   POST /api/v1/drones/{id}/commands on a gateway that does not hold the
 *         drone: a read-pool job (never on an event loop) looks the drone
 *         up in dronegate_presence; when another instance holds it, one
 *         transaction inserts the `commands` row (pending) and runs
 *         pg_notify('dronegate_commands', '<instance> <command id>'); the
 *         answer is 202 {"id","status":"pending"}. 409 when no instance
 *         holds it, 404 when no gateway ever saw it.
 *
 *   4409 across gateways: the presence upsert of a drone that connects
 *         here while the table names another instance notifies
 *         'dronegate_moved' with "<that instance> <drone id>"; that gateway
 *         closes its connection of the drone with 4409 (a half-open one
 *         left behind by a network change, or a second connection). A drone
 *         that bounces back before the notification lands may be closed
 *         once more needlessly; it reconnects and wins.
 *
 *   The holding gateway's fleet thread LISTENs on dronegate_commands: a
 *         notification naming it reads the row back, takes the command
 *         into its in-memory table (dg_commands_restore) and posts it to
 *         the worker of the drone's connection - from there it is a command
 *         like a local one (sent, acked, expired, each change written to
 *         the commands table by the store writer), so GET
 *         /api/v1/commands/{id} on any gateway reads the same row.
 *
 * Threads: dg_fleet_presence() from worker threads (non-blocking: a bounded
 * queue); the job of dg_fleet_command_job() runs on a read-pool thread (one
 * mutex-protected connection); one fleet thread owns the LISTEN connection.
 */
#ifndef DG_FLEET_H
#define DG_FLEET_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/reads.h"
#include "../core/server.h"

typedef struct dg_fleet dg_fleet_t;

/* Start for a postgresql:// store: NULL with err set on failure; NULL
 * with err[0] == '\0' for any other store (nothing to do). */
dg_fleet_t *dg_fleet_start(dg_server_t *srv, const char *store_uri, const char *instance,
                           char *err, size_t errlen);
void        dg_fleet_stop(dg_fleet_t *f);

/* This gateway now holds (online) or no longer holds drone_id. Any
 * thread; never blocks on the database. */
void dg_fleet_presence(dg_fleet_t *f, const char *drone_id, bool online);

/* A read job that routes a new command for a drone that is not connected
 * here (see above). args is a JSON object text (dg_command_body_parse made
 * it). NULL when out of memory. */
dg_read_job_t *dg_fleet_command_job(dg_fleet_t *f, const char *drone_id, const char *name,
                                    const char *args, size_t args_len);

/* Notification payload "<instance> <32 hex command id>": 0 and the two
 * parts (NUL-terminated) when well formed, -1 otherwise. */
int dg_fleet_parse_notify(const char *payload, char instance[65], char cmd_id[33]);
/* "<instance> <drone id>" on dronegate_moved: the same, for a drone that
 * connected to another gateway (the named instance closes it with 4409). */
int dg_fleet_parse_moved(const char *payload, char instance[65], char drone[DG_DRONE_ID_MAX + 1]);
/* "<instance> 1 <drone>" (online there), "<instance> 0 <drone>" (offline),
 * "<instance> reset" (that gateway holds nothing) on dronegate_presence:
 * 1, 0 or 2 (drone ""), -1 when malformed. */
int dg_fleet_parse_presence(const char *payload, char instance[65], char drone[DG_DRONE_ID_MAX + 1]);

#endif
