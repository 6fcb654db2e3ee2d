"""History export read back by readers we did not write: GPX by gpxpy
(python3-gpxpy), KML by GDAL's ogrinfo (gdal-bin); CSV cells that a
spreadsheet would run as formulas come back with a leading ' (OWASP)."""
import csv
import io
import re
import subprocess

import gpxpy
import pytest

from dg import Drone, minimal, ms_to_rfc3339, new_id, run

BASE_MS = 1795514400000          # 2026-11-24T10:00:00.000Z
STATUSES = {1: "=HYPERLINK(\"http://x\")", 2: "+1", 3: "-2", 4: "@SUM(A1)", 5: "<a & b>", 6: "ok"}


@pytest.fixture(scope="module")
def history(_srv_module):
    s = _srv_module.before()
    drone = new_id("fmt")
    msgs = [minimal(i, timestamp=BASE_MS + i * 1000, latitude=47.0 + i / 1000, longitude=-8.0 - i / 1000,
                    altitude=400.0 + i, status=STATUSES[i]) for i in range(1, 7)]
    msgs.append(minimal(7, timestamp=BASE_MS + 7000, latitude=-0.00001, longitude=179.5, altitude=-12.25))

    async def go():
        d = await Drone.connect(s, drone)
        await d.send(msgs)
        await d.wait_ack(7)
        assert not d.errors, d.errors
        await d.close()
    run(go())
    return s, drone, msgs


def test_gpx_read_by_gpxpy(history):
    s, drone, msgs = history
    r = s.get(f"/api/v1/drones/{drone}/telemetry?format=gpx")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/gpx+xml"), r.headers
    gpx = gpxpy.parse(r.text)
    assert len(gpx.tracks) == 1 and gpx.tracks[0].name == drone
    pts = gpx.tracks[0].segments[0].points
    assert len(pts) == len(msgs)
    for p, m in zip(pts, msgs):
        assert abs(p.latitude - m["latitude"]) < 1e-9 and abs(p.longitude - m["longitude"]) < 1e-9, (p, m)
        assert abs(p.elevation - m["altitude"]) < 1e-9
        assert round(p.time.timestamp() * 1000) == m["timestamp"]
        assert p.name == str(m["seq"])
        assert (p.description or None) == m.get("status"), (p.description, m)


def test_kml_read_by_ogrinfo(history, tmp_path):
    s, drone, msgs = history
    r = s.get(f"/api/v1/drones/{drone}/telemetry?format=kml")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/vnd.google-earth.kml+xml"), r.headers
    path = tmp_path / "history.kml"
    path.write_bytes(r.body)
    out = subprocess.run(["ogrinfo", "-ro", "-al", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^Feature Count: 7$", out.stdout, re.M), out.stdout
    points = [tuple(map(float, p)) for p in
              re.findall(r"POINT Z \(([-0-9.e]+) ([-0-9.e]+) ([-0-9.e]+)\)", out.stdout)]
    assert len(points) == len(msgs), out.stdout
    for (lon, lat, alt), m in zip(points, msgs):
        assert abs(lon - m["longitude"]) < 1e-9 and abs(lat - m["latitude"]) < 1e-9 and abs(alt - m["altitude"]) < 1e-9
    names = re.findall(r"^\s*Name \(String\) = (.*)$", out.stdout, re.M)
    assert names == [str(m["seq"]) for m in msgs], names
    assert re.search(r"^\s*description \(String\) = <a & b>$", out.stdout, re.M | re.I), out.stdout
    stamps = re.findall(r"^\s*timestamp \(DateTime\) = (\S+ \S+)$", out.stdout, re.M | re.I)
    assert stamps[:2] == ["2026/11/24 10:00:01+00", "2026/11/24 10:00:02+00"], stamps
    assert len(stamps) == len(msgs)


def test_csv_neutralises_formulas(history):
    s, drone, msgs = history
    r = s.get(f"/api/v1/drones/{drone}/telemetry?format=csv")
    assert r.status == 200, r
    rows = list(csv.DictReader(io.StringIO(r.text, newline="")))
    got = {int(row["seq"]): row["status"] for row in rows}
    assert got == {1: "'=HYPERLINK(\"http://x\")", 2: "'+1", 3: "'-2", 4: "'@SUM(A1)", 5: "<a & b>", 6: "ok",
                   7: ""}, got
    # numbers are not touched: a negative latitude stays a number
    assert float([row for row in rows if row["seq"] == "7"][0]["latitude"]) == -0.00001


def test_unknown_format(history):
    s, drone, _ = history
    r = s.get(f"/api/v1/drones/{drone}/telemetry?format=shp")
    assert r.status == 400 and "kml or gpx" in r.json()["error"], r
