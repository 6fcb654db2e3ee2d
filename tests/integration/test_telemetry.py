"""Telemetry over WebSocket with python3-websockets as the drone: acks,
validation errors, timestamps, idempotent redelivery, replacement (4409)."""
import asyncio
import json
import sqlite3
import time

import pytest

from conftest import shared_fixture
from dg import T, Drone, dumps, minimal, new_id, run, telem, to_ms, wait_until

_ackint_mod, _ackint = shared_fixture("slow_ack_srv", args=["--ack-interval", "300"])


async def connect(s, drone=None, **kw):
    return await Drone.connect(s, drone or new_id("t"), **kw)


def approx(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def assert_row_matches(row, sent):
    for k, v in sent.items():
        if k == "timestamp":
            continue
        assert k in row, f"field {k} missing from stored row {row}"
        if isinstance(v, float):
            assert approx(row[k], v), f"{k}: stored {row[k]!r}, sent {v!r}"
        else:
            assert row[k] == v, f"{k}: stored {row[k]!r}, sent {v!r}"


# ---------------------------------------------------------------- acks

def test_single_message_acked_and_stored(srv):
    drone = new_id("single")
    m = telem(1)

    async def go():
        d = await connect(srv, drone)
        await d.send(m)
        assert await d.wait_ack(1) == 1
        assert not d.errors
        await d.close()
    run(go())
    rows = srv.history(drone)
    assert len(rows) == 1, rows
    assert_row_matches(rows[0], m)
    assert to_ms(rows[0]["timestamp"]) == to_ms(m["timestamp"])


def test_batch_acked_and_stored(srv):
    drone = new_id("batch")
    batch = [telem(i) for i in range(1, 11)]

    async def go():
        d = await connect(srv, drone)
        await d.send(batch)
        await d.wait_ack(10)
        assert not d.errors, d.errors
        await d.close()
    run(go())
    rows = srv.history(drone)
    assert [r["seq"] for r in rows] == list(range(1, 11))
    for r, m in zip(rows, batch):
        assert_row_matches(r, m)


def test_many_batches_cumulative_monotonic_acks(srv):
    drone = new_id("cum")

    async def go():
        d = await connect(srv, drone)
        seq = 0
        for _ in range(20):
            await d.send([minimal(seq + i + 1) for i in range(25)])
            seq += 25
        await d.wait_ack(seq)
        assert d.acks == sorted(d.acks), f"acks not monotonic: {d.acks}"
        assert d.max_ack == seq
        await d.close()
    run(go())
    assert srv.seqs(drone) == list(range(1, 501))


def test_ack_follows_the_commit_by_default(srv):
    # contract: the ack follows the commit, never held back (default
    # --ack-interval 0, --commit-interval 0). A drone with a window of one
    # message: with 50 ms coalescing each ack came >= 50 ms after the previous
    # one, so 30 round trips took >= 1.5 s.
    async def go():
        d = await connect(srv)
        t0 = time.monotonic()
        for i in range(1, 31):
            await d.send(minimal(i))
            await d.wait_ack(i)
        elapsed = time.monotonic() - t0
        assert d.acks == list(range(1, 31)), d.acks
        assert elapsed < 30 * 0.05, f"30 round trips took {elapsed:.2f}s: acks held back"
        await d.close()
    run(go())


def test_ack_interval_option(slow_ack_srv):
    # --ack-interval 300: one message every ~20 ms for ~1.2 s gives at most ~6 acks
    async def go():
        d = await connect(slow_ack_srv)
        t0 = time.monotonic()
        for i in range(1, 61):
            await d.send(minimal(i))
            await asyncio.sleep(0.02)      # pacing the sender, not synchronisation
        await d.wait_ack(60)
        elapsed = time.monotonic() - t0
        assert len(d.acks) <= elapsed / 0.3 + 2, f"{len(d.acks)} acks in {elapsed:.2f}s with --ack-interval 300: {d.acks}"
        await d.close()
    run(go())


def test_ack_only_after_commit(srv):
    # every time an ack arrives, the SQLite file already holds every seq <= ack
    drone = new_id("durable")
    db = sqlite3.connect(f"file:{srv.db}?mode=ro", uri=True, timeout=T(10))

    def stored_upto(n):
        return db.execute("SELECT COUNT(*) FROM telemetry WHERE drone_id=? AND seq<=?", (drone, n)).fetchone()[0]

    async def go():
        d = await connect(srv, drone)
        sent = 0
        checked = 0
        for _ in range(30):
            await d.send([minimal(sent + i + 1) for i in range(10)])
            sent += 10
            while True:
                m = await d.recv(0.005)
                if m is None:
                    break
                if m.get("type") == "ack":
                    n = m["seq"]
                    got = stored_upto(n)
                    assert got == n, f"ack {n} arrived but only {got} rows with seq <= {n} are in the database"
                    checked += 1
        await d.wait_ack(sent)
        assert stored_upto(sent) == sent
        await d.close()
        return checked
    try:
        run(go())
    finally:
        db.close()


# ---------------------------------------------------------------- validation errors

DEL = object()


class Raw:
    """A JSON literal python cannot produce (e.g. 1e400)."""

    def __init__(self, text):
        self.text = text


def build(seq, over):
    m = telem(seq)
    raws = {}
    for k, v in over.items():
        if v is DEL:
            m.pop(k, None)
        elif isinstance(v, Raw):
            m[k] = f"@@{k}@@"
            raws[f'"@@{k}@@"'] = v.text
        else:
            m[k] = v
    s = dumps(m)
    for ph, txt in raws.items():
        s = s.replace(ph, txt)
    return s


INVALID = [
    ("latitude_missing", {"latitude": DEL}, "latitude"),
    ("longitude_missing", {"longitude": DEL}, "longitude"),
    ("altitude_missing", {"altitude": DEL}, "altitude"),
    ("latitude_above_90", {"latitude": 90.0001}, "latitude"),
    ("latitude_below_-90", {"latitude": -90.5}, "latitude"),
    ("longitude_above_180", {"longitude": 180.01}, "longitude"),
    ("longitude_below_-180", {"longitude": -181}, "longitude"),
    ("altitude_above_100000", {"altitude": 100000.5}, "altitude"),
    ("altitude_below_-1000", {"altitude": -1000.5}, "altitude"),
    ("speed_negative", {"speed": -0.1}, "speed"),
    ("heading_360", {"heading": 360}, "heading"),
    ("heading_negative", {"heading": -1}, "heading"),
    ("battery_above_100", {"battery": 100.5}, "battery"),
    ("battery_negative", {"battery": -1}, "battery"),
    ("status_33_chars", {"status": "x" * 33}, "status"),
    ("latitude_string", {"latitude": "47.1"}, "latitude"),
    ("longitude_null", {"longitude": None}, "longitude"),
    ("altitude_bool", {"altitude": True}, "altitude"),
    ("altitude_array", {"altitude": [1]}, "altitude"),
    ("speed_string", {"speed": "fast"}, "speed"),
    ("climb_string", {"climb": "up"}, "climb"),
    ("battery_object", {"battery": {}}, "battery"),
    ("status_number", {"status": 5}, "status"),
    ("latitude_1e400", {"latitude": Raw("1e400")}, "latitude"),
    ("altitude_-1e400", {"altitude": Raw("-1e400")}, "altitude"),
    ("climb_1e999", {"climb": Raw("1e999")}, "climb"),
    ("heading_1e400", {"heading": Raw("1e400")}, "heading"),
    ("timestamp_text", {"timestamp": "yesterday"}, "timestamp"),
    ("timestamp_bad_date", {"timestamp": "2026-13-45T10:00:00Z"}, "timestamp"),
    ("timestamp_no_zone", {"timestamp": "2026-11-24T10:00:00"}, "timestamp"),
    ("timestamp_bool", {"timestamp": True}, "timestamp"),
]

INVALID_SEQ = [
    ("seq_negative", {"seq": -1}),
    ("seq_string", {"seq": "5"}),
    ("seq_fraction", {"seq": 1.5}),
    ("seq_2^64", {"seq": 2 ** 64}),
]


@pytest.mark.parametrize("over,field", [(o, f) for (_, o, f) in INVALID], ids=[i for (i, _, _) in INVALID])
def test_invalid_field_reported_connection_stays_open(srv, over, field):
    drone = new_id("inv")

    async def go():
        d = await connect(srv, drone)
        await d.send(build(5, over))
        await d.send(minimal(6))
        await d.wait_ack(6)
        await d.wait_errors(1)
        e = d.errors[0]
        assert e.get("code") == "invalid_field", e
        assert e.get("field") == field, e
        assert e.get("seq") == 5, e
        assert isinstance(e.get("message"), str) and e["message"], e
        assert len(d.errors) == 1, d.errors
        await d.close()
    run(go())
    assert srv.seqs(drone) == [6], "the invalid message was stored"


@pytest.mark.parametrize("over", [o for (_, o) in INVALID_SEQ], ids=[i for (i, _) in INVALID_SEQ])
def test_invalid_seq_reported(srv, over):
    drone = new_id("seq")

    async def go():
        d = await connect(srv, drone)
        await d.send(build(5, over))
        await d.send(minimal(6))
        await d.wait_ack(6)
        await d.wait_errors(1)
        e = d.errors[0]
        assert e.get("code") == "invalid_field", e
        assert e.get("field") == "seq", e
        assert isinstance(e.get("seq", 0), int) and e.get("seq") != 5, e
        await d.close()
    run(go())
    assert len(srv.history(drone)) == 1


def test_boundary_values_accepted(srv):
    drone = new_id("edge")
    edges = [
        {"latitude": 90, "longitude": 180, "altitude": 100000},
        {"latitude": -90, "longitude": -180, "altitude": -1000},
        {"latitude": 0, "longitude": 0, "altitude": 0, "speed": 0, "heading": 0, "battery": 0},
        {"latitude": 1, "longitude": 1, "altitude": 1, "heading": 359.999, "battery": 100, "climb": -50.5},
        {"latitude": 1e-7, "longitude": -1e-7, "altitude": 1.5e3, "status": "s" * 32},
        {"latitude": 1, "longitude": 1, "altitude": 1, "status": ""},
    ]
    msgs = [dict(e, seq=i + 1) for i, e in enumerate(edges)]

    async def go():
        d = await connect(srv, drone)
        await d.send(msgs)
        await d.wait_ack(len(msgs))
        assert not d.errors, d.errors
        await d.close()
    run(go())
    rows = srv.history(drone)
    assert [r["seq"] for r in rows] == list(range(1, len(msgs) + 1))
    for r, m in zip(rows, msgs):
        for k, v in m.items():
            if k == "status" and v == "":
                continue
            assert approx(float(r[k]), float(v)) if not isinstance(v, str) else r[k] == v, (k, r, m)


INVALID_JSON = ["not json", "{", '{"seq":1', '"a string"', "123", "null", "true",
                '{"seq":1,"latitude":1,"longitude":1,"altitude":1} trailing',
                '{"seq":1,"latitude":NaN,"longitude":1,"altitude":1}',
                '{"seq":1,"latitude":Infinity,"longitude":1,"altitude":1}',
                "{'seq':1}", '{"seq":1,}', "[{}, ", "\t \n"]


@pytest.mark.parametrize("text", INVALID_JSON)
def test_invalid_json_reported_connection_stays_open(srv, text):
    async def go():
        d = await connect(srv)
        await d.send(text)
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.wait_errors(1)
        e = d.errors[0]
        assert e.get("code") == "invalid_json", e
        assert "field" not in e, f"field named for invalid_json: {e}"
        assert "seq" not in e, f"seq named though unknown: {e}"
        assert isinstance(e.get("message"), str) and e["message"], e
        await d.close()
    run(go())


def test_batch_elements_that_are_not_objects(srv):
    """Valid JSON whose batch elements are not objects: each such element is
    rejected on its own (invalid_field, field "message"), the frame's other
    elements are still stored (README: "Messages")."""
    async def go():
        d = await connect(srv)
        await d.send("[1,2]")
        await d.wait_errors(2)
        for e in d.errors[:2]:
            assert e.get("code") == "invalid_field" and e.get("field") == "message", e
        await d.send(json.dumps([5, {"seq": 7, "latitude": 1, "longitude": 2, "altitude": 3}]))
        await d.wait_ack(7)
        await d.close()
    run(go())


def test_batch_with_one_invalid_message(srv):
    drone = new_id("mixed")

    async def go():
        d = await connect(srv, drone)
        await d.send([minimal(1), minimal(2, latitude=123), minimal(3)])
        await d.wait_ack(3)
        await d.wait_errors(1)
        e = d.errors[0]
        assert (e["code"], e.get("seq"), e.get("field")) == ("invalid_field", 2, "latitude"), e
        await d.close()
    run(go())
    assert srv.seqs(drone) == [1, 3]


def test_many_errors_in_one_batch(srv):
    async def go():
        d = await connect(srv)
        await d.send([minimal(i, altitude=-5000) for i in range(1, 51)] + [minimal(51)])
        await d.wait_ack(51)
        await d.wait_errors(50)
        assert sorted(e["seq"] for e in d.errors) == list(range(1, 51))
        await d.close()
    run(go())


def test_unknown_fields_and_explicit_type_accepted(srv):
    drone = new_id("unk")

    async def go():
        d = await connect(srv, drone)
        await d.send(minimal(1, extra={"nested": [1, {"a": None}]}, note="hello", type="telemetry"))
        await d.wait_ack(1)
        assert not d.errors, d.errors
        await d.close()
    run(go())
    assert srv.seqs(drone) == [1]


def test_empty_batch_is_harmless(srv):
    async def go():
        d = await connect(srv)
        await d.send([])
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(go())


def test_json_escapes_in_status(srv):
    drone = new_id("esc")
    status = 'a"b\\c\u00e9\u2708/\n'

    async def go():
        d = await connect(srv, drone)
        await d.send('{"seq":1,"latitude":1,"longitude":2,"altitude":3,"status":"a\\"b\\\\c\\u00e9\\u2708\\/\\n"}')
        await d.wait_ack(1)
        assert not d.errors, d.errors
        await d.close()
    run(go())
    assert srv.history(drone)[0]["status"] == status


# ---------------------------------------------------------------- seq semantics

def test_message_without_seq_is_stored_not_acked(srv):
    drone = new_id("noseq")

    async def go():
        d = await connect(srv, drone)
        await d.send(minimal(None, status="a"))
        await d.send(minimal(None, status="b"))
        await d.send(minimal(1, status="c"))
        await d.wait_ack(1)
        assert d.acks and all(a == 1 for a in d.acks), d.acks
        await d.close()
    run(go())
    rows = srv.history(drone)
    assert sorted(r.get("status") for r in rows) == ["a", "b", "c"], rows
    assert sum(1 for r in rows if "seq" not in r) == 2, f"rows without seq should omit it: {rows}"


def test_seq_max_uint64(srv):
    drone = new_id("u64")
    big = 2 ** 64 - 1

    async def go():
        d = await connect(srv, drone)
        await d.send(minimal(big - 1))
        await d.send(minimal(big))
        assert await d.wait_ack(big) == big
        await d.close()
    run(go())
    assert srv.seqs(drone) == [big - 1, big]


def test_redelivery_is_stored_once(srv):
    drone = new_id("redeliver")

    async def go():
        d = await connect(srv, drone)
        await d.send([minimal(i) for i in range(1, 6)])
        await d.wait_ack(5)
        await d.send([minimal(i) for i in range(1, 6)])
        for i in range(3, 6):
            await d.send(minimal(i))
        await d.send(minimal(6))
        await d.wait_ack(6)
        assert not d.errors, d.errors
        await d.close()
        d2 = await connect(srv, drone)
        await d2.send([minimal(i) for i in range(4, 9)])
        await d2.wait_ack(8)
        await d2.close()
    run(go())
    assert srv.seqs(drone) == list(range(1, 9))


def test_redelivered_seq_keeps_first_version(srv):
    drone = new_id("first")

    async def go():
        d = await connect(srv, drone)
        await d.send(minimal(1, status="first"))
        await d.wait_ack(1)
        await d.send(minimal(1, status="second"))
        await d.send(minimal(2))
        await d.wait_ack(2)
        await d.close()
    run(go())
    rows = srv.history(drone)
    assert [(r["seq"], r.get("status")) for r in rows] == [(1, "first"), (2, None)], rows


# ---------------------------------------------------------------- timestamps

TS_CASES = [
    ("rfc3339_ms_z", "2026-11-24T10:00:00.123Z", 1795514400123),
    ("rfc3339_offset", "2026-11-24T12:00:00.5+02:00", 1795514400500),
    ("rfc3339_negative_offset", "2026-11-24T05:30:00.250-04:30", 1795514400250),
    ("rfc3339_no_fraction", "2026-11-24T10:00:01Z", 1795514401000),
    ("rfc3339_lowercase", "2026-11-24t10:00:02.001z", 1795514402001),
    ("rfc3339_micro", "2026-11-24T10:00:03.123456Z", 1795514403123),
    ("leap_day", "2028-02-29T00:00:00Z", 1835395200000),
    ("epoch_ms", 1795514400123, 1795514400123),
    ("epoch_ms_zero", 0, 0),
]


@pytest.mark.parametrize("ts,ms", [(t, m) for (_, t, m) in TS_CASES], ids=[i for (i, _, _) in TS_CASES])
def test_timestamp_round_trip(srv, ts, ms):
    drone = new_id("ts")

    async def go():
        d = await connect(srv, drone)
        await d.send(minimal(1, timestamp=ts))
        await d.wait_ack(1)
        assert not d.errors, d.errors
        await d.close()
    run(go())
    row = srv.history(drone)[0]
    assert to_ms(row["timestamp"]) == ms, f"sent {ts!r}, stored {row['timestamp']!r}, expected {ms} ms"
    to_ms(row["received_at"])


def test_missing_timestamp_is_receive_time(srv):
    drone = new_id("now")
    before = time.time()

    async def go():
        d = await connect(srv, drone)
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(go())
    after = time.time()
    row = srv.history(drone)[0]
    for k in ("timestamp", "received_at"):
        t = to_ms(row[k]) / 1000
        assert before - 1 <= t <= after + 1, f"{k} {row[k]} not between {before} and {after}"


# ---------------------------------------------------------------- one connection per drone

def test_second_connection_replaces_first_4409(srv):
    drone = new_id("dup")

    async def go():
        a = await connect(srv, drone)
        await a.send(minimal(1))
        await a.wait_ack(1)
        b = await connect(srv, drone)
        code = await a.wait_closed(T(5))
        assert code == 4409, f"older connection closed with {code} {a.ws.close_reason!r}, expected 4409"
        await b.send(minimal(2))
        await b.wait_ack(2)
        c = await connect(srv, drone)
        assert await b.wait_closed(T(5)) == 4409
        await c.send(minimal(3))
        await c.wait_ack(3)
        await c.close()
    run(go())
    assert srv.seqs(drone) == [1, 2, 3]


def test_replaced_drone_stays_online(srv):
    drone = new_id("dup2")

    async def go():
        a = await connect(srv, drone)
        await a.send(minimal(1))
        await a.wait_ack(1)
        b = await connect(srv, drone)
        await a.wait_closed(T(5))
        await b.send(minimal(2))
        await b.wait_ack(2)
        st = srv.get_json(f"/api/v1/drones/{drone}")
        assert st["online"] is True, f"drone reported offline while its newer connection is open: {st}"
        await b.close()
    run(go())
    wait_until(lambda: srv.get_json(f"/api/v1/drones/{drone}")["online"] is False, T(5), "drone offline after close")


def test_many_drones_concurrently(srv):
    # 40 drones x 50 messages on 2 workers
    ids = [new_id("conc") for _ in range(40)]

    async def one(drone):
        d = await connect(srv, drone)
        for i in range(1, 51, 5):
            await d.send([minimal(j) for j in range(i, i + 5)])
        await d.wait_ack(50, T(20))
        await d.close()

    async def go():
        await asyncio.gather(*(one(x) for x in ids))
    run(go())
    for drone in ids[:5]:
        assert srv.seqs(drone) == list(range(1, 51))
    listed = {d["id"] for d in srv.drones()}
    missing = set(ids) - listed
    assert not missing, f"drones missing from /api/v1/drones: {sorted(missing)[:5]}"


def test_server_ignores_command_ack_for_unknown_command(srv):
    # a command_ack the server never asked for must not break the connection
    async def go():
        d = await connect(srv)
        await d.send({"type": "command_ack", "id": "nope", "status": "done", "message": ""})
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(go())


def test_error_message_is_json_object(srv):
    async def go():
        d = await connect(srv)
        await d.ws.send("{")
        raw = await asyncio.wait_for(d.ws.recv(), T(5))
        m = json.loads(raw)
        assert m["type"] == "error"
        await d.close()
    run(go())
