"""MAVLink over UDP (--mavlink-listen, issue 11) with a vehicle we did not
write: tests/mavlink/vehicle.mjs, built on npm node-mavlink + mavlink-mappings
(their framing, CRC and common.xml definitions; pinned in
tests/mavlink/package-lock.json, installed by tests/mavlink/install.sh).

What is checked: rows merged from HEARTBEAT / SYS_STATUS / BATTERY_STATUS /
VFR_HUD / GLOBAL_POSITION_INT reach the store (REST) and the live stream;
online at the first heartbeat, offline after the timeout (live stream); the
gateway's 1 Hz GCS heartbeat reaches the vehicle; bad CRC, truncated and
unknown packets are counted and store nothing; a flood of garbage and of
spoofed vehicles leaves memory and the vehicle table bounded; the codec's
CRC_EXTRA and base lengths equal node-mavlink's.
"""
import asyncio
import json
import os
import queue
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import websockets

from dg import T, metric, npm_tool, run, wait_until
from test_live import live, next_event

ROOT = Path(__file__).resolve().parents[2]
MAVDIR = ROOT / "tests" / "mavlink"


@pytest.fixture(scope="module")
def node():
    return npm_tool("mavlink", "node-mavlink")


class Vehicle:
    """One node-mavlink vehicle process: cmd() sends a line and waits for its
    {"done"}; every packet the gateway sent it is kept in .recv."""

    def __init__(self, node, port, sysid=7, v1=False, ws=False, key=None):
        args = [node, str(MAVDIR / "vehicle.mjs"), "--port", str(port), "--sysid", str(sysid)]
        if key:
            args += ["--key", key]
        if v1:
            args.append("--v1")
        if ws:
            args.append("--ws")
        self.packets = []       # --ws: the packets the vehicle would have sent
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, bufsize=1, cwd=MAVDIR)
        self.q = queue.Queue()
        self.recv = []
        self.lock = threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()
        self._wait(lambda o: o.get("ready"), T(20), "vehicle ready")

    def _reader(self):
        for line in self.p.stdout:
            o = json.loads(line)
            if "recv" in o:
                with self.lock:
                    self.recv.append(o)
            elif "packet" in o:
                with self.lock:
                    self.packets.append(bytes.fromhex(o["packet"]))
            else:
                self.q.put(o)
        self.q.put({"eof": True})

    def _wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            try:
                o = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"vehicle: timed out waiting for {what}; stderr: {self.p.stderr.read()[-2000:] if self.p.poll() is not None else ''}")
            if o.get("eof"):
                raise AssertionError(f"vehicle exited: {self.p.stderr.read()[-2000:]}")
            if pred(o):
                return o

    def cmd(self, line, timeout=None):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        self._wait(lambda o: o.get("done") == line, timeout or T(30), line)

    def take_packets(self):
        with self.lock:
            p, self.packets = self.packets, []
            return p

    def received(self, pred):
        with self.lock:
            return [o for o in self.recv if pred(o)]

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.flush()
                self.p.wait(timeout=5)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()


def mav_server(server_factory, *extra):
    s = server_factory(args=["--mavlink-listen", "127.0.0.1:0", *extra])
    m = wait_until(lambda: re.search(r"MAVLink listening on udp \S+ \(port (\d+)\)", s.stderr()), T(10),
                   "the MAVLink listening line")
    s.mav_port = int(m.group(1))
    return s


def packets(s, result):
    return metric(s.metrics(), "dronegate_mavlink_packets_total", result=result) or 0


def rows_of(s, drone):
    """The drone's stored rows; [] while the gateway does not know it yet."""
    r = s.get(f"/api/v1/drones/{drone}/telemetry?limit=100000")
    return r.json()["telemetry"] if r.status == 200 else []


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


@pytest.mark.plain_only
def test_codec_table_matches_node_mavlink(node):
    """CRC_EXTRA and base payload length of every message src/mavlink knows
    equal node-mavlink's generated common.xml definitions."""
    out = subprocess.run([node, str(MAVDIR / "layout.mjs")], capture_output=True, text=True, timeout=60, cwd=MAVDIR)
    assert out.returncode == 0, out.stderr
    theirs = json.loads(out.stdout)
    src = (ROOT / "src" / "mavlink" / "mavlink.c").read_text()
    ours = {int(i): (int(e), int(n)) for i, e, n in re.findall(r"\{\s*(\d+),\s*(\d+),\s*(\d+)\s*\}", src.split("known[] = {")[1].split("};")[0])}
    assert set(ours) == {int(k) for k in theirs}
    for k, d in theirs.items():
        assert ours[int(k)] == (d["crc_extra"], d["base_len"]), (d["name"], ours[int(k)], d)


def test_vehicle_rows_live_gcs_heartbeat_offline(server_factory, node):
    s = mav_server(server_factory, "--mavlink-offline-timeout", "1000")
    v = Vehicle(node, s.mav_port, sysid=7)
    v1 = Vehicle(node, s.mav_port, sysid=8, v1=True)

    async def go():
        w = await live(s)
        try:
            v.cmd("hb")
            await next_event(w, lambda e: e["type"] == "online" and e["drone_id"] == "mav-7", T(5))
            v.cmd("sys 77")
            v.cmd("vfr 5 90 1.5")
            v.cmd("pos 47.397742 8.545594 488.25")
            ev = await next_event(w, lambda e: e["type"] == "telemetry" and e["drone_id"] == "mav-7", T(5))
            assert ev["latitude"] == pytest.approx(47.397742) and ev["altitude"] == pytest.approx(488.25)
            assert ev["battery"] == 77 and ev["speed"] == 5 and ev["heading"] == 90 and ev["climb"] == 1.5
            assert ev["status"] == "airborne" and "seq" not in ev
            # several packets in one datagram: HEARTBEAT + SYS_STATUS(55) + GLOBAL_POSITION_INT
            v.cmd("batch 47.5 8.6 500")
            ev = await next_event(w, lambda e: e["type"] == "telemetry" and e["drone_id"] == "mav-7", T(5))
            assert ev["battery"] == 55 and ev["latitude"] == pytest.approx(47.5)
            # MAVLink v1 on input; no VFR_HUD: speed/climb from vx/vy/vz, heading from hdg
            v1.cmd("hb 0 3")
            v1.cmd("bat 42")
            v1.cmd("pos -33.5 151.25 20 271.5")
            ev = await next_event(w, lambda e: e["type"] == "telemetry" and e["drone_id"] == "mav-8", T(5))
            assert ev["speed"] == 5 and ev["climb"] == 0.5 and ev["heading"] == 271.5
            assert ev["battery"] == 42 and ev["status"] == "standby"
            # the gateway's own GCS heartbeat (sysid 255, MAV_TYPE_GCS)
            wait_until(lambda: v.received(lambda o: o["recv"] == "HEARTBEAT" and o["sysid"] == 255 and o["type"] == 6),
                       T(5), "the GCS heartbeat at the vehicle")
            # silence: offline after the timeout, published on the live stream
            await next_event(w, lambda e: e["type"] == "offline" and e["drone_id"] == "mav-7", T(10))
        finally:
            await w.close()
    try:
        run(go())
    finally:
        v.close()
        v1.close()
    rows = wait_until(lambda: len(rows_of(s, "mav-7")) >= 2 and rows_of(s, "mav-7"), T(10), "rows of mav-7 stored")
    assert [r["battery"] for r in rows] == [77, 55]
    assert rows[0]["latitude"] == pytest.approx(47.397742) and rows[0]["status"] == "airborne"
    assert all("seq" not in r for r in rows)
    st = s.get_json("/api/v1/drones/mav-7")
    assert st["online"] is False
    m = s.metrics()
    assert metric(m, "dronegate_messages_received_total", transport="udp", format="mavlink") == 3


def test_bad_crc_truncated_unknown_counted_nothing_stored(server_factory, node):
    s = mav_server(server_factory)
    v = Vehicle(node, s.mav_port, sysid=9)
    try:
        v.cmd("hb")
        v.cmd("pos 10 20 30")
        wait_until(lambda: len(rows_of(s, "mav-9")) == 1, T(10), "the first row")
        for line, result in (("badcrc 11 21 31", "bad_crc"), ("trunc 12 22 32", "truncated"),
                             ("unknown", "unknown_message")):
            before = packets(s, result)
            v.cmd(line)
            wait_until(lambda: packets(s, result) > before, T(5), f"{result} counted")
        # a sysid that never sent a HEARTBEAT is not a vehicle
        other = Vehicle(node, s.mav_port, sysid=10)
        try:
            before = packets(s, "no_vehicle")
            other.cmd("pos 1 2 3")
            wait_until(lambda: packets(s, "no_vehicle") > before, T(5), "no_vehicle counted")
        finally:
            other.close()
        v.cmd("pos 13 23 33")    # the stream goes on after the bad packets
        rows = wait_until(lambda: len(rows_of(s, "mav-9")) >= 2 and rows_of(s, "mav-9"), T(10), "the second row")
        assert [r["latitude"] for r in rows] == [10, 13]
        assert s.get("/api/v1/drones/mav-10").status == 404
    finally:
        v.close()


def test_garbage_and_spoofed_vehicles_bounded(server_factory, node):
    s = mav_server(server_factory, "--mavlink-max-vehicles", "16", "--mavlink-offline-timeout", "2000")
    v = Vehicle(node, s.mav_port, sysid=3)
    try:
        v.cmd("garbage 50")
        wait_until(lambda: packets(s, "garbage") >= 1, T(5), "garbage counted")
        rss0 = rss_kb(s.proc.pid)
        v.cmd("garbage 3000", timeout=T(60))
        v.cmd("spoof 200", timeout=T(60))
        wait_until(lambda: packets(s, "vehicles_full") >= 1, T(5), "a full vehicle table")
        assert metric(s.metrics(), "dronegate_mavlink_vehicles") <= 16
        grown = rss_kb(s.proc.pid) - rss0
        limit = 40000 if os.environ.get("DRONEGATE_ASAN") else 8000
        assert grown < limit, f"RSS grew by {grown} KiB over 3000 garbage datagrams and 200 spoofed vehicles"
        # the spoofed vehicles go silent: offline, the table has room again
        wait_until(lambda: metric(s.metrics(), "dronegate_mavlink_vehicles") == 0, T(10), "spoofed vehicles offline")
        v.cmd("hb")
        v.cmd("pos 1.5 2.5 3.5")
        wait_until(lambda: len(rows_of(s, "mav-3")) == 1, T(10), "the real vehicle's row")
    finally:
        v.close()


def post_command(s, drone, body):
    r = s.get(f"/api/v1/drones/{drone}/commands", method="POST", body=json.dumps(body).encode(),
              headers={"Content-Type": "application/json"})
    return r


def command_status(s, cid):
    return s.get_json(f"/api/v1/commands/{cid}")


def test_commands_retransmitted_until_command_ack(server_factory, node):
    s = mav_server(server_factory)
    v = Vehicle(node, s.mav_port, sysid=11)
    try:
        assert post_command(s, "mav-11", {"name": "land"}).status == 404      # no such drone yet
        v.cmd("hb")
        wait_until(lambda: s.get("/api/v1/drones/mav-11").status == 200, T(5), "mav-11 known")
        # goto -> COMMAND_INT MAV_CMD_DO_REPOSITION, answered ACCEPTED -> done
        r = post_command(s, "mav-11", {"name": "goto", "args": {"lat": 47.1, "lon": 8.2, "alt": 500}})
        assert r.status == 202, r.body
        cid = r.json()["id"]
        wait_until(lambda: command_status(s, cid)["status"] == "done", T(5), "goto done")
        ci = v.received(lambda o: o["recv"] == "COMMAND_INT")
        assert ci and ci[0]["command"] == 192 and ci[0]["_param5"] == 471000000 and ci[0]["_param6"] == 82000000
        assert ci[0]["_param7"] == 500 and ci[0]["frame"] == 0 and ci[0]["targetSystem"] == 11
        # unanswered: retransmitted with the confirmation counter, then answered
        v.cmd("ackmode none")
        cid = post_command(s, "mav-11", {"name": "return_to_home"}).json()["id"]
        rtl = lambda: v.received(lambda o: o["recv"] == "COMMAND_LONG" and o["command"] == 20)
        wait_until(lambda: len(rtl()) >= 2, T(5), "a retransmission")
        assert [o["confirmation"] for o in rtl()[:2]] == [0, 1]
        assert command_status(s, cid)["status"] == "sent"
        v.cmd("ackmode 0")
        wait_until(lambda: command_status(s, cid)["status"] == "done", T(5), "return_to_home done")
        # MAV_RESULT_DENIED -> rejected; IN_PROGRESS -> accepted
        v.cmd("ackmode 2")
        cid = post_command(s, "mav-11", {"name": "arm"}).json()["id"]
        c = wait_until(lambda: (lambda c: c["status"] == "rejected" and c)(command_status(s, cid)), T(5), "arm rejected")
        assert "DENIED" in c.get("message", ""), c
        assert v.received(lambda o: o["recv"] == "COMMAND_LONG" and o["command"] == 400 and o["_param1"] == 1)
        v.cmd("ackmode 5")
        cid = post_command(s, "mav-11", {"name": "disarm"}).json()["id"]
        wait_until(lambda: command_status(s, cid)["status"] == "accepted", T(5), "disarm accepted (in progress)")
        # a name MAVLink has no command for: rejected at once, nothing sent
        cid = post_command(s, "mav-11", {"name": "flip"}).json()["id"]
        c = wait_until(lambda: (lambda c: c["status"] == "rejected" and c)(command_status(s, cid)), T(5), "flip rejected")
        assert "not a MAVLink command" in c.get("message", "")
    finally:
        v.close()
    m = s.metrics()
    assert metric(m, "dronegate_commands_total", status="done") == 2


def test_mavlink2_websocket_subprotocol(server_factory, node):
    """mavlink2 on /ws/{drone_id}: the token as for JSON, binary frames of
    several packets, the same rows, commands down and COMMAND_ACK back; a
    text frame closes with 1003."""
    s = server_factory(secret="mav-secret")
    v = Vehicle(node, 0, sysid=21, ws=True)

    async def go():
        uri = f"{s.ws_base}/ws/uav-21"
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await websockets.connect(uri, subprotocols=["mavlink2"], open_timeout=T(10),
                                     extra_headers={"Authorization": "Bearer " + s.token("other")})
        assert e.value.status_code == 401
        ws = await websockets.connect(uri, subprotocols=["mavlink2"], open_timeout=T(10), ping_interval=None,
                                      extra_headers={"Authorization": "Bearer " + s.token("uav-21")})
        assert ws.subprotocol == "mavlink2"
        hello = await asyncio.wait_for(ws.recv(), T(5))
        assert isinstance(hello, bytes)
        v.cmd("feed " + hello.hex())
        wait_until(lambda: v.received(lambda o: o["recv"] == "HEARTBEAT" and o["sysid"] == 255), T(5), "GCS heartbeat")
        for line in ("hb", "sys 66", "vfr 3 45 -1", "pos 46.5 7.25 400"):
            v.cmd(line)
        pk = v.take_packets()
        assert len(pk) == 4
        await ws.send(b"".join(pk))                      # four packets in one frame
        rows = wait_until(lambda: rows_of(s, "uav-21"), T(10), "the row of uav-21")
        assert rows[0]["battery"] == 66 and rows[0]["speed"] == 3 and rows[0]["heading"] == 45
        assert rows[0]["climb"] == -1 and rows[0]["latitude"] == 46.5 and rows[0]["status"] == "airborne"
        # a command goes down as COMMAND_LONG; the vehicle's COMMAND_ACK comes back up
        r = post_command(s, "uav-21", {"name": "land"})
        assert r.status == 202, r.body
        cid = r.json()["id"]
        frame = await asyncio.wait_for(ws.recv(), T(5))
        v.cmd("feed " + frame.hex())
        cl = wait_until(lambda: v.received(lambda o: o["recv"] == "COMMAND_LONG"), T(5), "COMMAND_LONG")
        assert cl[0]["command"] == 21 and cl[0]["targetSystem"] == 21
        ack = wait_until(lambda: v.take_packets(), T(5), "the vehicle's COMMAND_ACK")
        await ws.send(b"".join(ack))
        wait_until(lambda: command_status(s, cid)["status"] == "done", T(5), "land done")
        # bad CRC in a frame: counted, the connection stays
        before = packets(s, "bad_crc")
        v.cmd("badcrc 1 2 3")
        await ws.send(b"".join(v.take_packets()))
        wait_until(lambda: packets(s, "bad_crc") > before, T(5), "bad CRC counted")
        await ws.send("not mavlink")
        await asyncio.wait_for(ws.wait_closed(), T(5))
        assert ws.close_code == 1003
    try:
        run(go())
    finally:
        v.close()
    assert len(rows_of(s, "uav-21")) == 1
    assert metric(s.metrics(), "dronegate_messages_received_total", transport="websocket", format="mavlink") == 1


KEY_A = "6b" * 32
KEY_B = "0123456789abcdef" * 4


def test_signing_required_per_vehicle_keys(server_factory, node, tmp_path):
    """MAVLink 2 signing with node-mavlink's signer: a key file with a key
    for sysid 12 and one for every other; unsigned, badly signed and
    replayed packets are dropped and counted; what the gateway sends is
    signed (node-mavlink checks it); commands work signed both ways."""
    keys = tmp_path / "mavkeys"
    keys.write_text(f"# sysid key\n12 {KEY_A}\n* {KEY_B}\n")
    s = mav_server(server_factory, "--mavlink-signing-key", f"file:{keys}")
    v = Vehicle(node, s.mav_port, sysid=12, key=KEY_A)
    w = Vehicle(node, s.mav_port, sysid=13, key=KEY_A)     # 13 must use KEY_B
    try:
        v.cmd("hb")
        v.cmd("pos 1 2 3")
        wait_until(lambda: len(rows_of(s, "mav-12")) == 1, T(10), "the first signed row")
        hb = wait_until(lambda: v.received(lambda o: o["recv"] == "HEARTBEAT" and o["sysid"] == 255), T(5), "GCS heartbeat")
        assert hb[0]["signed"] and hb[0]["sigok"], hb[0]
        for line, result in (("replay", "replayed"), ("badsig pos 4 5 6", "bad_signature"),
                             ("nosign pos 7 8 9", "unsigned")):
            before = packets(s, result)
            v.cmd(line)
            wait_until(lambda: packets(s, result) > before, T(5), f"{result} counted")
        before = packets(s, "bad_signature")
        w.cmd("hb")
        wait_until(lambda: packets(s, "bad_signature") > before, T(5), "sysid 13 with the wrong key")
        # a signed command, a signed COMMAND_ACK
        r = post_command(s, "mav-12", {"name": "return_to_home"})
        assert r.status == 202, r.body
        wait_until(lambda: command_status(s, r.json()["id"])["status"] == "done", T(5), "return_to_home done")
        cl = v.received(lambda o: o["recv"] == "COMMAND_LONG")
        assert cl and cl[0]["signed"] and cl[0]["sigok"]
        v.cmd("pos 10 11 12")
        rows = wait_until(lambda: len(rows_of(s, "mav-12")) >= 2 and rows_of(s, "mav-12"), T(10), "the second row")
        assert [r["latitude"] for r in rows] == [1, 10]
        assert s.get("/api/v1/drones/mav-13").status == 404
    finally:
        v.close()
        w.close()


def test_forward_to_ground_station_and_back(server_factory, node):
    """--mavlink-forward: a known vehicle's datagrams reach the ground
    station as they were sent; the ground station's datagrams reach the
    vehicle (and its COMMAND_ACK comes back); strangers are not relayed."""
    gcs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gcs.bind(("127.0.0.1", 0))
    gcs.settimeout(T(5))
    gcs2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # a second ground station (repeated flag)
    gcs2.bind(("127.0.0.1", 0))
    gcs2.settimeout(T(5))
    s = mav_server(server_factory, "--mavlink-forward", f"udp:127.0.0.1:{gcs.getsockname()[1]}",
                   "--mavlink-forward", f"udp:127.0.0.1:{gcs2.getsockname()[1]}")
    v = Vehicle(node, s.mav_port, sysid=31)
    g = Vehicle(node, 0, sysid=250, ws=True)     # writes the ground station's packets
    try:
        v.cmd("hb")
        v.cmd("pos 5 6 7")
        got = []
        while not any(d[0] == 0xFD and d[7] == 33 for d in got):
            d, relay = gcs.recvfrom(65536)
            assert d[5] == 31, d.hex()                   # only the vehicle's packets
            got.append(d)
        assert any(d[7] == 0 for d in got)               # its HEARTBEAT too
        d2, _ = gcs2.recvfrom(65536)                     # the second ground station gets them too
        assert d2 == got[0]
        g.cmd("cmdlong 20 31")
        gcs.sendto(g.take_packets()[0], relay)           # answer to where the relay came from
        cl = wait_until(lambda: v.received(lambda o: o["recv"] == "COMMAND_LONG" and o["sysid"] == 250), T(5),
                        "the ground station's COMMAND_LONG at the vehicle")
        assert cl[0]["command"] == 20
        while True:                                      # the vehicle's COMMAND_ACK back at the ground station
            d, _ = gcs.recvfrom(65536)
            if d[7] == 77:
                break
        # a stranger cannot use the relay
        before = metric(s.metrics(), "dronegate_mavlink_forwarded_total", direction="to_vehicle")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as x:
            g.cmd("cmdlong 21 31")
            x.sendto(g.take_packets()[0], relay)
        g.cmd("cmdlong 22 31")                           # then the ground station, on the same socket
        gcs.sendto(g.take_packets()[0], relay)
        wait_until(lambda: v.received(lambda o: o["recv"] == "COMMAND_LONG" and o["command"] == 22), T(5),
                   "the ground station's second command")
        assert metric(s.metrics(), "dronegate_mavlink_forwarded_total", direction="to_vehicle") == before + 1
        assert not v.received(lambda o: o["recv"] == "COMMAND_LONG" and o["command"] == 21)
    finally:
        v.close()
        g.close()
        gcs.close()
        gcs2.close()


@pytest.mark.plain_only
def test_sim_transport_mavlink(server_factory):
    """dronegate-sim --transport mavlink: 20 vehicles at 20 Hz for 1 s; the
    gateway takes every datagram (loopback, far below its rate) and the
    sim's report, read from /metrics, says so."""
    from dg import SIM, clean_env
    s = mav_server(server_factory)
    p = subprocess.run([SIM, "--transport", "mavlink", "--mavlink-port", str(s.mav_port), "--url", s.ws_base,
                        "--drones", "20", "--rate", "20", "--duration", "1", "--json", "--quiet"],
                       capture_output=True, text=True, timeout=T(30), env=clean_env())
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["sent"] >= 300 and rep["gateway_rows"] == rep["sent"] and rep["stored"] == rep["sent"], rep
    assert len([d for d in s.drones() if d["id"].startswith("mav-")]) == 20


@pytest.mark.plain_only
@pytest.mark.parametrize("args,msg", [
    (["--mavlink-listen", "127.0.0.1:0", "--mavlink-signing-key", "abc"], "64 hex digits"),
    (["--mavlink-forward", "udp:127.0.0.1:9"], "--mavlink-forward needs --mavlink-listen"),
    (["--mavlink-listen", "127.0.0.1:0", "--mavlink-ids", "0=x"], "--mavlink-ids must be SYSID=DRONE_ID"),
    (["--mavlink-listen", "127.0.0.1:0", "--mavlink-forward", "tcp:127.0.0.1:9"], "udp:HOST:PORT"),
])
def test_bad_mavlink_flags_refused_at_start(server_factory, args, msg):
    s = server_factory(start=False, args=args)
    s.spawn()
    assert s.wait_exit(T(15)) != 0
    assert msg in s.stderr(), s.tail()
