"""gRPC uplink (--grpc-listen, service dronegate.v1.Telemetry, method Stream)
with a client we did not write: python3-grpcio, stubs generated at test time
with protoc + grpc_python_plugin (protobuf-compiler-grpc). The same
validation, durable cumulative acks, session message, commands as the
WebSocket channel; gRPC status codes for what ends a call."""
import json
import queue
import re
import sqlite3
import subprocess
import sys

import pytest

from dg import T, metric, new_id, npm_tool, wait_until

grpc = pytest.importorskip("grpc", reason="python3-grpcio is required (scripts/deps.d/grpc.list)")

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    out = tmp_path_factory.mktemp("grpcgen")
    subprocess.run(["protoc", f"-I{ROOT}/proto", f"--python_out={out}", f"--grpc_python_out={out}",
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                    "dronegate/v1/telemetry.proto"], check=True)
    sys.path.insert(0, str(out))
    from dronegate.v1 import telemetry_pb2, telemetry_pb2_grpc
    return telemetry_pb2, telemetry_pb2_grpc


def gateway(server_factory, *args, **kw):
    s = server_factory(args=["--grpc-listen", "127.0.0.1:0", *args], **kw)
    m = re.search(r"gRPC listening on 127\.0\.0\.1:(\d+)", s.stderr())
    assert m, s.stderr()
    s.grpc_target = f"127.0.0.1:{m.group(1)}"
    return s


class Call:
    """One Stream call: requests from a queue, responses read one by one."""

    def __init__(self, gen, s, drone, token=None, method=None):
        pb, pbg = gen
        self.pb = pb
        # a connection of its own (grpc-core shares one between channels to
        # the same target by default; the gateway takes one call per connection)
        self.channel = grpc.insecure_channel(s.grpc_target, options=[("grpc.use_local_subchannel_pool", 1)])
        md = [("drone-id", drone)] + ([("authorization", f"Bearer {token}")] if token else [])
        self.q = queue.Queue()
        reqs = iter(self.q.get, None)
        if method:
            fn = self.channel.stream_stream(method, request_serializer=pb.DroneMessage.SerializeToString,
                                            response_deserializer=pb.ServerMessage.FromString)
            self.call = fn(reqs, metadata=md, timeout=T(60))
        else:
            self.call = pbg.TelemetryStub(self.channel).Stream(reqs, metadata=md, timeout=T(60))

    def telemetry(self, seq, lat=47.0, **kw):
        m = self.pb.DroneMessage()
        m.telemetry.seq = seq
        m.telemetry.position.latitude = lat
        m.telemetry.position.longitude = 8.0
        m.telemetry.position.altitude = 400.0
        for k, v in kw.items():
            setattr(m.telemetry, k, v)
        self.q.put(m)

    def send(self, m):
        self.q.put(m)

    def half_close(self):
        self.q.put(None)

    def next(self):
        return next(self.call)

    def until(self, pred):
        """Responses until pred(list so far) is true."""
        got = []
        while not pred(got):
            got.append(self.next())
        return got

    def rest(self):
        """The remaining responses and the final status."""
        got = []
        try:
            for r in self.call:
                got.append(r)
        except grpc.RpcError:
            pass
        return got, self.call.code(), self.call.details()

    def close(self):
        self.q.put(None)
        self.channel.close()


def max_ack(msgs):
    return max([m.ack.seq for m in msgs if m.WhichOneof("body") == "ack"], default=0)


def test_stream_session_acks_errors_then_ok_after_half_close(server_factory, gen):
    s = gateway(server_factory, "--log-level", "debug")
    drone = new_id("grpc")
    c = Call(gen, s, drone)
    first = c.next()
    assert first.WhichOneof("body") == "session" and not first.session.HasField("last_seq"), first
    for seq in range(1, 6):
        c.telemetry(seq, speed=3.5)
    c.telemetry(6, lat=100.0)                               # invalid: an error, the call goes on
    c.send(c.pb.DroneMessage())                             # an empty message (5-byte prefix, length 0)
    got = c.until(lambda g: max_ack(g) >= 5 and sum(m.WhichOneof("body") == "error" for m in g) >= 2)
    errs = [m.error for m in got if m.WhichOneof("body") == "error"]
    assert [(e.code, e.field, e.seq) for e in errs] == [("invalid_field", "latitude", 6), ("invalid_field", "body", 0)], errs
    # the store is held (a write lock on the SQLite file): 7 cannot be acked
    # before the half-close is in, so the call must wait for it
    lock = sqlite3.connect(str(s.db), isolation_level=None, timeout=T(10))
    lock.execute("BEGIN EXCLUSIVE")
    try:
        c.telemetry(7)
        c.half_close()                                      # done: OK once 7 is acked
        wait_until(lambda: f"drone {drone} half-closed" in s.stderr(), T(10), "the half-close at the gateway")
        assert not c.call.done(), "the call ended before 7 was acked"
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    rest, code, details = c.rest()
    assert max_ack(got + rest) == 7, (got, rest)
    assert code == grpc.StatusCode.OK, (code, details)
    c.close()
    assert s.seqs(drone) == [1, 2, 3, 4, 5, 7]
    st = s.get_json(f"/api/v1/drones/{drone}")
    assert st["seq"] == 7 and st["online"] is False, st
    # the next call of the drone learns what is stored
    c2 = Call(gen, s, drone)
    first = c2.next()
    assert first.WhichOneof("body") == "session" and first.session.last_seq == 7, first
    c2.close()
    assert metric(s.metrics(), "dronegate_messages_received_total", transport="grpc", format="protobuf") == 6   # valid ones


def test_half_close_after_a_rejected_reused_seq_ends_ok(server_factory, gen):
    """The last seq of a call is a reused one (stored before with another
    timestamp): the store rejects it, it is never acked, and the call still
    ends with OK right after the seq_reused error, not at the idle timeout
    (set far beyond the call's deadline here, so waiting for it fails)."""
    s = gateway(server_factory, "--idle-timeout", str(int(T(600) * 1000)))
    drone = new_id("grpcreuse")
    c = Call(gen, s, drone)
    assert c.next().WhichOneof("body") == "session"
    for seq in (1, 2):
        c.telemetry(seq, timestamp_ms=1_700_000_000_000 + seq)
    assert max_ack(c.until(lambda g: max_ack(g) >= 2)) == 2
    c.half_close()
    _, code, _ = c.rest()
    assert code == grpc.StatusCode.OK
    c.close()
    c = Call(gen, s, drone)
    first = c.next()
    assert first.WhichOneof("body") == "session" and first.session.last_seq == 2, first
    c.telemetry(2, timestamp_ms=1_700_000_000_999)          # seq 2 again, another timestamp
    c.half_close()
    rest, code, details = c.rest()
    errs = [(m.error.code, m.error.seq) for m in rest if m.WhichOneof("body") == "error"]
    assert errs == [("seq_reused", 2)] and max_ack(rest) == 0, rest
    assert code == grpc.StatusCode.OK, (code, details)
    c.close()
    assert s.seqs(drone) == [1, 2]


def test_call_errors_are_grpc_status_codes(server_factory, gen):
    s = gateway(server_factory, secret="grpc-secret")
    drone = new_id("grpcauth")
    c = Call(gen, s, drone)                                  # no token
    with pytest.raises(grpc.RpcError) as e:
        c.next()
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, e.value
    c.close()
    c = Call(gen, s, drone, token="0" * 64)                  # wrong token
    with pytest.raises(grpc.RpcError) as e:
        c.next()
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    c.close()
    c = Call(gen, s, "bad/id", token=s.token(drone))
    with pytest.raises(grpc.RpcError) as e:
        c.next()
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "drone-id" in e.value.details()
    c.close()
    c = Call(gen, s, drone, token=s.token(drone), method="/dronegate.v1.Telemetry/Nope")
    with pytest.raises(grpc.RpcError) as e:
        c.next()
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    c.close()
    c = Call(gen, s, drone, token=s.token(drone))            # the right token
    assert c.next().WhichOneof("body") == "session"
    c.telemetry(1)
    assert max_ack(c.until(lambda g: max_ack(g) >= 1)) == 1
    c.close()


def test_commands_round_trip(server_factory, gen):
    s = gateway(server_factory)
    drone = new_id("grpccmd")
    c = Call(gen, s, drone)
    assert c.next().WhichOneof("body") == "session"
    c.telemetry(1)
    c.until(lambda g: max_ack(g) >= 1)
    r = s.get(f"/api/v1/drones/{drone}/commands", method="POST",
              body=json.dumps({"name": "hover", "args": {"why": "grpc"}}), headers={"Content-Type": "application/json"})
    assert r.status == 202, r
    cid = r.json()["id"]
    got = c.until(lambda g: any(m.WhichOneof("body") == "command" for m in g))
    cmd = [m.command for m in got if m.WhichOneof("body") == "command"][0]
    assert cmd.id == cid and cmd.name == "hover" and json.loads(cmd.args_json) == {"why": "grpc"}, cmd
    ack = c.pb.DroneMessage()
    ack.command_ack.id = cid
    ack.command_ack.status = "done"
    ack.command_ack.message = "arrived"
    c.send(ack)
    wait_until(lambda: s.get_json(f"/api/v1/commands/{cid}")["status"] == "done", T(10), "command done")
    c.close()


def test_newer_call_of_the_same_drone_aborts_the_older(server_factory, gen):
    s = gateway(server_factory)
    drone = new_id("grpcdup")
    a = Call(gen, s, drone)
    assert a.next().WhichOneof("body") == "session"
    b = Call(gen, s, drone)
    assert b.next().WhichOneof("body") == "session"
    _, code, details = a.rest()
    assert code == grpc.StatusCode.ABORTED, (code, details)
    b.telemetry(1)
    assert max_ack(b.until(lambda g: max_ack(g) >= 1)) == 1
    a.close()
    b.close()


def test_drain_acks_what_was_received_then_unavailable(server_factory, gen):
    s = gateway(server_factory)
    drone = new_id("grpcdrain")
    c = Call(gen, s, drone)
    assert c.next().WhichOneof("body") == "session"
    for seq in range(1, 21):
        c.telemetry(seq)
    c.until(lambda g: max_ack(g) >= 20)      # all in: the drain has nothing left to take
    s.stop()
    rest, code, details = c.rest()
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
    assert "shutting down" in details
    c.close()
    assert s.seqs(drone) == list(range(1, 21)) if s.alive() else True


def test_not_http2_and_oversized_messages(server_factory, gen):
    s = gateway(server_factory, "--max-message", "1024")
    # HTTP/1.1 on the gRPC port: the connection is closed, the gateway lives
    import socket
    host, port = s.grpc_target.split(":")
    with socket.create_connection((host, int(port)), timeout=T(10)) as sk:
        sk.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = sk.recv(4096)
            if not chunk:
                break
            data += chunk
    s.check_alive()
    drone = new_id("grpcbig")
    c = Call(gen, s, drone)
    assert c.next().WhichOneof("body") == "session"
    c.telemetry(1, status="x" * 2000)                       # over --max-message
    rest, code, details = c.rest()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
    c.close()
    s.check_alive()


def test_buf_lint_passes_and_catches_a_bad_proto(tmp_path):
    """buf lint (npm @bufbuild/buf, pinned in tests/buf/) on proto/ with
    proto/buf.yaml (STANDARD minus the names the contract fixes); a copy with
    a camelCase field must fail it."""
    npm_tool("buf", "@bufbuild/buf")
    buf = str(ROOT / "tests/buf/node_modules/.bin/buf")
    r = subprocess.run([buf, "lint"], cwd=ROOT / "proto", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "proto"
    import shutil
    shutil.copytree(ROOT / "proto", bad)
    f = bad / "dronegate/v1/telemetry.proto"
    f.write_text(f.read_text().replace("int64 timestamp_ms = 2;", "int64 timestampMs = 2;"))
    r = subprocess.run([buf, "lint"], cwd=bad, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "timestampMs" in r.stdout + r.stderr, r.stdout + r.stderr


def test_kill9_loses_nothing_acked(server_factory, gen):
    s = gateway(server_factory)
    drone = new_id("grpckill")
    c = Call(gen, s, drone)
    assert c.next().WhichOneof("body") == "session"
    for seq in range(1, 201):
        c.telemetry(seq)
    acked = max_ack(c.until(lambda g: max_ack(g) >= 100))
    s.kill9()
    c.rest()
    c.close()
    s.restart()
    stored = set(s.seqs(drone))
    missing = set(range(1, acked + 1)) - stored
    assert not missing, f"acked up to {acked}, missing {sorted(missing)[:10]}"


def _h2_frame(ftype, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") + payload


def _hpack_literal(name, value):
    """HPACK literal header field without indexing, new name, no Huffman."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def test_messages_and_half_close_in_the_first_read(server_factory, gen):
    """A client whose request headers, messages and END_STREAM arrive in one
    read, while the gateway still looks the drone's last seq up in the
    store (its first connection): the input waits for the session message,
    then every message is taken in. Through nginx this once ended the call
    with INTERNAL "the stream ended inside a message" and stored nothing. The
    bytes are written by hand (HTTP/2 preface, SETTINGS, HEADERS with HPACK
    literals, two DATA frames, the last with END_STREAM) in one sendall, so
    they are in the gateway's first read."""
    import socket
    pb, _ = gen
    s = gateway(server_factory)
    drone = new_id("grpcfirst")
    body = b""
    for seq in (1, 2):
        m = pb.DroneMessage()
        m.telemetry.seq = seq
        m.telemetry.position.latitude, m.telemetry.position.longitude, m.telemetry.position.altitude = 1.0, 2.0, 3.0
        raw = m.SerializeToString()
        body += b"\x00" + len(raw).to_bytes(4, "big") + raw
    hdrs = b"".join(_hpack_literal(k, v) for k, v in (
        (":method", "POST"), (":scheme", "http"), (":path", "/dronegate.v1.Telemetry/Stream"),
        (":authority", s.grpc_target), ("content-type", "application/grpc"), ("te", "trailers"),
        ("drone-id", drone)))
    half = len(body) // 2
    wire = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0, b"") +
            _h2_frame(1, 0x4, 1, hdrs) + _h2_frame(0, 0, 1, body[:half]) + _h2_frame(0, 0x1, 1, body[half:]))
    host, port = s.grpc_target.split(":")
    with socket.create_connection((host, int(port)), timeout=T(10)) as sk:
        sk.sendall(wire)
        # 404 until the gateway has taken the connection in (a loaded machine)
        wait_until(lambda: s.get(f"/api/v1/drones/{drone}").status == 200 and s.seqs(drone) == [1, 2],
                   T(15), "both messages stored")
    s.check_alive()
