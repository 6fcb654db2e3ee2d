"""libdronegate on the WebSocket subprotocol dronegate.pb.v1 (cfg.format =
DG_FORMAT_PROTOBUF; examples/drone --format pb) against the real gateway:
every sample handed to dg_client_send() is stored exactly once through
dropped links (LinkProxy RST), the frames really went as protobuf (the
gateway's received-messages counter for websocket/protobuf), and a command
round trips (accepted / rejected, answered as DroneMessage{command_ack}).

  test_pb_every_sample_stored_once_through_drops
  test_pb_command_round_trip
"""
import subprocess
import time

from dg import T, clean_env, metric, new_id, wait_until
from test_client import (DRONE, check_exactly_once, command_round_trip, finish_drone,  # noqa: F401 (fixture)
                         proxy_factory, stored_count)


def start(tmp_path, port, drone, *args):
    errf = open(tmp_path / f"{drone}.stderr", "wb")
    p = subprocess.Popen([DRONE, "--url", f"ws://127.0.0.1:{port}", "--format", "pb", "--id", drone,
                          *map(str, args)],
                         stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL, env=clean_env())
    p.errlog = tmp_path / f"{drone}.stderr"
    return p


def ws_pb_received(srv):
    return metric(srv.metrics(), "dronegate_messages_received_total", transport="websocket", format="protobuf")


def test_pb_every_sample_stored_once_through_drops(server_factory, proxy_factory, tmp_path):
    srv = server_factory()
    px = proxy_factory(srv.port)
    drone = new_id("libp")
    n, rate = 2000, 500
    ts0 = int(time.time() * 1000) - 3_600_000
    p = start(tmp_path, px.port, drone, "--count", n, "--rate", rate, "--ts0", ts0, "--ping-ms", 300,
              "--backoff-min-ms", 50, "--backoff-max-ms", 400, "--batch", 32, "--flush-ms", int(T(40) * 1000))
    try:
        progress = lambda k: wait_until(lambda: stored_count(srv.db, drone) >= k, T(20), f"{k} rows stored")
        for _ in range(2):                           # the link drops (RST) twice while samples flow
            base = stored_count(srv.db, drone)
            progress(base + 400)
            assert px.drop_all() >= 1
        rc, st, err = finish_drone(p, T(60))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 0 and st["left"] == 0, f"drone exit {rc}, stats {st}\n{err[-3000:]}"
    assert st["given"] == n and st["sessions"] >= 3, st
    assert st["server_errors"] == 0, f"{st}\n{err[-3000:]}"
    check_exactly_once(srv, drone, ts0, n)
    # one DroneMessage per binary frame: the gateway counted them as websocket/protobuf
    assert ws_pb_received(srv) >= n, srv.metrics()


def test_pb_command_round_trip(server_factory, tmp_path):
    srv = server_factory()
    drone = new_id("cmdp")
    command_round_trip(srv, start(tmp_path, srv.port, drone, "--count", 0, "--rate", 20, "--flush-ms", 2000),
                       drone)
    assert ws_pb_received(srv) > 0
