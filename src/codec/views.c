/* views.c - JSON, CSV, GeoJSON, KML and GPX views of records and drone
 * states (see views.h). Called from worker threads (REST, live stream) and
 * read-pool threads (history); no shared state.
 *
 * Formats written here, one per record:
 *
 *   json     {"seq":1,"timestamp":"..Z","latitude":..,...,"received_at":"..Z"}
 *   csv      drone_id,timestamp,seq,latitude,longitude,altitude,speed,
 *            heading,climb,battery,status,received_at   (CRLF, header first)
 *   geojson  {"type":"Feature","geometry":{"type":"Point","coordinates":
 *            [lon,lat,alt]},"properties":{drone_id,seq,timestamp,...}}
 *   kml      <Placemark><name>seq</name><description>status</description>
 *            <TimeStamp><when>..Z</when></TimeStamp><Point><altitudeMode>
 *            absolute</altitudeMode><coordinates>lon,lat,alt</coordinates>
 *            </Point></Placemark>
 *   gpx      <trkpt lat=".." lon=".."><ele>alt</ele><time>..Z</time>
 *            <name>seq</name><desc>status</desc></trkpt>
 */
#include "views.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "jsonw.h"
#include "../core/log.h"
#include "../core/timefmt.h"

/* ---- JSON ---- */

static int w_time(dg_buf_t *b, int64_t ms)
{
    char ts[32];
    return dg_jw_str(b, ts, dg_format_rfc3339(ms, ts));
}

/* Position and optional fields as JSON members. */
static int w_fields(dg_buf_t *b, int *first, const dg_record_t *r)
{
    int rc = 0;
    rc |= dg_jw_key(b, first, "latitude");  rc |= dg_jw_double(b, r->lat);
    rc |= dg_jw_key(b, first, "longitude"); rc |= dg_jw_double(b, r->lon);
    rc |= dg_jw_key(b, first, "altitude");  rc |= dg_jw_double(b, r->alt);
    if (r->flags & DG_REC_HAS_SPEED)   { rc |= dg_jw_key(b, first, "speed");   rc |= dg_jw_double(b, r->speed); }
    if (r->flags & DG_REC_HAS_HEADING) { rc |= dg_jw_key(b, first, "heading"); rc |= dg_jw_double(b, r->heading); }
    if (r->flags & DG_REC_HAS_CLIMB)   { rc |= dg_jw_key(b, first, "climb");   rc |= dg_jw_double(b, r->climb); }
    if (r->flags & DG_REC_HAS_BATTERY) { rc |= dg_jw_key(b, first, "battery"); rc |= dg_jw_double(b, r->battery); }
    if (r->flags & DG_REC_HAS_STATUS)  { rc |= dg_jw_key(b, first, "status");  rc |= dg_jw_str(b, r->status, r->status_len); }
    return rc;
}

static int w_members(dg_buf_t *b, int *first, const dg_record_t *r)
{
    int rc = 0;
    if (r->flags & DG_REC_HAS_SEQ) { rc |= dg_jw_key(b, first, "seq"); rc |= dg_jw_u64(b, r->seq); }
    rc |= dg_jw_key(b, first, "timestamp");
    rc |= w_time(b, r->ts_ms);
    rc |= w_fields(b, first, r);
    return rc;
}

void dg_view_record_members(dg_buf_t *b, int *first, const dg_record_t *r)
{
    w_members(b, first, r);
}

void dg_view_drone_json(dg_buf_t *b, const dg_drone_state_t *s)
{
    int first = 1;
    dg_buf_puts(b, "{");
    dg_jw_key(b, &first, "id");
    dg_jw_str(b, s->id, strlen(s->id));
    dg_jw_key(b, &first, "online");
    dg_buf_puts(b, s->online ? "true" : "false");
    const char *inst = s->instance ? s->instance : dg_instance;
    if (s->online && inst[0]) {   /* the gateway holding its connection */
        dg_jw_key(b, &first, "instance");
        dg_jw_str(b, inst, strlen(inst));
    }
    dg_jw_key(b, &first, "last_seen");
    if (s->last_seen_ms) w_time(b, s->last_seen_ms); else dg_buf_puts(b, "null");
    if (s->has_last) w_members(b, &first, &s->last);
    dg_buf_puts(b, "}");
}

/* ---- formats ---- */

static const char *const fmt_names[DG_VIEW__N] = { "json", "csv", "geojson", "kml", "gpx" };
static const char *const fmt_ctypes[DG_VIEW__N] = {
    "application/json", "text/csv; charset=utf-8", "application/geo+json",
    "application/vnd.google-earth.kml+xml; charset=utf-8", "application/gpx+xml; charset=utf-8",
};

int dg_view_fmt_parse(const char *name)
{
    for (int i = 0; i < DG_VIEW__N; i++)
        if (!strcmp(name, fmt_names[i])) return i;
    return -1;
}

const char *dg_view_fmt_ctype(int fmt)
{
    return fmt >= 0 && fmt < DG_VIEW__N ? fmt_ctypes[fmt] : "application/octet-stream";
}

/* ---- CSV ---- */

int dg_view_csv_text(dg_buf_t *b, const char *s, size_t n)
{
    int rc = dg_buf_puts(b, "\"");
    /* OWASP CSV injection: a cell a spreadsheet would evaluate gets a ' */
    if (n && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r'))
        rc |= dg_buf_puts(b, "'");
    size_t i = 0;
    while (i < n) {                                /* RFC 4180: a quote is doubled */
        const char *q = memchr(s + i, '"', n - i);
        size_t run = q ? (size_t)(q - (s + i)) + 1 : n - i;
        rc |= dg_buf_append(b, s + i, run);
        if (q) rc |= dg_buf_puts(b, "\"");
        i += run;
    }
    rc |= dg_buf_puts(b, "\"");
    return rc;
}

static int csv_num(dg_buf_t *b, bool has, double v)
{
    int rc = has ? dg_jw_double(b, v) : 0;
    return rc | dg_buf_puts(b, ",");
}

static int csv_row(dg_buf_t *b, const dg_record_t *r)
{
    char ts[32];
    int rc = dg_view_csv_text(b, r->drone_id, r->drone_id_len);
    rc |= dg_buf_puts(b, ",");
    rc |= dg_buf_append(b, ts, dg_format_rfc3339(r->ts_ms, ts));
    rc |= dg_buf_puts(b, ",");
    if (r->flags & DG_REC_HAS_SEQ) rc |= dg_jw_u64(b, r->seq);
    rc |= dg_buf_puts(b, ",");
    rc |= csv_num(b, true, r->lat);
    rc |= csv_num(b, true, r->lon);
    rc |= csv_num(b, true, r->alt);
    rc |= csv_num(b, r->flags & DG_REC_HAS_SPEED, r->speed);
    rc |= csv_num(b, r->flags & DG_REC_HAS_HEADING, r->heading);
    rc |= csv_num(b, r->flags & DG_REC_HAS_CLIMB, r->climb);
    rc |= csv_num(b, r->flags & DG_REC_HAS_BATTERY, r->battery);
    if (r->flags & DG_REC_HAS_STATUS) rc |= dg_view_csv_text(b, r->status, r->status_len);
    rc |= dg_buf_puts(b, ",");
    rc |= dg_buf_append(b, ts, dg_format_rfc3339(r->recv_us / 1000, ts));
    rc |= dg_buf_puts(b, "\r\n");
    return rc;
}

/* ---- GeoJSON ---- */

static int geojson_row(dg_buf_t *b, const dg_record_t *r)
{
    int first = 1, rc = 0;
    rc |= dg_buf_puts(b, "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Point\",\"coordinates\":[");
    rc |= dg_jw_double(b, r->lon);
    rc |= dg_buf_puts(b, ",");
    rc |= dg_jw_double(b, r->lat);
    rc |= dg_buf_puts(b, ",");
    rc |= dg_jw_double(b, r->alt);
    rc |= dg_buf_puts(b, "]},\"properties\":{");
    rc |= dg_jw_key(b, &first, "drone_id");
    rc |= dg_jw_str(b, r->drone_id, r->drone_id_len);
    if (r->flags & DG_REC_HAS_SEQ) { rc |= dg_jw_key(b, &first, "seq"); rc |= dg_jw_u64(b, r->seq); }
    rc |= dg_jw_key(b, &first, "timestamp");
    rc |= w_time(b, r->ts_ms);
    if (r->flags & DG_REC_HAS_SPEED)   { rc |= dg_jw_key(b, &first, "speed");   rc |= dg_jw_double(b, r->speed); }
    if (r->flags & DG_REC_HAS_HEADING) { rc |= dg_jw_key(b, &first, "heading"); rc |= dg_jw_double(b, r->heading); }
    if (r->flags & DG_REC_HAS_CLIMB)   { rc |= dg_jw_key(b, &first, "climb");   rc |= dg_jw_double(b, r->climb); }
    if (r->flags & DG_REC_HAS_BATTERY) { rc |= dg_jw_key(b, &first, "battery"); rc |= dg_jw_double(b, r->battery); }
    if (r->flags & DG_REC_HAS_STATUS)  { rc |= dg_jw_key(b, &first, "status");  rc |= dg_jw_str(b, r->status, r->status_len); }
    rc |= dg_jw_key(b, &first, "received_at");
    rc |= w_time(b, r->recv_us / 1000);
    rc |= dg_buf_puts(b, "}}");
    return rc;
}

/* ---- XML (KML, GPX) ---- */

int dg_view_xml_text(dg_buf_t *b, const char *s, size_t n)
{
    int rc = 0;
    size_t i = 0, run = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        switch (c) {
        case '&':  esc = "&amp;"; break;
        case '<':  esc = "&lt;"; break;
        case '>':  esc = "&gt;"; break;
        case '"':  esc = "&quot;"; break;
        case '\'': esc = "&apos;"; break;
        default:
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') esc = "\xEF\xBF\xBD";  /* not in XML 1.0 */
        }
        if (!esc) continue;
        rc |= dg_buf_append(b, s + run, i - run);
        rc |= dg_buf_puts(b, esc);
        run = i + 1;
    }
    rc |= dg_buf_append(b, s + run, i - run);
    return rc;
}

/* A plain decimal (xsd:decimal has no exponent): up to 9 fraction digits,
 * trailing zeros dropped. Values are range-checked finite coordinates. */
static int xml_num(dg_buf_t *b, double v)
{
    char tmp[64];
    if (!isfinite(v)) v = 0;
    int n = snprintf(tmp, sizeof tmp, "%.9f", v);
    if (n < 0 || (size_t)n >= sizeof tmp) return -ERANGE;
    while (n > 1 && tmp[n - 1] == '0') n--;
    if (tmp[n - 1] == '.') n--;
    if (n == 2 && tmp[0] == '-' && tmp[1] == '0') { tmp[0] = '0'; n = 1; }
    return dg_buf_append(b, tmp, (size_t)n);
}

static int kml_row(dg_buf_t *b, const dg_record_t *r)
{
    char ts[32];
    int rc = dg_buf_puts(b, "<Placemark>");
    if (r->flags & DG_REC_HAS_SEQ) {
        rc |= dg_buf_puts(b, "<name>");
        rc |= dg_jw_u64(b, r->seq);
        rc |= dg_buf_puts(b, "</name>");
    }
    if (r->flags & DG_REC_HAS_STATUS) {
        rc |= dg_buf_puts(b, "<description>");
        rc |= dg_view_xml_text(b, r->status, r->status_len);
        rc |= dg_buf_puts(b, "</description>");
    }
    rc |= dg_buf_puts(b, "<TimeStamp><when>");
    rc |= dg_buf_append(b, ts, dg_format_rfc3339(r->ts_ms, ts));
    rc |= dg_buf_puts(b, "</when></TimeStamp><Point><altitudeMode>absolute</altitudeMode><coordinates>");
    rc |= xml_num(b, r->lon);
    rc |= dg_buf_puts(b, ",");
    rc |= xml_num(b, r->lat);
    rc |= dg_buf_puts(b, ",");
    rc |= xml_num(b, r->alt);
    rc |= dg_buf_puts(b, "</coordinates></Point></Placemark>\n");
    return rc;
}

static int gpx_row(dg_buf_t *b, const dg_record_t *r)
{
    char ts[32];
    int rc = dg_buf_puts(b, "<trkpt lat=\"");
    rc |= xml_num(b, r->lat);
    rc |= dg_buf_puts(b, "\" lon=\"");
    rc |= xml_num(b, r->lon);
    rc |= dg_buf_puts(b, "\"><ele>");
    rc |= xml_num(b, r->alt);
    rc |= dg_buf_puts(b, "</ele><time>");
    rc |= dg_buf_append(b, ts, dg_format_rfc3339(r->ts_ms, ts));
    rc |= dg_buf_puts(b, "</time>");
    if (r->flags & DG_REC_HAS_SEQ) {                 /* GPX 1.1 order: ele time .. name .. desc */
        rc |= dg_buf_puts(b, "<name>");
        rc |= dg_jw_u64(b, r->seq);
        rc |= dg_buf_puts(b, "</name>");
    }
    if (r->flags & DG_REC_HAS_STATUS) {
        rc |= dg_buf_puts(b, "<desc>");
        rc |= dg_view_xml_text(b, r->status, r->status_len);
        rc |= dg_buf_puts(b, "</desc>");
    }
    rc |= dg_buf_puts(b, "</trkpt>\n");
    return rc;
}

/* ---- history documents ---- */

void dg_view_hist_begin(dg_view_hist_t *h, dg_buf_t *b, int fmt, const char *drone_id)
{
    int rc = 0;
    size_t idn = strlen(drone_id);
    h->b = b;
    h->fmt = fmt;
    h->n = 0;
    switch (fmt) {
    case DG_VIEW_CSV:
        rc = dg_buf_puts(b, "drone_id,timestamp,seq,latitude,longitude,altitude,speed,heading,climb,battery,"
                            "status,received_at\r\n");
        break;
    case DG_VIEW_GEOJSON:
        rc = dg_buf_puts(b, "{\"type\":\"FeatureCollection\",\"features\":[");
        break;
    case DG_VIEW_KML:
        rc |= dg_buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                             "<kml xmlns=\"http://www.opengis.net/kml/2.2\"><Document><name>");
        rc |= dg_view_xml_text(b, drone_id, idn);
        rc |= dg_buf_puts(b, "</name>\n");
        break;
    case DG_VIEW_GPX:
        rc |= dg_buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                             "<gpx version=\"1.1\" creator=\"dronegate\" xmlns=\"http://www.topografix.com/GPX/1/1\">"
                             "<trk><name>");
        rc |= dg_view_xml_text(b, drone_id, idn);
        rc |= dg_buf_puts(b, "</name><trkseg>\n");
        break;
    default:
        h->fmt = DG_VIEW_JSON;
        rc |= dg_buf_puts(b, "{\"drone_id\":");
        rc |= dg_jw_str(b, drone_id, idn);
        rc |= dg_buf_puts(b, ",\"telemetry\":[");
        break;
    }
    h->err = rc ? -ENOMEM : 0;
}

int dg_view_hist_row(void *ud, const dg_record_t *r)
{
    dg_view_hist_t *h = ud;
    dg_buf_t *b = h->b;
    int rc = 0;
    switch (h->fmt) {
    case DG_VIEW_CSV:     rc = csv_row(b, r); break;
    case DG_VIEW_KML:     rc = kml_row(b, r); break;
    case DG_VIEW_GPX:     rc = gpx_row(b, r); break;
    case DG_VIEW_GEOJSON:
        if (h->n) rc |= dg_buf_puts(b, ",");
        rc |= geojson_row(b, r);
        break;
    default: {
        int first = 1;
        if (h->n) rc |= dg_buf_puts(b, ",");
        rc |= dg_buf_puts(b, "{");
        rc |= w_members(b, &first, r);
        rc |= dg_jw_key(b, &first, "received_at");
        rc |= w_time(b, r->recv_us / 1000);
        rc |= dg_buf_puts(b, "}");
        break;
    }
    }
    if (rc) h->err = -ENOMEM;
    h->n++;
    return 0;
}

int dg_view_hist_end(dg_view_hist_t *h)
{
    int rc = 0;
    switch (h->fmt) {
    case DG_VIEW_CSV:     break;
    case DG_VIEW_KML:     rc = dg_buf_puts(h->b, "</Document></kml>\n"); break;
    case DG_VIEW_GPX:     rc = dg_buf_puts(h->b, "</trkseg></trk></gpx>\n"); break;
    default:              rc = dg_buf_puts(h->b, "]}"); break;
    }
    if (rc) h->err = -ENOMEM;
    return h->err;
}
