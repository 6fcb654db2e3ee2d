/* views.h - the representations of records and drone states that leave the
 * server: JSON (REST and the live stream), and the history export formats
 * JSON, CSV, GeoJSON, KML and GPX. Bytes out only: no HTTP, no store.
 *
 * Every writer appends to a dg_buf_t; an allocation failure is remembered
 * (dg_view_hist_t.err) rather than checked after each call. Pure functions,
 * thread-safe per buffer.
 */
#ifndef DG_VIEWS_H
#define DG_VIEWS_H

#include <stddef.h>

#include "../core/buf.h"
#include "../core/record.h"
#include "../core/registry.h"

/* Members "seq", "timestamp", position and optional fields of a record (no
 * braces), after a first member written by the caller when !*first. */
void dg_view_record_members(dg_buf_t *b, int *first, const dg_record_t *r);

/* {"id":..,"online":..,"last_seen":..[, the last record's members]} */
void dg_view_drone_json(dg_buf_t *b, const dg_drone_state_t *s);

/* History export formats (?format=). */
enum dg_view_fmt { DG_VIEW_JSON, DG_VIEW_CSV, DG_VIEW_GEOJSON, DG_VIEW_KML, DG_VIEW_GPX, DG_VIEW__N };

/* "json", "csv", "geojson", "kml", "gpx" -> enum; -1 when unknown. */
int         dg_view_fmt_parse(const char *name);
/* Content-Type of a format (with charset where it has one). */
const char *dg_view_fmt_ctype(int fmt);

/* One history response: begin, a row per record (in the order the store
 * returns them), end.
 *
 *   json     {"drone_id":..,"telemetry":[{seq,timestamp,..,received_at},..]}
 *   csv      RFC 4180, CRLF, header line; text cells that a spreadsheet would
 *            run as a formula (first byte = + - @ TAB CR) get a leading '
 *            (OWASP CSV injection); numbers are written as numbers
 *   geojson  FeatureCollection of Points [lon, lat, alt] with properties
 *   kml      KML 2.2 Document, one Placemark (Point, absolute altitude,
 *            TimeStamp) per record
 *   gpx      GPX 1.1, one trk/trkseg, one trkpt (ele, time) per record
 *
 * XML text is escaped; characters XML 1.0 cannot carry (controls other than
 * TAB LF CR) become U+FFFD. Coordinates in KML/GPX are plain decimals (no
 * exponent: xsd:decimal). */
typedef struct dg_view_hist {
    dg_buf_t   *b;
    int         fmt;
    size_t      n;          /* rows written */
    int         err;        /* -ENOMEM once an append failed */
} dg_view_hist_t;

void dg_view_hist_begin(dg_view_hist_t *h, dg_buf_t *b, int fmt, const char *drone_id);
/* A store query callback: always 0 (continue). */
int  dg_view_hist_row(void *h, const dg_record_t *r);
/* Closes the document; 0 or -ENOMEM (then the body is incomplete). */
int  dg_view_hist_end(dg_view_hist_t *h);

/* CSV cell of text s[0..n): quoted (RFC 4180), formula-neutralised. */
int  dg_view_csv_text(dg_buf_t *b, const char *s, size_t n);
/* XML character data / attribute value of UTF-8 text s[0..n). */
int  dg_view_xml_text(dg_buf_t *b, const char *s, size_t n);

#endif
