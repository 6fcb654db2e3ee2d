/* command.c - see command.h. */
#include "command.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>
#include "../codec/jsmn_util.h"
#include "mavlink.h"

/* A number member of the top-level args object; 0 found, -1 not. */
static int arg_number(const char *js, const jsmntok_t *t, int n, const char *key, double *v)
{
    if (n < 1 || t[0].type != JSMN_OBJECT) return -1;
    for (int i = 1; i + 1 < n; ) {
        if (dg_jsmn_eq(js, &t[i], key) && t[i + 1].type == JSMN_PRIMITIVE) {
            char buf[64];
            int len = t[i + 1].end - t[i + 1].start;
            if (len <= 0 || len >= (int)sizeof buf) return -1;
            memcpy(buf, js + t[i + 1].start, (size_t)len);
            buf[len] = '\0';
            char *end;
            *v = strtod(buf, &end);
            return *end || !isfinite(*v) ? -1 : 0;
        }
        i = dg_jsmn_skip(t, n, i + 1);   /* key, then its value subtree */
    }
    return -1;
}

static void put_long(dg_mav_cmd_out_t *o, uint16_t command, const float p[7], uint8_t ts, uint8_t tc)
{
    dg_mav_command_long_t m = { .command = command, .target_system = ts, .target_component = tc, .confirmation = 0 };
    memcpy(m.param, p, sizeof m.param);
    memset(o->payload, 0, sizeof o->payload);
    dg_mav_put_command_long(o->payload, &m);
    o->msgid = DG_MAV_MSG_COMMAND_LONG;
    o->command = command;
    o->len = 33;
}

int dg_mav_command_build(const dg_command_t *cmd, uint8_t ts, uint8_t tc, dg_mav_cmd_out_t *o,
                         char *err, size_t errlen)
{
    const char *name = cmd->name;
    if (!strcmp(name, "return_to_home")) {
        const float p[7] = { 0 };
        put_long(o, DG_MAV_CMD_NAV_RETURN_TO_LAUNCH, p, ts, tc);
        return 0;
    }
    if (!strcmp(name, "land")) {
        const float p[7] = { 0, 0, 0, NAN, 0, 0, 0 };
        put_long(o, DG_MAV_CMD_NAV_LAND, p, ts, tc);
        return 0;
    }
    if (!strcmp(name, "arm") || !strcmp(name, "disarm")) {
        const float p[7] = { name[0] == 'a' ? 1.0f : 0.0f, 0, 0, 0, 0, 0, 0 };
        put_long(o, DG_MAV_CMD_COMPONENT_ARM_DISARM, p, ts, tc);
        return 0;
    }
    if (!strcmp(name, "goto")) {
        jsmn_parser jp;
        jsmntok_t t[128];
        jsmn_init(&jp);
        int n = jsmn_parse(&jp, cmd->args, strlen(cmd->args), t, 128);
        double lat, lon, alt;
        if (n < 1 || arg_number(cmd->args, t, n, "lat", &lat) || arg_number(cmd->args, t, n, "lon", &lon) ||
            arg_number(cmd->args, t, n, "alt", &alt) || lat < -90 || lat > 90 || lon < -180 || lon > 180 ||
            alt < -1000 || alt > 100000) {
            snprintf(err, errlen, "goto needs args {\"lat\":[-90,90],\"lon\":[-180,180],\"alt\":metres AMSL}");
            return -1;
        }
        dg_mav_command_int_t m = { .param = { -1.0f, 1.0f /* MAV_DO_REPOSITION_FLAGS_CHANGE_MODE */, 0, NAN },
                                   .x = (int32_t)lround(lat * 1e7), .y = (int32_t)lround(lon * 1e7), .z = (float)alt,
                                   .command = DG_MAV_CMD_DO_REPOSITION, .target_system = ts, .target_component = tc,
                                   .frame = 0 /* MAV_FRAME_GLOBAL */, .current = 0, .autocontinue = 0 };
        memset(o->payload, 0, sizeof o->payload);
        dg_mav_put_command_int(o->payload, &m);
        o->msgid = DG_MAV_MSG_COMMAND_INT;
        o->command = DG_MAV_CMD_DO_REPOSITION;
        o->len = 35;
        return 0;
    }
    snprintf(err, errlen, "%s is not a MAVLink command here (return_to_home, land, goto, arm, disarm)", name);
    return -1;
}

int dg_mav_result_status(uint8_t result, const char **name)
{
    static const char *const names[] = { "MAV_RESULT_ACCEPTED", "MAV_RESULT_TEMPORARILY_REJECTED",
                                         "MAV_RESULT_DENIED", "MAV_RESULT_UNSUPPORTED", "MAV_RESULT_FAILED",
                                         "MAV_RESULT_IN_PROGRESS", "MAV_RESULT_CANCELLED",
                                         "MAV_RESULT_COMMAND_LONG_ONLY", "MAV_RESULT_COMMAND_INT_ONLY",
                                         "MAV_RESULT_COMMAND_UNSUPPORTED_MAV_FRAME" };
    *name = result < sizeof names / sizeof names[0] ? names[result] : "MAV_RESULT_UNKNOWN";
    if (result == 0) return DG_CMD_DONE;
    if (result == 5) return DG_CMD_ACCEPTED;
    return DG_CMD_REJECTED;
}
