/* vehicle.c - see vehicle.h. */
#include "vehicle.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void dg_mav_state_init(dg_mav_state_t *s)
{
    memset(s, 0, sizeof *s);
    s->battery = s->vfr_speed = s->vfr_climb = s->vfr_heading = NAN;
}

const char *dg_mav_status_word(uint8_t base_mode, uint8_t system_status)
{
    /* MAV_STATE (common.xml) */
    static const char *const names[] = { "uninit", "boot", "calibrating", "standby", "active",
                                         "critical", "emergency", "poweroff", "termination" };
    bool armed = (base_mode & 128) != 0;   /* MAV_MODE_FLAG_SAFETY_ARMED */
    if (armed && system_status == 4) return "airborne";
    if (armed) return "armed";
    return system_status < sizeof names / sizeof names[0] ? names[system_status] : "unknown";
}

static double norm_heading(double h)
{
    if (!isfinite(h)) return NAN;
    h = fmod(h, 360.0);
    if (h < 0) h += 360.0;
    return h >= 360.0 ? 0.0 : h;
}

static void set_battery(dg_mav_state_t *s, int remaining)
{
    if (remaining >= 0 && remaining <= 100) s->battery = remaining;
    else if (remaining == -1) s->battery = NAN;
}

bool dg_mav_state_apply(dg_mav_state_t *s, const dg_mav_frame_t *f, int64_t now_ms, long store_every_ms,
                        dg_record_t *row)
{
    switch (f->msgid) {
    case DG_MAV_MSG_HEARTBEAT: {
        dg_mav_heartbeat_t hb;
        dg_mav_get_heartbeat(f, &hb);
        snprintf(s->status, sizeof s->status, "%s", dg_mav_status_word(hb.base_mode, hb.system_status));
        s->has_status = true;
        return false;
    }
    case DG_MAV_MSG_SYS_STATUS: {
        dg_mav_sys_status_t ss;
        dg_mav_get_sys_status(f, &ss);
        set_battery(s, ss.battery_remaining);
        return false;
    }
    case DG_MAV_MSG_BATTERY_STATUS: {
        dg_mav_battery_status_t bs;
        dg_mav_get_battery_status(f, &bs);
        if (bs.id == 0) set_battery(s, bs.battery_remaining);
        return false;
    }
    case DG_MAV_MSG_VFR_HUD: {
        dg_mav_vfr_hud_t v;
        dg_mav_get_vfr_hud(f, &v);
        s->vfr_speed = isfinite(v.groundspeed) && v.groundspeed >= 0 ? v.groundspeed : NAN;
        s->vfr_climb = isfinite(v.climb) ? v.climb : NAN;
        s->vfr_heading = norm_heading(v.heading);
        return false;
    }
    case DG_MAV_MSG_GLOBAL_POSITION_INT: {
        if (store_every_ms > 0 && s->has_row && now_ms - s->last_row_ms < store_every_ms) return false;
        dg_mav_gpi_t g;
        dg_mav_get_gpi(f, &g);
        dg_record_init(row);
        row->ts_ms = now_ms;
        row->lat = g.lat / 1e7;
        row->lon = g.lon / 1e7;
        row->alt = g.alt / 1000.0;
        double hdg = g.hdg != UINT16_MAX ? norm_heading(g.hdg / 100.0) : s->vfr_heading;
        double spd = !isnan(s->vfr_speed) ? s->vfr_speed : hypot(g.vx, g.vy) / 100.0;
        double clb = !isnan(s->vfr_climb) ? s->vfr_climb : -g.vz / 100.0;
        if (!isnan(hdg)) { row->heading = hdg; row->flags |= DG_REC_HAS_HEADING; }
        row->speed = spd; row->flags |= DG_REC_HAS_SPEED;
        row->climb = clb; row->flags |= DG_REC_HAS_CLIMB;
        if (!isnan(s->battery)) { row->battery = s->battery; row->flags |= DG_REC_HAS_BATTERY; }
        if (s->has_status) {
            size_t n = strlen(s->status);
            memcpy(row->status, s->status, n + 1);
            row->status_len = (uint8_t)n;
            row->flags |= DG_REC_HAS_STATUS;
        }
        s->last_row_ms = now_ms;
        s->has_row = true;
        return true;
    }
    default:
        return false;   /* decoded (CRC checked) but not part of a row */
    }
}
