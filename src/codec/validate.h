/* validate.h - contract validation of one telemetry record, shared by every
 * input format (JSON, protobuf, MAVLink).
 */
#ifndef DG_VALIDATE_H
#define DG_VALIDATE_H

#include <stddef.h>
#include "../core/record.h"

/* 0 when valid. Otherwise -1, *field set to the offending field name (static
 * string: "latitude", "longitude", "altitude", "speed", "heading", "climb",
 * "battery", "status", "timestamp") and msg filled with a reason.
 * Checks: all numbers finite; latitude [-90,90]; longitude [-180,180];
 * altitude [-1000,100000]; speed >= 0; heading [0,360); battery [0,100];
 * status <= 32 chars. */
int dg_record_validate(const dg_record_t *r, const char **field, char *msg, size_t msglen);

#endif
