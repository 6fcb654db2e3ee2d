/* fuzz_fleet_notify.c - libFuzzer target for the LISTEN payloads a gateway
 * acts on: dg_fleet_parse_notify ("<instance> <command id>") and
 * dg_fleet_parse_moved ("<instance> <drone id>") and dg_fleet_parse_presence
 * ("<instance> 1|0 <drone id>", "<instance> reset"). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char inst[65], id[33];
    if (dg_fleet_parse_notify(s, inst, id) == 0) {
        if (strlen(inst) < 1 || strlen(inst) > 64 || strlen(id) != 32) abort();
    }
    char drone[DG_DRONE_ID_MAX + 1];
    if (dg_fleet_parse_moved(s, inst, drone) == 0) {
        if (strlen(inst) < 1 || strlen(inst) > 64 || !dg_drone_id_valid(drone, strlen(drone))) abort();
        if (strlen(inst) + 1 + strlen(drone) != strlen(s)) abort();   /* nothing dropped or added */
    }
    int k = dg_fleet_parse_presence(s, inst, drone);
    if (k < -1 || k > 2) abort();
    if (k >= 0 && (strlen(inst) < 1 || strlen(inst) > 64)) abort();
    if ((k == 0 || k == 1) && !dg_drone_id_valid(drone, strlen(drone))) abort();
    if (k == 2 && drone[0]) abort();
    free(s);
    return 0;
}
