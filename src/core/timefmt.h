/* timefmt.h - RFC 3339 timestamps <-> milliseconds since the Unix epoch, and clocks. */
#ifndef DG_TIMEFMT_H
#define DG_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Parse an RFC 3339 date-time ("2026-11-24T10:00:00.123Z", "...+02:00",
 * 't'/'z'/' ' separators allowed as RFC 3339 allows; fraction of any length,
 * truncated to ms). Validates ranges (month, day-in-month incl. leap years,
 * hour<24, minute<60, second<=60). 0 on success, -1 otherwise. */
int dg_parse_rfc3339(const char *s, size_t n, int64_t *ms_out);
/* Format ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC). out must hold 32 bytes.
 * Returns the length written. */
size_t dg_format_rfc3339(int64_t ms, char out[32]);
/* Parse a query-string time: RFC 3339 or integer epoch ms. 0 or -1. */
int dg_parse_time_param(const char *s, size_t n, int64_t *ms_out);

int64_t dg_now_ms(void);        /* CLOCK_REALTIME, ms */
int64_t dg_now_us(void);        /* CLOCK_REALTIME, us */
int64_t dg_mono_ms(void);       /* CLOCK_MONOTONIC, ms */

#endif
