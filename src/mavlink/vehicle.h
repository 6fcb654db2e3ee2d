/* vehicle.h - what the gateway makes of one vehicle's MAVLink messages:
 * the merged state that becomes telemetry rows (pure: no sockets, no
 * threads; shared by the UDP endpoint and the mavlink2 WebSocket channel).
 *
 *   position  GLOBAL_POSITION_INT lat/lon (degE7), alt (mm AMSL)
 *   heading   GLOBAL_POSITION_INT hdg (cdeg; UINT16_MAX = unknown), else
 *             VFR_HUD heading
 *   speed     VFR_HUD groundspeed, else |(vx, vy)| of GLOBAL_POSITION_INT
 *   climb     VFR_HUD climb, else -vz of GLOBAL_POSITION_INT
 *   battery   SYS_STATUS battery_remaining, or BATTERY_STATUS
 *             battery_remaining (id 0), -1 = unknown (left out)
 *   status    HEARTBEAT: armed (base_mode & 128) and system_status ACTIVE
 *             -> "airborne"; armed otherwise -> "armed"; else the MAV_STATE
 *             name in lower case ("standby", "boot", "critical", ...)
 *
 * A row is made at every GLOBAL_POSITION_INT (or at most one per
 * store_every_ms when that is > 0). Its timestamp is the receive time: MAVLink
 * times are since boot. It carries no seq (MAVLink rows are not acked).
 */
#ifndef DG_MAVLINK_VEHICLE_H
#define DG_MAVLINK_VEHICLE_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/record.h"
#include "mavlink.h"

typedef struct dg_mav_state {
    double   battery;            /* NAN: unknown */
    double   vfr_speed, vfr_climb, vfr_heading;   /* NAN until a VFR_HUD */
    char     status[DG_STATUS_MAX + 1];
    bool     has_status;
    int64_t  last_row_ms;        /* receive time of the last row made */
    bool     has_row;
} dg_mav_state_t;

void dg_mav_state_init(dg_mav_state_t *s);
/* The status word of a heartbeat. */
const char *dg_mav_status_word(uint8_t base_mode, uint8_t system_status);
/* Take in one frame. True when it made a row (GLOBAL_POSITION_INT, at the
 * rate): *row is filled (drone id, origin and recv_us are left to the
 * caller; ts_ms = now_ms). The row is not validated here. */
bool dg_mav_state_apply(dg_mav_state_t *s, const dg_mav_frame_t *f, int64_t now_ms, long store_every_ms,
                        dg_record_t *row);

#endif
