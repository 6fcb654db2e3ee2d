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
