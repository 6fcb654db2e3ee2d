"""Fleet scale (issue 8 §1.5) and latest-state semantics (§1.8).

- GET /api/v1/drones is paginated: limit (default 1000, max 10000) and
  cursor = the next_cursor of the previous page (null on the last one);
  pages walk every drone once, in id order.
- The live snapshot comes in chunks ({"type":"snapshot",...,"final":false}
  ... "final":true), so 100,000 drones (restored from the store at start)
  reach a watcher instead of one message over the 8 MiB output cap.
- The latest state follows what the drone sent last (never the newest
  timestamp; a reused seq never shows), live and after a restart.
"""
import asyncio
import json
import sqlite3
import time

import websockets

from dg import ASAN, T, Drone, dumps, metric, minimal, new_id, run, wait_until
from rawws import OP_TEXT, RawWS, build_frame

N_FLEET = 100_000


def seed_store(s, n, prefix="fleet"):
    """Start once for the schema, stop, then write one telemetry row for each
    of n drones straight into the SQLite file (cheap: no 100k connections)."""
    s.start()
    # only the schema matters here; the exit code is not checked because a
    # SIGTERM right after start can hit a thread that main() created before it
    # blocked the signals (store threads): a start-up race outside this test
    s.stop(expect_rc=None)
    db = sqlite3.connect(s.db)
    now = int(time.time() * 1000)
    db.executemany(
        "INSERT INTO telemetry(drone_id, timestamp, seq, latitude, longitude, altitude, status, received_at)"
        " VALUES (?, ?, 1, ?, ?, 100.0, 'parked', ?)",
        ((f"{prefix}{i:06d}", now, (i % 180) - 89.5, (i % 360) - 179.5, now) for i in range(n)))
    db.commit()
    db.close()
    return [f"{prefix}{i:06d}" for i in range(n)]


async def live(s, query=""):
    hdrs = {"Authorization": f"Bearer {s.operator_token}"} if s.operator_token else {}
    return await websockets.connect(f"{s.ws_base}/api/v1/live{query}", extra_headers=hdrs,
                                    open_timeout=T(10), ping_interval=None, max_size=None)


async def read_snapshot(w, timeout):
    """Every snapshot chunk up to the final one: (drones, chunks, other events)."""
    drones, chunks, other = [], [], []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no final snapshot chunk after {len(chunks)} chunks"
        raw = await asyncio.wait_for(w.recv(), left)
        ev = json.loads(raw)
        if ev["type"] != "snapshot":
            other.append(ev)
            continue
        chunks.append(len(raw))
        assert isinstance(ev["drones"], list) and len(ev["drones"]) <= 1000 + 64, len(ev["drones"])
        drones += ev["drones"]
        if ev["final"]:
            return drones, chunks, other
        assert ev["final"] is False


def walk_pages(s, limit=None):
    ids, cursor, pages = [], None, 0
    while True:
        q = []
        if limit:
            q.append(f"limit={limit}")
        if cursor:
            q.append(f"cursor={cursor}")
        doc = s.get_json("/api/v1/drones" + ("?" + "&".join(q) if q else ""))
        pages += 1
        ids += [d["id"] for d in doc["drones"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            return ids, pages
        assert isinstance(cursor, str) and cursor


def test_100k_drones_restored_reach_a_watcher_in_chunks_and_pages(server_factory):
    s = server_factory(start=False)
    ids = seed_store(s, N_FLEET)
    s.start(timeout=T(120))
    assert s.get(f"/api/v1/drones/{ids[-1]}").status == 200      # restored at start

    async def go():
        w = await live(s)
        t0 = time.monotonic()
        drones, chunks, _ = await read_snapshot(w, T(120))
        print(f"\n  snapshot of {N_FLEET} drones: {len(chunks)} chunks, largest {max(chunks)} bytes,"
              f" {time.monotonic() - t0:.2f} s to receive (wall)")
        got = [d["id"] for d in drones]
        assert len(got) == N_FLEET and set(got) == set(ids), (len(got), len(set(got)))   # each once
        assert all(d["online"] is False and d["seq"] == 1 and d["status"] == "parked" for d in drones[:10])
        assert len(chunks) >= N_FLEET // 1000 and max(chunks) < 1024 * 1024, (len(chunks), max(chunks))
        # the stream is live after the snapshot: a drone that sends shows up
        d = await Drone.connect(s, ids[12345])
        await d.send(minimal(2, latitude=12.25))
        ev = None
        while not (ev and ev["type"] == "telemetry" and ev["drone_id"] == ids[12345]):
            ev = json.loads(await asyncio.wait_for(w.recv(), T(10)))
        assert ev["latitude"] == 12.25
        await d.close()
        await w.close()
    run(go(), T(240))

    # the paginated list walks the same 100,000 drones once, in order
    t0 = time.monotonic()
    first = s.get_json("/api/v1/drones")
    t1 = time.monotonic()
    assert len(first["drones"]) == 1000 and first["next_cursor"] == first["drones"][-1]["id"]
    got, pages = walk_pages(s, limit=10000)
    assert pages == 10 and got == ids, (pages, len(got))
    print(f"\n  one page of 1000 at {N_FLEET} drones: {(t1 - t0) * 1000:.1f} ms (wall, incl. HTTP)")


def test_drones_pages_small_fleet_and_bad_params(server_factory):
    s = server_factory()
    names = sorted(new_id("pg") for _ in range(7))

    async def go():
        for n in names:
            d = await Drone.connect(s, n)
            await d.send(minimal(1))
            await d.wait_ack(1)
            await d.close()
    run(go())
    doc = s.get_json("/api/v1/drones")                       # no params: first (here only) page
    assert [d["id"] for d in doc["drones"]] == names and doc["next_cursor"] is None
    got, pages = walk_pages(s, limit=3)
    assert got == names and pages == 3
    doc = s.get_json(f"/api/v1/drones?limit=2&cursor={names[-1]}")
    assert doc == {"drones": [], "next_cursor": None}
    for bad in ("limit=0", "limit=10001", "limit=x", "cursor=a%20b", "cursor=%2F"):
        r = s.get("/api/v1/drones?" + bad)
        assert r.status == 400, (bad, r)


def test_live_snapshot_filter_in_chunks(server_factory):
    s = server_factory(start=False)
    ids = seed_store(s, 2500, prefix="flt")
    s.start(timeout=T(60))
    want = [ids[5], ids[1999], ids[2400]]

    async def go():
        w = await live(s, "?drones=" + ",".join(want))
        drones, chunks, _ = await read_snapshot(w, T(30))
        assert sorted(d["id"] for d in drones) == want and len(chunks) == 1
        await w.close()
        w = await live(s)
        drones, chunks, _ = await read_snapshot(w, T(30))
        assert sorted(d["id"] for d in drones) == ids and 3 <= len(chunks) <= 4, len(chunks)
        await w.close()
    run(go())


def test_latest_state_of_one_read_is_the_one_of_its_messages_in_order(server_factory):
    """The registry takes one WebSocket read's newest record at the end of
    the read, not one update per message; the result must be that of the
    messages one by one: after seq 5, a record without seq and then seq 3
    (one TCP write, so one read) leave seq 3's position (a record without
    seq supersedes by arrival, and seq 3 then supersedes it), not seq 5's;
    and the same for the records of one frame (a JSON array)."""
    s = server_factory()
    drone = new_id("fold")
    with RawWS.open(s.port, f"/ws/{drone}") as ws:
        ws.text(dumps(minimal(5, latitude=5.0)))
        wait_until(lambda: any(f.opcode == OP_TEXT and json.loads(f.payload).get("seq") == 5
                               for f in [ws.recv_frame(T(10))]), T(10), "ack 5")
        assert s.get_json(f"/api/v1/drones/{drone}")["latitude"] == 5.0
        ws.send(build_frame(OP_TEXT, dumps(minimal(None, latitude=20.0)).encode()) +
                build_frame(OP_TEXT, dumps(minimal(3, latitude=30.0)).encode()) +
                build_frame(OP_TEXT, dumps(minimal(97, latitude=1000.0)).encode()))   # its error: the read is done
        wait_until(lambda: any(f.opcode == OP_TEXT and json.loads(f.payload).get("type") == "error"
                               and json.loads(f.payload).get("seq") == 97
                               for f in [ws.recv_frame(T(10))]), T(10), "the error for seq 97")
        st = s.get_json(f"/api/v1/drones/{drone}")
        assert st["latitude"] == 30.0 and st.get("seq") == 3, st
        # the same within one frame (a JSON array): no seq, then seq 2 -> seq 2's
        ws.text(dumps([minimal(None, latitude=40.0), minimal(2, latitude=42.0), minimal(96, latitude=1000.0)]))
        wait_until(lambda: any(f.opcode == OP_TEXT and json.loads(f.payload).get("type") == "error"
                               and json.loads(f.payload).get("seq") == 96
                               for f in [ws.recv_frame(T(10))]), T(10), "the error for seq 96")
        st = s.get_json(f"/api/v1/drones/{drone}")
        assert st["latitude"] == 42.0 and st.get("seq") == 2, st


def test_latest_state_follows_what_was_sent_last_live_and_after_restart(server_factory):
    """§1.8: one record dated in the far future must not freeze the latest
    state (live or after a restart), and a reused seq with other content
    (which the store does not keep) must never show in the API."""
    s = server_factory()
    a, b = new_id("skew"), new_id("noseq")
    future = "2199-01-01T00:00:00Z"

    def state(i):
        return s.get_json(f"/api/v1/drones/{i}")

    async def go():
        d = await Drone.connect(s, a)
        await d.send(minimal(1, timestamp=future, latitude=11.0))
        await d.send(minimal(2, timestamp="2026-01-01T00:00:00Z", latitude=22.0))
        await d.wait_ack(2)
        st = state(a)
        assert st["seq"] == 2 and st["latitude"] == 22.0, st
        # the same seq again with other content: never the latest state
        await d.send(minimal(2, timestamp="2026-01-01T00:00:05Z", latitude=33.0))
        await d.send(minimal(99, latitude=1000.0))      # invalid: its error marks the frames above as done
        await d.wait(lambda: any(e.get("seq") == 99 for e in d.errors), T(10), "error for seq 99")
        st = state(a)
        assert st["seq"] == 2 and st["latitude"] == 22.0, st
        stored = {r["seq"]: r["latitude"] for r in s.history(a)}
        assert stored[2] == st["latitude"], (stored, st)   # the API and the store agree
        await d.close()

        # without seq: the last received wins
        e = await Drone.connect(s, b)
        await e.send(minimal(None, timestamp=future, latitude=44.0))
        await e.send(minimal(None, timestamp="2026-01-01T00:00:00Z", latitude=55.0))
        await e.send(minimal(98, latitude=1000.0))
        await e.wait(lambda: any(x.get("seq") == 98 for x in e.errors), T(10), "error for seq 98")
        assert state(b)["latitude"] == 55.0, state(b)
        await e.close()
    run(go())
    wait_until(lambda: len(s.history(b)) == 2, T(10), "both rows of the no-seq drone stored")
    s.stop()
    s.restart()
    st = s.get_json(f"/api/v1/drones/{a}")
    assert st["seq"] == 2 and st["latitude"] == 22.0, f"after restart: {st}"
    st = s.get_json(f"/api/v1/drones/{b}")
    assert st["latitude"] == 55.0, f"after restart: {st}"


def test_many_drones_then_offline_bound_keeps_online_ones(server_factory):
    """5,000 simulated drones each send and leave: beyond --registry-max-offline
    the longest offline leave memory (the store keeps their data); an online
    drone never does; the live snapshot and the list agree with that."""
    import test_sim
    bound = 1000
    s = server_factory(args=["--registry-max-offline", str(bound), "--max-msg-rate", "0"])
    keeper = new_id("keeper")

    async def go():
        k = await Drone.connect(s, keeper)
        await k.send(minimal(1, latitude=1.5))
        await k.wait_ack(1)
        rep = test_sim.run_sim(s, "--drones", 5000, "--rate", 1, "--duration", 4, "--ramp", 5000,
                               "--prefix", "many-", timeout=T(120))
        assert rep["sent"] >= 5000 and rep["acked"] == rep["sent"] and rep["errors"] == 0, rep
        # every simulated drone went offline: only the last `bound` stay in memory
        wait_until(lambda: len(s.drones()) == bound + 1, T(30), f"{bound} offline drones + the online one")
        listed = s.drones()
        assert any(d["id"] == keeper and d["online"] for d in listed)
        m = s.metrics()
        assert metric(m, "dronegate_registry_offline") == bound
        assert metric(m, "dronegate_registry_evicted_total") == 5000 - bound
        assert sum(1 for d in listed if d["id"].startswith("many-")) == bound
        w = await live(s)
        drones, _, _ = await read_snapshot(w, T(30))
        assert len(drones) == bound + 1 and keeper in {d["id"] for d in drones}
        await w.close()
        # an evicted drone's data is still in the store
        gone = {f"many-{i:04d}" for i in range(5000)} - {d["id"] for d in listed}
        assert len(gone) == 5000 - bound
        db = sqlite3.connect(s.db)
        stored = {r[0] for r in db.execute("SELECT DISTINCT drone_id FROM telemetry WHERE drone_id LIKE 'many-%'")}
        db.close()
        assert len(gone & stored) >= 5000 - bound - 100, len(gone & stored)   # evicted from memory, not the store
        # ... and its state is still answered, from the store (offline, last record)
        some = sorted(gone & stored)[0]
        st = s.get_json(f"/api/v1/drones/{some}")
        assert st["id"] == some and st["online"] is False and "latitude" in st and st["last_seen"], st
        db = sqlite3.connect(s.db)
        top = db.execute("SELECT max(seq) FROM telemetry WHERE drone_id = ?", (some,)).fetchone()[0]
        db.close()
        assert st["seq"] == top, (st, top)
        assert s.get(f"/api/v1/drones/{new_id('never')}").status == 404    # unknown everywhere
        await k.close()
    run(go(), T(200))


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_watchers_that_do_not_read_hold_one_chunk_not_the_fleet(server_factory):
    """The snapshot is written as the watcher's output drains: four watchers
    that stop reading at 100,000 drones cost the gateway little memory and are
    not dropped; when they read again they get every drone."""
    s = server_factory(start=False)
    ids = seed_store(s, N_FLEET, prefix="slow")
    s.start(timeout=T(120))

    async def go():
        before = _rss_kb(s.proc.pid)
        hdrs = {"Authorization": f"Bearer {s.operator_token}"} if s.operator_token else {}
        ws = [await websockets.connect(f"{s.ws_base}/api/v1/live", extra_headers=hdrs, open_timeout=T(10),
                                       ping_interval=None, max_size=None, max_queue=1, read_limit=2 ** 12)
              for _ in range(4)]
        # each has received its first chunk; the server wrote what the socket took
        first = [json.loads(await asyncio.wait_for(w.recv(), T(10))) for w in ws]
        assert all(m["type"] == "snapshot" and m["final"] is False for m in first)
        grown = _rss_kb(s.proc.pid) - before
        # whole snapshots would be ~19 MB of JSON per watcher (and dropped at the 8 MiB cap);
        # a sanitizer build keeps freed memory in quarantine: RSS says nothing there
        assert ASAN or grown < 24 * 1024, f"gateway RSS grew by {grown} KiB for 4 stalled watchers"
        for w, m in zip(ws, first):
            drones, _, _ = await read_snapshot(w, T(120))
            got = {d["id"] for d in m["drones"]} | {d["id"] for d in drones}
            assert len(got) == N_FLEET
            await w.close()
        print(f"\n  4 stalled watchers at {N_FLEET} drones: gateway RSS +{grown} KiB")
    run(go(), T(300))
    assert ids
