/* test_views.c - codec/views.c: JSON views of records and drone states, the
 * history formats (JSON, CSV, GeoJSON, KML, GPX), CSV formula
 * neutralisation (OWASP) and XML text escaping. Bytes out, compared exactly. */
#include <string.h>

#include "check.h"
#include "codec/views.h"

static dg_record_t rec(void)
{
    dg_record_t r;
    dg_record_init(&r);
    memcpy(r.drone_id, "d-1", 4);
    r.drone_id_len = 3;
    r.seq = 7;
    r.flags |= DG_REC_HAS_SEQ | DG_REC_HAS_TS;
    r.ts_ms = 1795514400123;              /* 2026-11-24T10:00:00.123Z */
    r.recv_us = 1795514401000000;
    r.lat = 47.5;
    r.lon = 8.25;
    r.alt = 488.2;
    return r;
}

static void set_status(dg_record_t *r, const char *s)
{
    size_t n = strlen(s);
    memcpy(r->status, s, n);
    r->status[n] = '\0';
    r->status_len = (uint8_t)n;
    r->flags |= DG_REC_HAS_STATUS;
}

/* The body of a one-row history in fmt, NUL-terminated in b. */
static const char *hist1(dg_buf_t *b, int fmt, const dg_record_t *r)
{
    dg_view_hist_t h;
    b->len = 0;
    dg_view_hist_begin(&h, b, fmt, "d-1");
    if (r) dg_view_hist_row(&h, r);
    if (dg_view_hist_end(&h)) b->len = 0;           /* then no comparison matches */
    dg_buf_append(b, "", 1);
    return b->data;
}

TEST(record_and_drone_json)
{
    dg_buf_t b = { 0 };
    dg_record_t r = rec();
    r.climb = -0.5;
    r.flags |= DG_REC_HAS_CLIMB;
    set_status(&r, "a\"b");
    int first = 1;
    dg_view_record_members(&b, &first, &r);
    dg_buf_append(&b, "", 1);
    ASSERT_STR_EQ(b.data, "\"seq\":7,\"timestamp\":\"2026-11-24T10:00:00.123Z\",\"latitude\":47.5,"
                          "\"longitude\":8.25,\"altitude\":488.2,\"climb\":-0.5,\"status\":\"a\\\"b\"");
    dg_drone_state_t s;
    memset(&s, 0, sizeof s);
    memcpy(s.id, "d-1", 4);
    b.len = 0;
    dg_view_drone_json(&b, &s);
    dg_buf_append(&b, "", 1);
    ASSERT_STR_EQ(b.data, "{\"id\":\"d-1\",\"online\":false,\"last_seen\":null}");
    s.online = true;
    s.last_seen_ms = 1795514400000;
    s.has_last = true;
    s.last = rec();
    b.len = 0;
    dg_view_drone_json(&b, &s);
    dg_buf_append(&b, "", 1);
    ASSERT_STR_EQ(b.data, "{\"id\":\"d-1\",\"online\":true,\"last_seen\":\"2026-11-24T10:00:00.000Z\",\"seq\":7,"
                          "\"timestamp\":\"2026-11-24T10:00:00.123Z\",\"latitude\":47.5,\"longitude\":8.25,"
                          "\"altitude\":488.2}");
    dg_buf_free(&b);
}

TEST(formats)
{
    ASSERT_EQ(dg_view_fmt_parse("json"), DG_VIEW_JSON);
    ASSERT_EQ(dg_view_fmt_parse("csv"), DG_VIEW_CSV);
    ASSERT_EQ(dg_view_fmt_parse("geojson"), DG_VIEW_GEOJSON);
    ASSERT_EQ(dg_view_fmt_parse("kml"), DG_VIEW_KML);
    ASSERT_EQ(dg_view_fmt_parse("gpx"), DG_VIEW_GPX);
    ASSERT_EQ(dg_view_fmt_parse("xml"), -1);
    ASSERT_EQ(dg_view_fmt_parse("KML"), -1);
    ASSERT_EQ(dg_view_fmt_parse(""), -1);
    ASSERT_STR_EQ(dg_view_fmt_ctype(DG_VIEW_KML), "application/vnd.google-earth.kml+xml; charset=utf-8");
    ASSERT_STR_EQ(dg_view_fmt_ctype(DG_VIEW_GPX), "application/gpx+xml; charset=utf-8");
    ASSERT_STR_EQ(dg_view_fmt_ctype(DG_VIEW_CSV), "text/csv; charset=utf-8");
}

TEST(history_json_geojson)
{
    dg_buf_t b = { 0 };
    dg_record_t r = rec();
    ASSERT_STR_EQ(hist1(&b, DG_VIEW_JSON, NULL), "{\"drone_id\":\"d-1\",\"telemetry\":[]}");
    ASSERT_STR_EQ(hist1(&b, DG_VIEW_JSON, &r),
                  "{\"drone_id\":\"d-1\",\"telemetry\":[{\"seq\":7,\"timestamp\":\"2026-11-24T10:00:00.123Z\","
                  "\"latitude\":47.5,\"longitude\":8.25,\"altitude\":488.2,"
                  "\"received_at\":\"2026-11-24T10:00:01.000Z\"}]}");
    ASSERT_STR_EQ(hist1(&b, DG_VIEW_GEOJSON, &r),
                  "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"geometry\":{\"type\":"
                  "\"Point\",\"coordinates\":[8.25,47.5,488.2]},\"properties\":{\"drone_id\":\"d-1\",\"seq\":7,"
                  "\"timestamp\":\"2026-11-24T10:00:00.123Z\",\"received_at\":\"2026-11-24T10:00:01.000Z\"}}]}");
    dg_buf_free(&b);
}

TEST(csv_neutralises_formulas)
{
    dg_buf_t b = { 0 };
    dg_record_t r = rec();
    r.climb = -0.5;                                  /* a negative number stays a number */
    r.flags |= DG_REC_HAS_CLIMB;
    set_status(&r, "=HYPERLINK(\"x\")");
    ASSERT_STR_EQ(hist1(&b, DG_VIEW_CSV, &r),
                  "drone_id,timestamp,seq,latitude,longitude,altitude,speed,heading,climb,battery,status,"
                  "received_at\r\n"
                  "\"d-1\",2026-11-24T10:00:00.123Z,7,47.5,8.25,488.2,,,-0.5,,\"'=HYPERLINK(\"\"x\"\")\","
                  "2026-11-24T10:00:01.000Z\r\n");
    static const struct { const char *in, *out; } cells[] = {
        { "=1+1", "\"'=1+1\"" }, { "+1", "\"'+1\"" }, { "-1", "\"'-1\"" }, { "@SUM(A1)", "\"'@SUM(A1)\"" },
        { "\tx", "\"'\tx\"" }, { "\rx", "\"'\rx\"" },
        { "ok", "\"ok\"" }, { "a=b", "\"a=b\"" }, { "", "\"\"" }, { "a,\"b\"", "\"a,\"\"b\"\"\"" },
        { " =x", "\" =x\"" },
    };
    for (size_t i = 0; i < sizeof cells / sizeof *cells; i++) {
        b.len = 0;
        ASSERT_EQ(dg_view_csv_text(&b, cells[i].in, strlen(cells[i].in)), 0);
        dg_buf_append(&b, "", 1);
        ASSERT_STR_EQ(b.data, cells[i].out);
    }
    /* a drone id may start with '-' (ids are [A-Za-z0-9._-]) */
    memcpy(r.drone_id, "-x", 3);
    r.drone_id_len = 2;
    hist1(&b, DG_VIEW_CSV, &r);
    ASSERT(strstr(b.data, "\r\n\"'-x\",") != NULL);
    dg_buf_free(&b);
}

TEST(kml_gpx)
{
    dg_buf_t b = { 0 };
    dg_record_t r = rec();
    r.lat = -0.00001;
    r.lon = 1e-7;
    r.alt = -0.0;
    set_status(&r, "<a&b>\"'\x01");
    ASSERT_STR_EQ(hist1(&b, DG_VIEW_KML, &r),
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<kml xmlns=\"http://www.opengis.net/kml/2.2\"><Document><name>d-1</name>\n"
                  "<Placemark><name>7</name><description>&lt;a&amp;b&gt;&quot;&apos;\xEF\xBF\xBD</description>"
                  "<TimeStamp><when>2026-11-24T10:00:00.123Z</when></TimeStamp><Point><altitudeMode>absolute"
                  "</altitudeMode><coordinates>0.0000001,-0.00001,0</coordinates></Point></Placemark>\n"
                  "</Document></kml>\n");
    ASSERT_STR_EQ(hist1(&b, DG_VIEW_GPX, &r),
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<gpx version=\"1.1\" creator=\"dronegate\" xmlns=\"http://www.topografix.com/GPX/1/1\">"
                  "<trk><name>d-1</name><trkseg>\n"
                  "<trkpt lat=\"-0.00001\" lon=\"0.0000001\"><ele>0</ele><time>2026-11-24T10:00:00.123Z</time>"
                  "<name>7</name><desc>&lt;a&amp;b&gt;&quot;&apos;\xEF\xBF\xBD</desc></trkpt>\n"
                  "</trkseg></trk></gpx>\n");
    /* extremes stay plain decimals */
    r = rec();
    r.lat = -90;
    r.lon = 179.999999999;
    r.alt = 100000;
    hist1(&b, DG_VIEW_GPX, &r);
    ASSERT(strstr(b.data, "<trkpt lat=\"-90\" lon=\"179.999999999\"><ele>100000</ele>") != NULL);
    /* empty history: a valid, empty document */
    ASSERT_STR_EQ(hist1(&b, DG_VIEW_GPX, NULL),
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<gpx version=\"1.1\" creator=\"dronegate\" xmlns=\"http://www.topografix.com/GPX/1/1\">"
                  "<trk><name>d-1</name><trkseg>\n</trkseg></trk></gpx>\n");
    dg_buf_free(&b);
}

int main(void)
{
    RUN(record_and_drone_json);
    RUN(formats);
    RUN(history_json_geojson);
    RUN(csv_neutralises_formulas);
    RUN(kml_gpx);
    return check_summary("views");
}
