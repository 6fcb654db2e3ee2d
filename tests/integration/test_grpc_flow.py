"""gRPC uplink, the parts of issue 10 a grpc-core client hides: HTTP/2 flow
control tied to the ingest pipeline, keepalive PINGs and the idle timeout,
SETTINGS_MAX_CONCURRENT_STREAMS 1 (tests/integration/h2raw.py, HTTP/2 by
hand), a grpcio client that sends and never reads, and dronegate-sim
driving the gateway with --transport grpc and ws-pb.

  test_sim_transports_grpc_and_ws_pb                 sim over both, all acked and stored, a command round trip
  test_window_stops_while_the_pipeline_is_paused     store locked: the client's window runs out, nothing lost after
  test_keepalive_pings_then_idle_timeout             PINGs answered keep the call; unanswered, UNAVAILABLE
  test_one_stream_per_connection                     SETTINGS 1, a second stream REFUSED, the first goes on
  test_slow_reader_stays_bounded_and_others_served   grpcio sender that never reads; a client with window 0
  test_sigterm_acks_what_was_received_then_unavailable_and_goaway
  test_rate_limit_and_backlog_full_are_resource_exhausted   (plain only: ~6 s of SQLite busy timeout)
"""
import json
import os
import socket
import sqlite3
import subprocess
import time

import pytest

from dg import SIM, T, clean_env, metric, new_id, wait_until
from h2raw import H2, SETTINGS, frame, grpc_msg

grpc = pytest.importorskip("grpc", reason="python3-grpcio is required (scripts/deps.d/grpc.list)")
from test_grpc import Call, gateway, gen, max_ack  # noqa: E402,F401  (gen: the stubs fixture)


def telemetry(pb, seq):
    m = pb.DroneMessage()
    m.telemetry.seq = seq
    m.telemetry.timestamp_ms = 1764000000000 + seq
    m.telemetry.position.latitude, m.telemetry.position.longitude, m.telemetry.position.altitude = 47.0, 8.0, 400.0
    return m.SerializeToString()


def rss_kib(s):
    with open(f"/proc/{s.proc.pid}/status") as f:
        return int([line for line in f if line.startswith("VmRSS")][0].split()[1])


def sim(args, timeout):
    assert os.access(SIM, os.X_OK), f"simulator not built: {SIM}"
    return subprocess.Popen([SIM, "--json", "--quiet", "--drain", str(T(30)), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
                            stdin=subprocess.DEVNULL)


def test_sim_transports_grpc_and_ws_pb(server_factory):
    s = gateway(server_factory, "--max-msg-rate", "0")
    for tr, url in (("grpc", f"grpc://{s.grpc_target}"), ("ws-pb", s.ws_base)):
        prefix = new_id(tr.replace("-", "")) + "-"
        p = sim(["--transport", tr, "--url", url, "--prefix", prefix, "--drones", 3, "--rate", 0,
                 "--window", 16, "--duration", 1], T(60))
        out, err = p.communicate(timeout=T(60))
        assert p.returncode == 0, err
        r = json.loads(out)
        assert r["connected"] == 3 and r["sent"] > 100 and r["acked"] == r["sent"], (r, err)
        assert r["closes"] == {} and r["errors"] == 0 and r["unknown_messages"] == 0, (r, err)
        for i in range(3):
            seqs = s.seqs(f"{prefix}{i:04d}")
            assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 10, (tr, i, seqs[:5], len(seqs))
    # a command to a simulated drone over gRPC: accepted, answered by the sim
    prefix = new_id("grpccmd") + "-"
    p = sim(["--transport", "grpc", "--url", f"grpc://{s.grpc_target}", "--prefix", prefix, "--drones", 1,
             "--rate", 5, "--duration", T(30)], T(60))
    try:
        drone = f"{prefix}0000"
        wait_until(lambda: s.get(f"/api/v1/drones/{drone}").status == 200 and
                   s.get_json(f"/api/v1/drones/{drone}")["online"], T(15), "the simulated drone online")
        r = s.get(f"/api/v1/drones/{drone}/commands", method="POST", body=json.dumps({"name": "land"}),
                  headers={"Content-Type": "application/json"})
        assert r.status == 202, r
        cid = r.json()["id"]
        wait_until(lambda: s.get_json(f"/api/v1/commands/{cid}")["status"] in ("accepted", "done"), T(15),
                   "the command acked by the simulator over gRPC")
    finally:
        p.terminate()
        p.communicate(timeout=T(30))


def test_window_stops_while_the_pipeline_is_paused(server_factory, gen):
    """HTTP/2 flow control is the backpressure: with the store locked the
    batch pool (2 x 16 records) runs out, the worker stops reading the
    connection, so nghttp2 stops granting window and the client cannot send
    its 1 MB; the lock released, everything is sent, acked and stored."""
    pb, _ = gen
    s = gateway(server_factory, "--batch-records", "16", "--batch-pool", "2", "--spool-max-mb", "0",
                "--workers", "1", "--ack-interval", "0", "--max-msg-rate", "0")
    drone = new_id("grpcwin")
    n = 24000
    body = b"".join(grpc_msg(telemetry(pb, seq)) for seq in range(1, n + 1))
    assert len(body) > 1_000_000
    h = H2(s.grpc_target, T(10))
    h.open(1, s.grpc_target, drone)
    h.until(lambda: any(m.WhichOneof("body") == "session" for m in h.messages(1, pb)), "the session message")
    off = 0
    con = sqlite3.connect(str(s.db), timeout=T(30), isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    try:
        h.sk.settimeout(1.0)   # how long "no more window" must last to count as blocked
        blocked = False
        while off < len(body):
            k = h.can_send(1)
            if k > 0:
                h.send_data(1, body[off:off + k])
                off += k
                continue
            try:
                h.read_frame()
            except socket.timeout:
                # blocked, once the worker has paused (a slow machine may
                # just be late with a WINDOW_UPDATE before that)
                if metric(s.metrics(), "dronegate_pipeline_paused_total") >= 1:
                    blocked = True
                    break
        assert blocked, "the whole 1 MB got window while the store was locked: the window is not tied to the pipeline"
        assert metric(s.metrics(), "dronegate_pipeline_paused_total") >= 1
        assert max_ack(h.messages(1, pb)) == 0, "acked while the store was locked"
        assert off < len(body) // 2, off
    finally:
        con.rollback()
        con.close()
    h.sk.settimeout(T(30))
    while off < len(body):
        k = h.can_send(1)
        if k > 0:
            h.send_data(1, body[off:off + k])
            off += k
        else:
            h.read_frame()
    h.send_data(1, b"", end=True)
    h.until(lambda: 1 in h.ended, "the end of the call")
    assert max_ack(h.messages(1, pb)) == n
    h.close()
    assert s.seqs(drone) == list(range(1, n + 1))


def test_keepalive_pings_then_idle_timeout(server_factory, gen):
    """--ping-interval: a silent call gets HTTP/2 PINGs; answering them keeps
    it open past --idle-timeout; once unanswered, the call ends with
    UNAVAILABLE (idle timeout) and the connection with GOAWAY."""
    pb, _ = gen
    s = gateway(server_factory, "--ping-interval", "100", "--idle-timeout", "1000", "--log-level", "debug")
    drone = new_id("grpcping")
    h = H2(s.grpc_target, T(10))
    h.open(1, s.grpc_target, drone)
    h.until(lambda: any(m.WhichOneof("body") == "session" for m in h.messages(1, pb)), "the session message")
    t0 = time.monotonic()
    h.until(lambda: h.pings >= 3 and time.monotonic() - t0 > 1.5, "pings for longer than the idle timeout")
    assert 1 not in h.ended, "the call ended although the pings were answered"
    h.answer_pings = False
    h.until(lambda: 1 in h.ended, "the end of the call")
    wait_until(lambda: f"drone {drone} call ends: grpc-status 14 (idle timeout)" in s.stderr(), T(10),
               "UNAVAILABLE idle timeout in the log")
    h.send_data(1, b"", end=True)   # what a client does after the trailers: the stream closes
    h.until(lambda: h.goaway is not None, "GOAWAY")
    assert h.goaway == 0, h.goaway   # NO_ERROR
    h.close()


def test_one_stream_per_connection(server_factory, gen):
    """SETTINGS_MAX_CONCURRENT_STREAMS 1: a client that opens a second
    stream anyway breaks the limit it acknowledged; nghttp2 answers with a
    connection error (GOAWAY PROTOCOL_ERROR), the gateway stays up, and the
    first call's messages that were acked are stored."""
    pb, _ = gen
    s = gateway(server_factory)
    drone = new_id("grpcmcs")
    h = H2(s.grpc_target, T(10))
    h.open(1, s.grpc_target, drone)
    h.until(lambda: any(m.WhichOneof("body") == "session" for m in h.messages(1, pb)), "the session message")
    assert h.server_settings.get(3) == 1, h.server_settings   # SETTINGS_MAX_CONCURRENT_STREAMS
    h.send_data(1, grpc_msg(telemetry(pb, 1)))
    h.until(lambda: max_ack(h.messages(1, pb)) == 1, "the first call's ack")
    h.open(3, s.grpc_target, new_id("grpcmcs2"))
    h.until(lambda: h.goaway is not None, "GOAWAY")
    assert h.goaway == 1, h.goaway   # PROTOCOL_ERROR
    h.close()
    s.check_alive()
    assert s.seqs(drone) == [1]


def test_slow_reader_stays_bounded_and_others_served(server_factory, gen):
    """A grpcio client that sends 20000 messages and never reads its
    responses: the gateway keeps serving another drone, its memory stays
    bounded (RSS grows < 64 MiB; not checked under ASan), and everything the
    slow reader sent is stored. Then a client
    that grants no window at all (SETTINGS_INITIAL_WINDOW_SIZE 0: not one
    response byte can reach it): its 20000 messages are stored all the same,
    and once it opens its window the acks it was owed arrive, up to the last."""
    pb, _ = gen
    s = gateway(server_factory, "--max-msg-rate", "0")
    rss0 = rss_kib(s)
    slow_id = new_id("grpcslow")
    slow = Call(gen, s, slow_id)
    n = 20000
    for seq in range(1, n + 1):
        slow.telemetry(seq)
    other = Call(gen, s, new_id("grpcother"))
    assert other.next().WhichOneof("body") == "session"
    for seq in range(1, 51):
        other.telemetry(seq)
    assert max_ack(other.until(lambda g: max_ack(g) >= 50)) == 50
    wait_until(lambda: len(s.seqs(slow_id)) == n, T(60), "every message of the slow reader stored")
    rss = rss_kib(s)
    if not os.environ.get("DRONEGATE_ASAN"):   # ASan's shadow and quarantine say nothing here
        assert rss - rss0 < 64 * 1024, f"gateway RSS grew from {rss0} to {rss} KiB"
    s.check_alive()
    other.close()
    slow.close()

    shut = new_id("grpcshut")
    h = H2(s.grpc_target, T(30), settings=(4).to_bytes(2, "big") + (0).to_bytes(4, "big"))
    h.open(1, s.grpc_target, shut)
    h.until(lambda: 1 in h.headers, "the response HEADERS (not flow controlled)")
    h.send_all(1, b"".join(grpc_msg(telemetry(pb, seq)) for seq in range(1, n + 1)))
    wait_until(lambda: len(s.seqs(shut)) == n, T(60), "every message of the window-0 client stored")
    assert 1 not in h.data, "DATA sent into a zero window"
    h.sk.sendall(frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") + (65535).to_bytes(4, "big")))
    h.until(lambda: max_ack(h.messages(1, pb)) == n, "the acks it was owed")
    assert h.messages(1, pb)[0].WhichOneof("body") == "session"
    h.close()


def test_sigterm_acks_what_was_received_then_unavailable_and_goaway(server_factory, gen):
    """SIGTERM right after 3000 messages were received (a PING answered after
    them), no ack awaited: the drain makes all of them durable and acks
    them, then ends the call with UNAVAILABLE and sends GOAWAY. (Bytes still
    in the client's kernel at the SIGTERM are not "received": the drain
    reads what the gateway's kernel held, as on WebSocket.)"""
    import signal
    pb, _ = gen
    s = gateway(server_factory, "--log-level", "debug", "--max-msg-rate", "0")
    drone = new_id("grpcterm")
    n = 3000
    h = H2(s.grpc_target, T(30))
    h.open(1, s.grpc_target, drone)
    h.until(lambda: any(m.WhichOneof("body") == "session" for m in h.messages(1, pb)), "the session message")
    h.send_all(1, b"".join(grpc_msg(telemetry(pb, seq)) for seq in range(1, n + 1)))
    h.sync()   # every message received (not necessarily stored or acked)
    s.send_signal(signal.SIGTERM)
    h.until(lambda: 1 in h.ended and h.goaway is not None, "the trailers and GOAWAY")
    assert max_ack(h.messages(1, pb)) == n
    assert h.goaway == 0, h.goaway
    h.close()
    assert s.wait_exit(T(30)) == 0
    assert f"drone {drone} call ends: grpc-status 14 (server shutting down)" in s.stderr()
    s.restart()
    assert s.seqs(drone) == list(range(1, n + 1))


@pytest.mark.plain_only
def test_rate_limit_and_backlog_full_are_resource_exhausted(server_factory, gen):
    s = gateway(server_factory, "--max-msg-rate", "100")
    c = Call(gen, s, new_id("grpcrate"))
    assert c.next().WhichOneof("body") == "session"
    for seq in range(1, 1001):
        c.telemetry(seq)
    _, code, details = c.rest()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "rate" in details, (code, details)
    c.close()
    # no spool, 2 batches of 16: with the store locked past its busy timeout
    # the backlog is full and the call is told so (not silently stalled)
    s = gateway(server_factory, "--batch-records", "16", "--batch-pool", "2", "--spool-max-mb", "0",
                "--max-msg-rate", "0")
    drone = new_id("grpcfull")
    c = Call(gen, s, drone)
    assert c.next().WhichOneof("body") == "session"
    con = sqlite3.connect(str(s.db), timeout=T(30), isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    try:
        for seq in range(1, 3001):
            c.telemetry(seq)
        got, code, details = c.rest()
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "backlog" in details, (code, details)
        assert max_ack(got) == 0, "acked while the store was locked"
    finally:
        con.rollback()
        con.close()
    c.close()
