"""Operator REST API: /api/v1/drones, /api/v1/drones/{id},
/api/v1/drones/{id}/telemetry (json, csv, geojson; from/to/limit), HTTP/1.1
keep-alive, error answers."""
import csv
import http.client
import io
import socket

import pytest

from dg import T, Drone, minimal, new_id, parse_time, run, telem, to_ms, wait_until

BASE_MS = 1795514400000          # 2026-11-24T10:00:00.000Z
CSV_HEADER = ["drone_id", "timestamp", "seq", "latitude", "longitude", "altitude", "speed",
              "heading", "climb", "battery", "status", "received_at"]
OPTIONAL = ["speed", "heading", "climb", "battery", "status"]


def ts(seq):
    return BASE_MS + seq * 1000


def sent_messages():
    """20 messages, one per second of sample time; seq 2 has no optional
    field, seq 3 a status that needs CSV quoting."""
    msgs = []
    for i in range(1, 21):
        m = telem(i, timestamp=ts(i), speed=float(i), battery=100.0 - i, status=f"st{i}")
        if i == 2:
            m = minimal(2, timestamp=ts(2), latitude=m["latitude"], longitude=m["longitude"], altitude=m["altitude"])
        if i == 3:
            m["status"] = 'a,"b" c'
        msgs.append(m)
    return msgs


@pytest.fixture(scope="module")
def fleet(_srv_module):
    """A drone with 20 known messages on the shared server, disconnected."""
    s = _srv_module.before()
    drone = new_id("rest")
    msgs = sent_messages()

    async def go():
        d = await Drone.connect(s, drone)
        await d.send(msgs)
        await d.wait_ack(20)
        assert not d.errors, d.errors
        await d.close()
    run(go())
    wait_until(lambda: s.get_json(f"/api/v1/drones/{drone}").get("online") is False, T(5), "drone offline")
    return drone, {m["seq"]: m for m in msgs}


def check_row(row, m):
    assert row["seq"] == m["seq"]
    assert to_ms(row["timestamp"]) == m["timestamp"], (row, m)
    for k in ("latitude", "longitude", "altitude") + tuple(OPTIONAL):
        if k in m:
            assert k in row, f"{k} missing in {row}"
            if isinstance(m[k], str):
                assert row[k] == m[k]
            else:
                assert abs(float(row[k]) - m[k]) < 1e-9, (k, row, m)
        else:
            assert k not in row, f"absent field {k} present in {row}"
    parse_time(row["received_at"])


# ---------------------------------------------------------------- drones

def test_drones_list(srv, fleet):
    drone, msgs = fleet
    doc = srv.get_json("/api/v1/drones")
    assert isinstance(doc.get("drones"), list), doc
    mine = [d for d in doc["drones"] if d["id"] == drone]
    assert len(mine) == 1, f"{drone} listed {len(mine)} times"
    d = mine[0]
    last = msgs[20]
    assert d["online"] is False
    parse_time(d["last_seen"])
    assert d["seq"] == 20
    for k in ("latitude", "longitude", "altitude", "speed", "battery", "heading", "climb"):
        assert abs(d[k] - last[k]) < 1e-9, (k, d, last)
    assert d["status"] == last["status"]


def test_drone_by_id(srv, fleet):
    drone, msgs = fleet
    d = srv.get_json(f"/api/v1/drones/{drone}")
    assert d["id"] == drone and d["seq"] == 20 and d["online"] is False, d
    assert abs(d["latitude"] - msgs[20]["latitude"]) < 1e-9


def test_drone_online_while_connected(srv):
    drone = new_id("online")

    async def go():
        d = await Drone.connect(srv, drone)
        await d.send(minimal(1))
        await d.wait_ack(1)
        st = srv.get_json(f"/api/v1/drones/{drone}")
        assert st["online"] is True, st
        assert any(x["id"] == drone and x["online"] is True for x in srv.drones())
        await d.close()
    run(go())
    wait_until(lambda: srv.get_json(f"/api/v1/drones/{drone}")["online"] is False, T(5), "offline after close")


def test_optional_fields_omitted_in_drone_state(srv):
    drone = new_id("bare")

    async def go():
        d = await Drone.connect(srv, drone)
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(go())
    st = srv.get_json(f"/api/v1/drones/{drone}")
    for k in OPTIONAL:
        assert k not in st, f"unknown {k} reported: {st}"


def test_unknown_drone_404(srv):
    r = srv.get(f"/api/v1/drones/{new_id('never')}")
    assert r.status == 404, r
    assert "error" in r.json()


@pytest.mark.parametrize("bad", ["bad$id", "a" * 65, "a%20b", "%C3%A9"])
def test_invalid_drone_id_400(srv, bad):
    for path in (f"/api/v1/drones/{bad}", f"/api/v1/drones/{bad}/telemetry"):
        r = srv.get(path)
        assert r.status == 400, f"{path}: {r}"
        assert isinstance(r.json().get("error"), str), r


# ---------------------------------------------------------------- telemetry json

def test_history_json_oldest_first(srv, fleet):
    drone, msgs = fleet
    r = srv.get(f"/api/v1/drones/{drone}/telemetry")
    assert r.status == 200 and "json" in r.headers.get("content-type", ""), r
    doc = r.json()
    assert doc["drone_id"] == drone
    rows = doc["telemetry"]
    assert [x["seq"] for x in rows] == list(range(1, 21))
    for row in rows:
        check_row(row, msgs[row["seq"]])


@pytest.mark.parametrize("kind", ["rfc3339", "epoch_ms", "mixed"])
def test_history_from_to_inclusive(srv, fleet, kind):
    drone, _ = fleet
    from dg import ms_to_rfc3339
    f, t = ts(5), ts(8)
    if kind == "rfc3339":
        q = f"from={ms_to_rfc3339(f)}&to={ms_to_rfc3339(t)}"
    elif kind == "epoch_ms":
        q = f"from={f}&to={t}"
    else:
        q = f"from={f}&to={ms_to_rfc3339(t)}"
    rows = srv.get_json(f"/api/v1/drones/{drone}/telemetry?{q}")["telemetry"]
    assert [x["seq"] for x in rows] == [5, 6, 7, 8], q


def test_history_from_only_and_to_only(srv, fleet):
    drone, _ = fleet
    assert [x["seq"] for x in srv.get_json(f"/api/v1/drones/{drone}/telemetry?from={ts(18)}")["telemetry"]] == [18, 19, 20]
    assert [x["seq"] for x in srv.get_json(f"/api/v1/drones/{drone}/telemetry?to={ts(2)}")["telemetry"]] == [1, 2]


def test_history_rfc3339_with_offset_and_encoded_plus(srv, fleet):
    drone, _ = fleet
    # 12:00:05+02:00 == 10:00:05Z == ts(5); '+' must be percent-encoded in a query string
    rows = srv.get_json(f"/api/v1/drones/{drone}/telemetry?from=2026-11-24T12:00:05%2B02:00&to=2026-11-24T10:00:06Z")["telemetry"]
    assert [x["seq"] for x in rows] == [5, 6]


def test_history_limit(srv, fleet):
    drone, _ = fleet
    rows = srv.get_json(f"/api/v1/drones/{drone}/telemetry?limit=3")["telemetry"]
    assert [x["seq"] for x in rows] == [1, 2, 3]
    rows = srv.get_json(f"/api/v1/drones/{drone}/telemetry?from={ts(10)}&limit=2")["telemetry"]
    assert [x["seq"] for x in rows] == [10, 11]


def test_history_empty_range(srv, fleet):
    drone, _ = fleet
    rows = srv.get_json(f"/api/v1/drones/{drone}/telemetry?from={ts(100)}&to={ts(200)}")["telemetry"]
    assert rows == []


def test_history_default_limit_1000(srv):
    drone = new_id("big")

    async def go():
        d = await Drone.connect(srv, drone)
        await d.send([minimal(i, timestamp=BASE_MS + i) for i in range(1, 1006)])
        await d.wait_ack(1005, T(20))
        await d.close()
    run(go())
    rows = srv.get_json(f"/api/v1/drones/{drone}/telemetry")["telemetry"]
    assert len(rows) == 1000, f"default limit: {len(rows)} rows"
    assert [x["seq"] for x in rows] == list(range(1, 1001)), "oldest first"
    rows = srv.get_json(f"/api/v1/drones/{drone}/telemetry?limit=2000")["telemetry"]
    assert len(rows) == 1005


def test_history_sorted_by_timestamp_not_arrival(srv):
    drone = new_id("order")

    async def go():
        d = await Drone.connect(srv, drone)
        await d.send([minimal(1, timestamp=ts(3)), minimal(2, timestamp=ts(1)), minimal(3, timestamp=ts(2))])
        await d.wait_ack(3)
        await d.close()
    run(go())
    rows = srv.get_json(f"/api/v1/drones/{drone}/telemetry")["telemetry"]
    assert [x["seq"] for x in rows] == [2, 3, 1], "history must be oldest first by sample time"


# ---------------------------------------------------------------- csv

def test_history_csv(srv, fleet):
    drone, msgs = fleet
    r = srv.get(f"/api/v1/drones/{drone}/telemetry?format=csv")
    assert r.status == 200, r
    assert "csv" in r.headers.get("content-type", ""), r.headers
    rows = list(csv.reader(io.StringIO(r.text, newline="")))
    assert rows[0] == CSV_HEADER, rows[0]
    body = rows[1:]
    assert len(body) == 20, f"{len(body)} rows"
    for cells in body:
        assert len(cells) == len(CSV_HEADER), cells
        row = dict(zip(CSV_HEADER, cells))
        m = msgs[int(row["seq"])]
        assert row["drone_id"] == drone
        assert to_ms(row["timestamp"]) == m["timestamp"], row
        parse_time(row["received_at"])
        for k in ("latitude", "longitude", "altitude", "speed", "heading", "climb", "battery"):
            if k in m:
                assert abs(float(row[k]) - m[k]) < 1e-9, (k, row, m)
            else:
                assert row[k] == "", f"absent {k} should be an empty cell: {row}"
        assert row["status"] == m.get("status", ""), row
    assert [int(c[2]) for c in body] == list(range(1, 21))


def test_history_csv_limit_and_range(srv, fleet):
    drone, _ = fleet
    r = srv.get(f"/api/v1/drones/{drone}/telemetry?format=csv&from={ts(4)}&limit=2")
    rows = list(csv.reader(io.StringIO(r.text, newline="")))
    assert rows[0] == CSV_HEADER and [int(x[2]) for x in rows[1:]] == [4, 5], rows


# ---------------------------------------------------------------- geojson

def test_history_geojson(srv, fleet):
    drone, msgs = fleet
    r = srv.get(f"/api/v1/drones/{drone}/telemetry?format=geojson")
    assert r.status == 200, r
    assert "json" in r.headers.get("content-type", ""), r.headers
    doc = r.json()
    assert doc["type"] == "FeatureCollection", doc.keys()
    feats = doc["features"]
    assert len(feats) == 20
    for f in feats:
        assert f["type"] == "Feature"
        g = f["geometry"]
        assert g["type"] == "Point"
        p = f["properties"]
        m = msgs[p["seq"]]
        lon, lat, alt = g["coordinates"]
        assert max(abs(lon - m["longitude"]), abs(lat - m["latitude"]), abs(alt - m["altitude"])) < 1e-9, (g, m)
        assert to_ms(p["timestamp"]) == m["timestamp"]
        parse_time(p["received_at"])
        for k in OPTIONAL:
            if k in m:
                assert p[k] == m[k] if isinstance(m[k], str) else abs(p[k] - m[k]) < 1e-9, (k, p, m)
            else:
                assert k not in p or p[k] is None, f"absent {k} in {p}"
    assert [f["properties"]["seq"] for f in feats] == list(range(1, 21))


def test_history_geojson_range(srv, fleet):
    drone, _ = fleet
    doc = srv.get_json(f"/api/v1/drones/{drone}/telemetry?format=geojson&from={ts(19)}")
    assert [f["properties"]["seq"] for f in doc["features"]] == [19, 20]


# ---------------------------------------------------------------- bad params

@pytest.mark.parametrize("q", ["limit=abc", "limit=-1", "limit=1e3", "from=garbage", "to=2026-99-99T00:00:00Z",
                               "from=2026-11-24T10:00:00", "format=xml", "limit=", "from=12abc"])
def test_history_bad_params_400(srv, fleet, q):
    drone, _ = fleet
    r = srv.get(f"/api/v1/drones/{drone}/telemetry?{q}")
    assert r.status == 400, f"?{q}: {r}"
    assert "json" in r.headers.get("content-type", ""), r.headers
    assert isinstance(r.json().get("error"), str) and r.json()["error"], r


# ---------------------------------------------------------------- HTTP

def test_keep_alive_several_requests_one_connection(srv, fleet):
    drone, _ = fleet
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=T(10))
    try:
        c.connect()
        sock = c.sock
        for path in ["/healthz", "/api/v1/drones", f"/api/v1/drones/{drone}",
                     f"/api/v1/drones/{drone}/telemetry?format=csv", "/metrics", "/nope", "/readyz"]:
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            assert r.status in (200, 404), (path, r.status)
            assert (r.getheader("connection") or "").lower() != "close", f"{path}: server closed a keep-alive connection"
            assert c.sock is sock, f"connection was reopened after {path}"
    finally:
        c.close()


def test_pipelined_requests(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T(10)) as s:
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(req * 3 + b"GET /api/v1/drones HTTP/1.1\r\nHost: x\r\n\r\n")
        f = s.makefile("rb")
        for i in range(4):
            status = f.readline()
            assert status.startswith(b"HTTP/1.1 200"), (i, status)
            length = None
            while True:
                line = f.readline()
                if line in (b"\r\n", b""):
                    break
                k, _, v = line.decode().partition(":")
                if k.lower() == "content-length":
                    length = int(v)
            assert length is not None, "response without Content-Length on a keep-alive connection"
            body = f.read(length)
            if i < 3:
                assert body.strip() == b"ok"


def test_http10_request_is_answered_and_closed(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T(10)) as s:
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        assert data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n")[0], data[:100]
        assert data.endswith(b"ok") or data.endswith(b"ok\n"), data


def test_request_split_byte_by_byte(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T(10)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n":
            s.sendall(bytes([b]))
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        assert data.startswith(b"HTTP/1.1 200"), data[:100]


def test_garbage_request_400(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T(10)) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n")
        data = b""
        while True:
            try:
                d = s.recv(4096)
            except ConnectionResetError:
                break
            if not d:
                break
            data += d
        assert data == b"" or data.startswith(b"HTTP/1.1 400"), data[:100]
    assert srv.get("/healthz").status == 200


def test_healthz(srv):
    r = srv.get("/healthz")
    assert r.status == 200 and r.body.strip() == b"ok", r


def test_readyz_ok(srv):
    r = srv.get("/readyz")
    assert r.status == 200 and r.body == b"ready\n", r
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers


def test_root_without_dashboard_lists_the_endpoints(srv):
    """No dashboard files (the shared server's --web-root does not exist):
    / is a small HTML page naming the API (the dashboard itself is checked in
    test_promises.py::test_root_serves_the_dashboard_and_its_assets)."""
    r = srv.get("/")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/html"), r.headers
    for path in (b"/api/v1/drones", b"/metrics", b"/healthz", b"/readyz", b"/ws/"):
        assert path in r.body, (path, r.body[:300])
