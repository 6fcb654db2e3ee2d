"""Connection-layer hardening (issue 8: §1.1, §1.3, §1.4, §1.8).

Raw sockets throughout: the point is what a hostile or careless peer can do
that a well-behaved client library would not (not reading, pipelining,
one huge frame of bad messages).
"""
import json
import os
import socket
import time

import pytest

from dg import T, Drone, new_id, run, telem, wait_until
from rawws import OP_CLOSE, OP_TEXT, Closed, RawWS


def _proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])      # utime + stime (fields 14, 15)


# ---- §1.1: one frame of many invalid messages ----

def test_frame_of_invalid_messages_does_not_crash(srv):
    # ~1 MB frame of 87,000 objects that each fail validation: before the
    # fix every one got an error reply (~10 MB), the 8 MiB output cap closed
    # the connection from inside the decoder's callback and the reassembled
    # message was freed while still being decoded (use-after-free; SIGSEGV in
    # the plain build). Fragmented, so the message is reassembled in the
    # session's own buffer (the buffer that was freed).
    ws = RawWS.open(srv.port, f"/ws/{new_id()}", timeout=T(30))
    n = 87_000
    body = ("[" + ",".join(['{"seq":"a"}'] * n) + "]").encode()
    assert len(body) < 1048576
    half = len(body) // 2
    ws.send_frame(OP_TEXT, body[:half], fin=False)
    ws.send_frame(0, body[half:], fin=True)
    # not reading: the replies pile up (the old binary died here). The
    # frame is processed before the next request on that worker is served.
    r = srv.get("/healthz", timeout=T(30))
    assert r.status == 200
    srv.check_alive()
    # the replies of one frame are bounded: first N errors, then too_many_errors
    errors, summary = 0, None
    while True:
        try:
            f = ws.recv_frame(timeout=T(10))
        except (Closed, TimeoutError):
            break
        if f.opcode == OP_CLOSE:
            break
        if f.opcode != OP_TEXT:
            continue
        m = json.loads(f.payload)
        if m.get("type") != "error":
            continue
        if m.get("code") == "too_many_errors":
            summary = m
            break
        errors += 1
    assert summary is not None, f"no too_many_errors summary after {errors} errors"
    assert 0 < errors <= 1000
    assert summary["suppressed"] == n - errors, summary
    # the connection is still usable
    ws.text(json.dumps(telem(seq=1)))
    while True:
        f = ws.recv_frame(timeout=T(10))
        if f.opcode != OP_TEXT:
            continue
        m = json.loads(f.payload)
        if m.get("type") == "ack":
            assert m["seq"] == 1
            break
    srv.check_alive()



# ---- §1.3: pipelined HTTP requests from a client that does not read ----

def _read_responses(sock, count, timeout):
    """Read `count` HTTP/1.1 responses (Content-Length bodies) in order."""
    sock.settimeout(timeout)
    buf = bytearray()
    out = []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            d = sock.recv(1 << 20)
            assert d, f"server closed after {len(out)} of {count} responses"
            buf += d
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
        while len(rest) < n:
            d = sock.recv(1 << 20)
            assert d, f"server closed in the body of response {len(out) + 1}"
            rest += d
        out.append((status, rest[:n]))
        buf = bytearray(rest[n:])
    return out


def test_pipelined_requests_without_reading_stay_bounded(server_factory, tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    size = 256 * 1024
    files = {}
    for name in "abcd":
        files[name] = (name.encode() * 64 + bytes(range(256))) * (size // 320) + name.encode() * (size % 320)
        (web / f"{name}.bin").write_bytes(files[name])
    # one worker: the /healthz below is answered only after the pipelined
    # connection's input (which arrived first) has been processed
    s = server_factory(args=["--web-root", str(web)], workers=1)
    pid = s.proc.pid
    rss0 = _proc_status(pid, "VmRSS")
    n = 400                                    # 100 MiB of responses
    names = ["abcd"[i % 4] for i in range(n)]
    req = b"".join(f"GET /{x}.bin HTTP/1.1\r\nHost: x\r\n\r\n".encode() for x in names)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=T(30))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    # accepted and served once first, so that its input is read in an
    # earlier loop iteration than the /healthz connection below
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _read_responses(sock, 1, T(10))[0][0] == 200
    sock.sendall(req)                          # ~14 KB: one read on the server
    assert s.get("/healthz").status == 200
    grown = (_proc_status(pid, "VmRSS") - rss0) // 1024
    # before the fix all 400 responses were queued: +100 MiB (and more)
    assert grown < 32, f"server RSS grew by {grown} MiB for a pipelining client that does not read"
    got = _read_responses(sock, n, T(60))
    sock.close()
    for i, (status, body) in enumerate(got):
        assert status == 200, (i, status)
        assert body == files[names[i]], f"response {i + 1} is not {names[i]}.bin"
    s.check_alive()


# ---- session message (contract; issue 15 §1.1) ----

async def _store_n(srv, drone, n):
    d = await Drone.connect(srv, drone)
    for seq in range(1, n + 1):
        await d.send(telem(seq))
    await d.wait_ack(n)
    await d.close()
    return d


def test_session_message_first_last_seq_null_then_stored(server_factory):
    s = server_factory()
    drone = new_id("sess")

    async def go():
        d = await _store_n(s, drone, 5)
        assert d.session == {"type": "session", "last_seq": None}
        d2 = await Drone.connect(s, drone)
        assert d2.last_seq == 5, d2.session
        await d2.close()
    run(go())
    # after a restart the registry does not know it: the store is asked
    if "cannot tell a drone's last stored seq" in s.stderr():
        pytest.skip("this build's store has no last_seq op yet")
    s.stop()
    s.restart()

    async def again():
        d = await Drone.connect(s, drone)
        assert d.last_seq == 5, d.session
        await d.send(telem(6))
        await d.wait_ack(6)
        await d.close()
        d = await Drone.connect(s, drone)
        assert d.last_seq == 6, d.session
        await d.close()
        other = await Drone.connect(s, new_id("sess"))
        assert other.last_seq is None, other.session
        await other.close()
    run(again())


# ---- §1.8: resent seq, HTTP keep-alive idle timeout, fd limit ----

def test_resent_seq_on_same_connection_is_acked_again(srv):
    async def go():
        d = await Drone.connect(srv, new_id("reack"))
        for seq in (1, 2, 3):
            await d.send(telem(seq))
        await d.wait_ack(3)
        n = len(d.acks)
        await d.send(telem(2))              # a redelivery (same seq, same content)
        await d.wait(lambda: len(d.acks) > n, T(10), "an ack for the resent seq 2")
        assert d.acks[-1] >= 2
        await d.close()
    run(go())


def test_http_keepalive_idle_timeout_is_its_own(server_factory):
    # drones keep --idle-timeout (60 s); an idle keep-alive HTTP connection
    # is closed after --http-idle-timeout
    s = server_factory(args=["--http-idle-timeout", "300"])
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=T(10))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.monotonic()
    got = b""
    while True:                             # the response, then EOF when the server closes
        d = sock.recv(4096)
        if not d:
            break
        got += d
    assert got.startswith(b"HTTP/1.1 200"), got[:100]
    assert time.monotonic() - t0 < 30, "keep-alive connection held for the drone idle timeout"
    sock.close()


def test_max_connections_above_fd_limit_is_clamped(server_factory, tmp_path, monkeypatch):
    import dg
    wrapper = tmp_path / "limited.sh"
    wrapper.write_text(f"#!/bin/sh\nulimit -n 128 || exit 99\nexec {dg.BIN} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setattr(dg, "BIN", str(wrapper))
    s = server_factory(args=["--max-connections", "10000"], workers=1)
    assert "is above what the open-file limit" in s.stderr()
    socks = []
    try:
        for _ in range(150):                # more than the server has descriptors for
            c = socket.create_connection(("127.0.0.1", s.port), timeout=T(10))
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(c)
        statuses = []
        for c in socks:                     # every one is answered: 200, or 503 over the limit
            try:
                head = c.recv(64)
            except ConnectionResetError:    # 503 + close with our request unread: a reset may win
                statuses.append(503)
                continue
            assert head.startswith(b"HTTP/1.1 "), head
            statuses.append(int(head.split()[1]))
        assert set(statuses) <= {200, 503} and 503 in statuses, statuses
    finally:
        for c in socks:
            c.close()
    # the server sees the 150 closes as it gets to them (a loaded machine):
    # until then the limit still answers 503
    wait_until(lambda: s.get("/healthz").status == 200, T(10), "/healthz 200 once the clients closed")
    assert "accept:" not in s.stderr()


def test_emfile_does_not_busy_loop(server_factory):
    import resource
    s = server_factory(args=["--max-connections", "10000"], workers=1)
    resource.prlimit(s.proc.pid, resource.RLIMIT_NOFILE, (128, 128))   # now fds run out first
    socks = []
    try:
        for _ in range(150):
            socks.append(socket.create_connection(("127.0.0.1", s.port), timeout=T(10)))
        wait_until(lambda: "accept:" in s.stderr(), T(10), "the EMFILE warning")
        # the backlog still holds connections: the old loop retried accept()
        # (and logged) nonstop; now it retries every 100 ms, warning once
    finally:
        for c in socks:
            c.close()
    wait_until(lambda: s.get("/healthz").status == 200, T(10), "the server to accept again")
    err = s.stderr()
    assert err.count("accept:") <= 2, f"log flooded: {err.count('accept:')} accept warnings"
