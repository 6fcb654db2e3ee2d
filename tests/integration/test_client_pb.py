"""libdronegate on the WebSocket subprotocol dronegate.pb.v1 (cfg.format =
DG_FORMAT_PROTOBUF; examples/drone --format pb) against the real gateway:
every sample handed to dg_client_send() is stored exactly once through
dropped links (LinkProxy RST), the frames really went as protobuf (the
gateway's received-messages counter for websocket/protobuf), and a command
round trips (accepted / rejected, answered as DroneMessage{command_ack}).

  test_pb_every_sample_stored_once_through_drops
  test_pb_command_round_trip
"""
import time

from dg import T, metric, new_id, wait_until
from test_client import (command_round_trip, finish_stored_once,  # noqa: F401 (fixture)
                         proxy_factory, start_drone, stored_count)


def start(tmp_path, port, drone, *args):
    """examples/drone on ws://127.0.0.1:port with --format pb (dronegate.pb.v1)."""
    return start_drone(tmp_path, port, drone, "--format", "pb", *args)


def ws_pb_received(srv):
    return metric(srv.metrics(), "dronegate_messages_received_total", transport="websocket", format="protobuf")


def test_pb_every_sample_stored_once_through_drops(server_factory, proxy_factory, tmp_path):
    srv = server_factory()
    px = proxy_factory(srv.port)
    drone, n, ts0 = new_id("libp"), 2000, int(time.time() * 1000) - 3_600_000
    p = start(tmp_path, px.port, drone, "--count", n, "--rate", 500, "--ts0", ts0, "--batch", 32,
              "--backoff-min-ms", 50, "--backoff-max-ms", 400, "--flush-ms", int(T(40) * 1000))
    try:
        for drop in range(2):                        # the link drops (RST) twice while samples flow
            k = stored_count(srv.db, drone) + 400
            wait_until(lambda: stored_count(srv.db, drone) >= k, T(20), f"{k} rows before drop {drop + 1}")
            assert px.drop_all() >= 1
    except BaseException:
        p.kill()
        p.wait()
        raise
    st, err = finish_stored_once(srv, p, drone, ts0, n, 3)
    assert st["server_errors"] == 0, f"{st}\n{err[-3000:]}"
    # one DroneMessage per binary frame: the gateway counted them as websocket/protobuf
    assert ws_pb_received(srv) >= n, srv.metrics()


def test_pb_command_round_trip(server_factory, tmp_path):
    srv = server_factory()
    drone = new_id("cmdp")
    command_round_trip(srv, start(tmp_path, srv.port, drone, "--count", 0, "--rate", 20, "--flush-ms", 2000),
                       drone)
    assert ws_pb_received(srv) > 0
