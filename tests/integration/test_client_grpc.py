"""libdronegate over grpc:// (issue 13 after issue 10): the same promise as
over WebSocket (test_client.py) with the library's HTTP/2 call
(libclient/grpc.c, protobuf by hand in libclient/pb.c) against the real
gateway's --grpc-listen: every sample handed to dg_client_send() is stored
exactly once through a kill -9, a dropped link and a stalled one; commands round trip;
a wrong token is refused (UNAUTHENTICATED, reported, nothing stored).

  test_grpc_every_sample_stored_once_through_kill_and_drop
  test_grpc_command_round_trip
  test_grpc_token_auth
  test_grpcs_through_nginx      (plain only: nginx, TLS with ALPN h2)
"""
import re
import subprocess
import time

import pytest

from dg import T, clean_env, new_id, wait_until
from nginx import nginx_factory  # noqa: F401 (fixture)
from test_client import (DRONE, check_exactly_once, command_round_trip, finish_drone,  # noqa: F401 (fixture)
                         finish_stored_once, proxy_factory, stored_count, token_auth)


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
    n, rate = 6000, 400
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
        before = px.accepted
        assert px.stall_all() >= 1                   # the link stalls: only the HTTP/2 PING timeout sees it
        wait_until(lambda: px.accepted > before, T(10), "the drone to reconnect after the stall")
        base = stored_count(srv.db, drone)
        progress(base + 400)
    except BaseException:
        p.kill()
        p.wait()
        raise
    finish_stored_once(srv, p, drone, ts0, n, 4)


def test_grpc_command_round_trip(server_factory, tmp_path):
    srv = gateway(server_factory)
    drone = new_id("cmdg")
    command_round_trip(srv, start(tmp_path, srv.grpc_port, drone, "--count", 0, "--rate", 20, "--flush-ms", 2000),
                       drone)


def test_grpc_token_auth(server_factory, tmp_path):
    srv = gateway(server_factory, secret="client-grpc-s3cret")
    token_auth(srv, lambda drone, *a: start(tmp_path, srv.grpc_port, drone, *a), "grpc_16")


@pytest.mark.plain_only
def test_grpcs_through_nginx(server_factory, nginx_factory, tmp_path):  # noqa: F811
    """grpcs://: TLS with ALPN h2 to nginx (deploy/nginx/dronegate.conf,
    grpc_pass to --grpc-listen), the library verifying nginx's certificate:
    every sample stored once, the call ends OK at close."""
    srv = gateway(server_factory)
    ngx = nginx_factory([("127.0.0.1", srv.port)], grpc_gateways=[("127.0.0.1", srv.grpc_port)])
    drone = new_id("libgs")
    ts0 = int(time.time() * 1000) - 3_600_000
    errf = open(tmp_path / "grpcs.stderr", "wb")
    args = ("--url", f"grpcs://127.0.0.1:{ngx.tls_port}", "--ca", ngx.cert, "--id", drone, "--count", 500,
            "--rate", 0, "--ts0", ts0, "--flush-ms", int(T(20) * 1000))
    p = subprocess.Popen([DRONE, *map(str, args)],
                         stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL, env=clean_env())
    p.errlog = tmp_path / "grpcs.stderr"
    rc, st, err = finish_drone(p, T(30))
    assert rc == 0 and st["left"] == 0 and st["sessions"] == 1, f"{st}\n{err[-2000:]}"
    check_exactly_once(srv, drone, ts0, 500)
    assert "grpc-status 0" in err, err[-2000:]
