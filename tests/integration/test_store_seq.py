"""The store interface's seq rules on every backend (sqlite:, postgresql://,
influxdb://), driven directly through build/bench/store_probe (a small CLI on
store.h, built by `make all`), plus the same rules end to end through the
gateway:

- last_seq: the highest stored seq of a drone, compared as uint64 (what the
  session message tells a drone after a restart of its counter);
- a reused seq (the same (drone_id, seq) with another timestamp) is flagged
  DG_REC_REJECTED_REUSED by write_batch and not stored, also within one
  batch; a redelivery (same seq, same timestamp) is stored once.
"""
import os
import subprocess
import uuid

import pytest

import servers
from dg import ASAN, BIN, T
from storetest import DB, IDB

PROBE = os.path.join(os.path.dirname(BIN), "bench", "store_probe")

STORES = ["sqlite", "postgresql", "influxdb"]


@pytest.fixture(params=STORES)
def store_uri(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:{tmp_path}/seq.db"
    if request.param == "postgresql":
        return DB(servers.shared_postgres()).uri()
    return IDB(servers.shared_influx()).uri()


def probe(uri, *args, stdin=""):
    assert os.path.exists(PROBE), f"{PROBE} is missing: build it with make {os.path.relpath(PROBE)}"
    env = dict(os.environ)
    if ASAN:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    p = subprocess.run([PROBE, uri, *args], input=stdin, capture_output=True, text=True,
                       timeout=T(60), env=env)
    assert p.returncode == 0, f"store_probe {args}: rc {p.returncode}: {p.stderr}"
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    return p.stdout.split("\n")[:-1]


def write(uri, recs):
    """recs: (drone, seq or None, ts_ms or None, lat) -> one result per record."""
    lines = "".join(f"{d} {'-' if s is None else s} {'-' if t is None else t} {lat}\n"
                    for d, s, t, lat in recs)
    return probe(uri, "write", stdin=lines)


def history(uri, drone):
    out = []
    for line in probe(uri, "query", drone):
        seq, ts, lat = line.split(" ")
        out.append((None if seq == "-" else int(seq), int(ts), float(lat)))
    return out


def new_drone(p):
    return f"{p}-{uuid.uuid4().hex[:8]}"


def test_last_seq(store_uri):
    a, b, big, noseq = (new_drone(x) for x in ("a", "b", "big", "noseq"))
    assert probe(store_uri, "last_seq", a) == ["none"]
    t = 1_767_225_600_000       # 2026-01-01
    res = write(store_uri, [(a, 5, t, 1.0), (a, 17, t - 100, 2.0), (a, 3, t + 100, 3.0),
                            (b, 1, t, 4.0), (big, 2, t, 5.0), (big, 2**64 - 2, t + 1, 6.0),
                            (noseq, None, t, 7.0)])
    assert res == ["stored"] * 7
    assert probe(store_uri, "last_seq", a) == ["found 17"]          # not the newest sample's seq
    assert probe(store_uri, "last_seq", b) == ["found 1"]
    assert probe(store_uri, "last_seq", big) == [f"found {2**64 - 2}"]   # uint64 order
    assert probe(store_uri, "last_seq", noseq) == ["none"]
    assert probe(store_uri, "last_seq", new_drone("nobody")) == ["none"]


T0 = 1_767_225_600_000
REUSE_STORES = STORES


@pytest.mark.parametrize("store_uri", REUSE_STORES, indirect=True)
def test_reused_seq_flagged_and_not_stored(store_uri):
    d, other = new_drone("ru"), new_drone("ru2")
    assert write(store_uri, [(d, 1, T0 + 1, 1.0), (d, 2, T0 + 2, 2.0), (d, 3, T0 + 3, 3.0)]) == ["stored"] * 3
    batch = [(d, 1, T0 + 1, 1.0),        # redelivery
             (d, 2, T0 + 20, 9.0),       # reused: another timestamp
             (d, 4, T0 + 4, 4.0),        # new
             (d, 4, T0 + 40, 9.0),       # reused within the batch
             (d, 4, T0 + 4, 4.0),        # redelivery within the batch
             (d, 3, None, 9.0),          # no drone timestamp: a redelivery
             (other, 2, T0 + 20, 5.0),   # another drone: new
             (d, 5, T0 + 5, 5.0)]        # new
    want = ["stored", "seq_reused", "stored", "seq_reused", "stored", "stored", "stored", "stored"]
    assert write(store_uri, batch) == want
    assert write(store_uri, batch) == want                       # a retry: the same verdicts
    assert history(store_uri, d) == [(k, T0 + k, float(k)) for k in (1, 2, 3, 4, 5)]
    assert history(store_uri, other) == [(2, T0 + 20, 5.0)]
    assert probe(store_uri, "last_seq", d) == ["found 5"]


@pytest.fixture(params=REUSE_STORES)
def gw_store(request, tmp_path):
    if request.param == "sqlite":
        return None             # the server's default: SQLite in its work dir
    if request.param == "postgresql":
        return DB(servers.shared_postgres()).uri()
    return IDB(servers.shared_influx()).uri()


def test_gateway_reports_seq_reused_and_acks_the_rest(server_factory, gw_store):
    """End to end: the drone gets `seq_reused` for each reused seq and no
    ack covers only rejected ones; the REST history keeps the first samples."""
    from dg import Drone, minimal, run
    s = server_factory(store=gw_store) if gw_store else server_factory()
    d = new_drone("gw")

    async def go():
        a = await Drone.connect(s, d)
        await a.send([minimal(k, timestamp=T0 + k, latitude=float(k)) for k in (1, 2, 3)])
        await a.wait_ack(3)
        assert not a.errors, a.errors
        await a.close()
        b = await Drone.connect(s, d)     # "rebooted": seq 2 and 4 come again with other samples
        await b.send([minimal(1, timestamp=T0 + 1, latitude=1.0),
                      minimal(2, timestamp=T0 + 20, latitude=9.0),
                      minimal(4, timestamp=T0 + 4, latitude=4.0),
                      minimal(4, timestamp=T0 + 40, latitude=9.0),
                      minimal(5, timestamp=T0 + 5, latitude=5.0)])
        await b.wait_ack(5)
        errs = await b.wait_errors(2)
        await b.close()
        # a frame of only a reused seq: an error and no ack for it (the next
        # ack, of a new seq, is the first this connection gets)
        c = await Drone.connect(s, d)
        await c.send(minimal(3, timestamp=T0 + 30, latitude=9.0))
        await c.wait_errors(1)
        await c.send(minimal(6, timestamp=T0 + 6, latitude=6.0))
        await c.wait_ack(6)
        assert c.acks == [6], c.acks
        assert [(e["seq"], e["code"]) for e in c.errors] == [(3, "seq_reused")], c.errors
        await c.close()
        return b, errs

    b, errs = run(go())
    assert sorted((e["seq"], e["code"]) for e in errs) == [(2, "seq_reused"), (4, "seq_reused")], errs
    assert len(b.errors) == 2, b.errors
    rows = [(r["seq"], r["latitude"]) for r in s.history(d)]
    assert rows == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0), (6, 6.0)], rows
    # reused seqs are rejections, not stores: 3 rejected; stored counts the
    # 3 + 3 (with the redelivery of seq 1, which is stored-once and acked) + 1
    from dg import metric
    m = s.metrics()
    assert metric(m, "dronegate_messages_rejected_total", reason="seq_reused") == 3, m
    assert metric(m, "dronegate_messages_stored_total") == 7, m


def test_postgres_v1_database_upgraded_then_reuse_detected():
    """A database of schema version 1 had in telemetry_seq only the rows
    without a drone timestamp; version 2 fills it from telemetry, so a reused
    seq of a row written before the upgrade is caught too."""
    db = DB(servers.shared_postgres())
    uri = db.uri()
    d = new_drone("v1")
    assert write(uri, [(d, 1, T0 + 1, 1.0), (d, 2, T0 + 2, 2.0)]) == ["stored", "stored"]
    db.exec("DELETE FROM telemetry_seq")                    # as version 1 left it
    db.exec("DELETE FROM dronegate_schema WHERE version >= 2")
    assert probe(uri, "last_seq", d) == ["found 2"]         # migrated at open
    assert db.one("SELECT count(*) FROM telemetry_seq WHERE drone_id = %s", d) == 2
    assert write(uri, [(d, 2, T0 + 20, 9.0), (d, 3, T0 + 3, 3.0)]) == ["seq_reused", "stored"]
    assert history(uri, d) == [(1, T0 + 1, 1.0), (2, T0 + 2, 2.0), (3, T0 + 3, 3.0)]


# ---------------------------------------------------------------- timestamp edges

TS_MIN, TS_MAX = "1677-09-22T00:00:00.000Z", "2262-04-11T23:47:16.854Z"   # contract: what every store holds
TS_MIN_MS, TS_MAX_MS = -9_223_286_400_000, 9_223_372_036_854


def test_timestamp_edges_round_trip_through_the_gateway(server_factory, gw_store):
    """The extreme timestamps the decoder accepts are stored, acked and read
    back exactly via REST on every store (InfluxDB holds int64 ns only)."""
    from dg import Drone, minimal, run
    from storetest import to_ms
    assert to_ms(TS_MIN) == TS_MIN_MS and to_ms(TS_MAX) == TS_MAX_MS
    s = server_factory(store=gw_store) if gw_store else server_factory()
    d = new_drone("edge")

    async def go():
        a = await Drone.connect(s, d)
        await a.send([minimal(1, timestamp=TS_MIN, latitude=1.0),
                      minimal(2, timestamp=TS_MAX, latitude=2.0),
                      minimal(3, timestamp=TS_MIN_MS + 1, latitude=3.0),     # epoch ms form
                      minimal(4, timestamp=TS_MAX_MS - 1, latitude=4.0)])
        await a.wait_ack(4)
        assert not a.errors, a.errors
        await a.close()

    run(go())
    rows = [(r["seq"], to_ms(r["timestamp"]), r["latitude"]) for r in s.history(d)]
    assert rows == [(1, TS_MIN_MS, 1.0), (3, TS_MIN_MS + 1, 3.0), (4, TS_MAX_MS - 1, 4.0),
                    (2, TS_MAX_MS, 2.0)], rows
    # range queries at the edges
    got = [r["seq"] for r in s.history(d, **{"from": TS_MAX, "to": TS_MAX})]
    assert got == [2], got
    got = [r["seq"] for r in s.history(d, **{"from": TS_MIN, "to": TS_MIN})]
    assert got == [1], got


def test_timestamp_edges_round_trip_in_the_store(store_uri):
    d = new_drone("edge")
    assert write(store_uri, [(d, 1, TS_MIN_MS, 1.0), (d, 2, TS_MAX_MS, 2.0)]) == ["stored"] * 2
    assert history(store_uri, d) == [(1, TS_MIN_MS, 1.0), (2, TS_MAX_MS, 2.0)]


def test_reused_seq_verdicts_survive_merged_batches(server_factory):
    """Small batches merged into one transaction by the writer (batch-records
    16, commit-interval 300 ms): each record's verdict still reaches its own
    batch, so every reused seq is reported and none acked."""
    from dg import Drone, minimal, run
    s = server_factory(args=["--batch-records", "16", "--commit-interval", "300"])
    d = new_drone("merge")

    async def go():
        a = await Drone.connect(s, d)
        await a.send([minimal(k, timestamp=T0 + k, latitude=1.0) for k in range(1, 41)])
        await a.wait_ack(40)
        await a.close()
        b = await Drone.connect(s, d)
        await b.send([minimal(k, timestamp=T0 + k + (1000 if k % 2 else 0), latitude=2.0)
                      for k in range(1, 41)] + [minimal(41, timestamp=T0 + 41, latitude=3.0)])
        await b.wait_ack(41)
        errs = await b.wait_errors(20)
        await b.close()
        return errs

    errs = run(go())
    assert sorted(e["seq"] for e in errs) == list(range(1, 41, 2)), errs
    assert {e["code"] for e in errs} == {"seq_reused"}
    rows = s.history(d)
    assert [r["seq"] for r in rows] == list(range(1, 42))
    assert all(r["latitude"] == 1.0 for r in rows[:40]), rows


def test_big_redelivery_with_reused_seqs(store_uri):
    """1500 records of 3 drones stored, then all of them again in one batch,
    every 10th with another timestamp (InfluxDB: more seqs to look up than one
    query holds): exactly those are reused, nothing is stored twice."""
    ds = [new_drone(f"big{i}") for i in range(3)]
    first = [(ds[i % 3], i // 3 + 1, T0 + i, 1.0) for i in range(1500)]
    assert write(store_uri, first) == ["stored"] * 1500
    again = [(d, s, t + (7 if i % 10 == 0 else 0), 2.0) for i, (d, s, t, _) in enumerate(first)]
    want = ["seq_reused" if i % 10 == 0 else "stored" for i in range(1500)]
    assert write(store_uri, again) == want
    for k, d in enumerate(ds):
        h = history(store_uri, d)
        assert [r[0] for r in h] == list(range(1, 501)), d
        assert all(r[2] == 1.0 for r in h), d


def test_latest_follows_the_highest_seq_not_the_newest_timestamp(store_uri):
    """latest() (the state restored at start) follows the registry's rule on
    every store: the highest seq (uint64 order), never the newest claimed
    timestamp (a record dated in the far future must not freeze it); a
    drone without seqs gives its last received row."""
    a, big, noseq = (new_drone(x) for x in ("skew", "big", "noseq"))
    t = 1_767_225_600_000                       # 2026-01-01
    future = 7_000_000_000_000                  # 2191
    assert write(store_uri, [(a, 1, future, 11.0), (a, 3, t - 5000, 33.0), (a, 2, t, 22.0),
                             (big, 5, future, 1.0), (big, 2**63 + 1, t, 2.0), (big, 2**63, t + 1, 3.0)]) \
        == ["stored"] * 6
    assert probe(store_uri, "latest", a) == [f"3 {t - 5000} 33"]
    assert probe(store_uri, "latest", big) == [f"{2**63 + 1} {t} 2"]
    # rows without seq: the last received wins (two writes: two receive times)
    assert write(store_uri, [(noseq, None, future, 44.0)]) == ["stored"]
    before = probe(store_uri, "latest", noseq)
    assert before == [f"- {future} 44"], before
    assert write(store_uri, [(noseq, None, t, 55.0)]) == ["stored"]
    assert probe(store_uri, "latest", noseq) == [f"- {t} 55"]
    assert probe(store_uri, "latest", new_drone("nobody")) == ["none"]
    # the one-drone read (REST state of a drone evicted from memory) follows
    # the same rule; InfluxDB does not have it (its REST answer stays 404)
    for d in (a, big, noseq, new_drone("nobody")):
        one = probe(store_uri, "latest_of", d)
        if store_uri.startswith("influxdb"):
            assert one == ["unsupported"], one
        else:
            assert one == probe(store_uri, "latest", d), (d, one)
