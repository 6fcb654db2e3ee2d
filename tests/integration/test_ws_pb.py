"""dronegate.pb.v1 WebSocket subprotocol: binary DroneMessage frames in,
ServerMessage frames out, on the same validation/ack path as JSON. Stubs are
generated at test time with protoc (python3-protobuf) into a tmp dir."""
import subprocess
import sys

import pytest
import websockets

from dg import T, new_id, run

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    out = tmp_path_factory.mktemp("pbgen")
    subprocess.run(["protoc", f"-I{ROOT}/proto", f"--python_out={out}",
                    "dronegate/v1/telemetry.proto"], check=True)
    sys.path.insert(0, str(out))
    from dronegate.v1 import telemetry_pb2
    return telemetry_pb2


def test_pb_stream_acks_errors(server_factory, pb):
    s = server_factory()
    drone = new_id("pb")

    async def go():
        async with websockets.connect(f"{s.ws_base}/ws/{drone}", subprotocols=["dronegate.pb.v1"],
                                      open_timeout=T(10)) as ws:
            assert ws.subprotocol == "dronegate.pb.v1"
            first = pb.ServerMessage.FromString(await ws.recv())
            assert first.WhichOneof("body") == "session"
            assert not first.session.HasField("last_seq")
            for seq in range(1, 6):
                m = pb.DroneMessage()
                m.telemetry.seq = seq
                m.telemetry.position.latitude = 47.0
                m.telemetry.position.longitude = 8.0
                m.telemetry.position.altitude = 400.0
                m.telemetry.speed = 3.5
                await ws.send(m.SerializeToString())
            bad = pb.DroneMessage()
            bad.telemetry.seq = 6
            bad.telemetry.position.latitude = 100.0
            await ws.send(bad.SerializeToString())
            await ws.send(b"\xff\xff\xff")
            acked, errors = 0, []
            while acked < 5 or len(errors) < 2:
                r = pb.ServerMessage.FromString(await ws.recv())
                kind = r.WhichOneof("body")
                if kind == "ack":
                    acked = max(acked, r.ack.seq)
                elif kind == "error":
                    errors.append(r.error)
            codes = sorted(e.code for e in errors)
            assert codes == ["invalid_field", "invalid_protobuf"]
            assert [e.field for e in errors if e.code == "invalid_field"] == ["latitude"]
    run(go())
