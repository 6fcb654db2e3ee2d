/* validate.c - contract validation of one telemetry record (see validate.h).
 *
 * Shared by every input format, so it checks the record itself, not how it
 * was encoded. Fields are checked in this order and the first failure is
 * reported: latitude, longitude, altitude, speed, heading, climb, battery,
 * status, timestamp. Optional fields are checked only when their
 * DG_REC_HAS_* flag is set.
 *
 * Beyond the contract's ranges it refuses a status that is not valid UTF-8
 * or contains NUL (PostgreSQL text, C strings). Timestamps (contract): from
 * 1677-09-22T00:00:00.000Z to 2262-04-11T23:47:16.854Z inclusive, the range
 * every store can hold: InfluxDB keeps int64 nanoseconds since the epoch,
 * which end at 1677-09-21T00:12:43.145Z and 2262-04-11T23:47:16.854Z; the
 * lower edge is the first whole day inside, the upper one the last whole
 * millisecond. Outside -> invalid_field "timestamp", never acked. Decoders map a wrong JSON type to NAN, so the
 * "must be a number ..." messages below double as type errors.
 *
 * Pure function, thread-safe.
 */
#include "validate.h"

#include "../core/utf8.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* 1677-09-22T00:00:00.000Z and 2262-04-11T23:47:16.854Z (INT64_MAX ns, in ms) */
#define DG__TS_MIN INT64_C(-9223286400000)
#define DG__TS_MAX INT64_C(9223372036854)

static bool utf8_valid_no_nul(const unsigned char *s, size_t n)
{
    return !memchr(s, '\0', n) && dg_utf8_valid(s, n);
}

static int fail(const char **field, const char *name, char *msg, size_t msglen, const char *text)
{
    *field = name;
    if (msg && msglen) snprintf(msg, msglen, "%s", text);
    return -1;
}

int dg_record_validate(const dg_record_t *r, const char **field, char *msg, size_t msglen)
{
    const char *dummy;
    if (!field) field = &dummy;

    /* NaN fails every comparison, so "!(lo <= x && x <= hi)" also rejects it. */
    if (!(r->lat >= -90.0 && r->lat <= 90.0))
        return fail(field, "latitude", msg, msglen, "latitude must be a number in [-90, 90]");
    if (!(r->lon >= -180.0 && r->lon <= 180.0))
        return fail(field, "longitude", msg, msglen, "longitude must be a number in [-180, 180]");
    if (!(r->alt >= -1000.0 && r->alt <= 100000.0))
        return fail(field, "altitude", msg, msglen, "altitude must be a number in [-1000, 100000]");
    if ((r->flags & DG_REC_HAS_SPEED) && !(r->speed >= 0.0 && isfinite(r->speed)))
        return fail(field, "speed", msg, msglen, "speed must be a finite number >= 0");
    if ((r->flags & DG_REC_HAS_HEADING) && !(r->heading >= 0.0 && r->heading < 360.0))
        return fail(field, "heading", msg, msglen, "heading must be a number in [0, 360)");
    if ((r->flags & DG_REC_HAS_CLIMB) && !isfinite(r->climb))
        return fail(field, "climb", msg, msglen, "climb must be a finite number");
    if ((r->flags & DG_REC_HAS_BATTERY) && !(r->battery >= 0.0 && r->battery <= 100.0))
        return fail(field, "battery", msg, msglen, "battery must be a number in [0, 100]");
    if (r->flags & DG_REC_HAS_STATUS) {
        if (r->status_len > DG_STATUS_MAX)
            return fail(field, "status", msg, msglen, "status must be a string of at most 32 bytes");
        if (!utf8_valid_no_nul((const unsigned char *)r->status, r->status_len))
            return fail(field, "status", msg, msglen, "status must be valid UTF-8 without NUL characters");
    }
    if (r->ts_ms < DG__TS_MIN || r->ts_ms > DG__TS_MAX)
        return fail(field, "timestamp", msg, msglen,
                    "timestamp must be between 1677-09-22T00:00:00Z and 2262-04-11T23:47:16.854Z"
                    " (what every store can hold)");
    return 0;
}
