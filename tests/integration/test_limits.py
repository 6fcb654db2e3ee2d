"""Timeouts and limits: idle timeout + pings, handshake timeout, max
connections, per-drone message rate (1008)."""
import asyncio
import socket
import time

import pytest
import websockets

from dg import RST_HINT, T, Drone, metric, minimal, new_id, run, wait_until, dumps
from rawws import OP_PING, OP_PONG, OP_TEXT, Closed, RawWS, build_frame

IDLE_MS, PING_MS = 600, 150


@pytest.fixture
def idle_srv(server_factory):
    return server_factory(args=["--idle-timeout", str(IDLE_MS), "--ping-interval", str(PING_MS)])


# ---------------------------------------------------------------- idle timeout

def test_silent_client_closed_1001_after_idle_timeout(idle_srv):
    with RawWS.open(idle_srv.port, f"/ws/{new_id('idle')}", timeout=T(5)) as ws:
        t0 = time.monotonic()
        f, before = ws.recv_until_close(T(5) + IDLE_MS / 1000)
        elapsed = time.monotonic() - t0
        assert f.close_code == 1001, f"closed with {f.close_code} {f.close_reason!r}, expected 1001"
        assert elapsed >= IDLE_MS / 1000 * 0.8, f"closed after {elapsed:.2f}s, before the {IDLE_MS} ms idle timeout"
        assert any(b.opcode == OP_PING for b in before), f"no ping from the server before the idle close: {before}"
        ws.expect_eof()


def test_client_answering_pings_stays_connected(idle_srv):
    # raw client: answers every ping, sends nothing else, for 3 idle timeouts
    with RawWS.open(idle_srv.port, f"/ws/{new_id('pong')}", timeout=T(5)) as ws:
        deadline = time.monotonic() + 3 * IDLE_MS / 1000
        pings = 0
        while time.monotonic() < deadline:
            try:
                f = ws.recv_frame(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            assert f.opcode == OP_PING, f"expected only pings, got {f!r} (close {f.payload[:2]!r})"
            pings += 1
            ws.send_frame(OP_PONG, f.payload)
        assert pings >= 2, f"only {pings} pings in {3 * IDLE_MS} ms with --ping-interval {PING_MS}"
        ws.text(dumps(minimal(1)))
        while True:
            f = ws.recv_frame(T(5))
            if f.opcode == OP_PING:
                ws.send_frame(OP_PONG, f.payload)
                continue
            assert f.opcode == OP_TEXT and b'"ack"' in f.payload, f
            break


def test_websockets_client_stays_connected(idle_srv):
    # python-websockets answers pings by itself
    async def go():
        d = await Drone.connect(idle_srv, new_id("wsc"))
        await asyncio.sleep(3 * IDLE_MS / 1000)     # staying idle is the point of the test
        assert d.ws.open, f"closed {d.ws.close_code} while answering pings"
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(go())


def test_client_sending_data_stays_connected(idle_srv):
    # a drone that sends telemetry but ignores pings is not idle
    with RawWS.open(idle_srv.port, f"/ws/{new_id('busy')}", timeout=T(5)) as ws:
        t_end = time.monotonic() + 3 * IDLE_MS / 1000
        seq = 0
        while time.monotonic() < t_end:
            seq += 1
            ws.text(dumps(minimal(seq)))
            try:
                while True:
                    f = ws.recv_frame(0.1)
                    assert f.opcode in (OP_TEXT, OP_PING), f"unexpected {f!r} (close code {f.payload[:2]!r})"
            except TimeoutError:
                pass
        seq += 1
        ws.text(dumps(minimal(seq)))
        while True:
            f = ws.recv_frame(T(5))
            assert f.opcode in (OP_TEXT, OP_PING), f"unexpected {f!r}"
            if f.opcode == OP_TEXT and f'"seq":{seq}'.encode() in f.payload:
                break


# ---------------------------------------------------------------- handshake timeout

HS_MS = 300


@pytest.fixture
def hs_srv(server_factory):
    return server_factory(args=["--handshake-timeout", str(HS_MS)])


def wait_closed_by_server(sock, timeout, feed=None):
    """Seconds until the server ends the connection; feed() is called every 50 ms."""
    t0 = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - t0 < timeout:
        try:
            d = sock.recv(4096)
            if not d:
                return time.monotonic() - t0
            # an HTTP error answer (e.g. 408) is fine; keep reading until EOF
        except socket.timeout:
            if feed:
                try:
                    feed()
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - t0
        except ConnectionResetError:
            return time.monotonic() - t0
    raise AssertionError(f"connection still open after {timeout:.1f}s (--handshake-timeout {HS_MS})")


def test_silent_tcp_connection_closed(hs_srv):
    with socket.create_connection(("127.0.0.1", hs_srv.port), timeout=T(5)) as s:
        took = wait_closed_by_server(s, T(3))
        assert took >= HS_MS / 1000 * 0.8, f"closed after {took:.2f}s, earlier than the timeout"


def test_partial_request_closed(hs_srv):
    with socket.create_connection(("127.0.0.1", hs_srv.port), timeout=T(5)) as s:
        s.sendall(b"GET /ws/slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        wait_closed_by_server(s, T(3))


def test_slowloris_closed(hs_srv):
    # one byte every 50 ms never completes the request within the timeout
    req = iter(b"GET /ws/loris HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 1000)
    with socket.create_connection(("127.0.0.1", hs_srv.port), timeout=T(5)) as s:
        took = wait_closed_by_server(s, T(3), feed=lambda: s.sendall(bytes([next(req)])))
        assert took < T(3)


def test_open_websocket_not_subject_to_handshake_timeout(hs_srv):
    async def go():
        d = await Drone.connect(hs_srv, new_id("hs"))
        await asyncio.sleep(3 * HS_MS / 1000)     # longer than the handshake timeout
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(go())


def test_handshake_timeout_metric(hs_srv):
    before = metric(hs_srv.metrics(), "dronegate_connections_rejected_total", reason="handshake_timeout") or 0
    with socket.create_connection(("127.0.0.1", hs_srv.port), timeout=T(5)) as s:
        wait_closed_by_server(s, T(3))
    wait_until(lambda: (metric(hs_srv.metrics(), "dronegate_connections_rejected_total",
                               reason="handshake_timeout") or 0) == before + 1, T(5),
               'connections_rejected_total{reason="handshake_timeout"} +1')


# ---------------------------------------------------------------- max connections

MAXC = 3


def refused(port, drone):
    """True when a new upgrade attempt is refused (503 or closed without answer)."""
    try:
        with RawWS(port, timeout=T(5)) as ws:
            r = ws.handshake(f"/ws/{drone}", ["dronegate.json.v1"])
            if r.status == 101:
                return False
            assert r.status == 503, f"connection beyond --max-connections answered {r.status}, expected 503"
            return True
    except (Closed, ConnectionResetError, BrokenPipeError):
        return True


def test_max_connections(server_factory):
    s = server_factory(args=["--max-connections", str(MAXC)])

    async def go():
        drones = [await Drone.connect(s, new_id("mc")) for _ in range(MAXC)]
        for i, d in enumerate(drones):
            await d.send(minimal(1))
            await d.wait_ack(1)
        assert await asyncio.to_thread(refused, s.port, new_id("extra")), \
            f"connection {MAXC + 1} accepted with --max-connections {MAXC}"
        # the existing ones still work
        await drones[0].send(minimal(2))
        await drones[0].wait_ack(2)
        await drones[1].close()
        # a slot is free again (the server notices the close asynchronously)
        extra = new_id("late")
        await asyncio.to_thread(wait_until, lambda: not refused(s.port, extra), T(5), "a free slot after a close")
        for d in (drones[0], drones[2]):
            await d.close()
    run(go())
    wait_until(lambda: (metric(s.metrics(), "dronegate_connections_rejected_total", reason="max_connections") or 0) >= 1,
               T(5), 'connections_rejected_total{reason="max_connections"} >= 1')


# ---------------------------------------------------------------- rate limit

RATE = 50


@pytest.fixture
def rate_srv(server_factory):
    return server_factory(args=["--max-msg-rate", str(RATE)])


def test_rate_limit_closes_1008(rate_srv):
    async def go():
        d = await Drone.connect(rate_srv, new_id("rate"))
        try:
            for i in range(1, 6 * RATE + 1):
                await d.send(minimal(i))
        except websockets.ConnectionClosed:
            pass
        code = await d.wait_closed(T(10))
        assert code == 1008, f"closed with {code} {d.ws.close_reason!r} after {6 * RATE} messages at once " \
                             f"with --max-msg-rate {RATE}, expected 1008" + (RST_HINT if code == 1006 else "")
    run(go())


def test_rate_limit_raw_close_frame(rate_srv):
    with RawWS.open(rate_srv.port, f"/ws/{new_id('rraw')}", timeout=T(5)) as ws:
        ws.send(b"".join(build_frame(OP_TEXT, dumps(minimal(i))) for i in range(1, 6 * RATE + 1)))
        ws.expect_close(1008, timeout=T(10))


def test_burst_within_limit_is_fine(rate_srv):
    async def one(drone):
        d = await Drone.connect(rate_srv, drone)
        for i in range(1, int(RATE * 0.8) + 1):
            await d.send(minimal(i))
        await d.wait_ack(int(RATE * 0.8))
        assert d.ws.open
        await d.close()

    async def go():
        # two drones at 80 % of the burst each: the limit is per drone
        await asyncio.gather(one(new_id("ok1")), one(new_id("ok2")))
    run(go())
