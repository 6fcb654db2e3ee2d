"""Command POST hardening (issue 8 1.6): args that a WebSocket peer cannot
read are refused with 400 (the drone's and the dashboards' connections stay
up), valid args reach the drone as the same JSON, and a drone has at most 64
open commands (the 65th POST gets 429)."""
import json

from dg import T, Drone, minimal, new_id, run


def post(s, drone, body):
    return s.get(f"/api/v1/drones/{drone}/commands", method="POST",
                 body=body if isinstance(body, (bytes, str)) else json.dumps(body),
                 headers={"Content-Type": "application/json"})


def test_args_that_peers_cannot_read_are_refused(srv):
    drone = new_id("cmdutf")

    async def go():
        d = await Drone.connect(srv, drone)
        await d.send(minimal(1))
        await d.wait_ack(1)
        for body in [b'{"name":"land","args":{"why":"\xff\xfe"}}',          # invalid UTF-8: 1007
                     b'{"name":"land","args":{"\xc0\xaf":1}}',               # overlong, in a key
                     b'{"name":"land","args":{"why":"a\x01b"}}',             # raw control character
                     b'{"name":"land","args":{"why":"\\ud800"}}']:           # lone surrogate
            r = post(srv, drone, body)
            assert r.status == 400, (body, r)
            assert "error" in r.json()
        # valid args with whitespace and escapes: the drone gets the same JSON
        r = post(srv, drone, b'{"name":"land", "args": { "why" : "caf\\u00e9 \\/ \\"x\\"" , "n" : [1 , 2] } }')
        assert r.status == 202, r
        cid = r.json()["id"]
        await d.wait(lambda: any(m.get("type") == "command" for m in d.other), T(5), "command frame")
        cmd = [m for m in d.other if m.get("type") == "command"]
        assert cmd == [{"type": "command", "id": cid, "name": "land", "args": {"why": 'café / "x"', "n": [1, 2]}}]
        # the drone's connection is still up
        await d.send(minimal(2))
        await d.wait_ack(2)
        assert srv.get_json(f"/api/v1/commands/{cid}")["args"] == {"why": 'café / "x"', "n": [1, 2]}
        await d.close()
    run(go())


def test_open_commands_per_drone_are_capped(srv):
    drone = new_id("cmdcap")

    async def go():
        d = await Drone.connect(srv, drone)     # never answers: commands stay open
        await d.send(minimal(1))
        await d.wait_ack(1)
        for i in range(64):
            r = post(srv, drone, {"name": "land", "args": {"i": i}})
            assert r.status == 202, (i, r)
        r = post(srv, drone, {"name": "land"})
        assert r.status == 429, r
        assert "at most 64" in r.json()["error"]
        # another drone is not affected
        other = new_id("cmdcap2")
        d2 = await Drone.connect(srv, other)
        await d2.send(minimal(1))
        await d2.wait_ack(1)
        assert post(srv, other, {"name": "land"}).status == 202
        # a final answer frees a place
        await d.wait(lambda: sum(m.get("type") == "command" for m in d.other) == 64, T(10), "64 commands")
        first = [m for m in d.other if m.get("type") == "command"][0]["id"]
        await d.send({"type": "command_ack", "id": first, "status": "done"})
        await d.send(minimal(2))
        await d.wait_ack(2)                      # the ack frame before it has been applied
        assert post(srv, drone, {"name": "land"}).status == 202
        await d.close()
        await d2.close()
    run(go())
