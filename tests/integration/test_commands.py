"""Operator commands: POST /api/v1/drones/{id}/commands -> 202, delivery down
the drone's WebSocket, command_ack -> status, GET /api/v1/commands/{id},
the commands table, expiry, errors (400/404/409), scopes; and the full round
trip with a dronegate-sim drone that obeys goto."""
import asyncio
import json
import math
import sqlite3
import subprocess

import websockets

from dg import SIM, T, Drone, clean_env, metric, minimal, new_id, run, wait_until


def post(s, drone, body, **kw):
    return s.get(f"/api/v1/drones/{drone}/commands", method="POST",
                 body=body if isinstance(body, (bytes, str)) else json.dumps(body),
                 headers={"Content-Type": "application/json", **kw.pop("headers", {})}, **kw)


def test_round_trip_with_python_drone(srv):
    drone = new_id("cmd")

    async def go():
        d = await Drone.connect(srv, drone)
        await d.send(minimal(1))
        await d.wait_ack(1)
        r = post(srv, drone, {"name": "land", "args": {"reason": "test"}})
        assert r.status == 202, r
        cid = r.json()["id"]
        assert r.json()["status"] in ("pending", "sent")
        await d.wait(lambda: any(m.get("type") == "command" for m in d.other), T(5), "command frame")
        cmd = [m for m in d.other if m.get("type") == "command"][0]
        assert cmd == {"type": "command", "id": cid, "name": "land", "args": {"reason": "test"}}, cmd
        assert srv.get_json(f"/api/v1/commands/{cid}")["status"] == "sent"
        await d.send({"type": "command_ack", "id": cid, "status": "accepted"})
        wait_until(lambda: srv.get_json(f"/api/v1/commands/{cid}")["status"] == "accepted", T(5), "accepted")
        await d.send({"type": "command_ack", "id": cid, "status": "done", "message": "landed"})
        wait_until(lambda: srv.get_json(f"/api/v1/commands/{cid}")["status"] == "done", T(5), "done")
        c = srv.get_json(f"/api/v1/commands/{cid}")
        assert c["message"] == "landed" and c["drone_id"] == drone and c["name"] == "land"
        # a late ack cannot move a final command backwards
        await d.send({"type": "command_ack", "id": cid, "status": "accepted"})
        await d.send(minimal(2))
        await d.wait_ack(2)
        assert srv.get_json(f"/api/v1/commands/{cid}")["status"] == "done"
        await d.close()
        return cid

    cid = run(go())
    # persisted in the commands table
    def row():
        con = sqlite3.connect(str(srv.db))
        try:
            return con.execute("SELECT status, drone_id, name FROM commands WHERE id=?", (cid,)).fetchone()
        finally:
            con.close()
    wait_until(lambda: row() and row()[0] == "done", T(5), "commands row status done")
    m = srv.metrics()
    assert metric(m, "dronegate_commands_total", status="done") >= 1


def test_errors(srv):
    drone = new_id("cmderr")
    assert post(srv, new_id("never"), {"name": "land"}).status == 404
    assert post(srv, "bad!id", {"name": "land"}).status == 400

    async def go():
        d = await Drone.connect(srv, drone)
        await d.send(minimal(1))
        await d.wait_ack(1)
        for body in [b"not json", b"[]", {"args": {}}, {"name": ""}, {"name": "Land!"}, {"name": "x", "args": 5},
                     {"name": "goto", "args": {"lat": 95, "lon": 1, "alt": 10}}, {"name": "goto", "args": {"lat": 1}},
                     b'{"name":"land","args":{"a":tru}}']:
            r = post(srv, drone, body)
            assert r.status == 400, (body, r)
            assert "error" in r.json()
        await d.close()
        wait_until(lambda: not [x for x in srv.drones() if x["id"] == drone][0]["online"], T(5), "offline")
        r = post(srv, drone, {"name": "land"})
        assert r.status == 409 and "offline" in r.json()["error"], r
    run(go())
    assert srv.get("/api/v1/commands/" + "0" * 32).status == 404
    assert srv.get(f"/api/v1/drones/{drone}/commands").status == 405


def test_expiry(server_factory):
    s = server_factory(args=["--command-timeout", "500"])
    drone = new_id("mute")

    async def go():
        d = await Drone.connect(s, drone)   # never answers commands
        await d.send(minimal(1))
        await d.wait_ack(1)
        cid = post(s, drone, {"name": "return_to_home"}).json()["id"]
        wait_until(lambda: s.get_json(f"/api/v1/commands/{cid}")["status"] == "expired", T(10), "expired")
        assert "500" in s.get_json(f"/api/v1/commands/{cid}")["message"]
        await d.close()
    run(go())


def test_scopes(server_factory):
    s = server_factory(secret="k", args=["--operator-read-token", "reader"])
    drone = "scoped"

    async def go():
        d = await Drone.connect(s, drone)
        await d.send(minimal(1))
        await d.wait_ack(1)
        assert post(s, drone, {"name": "land"}, operator=False).status == 401
        assert post(s, drone, {"name": "land"}, headers={"Authorization": f"Bearer {s.token(drone)}"}).status == 401
        assert post(s, drone, {"name": "land"}, headers={"Authorization": "Bearer reader"}).status == 403
        assert s.get("/api/v1/drones", headers={"Authorization": "Bearer reader"}).status == 200
        assert post(s, drone, {"name": "land"}, headers={"Origin": "http://evil.example"}).status == 403
        assert post(s, drone, {"name": "land"}).status == 202
        await d.close()
    run(go())


def test_sim_drone_obeys_goto_and_reports_done(server_factory):
    s = server_factory()
    sim = subprocess.Popen([SIM, "--url", f"ws://127.0.0.1:{s.port}", "--drones", "1", "--rate", "5",
                            "--duration", "40", "--quiet", "--prefix", "obey-"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           env=clean_env())
    try:
        drone = "obey-0000"
        wait_until(lambda: any(x["id"] == drone and x["online"] and "latitude" in x for x in s.drones()),
                   T(15), "simulated drone online")
        st = [x for x in s.drones() if x["id"] == drone][0]
        # a target ~80 m north-east of where it is, at 60 m
        lat, lon = st["latitude"] + 0.0005, st["longitude"] + 0.0005
        r = post(s, drone, {"name": "goto", "args": {"lat": lat, "lon": lon, "alt": st["altitude"] + 20}})
        assert r.status == 202, r
        cid = r.json()["id"]
        wait_until(lambda: s.get_json(f"/api/v1/commands/{cid}")["status"] in ("accepted", "done"), T(5), "accepted")
        wait_until(lambda: s.get_json(f"/api/v1/commands/{cid}")["status"] == "done", T(30), "goto done")
        now = [x for x in s.drones() if x["id"] == drone][0]
        dist = math.hypot((now["latitude"] - lat) * 111000, (now["longitude"] - lon) * 111000 * math.cos(math.radians(lat)))
        assert dist < 30, f"drone is {dist:.0f} m from the goto target after done"
    finally:
        sim.terminate()
        sim.wait(timeout=T(15))


def test_command_readable_after_restart(server_factory):
    s = server_factory()
    drone = new_id("persist")

    async def go():
        d = await Drone.connect(s, drone)
        await d.send(minimal(1))
        await d.wait_ack(1)
        cid = post(s, drone, {"name": "goto", "args": {"lat": 1.5, "lon": 2.5, "alt": 30}}).json()["id"]
        await d.wait(lambda: any(m.get("type") == "command" for m in d.other), T(5), "command frame")
        await d.send({"type": "command_ack", "id": cid, "status": "done", "message": "there"})
        wait_until(lambda: s.get_json(f"/api/v1/commands/{cid}")["status"] == "done", T(5), "done")
        await d.close()
        return cid

    cid = run(go())
    s.stop()
    s.start()
    c = s.get_json(f"/api/v1/commands/{cid}")
    assert c["status"] == "done" and c["message"] == "there" and c["drone_id"] == drone, c
    assert c["args"] == {"lat": 1.5, "lon": 2.5, "alt": 30}, c
    assert s.get("/api/v1/commands/" + "f" * 32).status == 404
