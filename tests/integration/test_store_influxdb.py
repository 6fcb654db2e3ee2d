"""The influxdb:// store against a real influxd 1.x (servers.py starts one
per pytest process; each test gets its own database), and the same REST
answers from sqlite:, postgresql:// and influxdb:// for the same telemetry.

InfluxDB semantics checked here (documented in src/store/influxdb.c): one
point per drone and timestamp, so a redelivery overwrites itself; messages
without a timestamp are deduplicated by a per-drone seq watermark.
"""
import csv
import io
import json
import time
import uuid

import pytest

import servers
from dg import T, Drone, minimal, new_id, run, telem, wait_until
from test_store_postgres import DB, rest_rows, send_all, to_ms


@pytest.fixture(scope="module")
def ix():
    return servers.shared_influx()


class IDB:
    def __init__(self, ix):
        self.ix = ix
        self.name = "t_" + uuid.uuid4().hex[:12]

    def uri(self, **params):
        q = ("?" + "&".join(f"{k}={v}" for k, v in params.items())) if params else ""
        return self.ix.uri(self.name) + q

    def rows(self, q):
        return self.ix.rows(q, self.name)


@pytest.fixture
def idb(ix):
    return IDB(ix)


def expected_row(m):
    row = {k: m[k] for k in ("seq", "latitude", "longitude", "altitude", "speed", "heading",
                             "climb", "battery", "status") if k in m}
    ts = m.get("timestamp")
    if ts is not None:
        row["timestamp"] = ts if isinstance(ts, int) else to_ms(ts)
    return row


def test_every_field_round_trips(server_factory, idb):
    s = server_factory(store=idb.uri())
    drone, big = new_id("ixrt"), new_id("ixbig")
    now = int(time.time() * 1000)
    msgs = [
        telem(1),
        minimal(2, timestamp=now),
        telem(3, timestamp=now + 1, status='q"uote \\ tab\t nl\n ünï €', speed=0.0,
              heading=359.999, climb=-12.25, battery=0.0),
        minimal(4, latitude=-90.0, longitude=180.0, altitude=-1000.0, timestamp="1970-01-01T00:00:00Z"),
        minimal(5, latitude=90.0, longitude=-180.0, altitude=100000.0, timestamp="1969-07-20T20:17:40.001Z"),
        minimal(None, timestamp=now + 2, latitude=0.1, longitude=0.2, altitude=0.3),
        minimal(7, latitude=1.0000000000000002, longitude=-179.99999999999997, altitude=5e-324,
                timestamp="2026-11-24T12:00:00.123456+02:00"),
        telem(9, timestamp=now + 3, status=""),
    ]
    t_before = int(time.time() * 1000)
    # 8 comes before 9: a message without timestamp whose seq is below one
    # already stored would be taken for a redelivery (documented)
    run(send_all(s, drone, msgs[:-1] + [minimal(8), msgs[-1]], 9))
    t_after = int(time.time() * 1000)
    run(send_all(s, big, [minimal(2**63, timestamp=now), minimal(2**64 - 1, timestamp=now + 1)], 2**64 - 1))

    got = rest_rows(s, drone)
    no_ts = [r for r in got if r.get("seq") == 8]
    assert len(no_ts) == 1, got
    assert t_before - 5 <= no_ts[0].pop("timestamp") <= t_after + 5, no_ts
    assert no_ts[0] == {"seq": 8, "latitude": 10.0, "longitude": 20.0, "altitude": 30.0}
    got = [r for r in got if r.get("seq") != 8]
    want = sorted((expected_row(m) for m in msgs), key=lambda r: (r["timestamp"], r.get("seq", -1)))
    assert got == want
    assert [r["seq"] for r in s.history(big)] == [2**63, 2**64 - 1]
    # in InfluxDB: tag drone_id, seq the uint64 bit pattern as an integer field
    assert [r["seq"] for r in idb.rows(f"SELECT seq FROM telemetry WHERE drone_id = '{big}'")] == [-2**63, -1]
    types = {r["fieldKey"]: r["fieldType"] for r in idb.rows("SHOW FIELD KEYS FROM telemetry")}
    assert types == {"seq": "integer", "received_at": "integer", "status": "string", "latitude": "float",
                     "longitude": "float", "altitude": "float", "speed": "float", "heading": "float",
                     "climb": "float", "battery": "float"}, types
    assert [r["tagKey"] for r in idb.rows("SHOW TAG KEYS FROM telemetry")] == ["drone_id"]
    # range and limit
    assert [r.get("seq") for r in rest_rows(s, drone, **{"from": now, "to": now + 2})] == [2, 3, None]
    assert [r["seq"] for r in rest_rows(s, drone, **{"from": now, "limit": 1})] == [2]


def test_redelivered_messages_are_stored_once(server_factory, idb):
    s = server_factory(store=idb.uri())
    drone = new_id("ixdup")
    with_ts = [telem(i) for i in range(1, 11)]
    without_ts = [minimal(i) for i in range(11, 16)]
    run(send_all(s, drone, with_ts + without_ts, 15, batch=True))
    run(send_all(s, drone, with_ts + without_ts, 15, batch=True))
    run(send_all(s, drone, [telem(16), telem(16), minimal(17), minimal(17), telem(18)], 18, batch=True))
    run(send_all(s, drone, [minimal(12), telem(5), telem(18)], 18, batch=True))
    assert sorted(r["seq"] for r in s.history(drone)) == list(range(1, 19))
    # the watermark of messages without timestamp survives a restart (seeded
    # from the newest point of each drone)
    s.stop()
    s.restart()
    run(send_all(s, drone, without_ts + [minimal(17), minimal(19)], 19, batch=True))
    assert sorted(r["seq"] for r in s.history(drone)) == list(range(1, 20))
    assert idb.rows(f"SELECT count(seq) FROM telemetry WHERE drone_id = '{drone}'")[0]["count"] == 19


def test_drones_and_commands_measurements(server_factory, idb):
    s = server_factory(store=idb.uri())
    drone = new_id("ixcmd")

    async def go():
        d = await Drone.connect(s, drone)
        await d.send(telem(1, status="airborne"))
        await d.wait_ack(1)
        r = s.get(f"/api/v1/drones/{drone}/commands", method="POST",
                  body=json.dumps({"name": "land", "args": {}}), headers={"Content-Type": "application/json"})
        assert r.status == 202, r
        cid = r.json()["id"]
        await d.wait(lambda: any(m.get("type") == "command" for m in d.other), T(10), "command")
        await d.send({"type": "command_ack", "id": cid, "status": "done", "message": "landed"})
        q = f"""SELECT "id", "name", "status", "message" FROM commands WHERE drone_id = '{drone}'"""
        wait_until(lambda: [(r["id"], r["name"], r["status"], r["message"]) for r in idb.rows(q)]
                   == [(cid, "land", "done", "landed")], T(10), "one commands point, status done")
        await d.close()

    run(go())
    wait_until(lambda: [(r["last_seq"], r["status"]) for r in
                        idb.rows(f"SELECT last_seq, status FROM drones WHERE drone_id = '{drone}'")]
               == [(1, "airborne")], T(10), "drones point")


def test_influx_down_then_back_loses_nothing_acked(server_factory, idb, ix):
    s = server_factory(store=idb.uri(timeout="2s"))
    drone = new_id("ixdown")
    state = {}

    async def go():
        d = await Drone.connect(s, drone)
        await d.send([telem(i) for i in range(1, 51)])
        await d.wait_ack(50)
        ix.stop()
        try:
            await d.send([telem(i) for i in range(51, 101)] + [minimal(i) for i in range(101, 111)])
            wait_until(lambda: s.get("/readyz").status == 503, T(10), "/readyz 503 while InfluxDB is down")
            assert s.get(f"/api/v1/drones/{drone}/telemetry").status == 503
            state["acks_while_down"] = [a for a in d.acks if a > 50]
            await d.recv(0.5)
            assert not [a for a in d.acks if a > 50], "acked while the store was down"
        finally:
            ix.start()
        await d.wait_ack(110, T(30))
        wait_until(lambda: s.get("/readyz").status == 200, T(10), "/readyz 200 again")
        await d.close()

    run(go())
    assert sorted(r["seq"] for r in s.history(drone)) == list(range(1, 111))
    assert "writes succeed again" in s.stderr()


def test_kill9_loses_nothing_acked(server_factory, idb):
    s = server_factory(store=idb.uri())
    drone = new_id("ixk9")
    state = {}

    async def stream():
        d = await Drone.connect(s, drone)
        seq = 0
        try:
            while not (d.acks and d.acks[-1] >= 400):
                await d.send([telem(seq + i, timestamp=1795428000000 + (seq + i) * 10) for i in range(1, 21)])
                seq += 20
                await d.recv(0.001)
                while d.acks and seq - d.acks[-1] > 200:
                    await d.recv(T(5))
        except Exception:
            pass
        state["acked"], state["sent"] = d.max_ack, seq
        s.kill9()

    run(stream())
    seqs = [r["seq"] for r in idb.rows(f"SELECT seq FROM telemetry WHERE drone_id = '{drone}'")]
    missing = set(range(1, state["acked"] + 1)) - set(seqs)
    assert not missing, f"acked up to {state['acked']} but {sorted(missing)[:10]} missing"
    s.restart()
    assert s.get_json(f"/api/v1/drones/{drone}")["seq"] == max(seqs)     # registry from the newest points


@pytest.mark.parametrize("uri,words", [
    ("influxdb://127.0.0.1:1/x", ["cannot use InfluxDB at 127.0.0.1:1/x"]),
    ("influxdb://127.0.0.1:8086", ["is not an InfluxDB URI"]),
    ("influxdb://127.0.0.1:8086/x?bogus=1", ["unknown InfluxDB store option 'bogus'"]),
])
def test_start_failures_say_why(server_factory, uri, words):
    s = server_factory(start=False, store=uri)
    s.spawn()
    assert s.wait_exit(T(20)) == 1
    for w in words:
        assert w in s.stderr(), s.stderr()


# ---------------------------------------------------------------- same answers everywhere

def test_same_answers_on_sqlite_postgresql_influxdb(server_factory, idb, tmp_path):
    pg = servers.shared_postgres()
    pdb = DB(pg)
    gws = {
        "sqlite": server_factory(),
        "postgresql": server_factory(store=pdb.uri()),
        "influxdb": server_factory(store=idb.uri()),
    }
    now = int(time.time() * 1000) - 600000   # every drone timestamp in the past, receive times after
    a, b = new_id("same"), new_id("same")
    first = [
        telem(1),
        telem(2, timestamp=now - 5000),
        minimal(3, timestamp=now - 4000),
        telem(4, timestamp=ms_rfc(now - 3000), status='s "q" \\ \u00e9\u20ac\U0001F681', speed=0.5,
              heading=0.0, climb=-0.25, battery=100.0),
        minimal(5, timestamp=now - 2000, latitude=-33.8688197, longitude=151.2092955, altitude=58.123456789,
                battery=3.3333333333333335),
        minimal(None, timestamp=now - 1500),                          # no seq
        telem(6, timestamp=now - 1000, speed=None, heading=None),     # some optional fields absent
        minimal(7),                                                   # no timestamp: receive time
    ]
    second = [telem(i, timestamp=now + i) for i in range(10, 60)]

    for name, s in gws.items():
        run(send_all(s, a, first, 7))
        run(send_all(s, b, second, 59, batch=True))
        # redelivery: the same batches again (new connection), and part of
        # them; not the message without seq: nothing can deduplicate it, and
        # InfluxDB's one-point-per-timestamp would keep one copy where the
        # SQL stores keep two (documented)
        run(send_all(s, a, [m for m in first[1:] if "seq" in m], 7, batch=True))
        run(send_all(s, b, second[20:40] + [telem(60, timestamp=now + 60)], 60, batch=True))

    def norm_row(row):
        """received_at out; seq 7's timestamp (each gateway's receive time) checked and out."""
        row.pop("received_at")
        if row.get("seq") == 7:
            assert now < to_ms(row.pop("timestamp")) < now + 1200000, row
        return row

    def answers(s):
        out = {}
        for drone in (a, b):
            for q in ("", "limit=3", f"from={now - 4000}&to={now - 1000}", f"from={now + 30}&to={now + 100}&limit=5",
                      f"to={now}&limit=100000", "format=geojson", "format=csv"):
                r = s.get(f"/api/v1/drones/{drone}/telemetry?{q}")
                assert r.status == 200, (q, r)
                if q == "format=csv":
                    body = list(csv.DictReader(io.StringIO(r.text, newline="")))
                    for row in body:
                        row.pop("received_at")
                        if row["seq"] == "7":
                            assert now < to_ms(row.pop("timestamp")) < now + 1200000, row
                elif q == "format=geojson":
                    body = [norm_row(dict(f["properties"], geometry=f["geometry"])) for f in r.json()["features"]]
                else:
                    body = [norm_row(row) for row in r.json()["telemetry"]]
                out[(drone, q)] = body
        return out

    res = {name: answers(s) for name, s in gws.items()}
    ref = res["sqlite"]
    assert len(ref[(a, "")]) == 8 and len(ref[(b, "")]) == 51, ref[(a, "")]
    assert len(ref[(a, "format=csv")]) == 8
    for name in ("postgresql", "influxdb"):
        for key in ref:
            assert res[name][key] == ref[key], (name, key, res[name][key][:3], ref[key][:3])


def ms_rfc(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms % 1000:03d}Z"
