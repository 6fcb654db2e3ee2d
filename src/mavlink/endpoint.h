/* endpoint.h - MAVLink over UDP (--mavlink-listen, issue 11): vehicles
 * (PX4, ArduPilot, anything speaking MAVLink v1/v2) send telemetry to the
 * gateway the way they send it to a ground station.
 *
 * One UDP socket, read by worker 0 through the worker's datagram listener
 * (dg_worker_listen_dgram): a vehicle is (source address, system id),
 * created by its first HEARTBEAT (from an autopilot, not from another GCS),
 * named mav-{sysid} unless --mavlink-ids maps the sysid to a drone id. Its
 * messages are merged into telemetry rows (position from
 * GLOBAL_POSITION_INT, battery from SYS_STATUS / BATTERY_STATUS, status from
 * HEARTBEAT, heading/speed/climb from VFR_HUD) that enter the same pipeline
 * as JSON (dg_record_validate, the worker's batch, the store, the registry
 * and the live stream). No acks: UDP is fire and forget (README).
 *
 * The gateway sends its own GCS HEARTBEAT (sysid 255, compid 190) at 1 Hz
 * to each vehicle; a vehicle is online from its first heartbeat until
 * --mavlink-offline-timeout (5 s) passes without one. The vehicle table is
 * bounded (--mavlink-max-vehicles): a full table drops the heartbeats of new
 * vehicles (counted) until one goes offline.
 */
#ifndef DG_MAVLINK_ENDPOINT_H
#define DG_MAVLINK_ENDPOINT_H

#include <stddef.h>

struct dg_server;
typedef struct dg_mav_ep dg_mav_ep_t;

/* Bind --mavlink-listen and register the socket with worker 0 (before the
 * workers start). NULL with a message in err on failure. *bound_port gets
 * the port (useful with port 0). */
dg_mav_ep_t *dg_mav_ep_start(struct dg_server *srv, const char *hostport, int *bound_port,
                             char *err, size_t errlen);
/* After the workers were joined: release the vehicles' registry pins. */
void dg_mav_ep_free(dg_mav_ep_t *ep);

#endif
