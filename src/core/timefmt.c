/* timefmt.c - RFC 3339 timestamps <-> ms since the Unix epoch, and clocks.
 *
 * Parsing accepts exactly the RFC 3339 section 5.6 "date-time" production:
 *
 *     YYYY-MM-DD ( "T" / "t" / " " ) HH:MM:SS [ "." 1*DIGIT ] ( "Z" / "z" / ("+"/"-") HH:MM )
 *
 * - Ranges: month 01-12, day valid for the month (Gregorian leap years),
 *   hour 00-23, minute 00-59, second 00-60, offset hour 00-23, minute 00-59.
 * - A leap second (":60") is accepted and counted as the first second of
 *   the next minute, as POSIX time does (Unix time has no leap seconds).
 * - The fraction may have any number of digits; it is truncated (not
 *   rounded) to milliseconds. "-00:00" (unknown local offset) is UTC.
 * - Dates are converted with Howard Hinnant's days_from_civil algorithm: no
 *   timegm(), no TZ or locale, valid for the whole 0000-9999 year range
 *   (0000-01-01 is day -719528).
 *
 * Formatting always writes UTC with millisecond precision and 'Z'
 * ("2026-11-24T10:00:00.123Z", 24 bytes). Instants outside years 0000-9999
 * are not representable in RFC 3339; they are still written (with a signed,
 * longer year) rather than truncated, so the output is never ambiguous, but
 * it is not RFC 3339. dg_record_validate() refuses such timestamps.
 *
 * Pure functions, thread-safe.
 */
#include "timefmt.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#define MS_PER_DAY INT64_C(86400000)

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1-12). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);                         /* [0, 399] */
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;   /* [0, 365] */
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;             /* [0, 146096] */
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* n ASCII digits at s -> *v. 0 or -1. */
static int digits(const char *s, int n, unsigned *v)
{
    unsigned x = 0;
    for (int i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9) return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

int dg_parse_rfc3339(const char *s, size_t n, int64_t *ms_out)
{
    unsigned year, mon, day, hh, mm, ss, oh = 0, om = 0;
    /* 0         1         2
     * 0123456789012345678901234
     * YYYY-MM-DDTHH:MM:SS[.fff]Z */
    if (n < 20) return -1;
    if (digits(s, 4, &year) || s[4] != '-' || digits(s + 5, 2, &mon) || s[7] != '-' ||
        digits(s + 8, 2, &day))
        return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return -1;
    if (digits(s + 11, 2, &hh) || s[13] != ':' || digits(s + 14, 2, &mm) || s[16] != ':' ||
        digits(s + 17, 2, &ss))
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hh > 23 ||
        mm > 59 || ss > 60)
        return -1;

    size_t i = 19;
    unsigned frac_ms = 0;
    if (s[i] == '.') {
        i++;
        size_t first = i;
        unsigned scale = 100;
        while (i < n && (unsigned)(unsigned char)s[i] - '0' <= 9) {
            frac_ms += (unsigned)(s[i] - '0') * scale;
            scale /= 10;                       /* digits past the 3rd add 0 */
            i++;
        }
        if (i == first) return -1;
    }
    if (i >= n) return -1;

    int sign = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '+' ? 1 : -1;
        if (n - i < 6) return -1;
        if (digits(s + i + 1, 2, &oh) || s[i + 3] != ':' || digits(s + i + 4, 2, &om))
            return -1;
        if (oh > 23 || om > 59) return -1;
        i += 6;
    } else {
        return -1;
    }
    if (i != n) return -1;

    int64_t days = days_from_civil(year, mon, day);
    int64_t secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    secs -= sign * (int64_t)(oh * 3600 + om * 60);
    *ms_out = secs * 1000 + frac_ms;
    return 0;
}

static char *put2(char *p, unsigned v) { p[0] = (char)('0' + v / 10); p[1] = (char)('0' + v % 10); return p + 2; }

size_t dg_format_rfc3339(int64_t ms, char out[32])
{
    /* floor division: negative instants belong to the previous day */
    int64_t days = ms / MS_PER_DAY, rem = ms % MS_PER_DAY;
    if (rem < 0) { rem += MS_PER_DAY; days--; }
    int64_t y;
    unsigned mon, d;
    civil_from_days(days, &y, &mon, &d);
    unsigned msec = (unsigned)(rem % 1000);
    unsigned secs = (unsigned)(rem / 1000);
    unsigned hh = secs / 3600, mm = secs / 60 % 60, ss = secs % 60;

    if (y < 0 || y > 9999) {
        int w = snprintf(out, 32, "%lld-%02u-%02uT%02u:%02u:%02u.%03uZ",
                         (long long)y, mon, d, hh, mm, ss, msec);
        return w < 0 ? 0 : (size_t)w < 32 ? (size_t)w : 31;
    }
    char *p = out;
    unsigned yy = (unsigned)y;
    p = put2(p, yy / 100); p = put2(p, yy % 100); *p++ = '-';
    p = put2(p, mon); *p++ = '-';
    p = put2(p, d); *p++ = 'T';
    p = put2(p, hh); *p++ = ':';
    p = put2(p, mm); *p++ = ':';
    p = put2(p, ss); *p++ = '.';
    *p++ = (char)('0' + msec / 100); p = put2(p, msec % 100);
    *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - out);
}

int dg_parse_time_param(const char *s, size_t n, int64_t *ms_out)
{
    if (n == 0) return -1;
    bool numeric = true;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (i == 0 && s[i] == '-'))) { numeric = false; break; }
    }
    if (!numeric) return dg_parse_rfc3339(s, n, ms_out);
    /* integer epoch ms: optional '-', no leading zeros except "0", int64 range */
    const char *p = s, *end = s + n;
    bool neg = false;
    if (*p == '-') { neg = true; p++; }
    if (p == end || (*p == '0' && p + 1 != end)) return -1;
    uint64_t v = 0, max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < end; p++) {
        unsigned dgt = (unsigned)(*p - '0');
        if (v > (max - dgt) / 10) return -1;
        v = v * 10 + dgt;
    }
    if (neg) *ms_out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else     *ms_out = (int64_t)v;
    return 0;
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t dg_now_ms(void)  { return clock_ns(CLOCK_REALTIME) / 1000000; }
int64_t dg_now_us(void)  { return clock_ns(CLOCK_REALTIME) / 1000; }
int64_t dg_mono_ms(void) { return clock_ns(CLOCK_MONOTONIC) / 1000000; }
