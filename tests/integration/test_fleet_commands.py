"""Several gateways over one PostgreSQL store as one fleet (issue 12 §1):
--instance in logs, dronegate_build_info and the drone state; a command
POSTed to a gateway that does not hold the drone reaches it on the gateway
that does (dronegate_presence + LISTEN/NOTIFY), its status changes are read
back from every gateway; 409 when no gateway holds the drone, 404 when none
ever saw it."""
import json

import pytest

import servers
from dg import T, Drone, metric, minimal, new_id, run, wait_until
from storetest import DB


@pytest.fixture(scope="module")
def pg():
    return servers.shared_postgres()


def post(s, drone, body):
    return s.get(f"/api/v1/drones/{drone}/commands", method="POST", body=json.dumps(body),
                 headers={"Content-Type": "application/json"})


def test_command_posted_to_one_gateway_reaches_drone_on_another(server_factory, pg):
    db = DB(pg)
    a = server_factory(store=db.uri(), args=["--instance", "gw-a"])
    b = server_factory(store=db.uri(), args=["--instance", "gw-b"])
    wait_until(lambda: "fleet: instance gw-a listening" in a.stderr(), T(10), "gw-a fleet listener")
    wait_until(lambda: "fleet: instance gw-b listening" in b.stderr(), T(10), "gw-b fleet listener")
    assert "dronegate[gw-a] info:" in a.stderr()
    assert metric(a.metrics(), "dronegate_build_info", instance="gw-a") == 1
    drone = new_id("fleet")

    async def go():
        d = await Drone.connect(b, drone)
        await d.send(minimal(1))
        await d.wait_ack(1)
        st = b.get_json(f"/api/v1/drones/{drone}")
        assert st["online"] is True and st["instance"] == "gw-b", st
        # presence is written by gw-b's fleet thread: wait for its row
        wait_until(lambda: drone in pg.psql("SELECT drone_id || ':' || instance FROM dronegate_presence",
                                            db=db.name), T(10), "presence row")
        assert f"{drone}:gw-b" in pg.psql("SELECT drone_id || ':' || instance FROM dronegate_presence", db=db.name)
        r = post(a, drone, {"name": "land", "args": {"why": "fleet"}})
        assert r.status == 202, r
        assert r.json()["status"] == "pending" and r.json()["instance"] == "gw-b", r.json()
        cid = r.json()["id"]
        await d.wait(lambda: any(m.get("type") == "command" for m in d.other), T(10), "command via gw-b")
        cmd = [m for m in d.other if m.get("type") == "command"][0]
        assert cmd == {"type": "command", "id": cid, "name": "land", "args": {"why": "fleet"}}, cmd
        # status changes made on gw-b are read back on gw-a (the commands table)
        wait_until(lambda: a.get_json(f"/api/v1/commands/{cid}")["status"] == "sent", T(10), "sent seen on gw-a")
        await d.send({"type": "command_ack", "id": cid, "status": "done", "message": "landed"})
        wait_until(lambda: a.get_json(f"/api/v1/commands/{cid}")["status"] == "done", T(10), "done seen on gw-a")
        assert b.get_json(f"/api/v1/commands/{cid}")["status"] == "done"
        await d.close()
        # offline everywhere: gw-b deletes its row, then gw-a answers 409
        wait_until(lambda: drone not in pg.psql("SELECT drone_id FROM dronegate_presence", db=db.name),
                   T(10), "presence row gone")
        assert post(a, drone, {"name": "land"}).status == 409
        assert post(a, new_id("never"), {"name": "land"}).status == 404

    run(go())
    for s in (a, b):
        s.check_clean()


def holder(pg, db, drone):
    out = pg.psql(f"SELECT instance FROM dronegate_presence WHERE drone_id = '{drone}'", db=db.name)
    return out.strip() or None


def test_drone_that_moves_to_another_gateway_is_closed_4409_on_the_old_one(server_factory, pg):
    """4409 across the fleet: a drone that connects to gw-b while gw-a still
    holds a connection of it (half-open after a network change, or a second
    link) loses the gw-a connection with 4409; back to gw-a, gw-b lets go.
    Every message is stored once, the presence row follows the drone."""
    db = DB(pg)
    a = server_factory(store=db.uri(), args=["--instance", "gw-a"])
    b = server_factory(store=db.uri(), args=["--instance", "gw-b"])
    for s, name in ((a, "gw-a"), (b, "gw-b")):
        wait_until(lambda: f"fleet: instance {name} listening" in s.stderr(), T(10), f"{name} fleet listener")
    drone = new_id("moves")

    async def go():
        d1 = await Drone.connect(a, drone)
        await d1.send(minimal(1))
        await d1.wait_ack(1)
        wait_until(lambda: holder(pg, db, drone) == "gw-a", T(10), "presence row naming gw-a")
        d2 = await Drone.connect(b, drone)
        code = await d1.wait_closed(T(10))
        assert code == 4409, f"gw-a closed the old connection with {code} {d1.ws.close_reason!r}, expected 4409"
        await d2.send(minimal(2))
        await d2.wait_ack(2)
        # gw-a saw its connection go; the row stays with the new holder, and
        # gw-a shows the drone online there (the fleet view)
        wait_until(lambda: a.get_json(f"/api/v1/drones/{drone}").get("instance") == "gw-b", T(10),
                   "gw-a showing the drone on gw-b")
        assert a.get_json(f"/api/v1/drones/{drone}")["online"] is True
        assert holder(pg, db, drone) == "gw-b"
        assert b.get_json(f"/api/v1/drones/{drone}")["instance"] == "gw-b"
        # and back
        d3 = await Drone.connect(a, drone)
        assert await d2.wait_closed(T(10)) == 4409
        await d3.send(minimal(3))
        await d3.wait_ack(3)
        wait_until(lambda: holder(pg, db, drone) == "gw-a", T(10), "presence row back on gw-a")
        await d3.close()

    run(go())
    assert db.one(f"SELECT count(*) FROM telemetry WHERE drone_id = '{drone}'") == 3
    assert db.one(f"SELECT count(DISTINCT seq) FROM telemetry WHERE drone_id = '{drone}'") == 3
    for s in (a, b):
        s.check_clean()
