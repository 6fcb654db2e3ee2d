"""Live stream (GET /api/v1/live): snapshot, filtering, presence events,
conflation for a slow watcher (drones are never slowed), operator auth and
Origin checks. Clients: python3-websockets. The snapshot comes in chunks of
at most 1000 drones, the last one with "final": true (100,000 drones:
test_fleet.py)."""
import asyncio
import json

import pytest
import websockets

from dg import T, Drone, metric, minimal, new_id, run, wait_until


async def live(s, query="", token=None, **kw):
    uri = f"{s.ws_base}/api/v1/live{query}"
    hdrs = kw.pop("extra_headers", {})
    tok = token if token is not None else s.operator_token
    if tok:
        hdrs["Authorization"] = f"Bearer {tok}"
    return await websockets.connect(uri, extra_headers=hdrs, open_timeout=T(10), ping_interval=None,
                                    max_size=None, **kw)


async def next_event(ws, pred, timeout):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError("timed out waiting for a live event")
        ev = json.loads(await asyncio.wait_for(ws.recv(), left))
        if pred(ev):
            return ev


def test_snapshot_then_telemetry_and_presence(srv):
    a, b = new_id("liveA"), new_id("liveB")

    async def go():
        da = await Drone.connect(srv, a)
        await da.send(minimal(1, latitude=10.5))
        await da.wait_ack(1)
        w = await live(srv)
        snap = json.loads(await asyncio.wait_for(w.recv(), T(5)))
        assert snap["type"] == "snapshot" and snap["final"] is True   # a small fleet: one chunk
        mine = [d for d in snap["drones"] if d["id"] == a]
        assert mine and mine[0]["online"] is True and mine[0]["latitude"] == 10.5, snap
        db = await Drone.connect(srv, b)
        ev = await next_event(w, lambda e: e["type"] == "online" and e["drone_id"] == b, T(5))
        assert "at" in ev
        await db.send(minimal(7, altitude=321.5))
        ev = await next_event(w, lambda e: e["type"] == "telemetry" and e["drone_id"] == b, T(5))
        assert ev["seq"] == 7 and ev["altitude"] == 321.5 and isinstance(ev["received_us"], int)
        await db.close()
        await next_event(w, lambda e: e["type"] == "offline" and e["drone_id"] == b, T(5))
        await da.close()
        await w.close()
    run(go())


def test_filter(srv):
    a, b = new_id("fA"), new_id("fB")

    async def go():
        w = await live(srv, f"?drones={a}")
        snap = json.loads(await asyncio.wait_for(w.recv(), T(5)))
        assert all(d["id"] == a for d in snap["drones"]), snap
        da = await Drone.connect(srv, a)
        db = await Drone.connect(srv, b)
        for i in range(1, 6):
            await db.send(minimal(i))
            await da.send(minimal(i))
        await da.wait_ack(5)
        await db.wait_ack(5)
        # a marker after everything of b was acked: read until it arrives
        # (an event, not a quiet window); b's events would have come before
        await da.send(minimal(6))
        seen = []
        while not any(e["type"] == "telemetry" and e.get("seq") == 6 for e in seen):
            seen.append(json.loads(await asyncio.wait_for(w.recv(), T(10))))
        tele = [e for e in seen if e["type"] == "telemetry"]
        assert [e["seq"] for e in tele] == [1, 2, 3, 4, 5, 6], seen
        assert all(e.get("drone_id") == a for e in seen), seen
        await da.close(); await db.close(); await w.close()
    run(go())


def test_slow_watcher_is_conflated_and_never_slows_drones(server_factory):
    s = server_factory(args=["--max-msg-rate", "0"])   # the flood would trip the per-drone rate limit
    drone = new_id("flood")
    n, per = 60000, 1000

    async def go():
        # a watcher that stops reading: the library's queue holds 1 message,
        # then it stops reading the socket (TCP backpressure to the server)
        w = await live(s, max_queue=1, read_limit=2 ** 12)
        d = await Drone.connect(s, drone)
        status = "x" * 30
        for k in range(0, n, per):
            await d.send([minimal(i, status=status) for i in range(k + 1, k + per + 1)])
        await d.wait_ack(n, T(60))   # the drone is fully served while the watcher sleeps
        skipped = metric(s.metrics(), "dronegate_live_skipped_total")
        assert skipped > 0, "no conflation although the watcher did not read"
        # the watcher catches up: it must end with the latest state
        last = None
        total = 0
        while last != n:        # until the latest state arrives (an event, not a quiet window)
            try:
                ev = json.loads(await asyncio.wait_for(w.recv(), T(30)))
            except asyncio.TimeoutError:
                raise AssertionError(f"watcher's last telemetry seq {last}, the latest {n} never came")
            total += 1
            if ev["type"] == "telemetry" and ev["drone_id"] == drone:
                last = ev["seq"]
        assert total < n, f"watcher received {total} events for {n} messages: nothing was conflated"
        await d.close()
        await w.close()
    run(go(), T(120))


def test_live_needs_operator_token_and_allowed_origin(server_factory):
    s = server_factory(secret="s3cret", args=["--operator-read-token", "reader"])

    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await live(s, token="")
        assert e.value.status_code == 401
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await live(s, token=s.token("d1"))          # a drone token is not an operator token
        assert e.value.status_code == 401
        w = await live(s, token="reader")               # read scope is enough to watch
        assert json.loads(await w.recv())["type"] == "snapshot"
        await w.close()
        w = await live(s, query="?token=reader", token="")
        await w.close()
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await live(s, token="reader", origin="http://evil.example")
        assert e.value.status_code == 403
        w = await live(s, token="reader", origin=f"http://127.0.0.1:{s.port}")   # same origin
        await w.close()
    run(go())
