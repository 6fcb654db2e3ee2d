"""The fleet view (issue 12 §1): every gateway over one PostgreSQL shows the
whole fleet. A drone on gw-b appears on gw-a in GET /api/v1/drones, in its
state (online, "instance": "gw-b", last position) and on gw-a's live stream
(online/offline from dronegate_presence notifications, telemetry from the
drones table, about a second behind: conflated, the latest state per
drone). A gateway that stops takes its drones offline everywhere."""
import asyncio
import json

import pytest

import servers
from dg import T, Drone, minimal, new_id, run, wait_until
from storetest import DB
from test_live import live, next_event


@pytest.fixture(scope="module")
def pg():
    return servers.shared_postgres()


def gateways(server_factory, pg):
    db = DB(pg)
    a = server_factory(store=db.uri(), args=["--instance", "gw-a"])
    b = server_factory(store=db.uri(), args=["--instance", "gw-b"])
    for s, name in ((a, "gw-a"), (b, "gw-b")):
        wait_until(lambda: f"fleet: instance {name} listening" in s.stderr(), T(10), f"{name} fleet listener")
    return db, a, b


def state(s, drone):
    r = s.get(f"/api/v1/drones/{drone}")
    return r.json() if r.status == 200 else None


def test_drone_on_one_gateway_is_listed_stated_and_streamed_by_another(server_factory, pg):
    db, a, b = gateways(server_factory, pg)
    drone = new_id("view")

    async def go():
        w = await live(a)
        snap = json.loads(await asyncio.wait_for(w.recv(), T(10)))
        assert snap["type"] == "snapshot"
        d = await Drone.connect(b, drone)
        ev = await next_event(w, lambda e: e["type"] == "online" and e["drone_id"] == drone, T(10))
        assert "at" in ev
        await d.send(minimal(1, latitude=12.5, timestamp=1767225600000))
        await d.wait_ack(1)
        ev = await next_event(w, lambda e: e["type"] == "telemetry" and e["drone_id"] == drone, T(15))
        assert ev["seq"] == 1 and ev["latitude"] == 12.5, ev
        st = state(a, drone)
        assert st["online"] is True and st["instance"] == "gw-b", st
        assert st["latitude"] == 12.5 and st["seq"] == 1, st
        assert st["timestamp"] == "2026-01-01T00:00:00.000Z", st      # the drone's own time, not receipt
        listed = [x for x in a.get_json("/api/v1/drones?limit=1000")["drones"] if x["id"] == drone]
        assert listed and listed[0]["online"] is True and listed[0]["instance"] == "gw-b", listed
        # a newer state follows
        await d.send(minimal(2, latitude=13.5))
        await d.wait_ack(2)
        ev = await next_event(w, lambda e: e["type"] == "telemetry" and e["drone_id"] == drone, T(15))
        assert ev["seq"] == 2 and ev["latitude"] == 13.5, ev
        # a new watcher's snapshot has it online
        w2 = await live(a)
        snap = json.loads(await asyncio.wait_for(w2.recv(), T(10)))
        mine = [x for x in snap["drones"] if x["id"] == drone]
        assert mine and mine[0]["online"] is True and mine[0]["latitude"] == 13.5, snap
        await w2.close()
        await d.close()
        await next_event(w, lambda e: e["type"] == "offline" and e["drone_id"] == drone, T(10))
        st = state(a, drone)
        assert st["online"] is False and "instance" not in st, st
        await w.close()

    run(go())
    for s in (a, b):
        s.check_clean()


def test_gateway_that_stops_takes_its_drones_offline_everywhere(server_factory, pg):
    db, a, b = gateways(server_factory, pg)
    drones = [new_id("stop") for _ in range(3)]

    async def go():
        ds = [await Drone.connect(b, x) for x in drones]
        for d in ds:
            await d.send(minimal(1))
            await d.wait_ack(1)
        wait_until(lambda: all((state(a, x) or {}).get("online") for x in drones), T(15),
                   "gw-b's drones online on gw-a")
        b.stop()
        wait_until(lambda: not any(state(a, x)["online"] for x in drones), T(15), "offline on gw-a")

    run(go())
    a.check_clean()
