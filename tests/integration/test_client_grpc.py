"""libdronegate over grpc:// (issue 13 after issue 10): the same promise as
over WebSocket (test_client.py) with the library's HTTP/2 call
(libclient/grpc.c, protobuf by hand in libclient/pb.c) against the real
gateway's --grpc-listen: every sample handed to dg_client_send() is stored
exactly once through a kill -9 and a dropped link; commands round trip;
a wrong token is refused (UNAUTHENTICATED, reported, nothing stored).

  test_grpc_every_sample_stored_once_through_kill_and_drop
  test_grpc_command_round_trip
  test_grpc_token_auth
"""
import json
import re
import signal
import subprocess
import time

import pytest

from dg import T, clean_env, new_id, wait_until
from test_client import DRONE, LinkProxy, check_exactly_once, finish_drone, proxy_factory, stored_count  # noqa: F401


def gateway(server_factory, **kw):
    s = server_factory(args=["--grpc-listen", "127.0.0.1:0"], **kw)
    s.grpc_port = grpc_port(s)
    return s


def grpc_port(s):
    m = re.findall(r"gRPC listening on 127\.0\.0\.1:(\d+)", s.stderr())
    assert m, s.stderr()
    return int(m[-1])


def start(tmp_path, port, drone, *args):
    errf = open(tmp_path / f"{drone}.stderr", "wb")
    p = subprocess.Popen([DRONE, "--url", f"grpc://127.0.0.1:{port}", "--id", drone, *map(str, args)],
                         stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL, env=clean_env())
    p.errlog = tmp_path / f"{drone}.stderr"
    return p


def test_grpc_every_sample_stored_once_through_kill_and_drop(server_factory, proxy_factory, tmp_path):
    srv = gateway(server_factory)
    px = proxy_factory(srv.grpc_port)
    drone = new_id("libg")
    n, rate = 3000, 400
    ts0 = int(time.time() * 1000) - 3_600_000
    p = start(tmp_path, px.port, drone, "--count", n, "--rate", rate, "--ts0", ts0, "--ping-ms", 300,
              "--backoff-min-ms", 50, "--backoff-max-ms", 400, "--batch", 32, "--flush-ms", int(T(40) * 1000))
    try:
        progress = lambda k: wait_until(lambda: stored_count(srv.db, drone) >= k, T(20), f"{k} rows stored")
        progress(400)
        srv.kill9()                                  # the gateway dies (kill -9) and comes back
        srv.restart()
        px.upstream = grpc_port(srv)
        base = stored_count(srv.db, drone)
        progress(base + 400)
        assert px.drop_all() >= 1                    # the link drops (RST)
        base = stored_count(srv.db, drone)
        progress(base + 400)
        rc, st, err = finish_drone(p, T(60))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 0 and st["left"] == 0, f"drone exit {rc}, stats {st}\n{err[-3000:]}"
    assert st["given"] == n and st["sessions"] >= 3, st
    check_exactly_once(srv, drone, ts0, n)


def test_grpc_command_round_trip(server_factory, tmp_path):
    srv = gateway(server_factory)
    drone = new_id("cmdg")
    p = start(tmp_path, srv.grpc_port, drone, "--count", 0, "--rate", 20, "--flush-ms", 2000)
    try:
        wait_until(lambda: any(d["id"] == drone and d.get("online") for d in srv.drones()), T(10), "drone online")
        r = srv.get(f"/api/v1/drones/{drone}/commands", method="POST",
                    body=json.dumps({"name": "return_to_home", "args": {"alt": 50}}),
                    headers={"Content-Type": "application/json"})
        assert r.status == 202, r
        cid = r.json()["id"]
        wait_until(lambda: srv.get_json(f"/api/v1/commands/{cid}")["status"] == "accepted", T(10), "accepted")
        p.send_signal(signal.SIGTERM)
        rc, st, err = finish_drone(p, T(20))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 0 and st["left"] == 0, f"{st}\n{err[-2000:]}"
    assert re.search(rf'command {cid} return_to_home \{{"alt": ?50\}}', err), err[-2000:]
    assert stored_count(srv.db, drone) == st["given"] > 0


def test_grpc_token_auth(server_factory, tmp_path):
    srv = gateway(server_factory, secret="client-grpc-s3cret")
    drone = new_id("authg")
    p = start(tmp_path, srv.grpc_port, drone, "--token", srv.token(drone), "--count", 40, "--rate", 0)
    rc, st, err = finish_drone(p, T(20))
    assert rc == 0 and st["acked"] == 40, f"{st}\n{err[-2000:]}"
    bad = new_id("authg")
    p = start(tmp_path, srv.grpc_port, bad, "--token", srv.token(drone), "--count", 5, "--rate", 0,
              "--flush-ms", 600, "--backoff-min-ms", 50)
    rc, st, err = finish_drone(p, T(20))
    assert rc == 3 and st["sessions"] == 0 and st["connects"] >= 2, st
    assert "grpc_16" in err and "wrong token?" in err, err[-2000:]
    assert stored_count(srv.db, bad) == 0
