/* json_keys.h - the telemetry/command_ack member names of dronegate.json.v1,
 * shared by the full decoder (json_telemetry.c) and its single-pass fast path
 * (json_fast.c), so both recognise exactly the same keys. Internal to codec/. */
#ifndef DG_JSON_KEYS_H
#define DG_JSON_KEYS_H

#include <stddef.h>
#include <string.h>

enum {
    F_SEQ, F_TYPE, F_TIMESTAMP, F_LAT, F_LON, F_ALT, F_SPEED, F_HEADING, F_CLIMB,
    F_BATTERY, F_STATUS, F_ID, F_MESSAGE, F_COUNT
};

/* The F_* of key k[0..n) (raw bytes, no escapes), or -1 for any other key. */
static inline int dg_json_match_key(const char *k, size_t n)
{
    switch (n) {
    case 2: if (k[0] == 'i' && k[1] == 'd') return F_ID; break;
    case 3: if (!memcmp(k, "seq", 3)) return F_SEQ; break;
    case 4: if (!memcmp(k, "type", 4)) return F_TYPE; break;
    case 5:
        if (k[0] == 's' && !memcmp(k, "speed", 5)) return F_SPEED;
        if (k[0] == 'c' && !memcmp(k, "climb", 5)) return F_CLIMB;
        break;
    case 6: if (!memcmp(k, "status", 6)) return F_STATUS; break;
    case 7:
        if (k[0] == 'h' && !memcmp(k, "heading", 7)) return F_HEADING;
        if (k[0] == 'b' && !memcmp(k, "battery", 7)) return F_BATTERY;
        if (k[0] == 'm' && !memcmp(k, "message", 7)) return F_MESSAGE;
        break;
    case 8:
        if (k[0] == 'l' && !memcmp(k, "latitude", 8)) return F_LAT;
        if (k[0] == 'a' && !memcmp(k, "altitude", 8)) return F_ALT;
        break;
    case 9:
        if (k[0] == 'l' && !memcmp(k, "longitude", 9)) return F_LON;
        if (k[0] == 't' && !memcmp(k, "timestamp", 9)) return F_TIMESTAMP;
        break;
    }
    return -1;
}

#endif
