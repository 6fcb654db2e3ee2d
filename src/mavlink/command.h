/* command.h - the gateway's command names as MAVLink commands (pure).
 *
 *   return_to_home  COMMAND_LONG MAV_CMD_NAV_RETURN_TO_LAUNCH (20)
 *   land            COMMAND_LONG MAV_CMD_NAV_LAND (21), here (lat/lon 0, yaw NaN)
 *   goto            COMMAND_INT  MAV_CMD_DO_REPOSITION (192), args
 *                   {"lat","lon","alt"} (as POST /commands checks them; alt metres AMSL,
 *                   MAV_FRAME_GLOBAL; default speed, change mode)
 *   arm / disarm    COMMAND_LONG MAV_CMD_COMPONENT_ARM_DISARM (400), param1 1 / 0
 *
 * COMMAND_ACK results: ACCEPTED -> done, IN_PROGRESS -> accepted, every other
 * result -> rejected (with the MAV_RESULT name as the message).
 */
#ifndef DG_MAVLINK_COMMAND_H
#define DG_MAVLINK_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "../core/commands.h"

#define DG_MAV_CMD_NAV_RETURN_TO_LAUNCH 20
#define DG_MAV_CMD_NAV_LAND             21
#define DG_MAV_CMD_DO_REPOSITION        192
#define DG_MAV_CMD_COMPONENT_ARM_DISARM 400

typedef struct dg_mav_cmd_out {
    uint32_t msgid;        /* DG_MAV_MSG_COMMAND_LONG or _INT */
    uint16_t command;      /* MAV_CMD */
    uint8_t  payload[35];  /* wire order; for COMMAND_LONG the confirmation byte is payload[32] */
    uint8_t  len;
} dg_mav_cmd_out_t;

/* 0 and *out, or -1 with a message (unknown name, bad args). */
int dg_mav_command_build(const dg_command_t *cmd, uint8_t target_sys, uint8_t target_comp,
                         dg_mav_cmd_out_t *out, char *err, size_t errlen);
/* MAV_RESULT -> DG_CMD_DONE / DG_CMD_ACCEPTED / DG_CMD_REJECTED, and its name. */
int dg_mav_result_status(uint8_t result, const char **name);

#endif
