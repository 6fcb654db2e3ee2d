/* fuzz_fleet_notify.c - libFuzzer target for dg_fleet_parse_notify (the
 * LISTEN payload "<instance> <command id>" a gateway acts on). */
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
    free(s);
    return 0;
}
