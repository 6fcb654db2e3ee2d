/* ws.h - the mavlink2 WebSocket subprotocol on /ws/{drone_id}: binary
 * frames holding one or more MAVLink packets (v2, v1 accepted), mapped to
 * telemetry rows like MAVLink/UDP (vehicle.h); the drone id comes from the
 * URL and the token is checked as for JSON. Commands go down as
 * COMMAND_LONG / COMMAND_INT (command.h), sent once (TCP delivers them);
 * the vehicle's COMMAND_ACK sets their status. Rows carry no seq: nothing
 * is acked (MAVLink has no such message); text frames close with 1003.
 */
#ifndef DG_MAVLINK_WS_H
#define DG_MAVLINK_WS_H

#include "../core/ingest.h"

#define DG_MAV_WS_PROTOCOL "mavlink2"

extern const dg_drone_io_t dg_mav_ws_io;

#endif
