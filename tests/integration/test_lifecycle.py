"""Process life: drain on SIGTERM/SIGINT, kill -9 durability, restarts,
configuration through the environment, start-up failures, the null store,
--fsync, /readyz."""
import asyncio
import fcntl
import http.client
import signal
import socket
import sqlite3
import subprocess
import sys
import termios

import pytest
import websockets

from rawws import Closed, RawWS
from dg import BIN, RST_HINT, T, Drone, metric, minimal, new_id, run, run_cli, wait_until


async def reader(d):
    """Record every server message until the connection ends."""
    try:
        while True:
            await d.recv(3600)
    except websockets.ConnectionClosed:
        return d.ws.close_code


async def _flushed(d):
    """Wait until every byte sent so far is in the server's receive queue:
    asyncio's buffer is empty AND the server's TCP acknowledged it all
    (SIOCOUTQ = unacknowledged bytes). Handed to our kernel is not enough:
    on a loaded machine loopback packets can wait in the softirq backlog
    after send() returned, and a drain that starts then never saw them
    (CI failure: 20 messages 'sent before SIGTERM' were still in flight)."""
    sock = d.ws.transport.get_extra_info("socket")
    buf = bytearray(4)
    while True:
        if not d.ws.transport.get_write_buffer_size():
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
            if int.from_bytes(buf, sys.byteorder) == 0:
                return
        await asyncio.sleep(0.001)


def db_seqs(db, drone):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=T(10))
    try:
        return {r[0] for r in con.execute("SELECT seq FROM telemetry WHERE drone_id=?", (drone,))}
    finally:
        con.close()


# ---------------------------------------------------------------- drain

# Once flaky (about one run in three: 1006 instead of 1001, last acks lost):
# the server sent FIN right after its close frame, and python-websockets,
# still sending, failed the connection. FIN now waits for the drone's close
# frame (dg_conn_ops_t.on_linger); test_server_close_waits_for_the_drone_close_frame
# guards that deterministically.
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_drain_acks_everything_then_1001(server_factory, sig):
    s = server_factory()
    drone = new_id("drain")
    state = {}

    async def go():
        d = await Drone.connect(s, drone)
        rd = asyncio.create_task(reader(d))
        seq = 0
        signalled = False
        try:
            while seq < 100000:
                seq += 1
                await d.send(minimal(seq))
                await asyncio.sleep(0)              # let the reader run
                if not signalled and d.acks and d.acks[-1] >= 50:
                    # "sent" = handed to the kernel: wait until asyncio's buffer is empty
                    await asyncio.wait_for(_flushed(d), T(5))
                    state["sent_before_signal"] = seq
                    s.send_signal(sig)
                    signalled = True
                if signalled and seq >= state["sent_before_signal"] + 200:
                    break                           # keep streaming a little during the drain
        except websockets.ConnectionClosed:
            pass
        code = await asyncio.wait_for(rd, T(15))
        state["code"] = code
        state["max_ack"] = d.max_ack
        state["sent"] = seq
    run(go())
    assert "sent_before_signal" in state, "never got an ack >= 50 to send the signal after"
    rc = s.wait_exit()
    stored = db_seqs(s.db, drone)
    before = state["sent_before_signal"]
    lost = [i for i in range(1, before + 1) if i not in stored]
    assert not lost, f"{len(lost)} messages sent before {sig.name} were not stored (first {lost[:10]}); {state}"
    hint = "" if state["code"] == 1001 else " (everything was stored, so acks were lost on the way)" + RST_HINT
    assert state["max_ack"] is not None and state["max_ack"] >= before, \
        f"sent seq 1..{before} before {sig.name} but the last ack was {state['max_ack']}; {state}{hint}"
    assert state["code"] == 1001, f"drone closed with {state['code']}, expected 1001 on {sig.name}; {state}{hint}"
    assert rc == 0, f"exit code {rc} after {sig.name}\n{s.tail()}"
    s.check_clean(whole=True)
    # everything acked is in the database
    have = db_seqs(s.db, drone)
    missing = [i for i in range(1, state["max_ack"] + 1) if i not in have]
    assert not missing, f"acked but not stored: {missing[:10]}"
    s.restart()
    assert s.seqs(drone)[:state["max_ack"]] == list(range(1, state["max_ack"] + 1))


def test_server_close_waits_for_the_drone_close_frame(server_factory):
    """After its close frame the server keeps its write side open until the
    drone's close frame comes back (RFC 6455 7.1.1: the server closes TCP
    once both close frames have been sent): a FIN right after the close
    frame made python-websockets, still sending, fail with 1006. Made
    deterministic with one worker: a second connection for the same drone
    makes the server close the first with 4409; after that close frame, a
    /healthz round trip on the same worker proves the server went on; only
    then is the first socket checked for a FIN (none may be there), and
    after the drone's close frame the FIN must come."""
    import select
    s = server_factory(workers=1)
    drone = new_id("linger")
    a = RawWS.open(s.port, f"/ws/{drone}")
    try:
        b = RawWS.open(s.port, f"/ws/{drone}")
        f, _ = a.recv_until_close(T(10), echo=False)
        assert f.close_code == 4409, f"expected 4409, got {f.close_code}"
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=T(5))
        c.request("GET", "/healthz")
        assert c.getresponse().status == 200
        c.close()
        r, _, _ = select.select([a.sock], [], [], 0)
        if r:
            peek = a.sock.recv(1, socket.MSG_PEEK)
            assert peek != b"", "the server sent FIN before the drone's close frame (peers fail with 1006)"
        a.sock.sendall(rawws_close_frame(4409))
        a.expect_eof(T(10))
        b.shutdown()
    finally:
        a.shutdown()


def rawws_close_frame(code):
    from rawws import OP_CLOSE, build_frame, close_payload
    return build_frame(OP_CLOSE, close_payload(code))


def test_drain_refuses_new_connections_and_readyz(server_factory):
    """While a drain waits for a commit (the database is locked by another
    connection, so the drone's last message cannot be stored), the server is
    alive and draining: /readyz says so (503 "draining", not the store's
    503), the listener is closed, an upgrade on a connection opened before
    the signal gets 503, and only when the store is back is the message
    acked and the drone closed with 1001."""
    # one worker: a worker with nothing in flight finishes its drain at once
    # and closes its connections; the busy one is the drone's
    s = server_factory(args=["--shutdown-timeout", "60000", "--ack-interval", "0"], workers=1)
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=T(5))

    def readyz():
        c.request("GET", "/readyz")
        r = c.getresponse()
        return r.status, r.read()

    assert readyz() == (200, b"ready\n")
    early = RawWS(s.port, timeout=T(10))       # an HTTP keep-alive connection from before the drain
    early.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert early.read_http_response().status == 200
    state = {}

    async def go():
        d = await Drone.connect(s, new_id("dr"))
        await d.send(minimal(1))
        await d.wait_ack(1)
        con = lock_db(s.db)
        try:
            await d.send(minimal(2))
            wait_until(lambda: metric(s.metrics(), "dronegate_store_errors_total") >= 1, T(15),
                       "the commit of seq 2 failing")
            s.send_signal(signal.SIGTERM)
            # the drain started and is busy (seq 2 in flight): /readyz says draining
            st = wait_until(lambda: (lambda r: r if r[0] == 503 and r[1] == b"draining\n" else None)(readyz()),
                            T(10), "/readyz 503 draining")
            state["readyz"] = st
            assert s.alive(), "the server exited while seq 2 was not stored"
            # no new connection: the listener is closed ...
            wait_until(lambda: refused(s.port), T(10), "the listener closed during the drain")
            # ... and an upgrade on a connection accepted before gets 503
            r = early.handshake(f"/ws/{new_id('late')}", ["dronegate.json.v1"])
            assert r.status == 503, f"upgrade during the drain answered {r.status}"
            assert s.alive()
            assert d.max_ack == 1
        finally:
            con.rollback()
            con.close()
        code = await d.wait_closed(T(20))
        assert d.max_ack == 2, f"seq 2 stored after the drain waited, but acked {d.max_ack}"
        assert code == 1001, code
    try:
        run(go(), T(60))
    finally:
        c.close()
        early.shutdown()
    assert s.wait_exit() == 0
    s.check_clean(whole=True)


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=T(2)).close()
        return False
    except ConnectionRefusedError:
        return True


def lock_db(path):
    con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    return con


def test_sigterm_idle_server_exits_0_quickly(server_factory):
    s = server_factory()
    s.stop(timeout=T(5))


# ---------------------------------------------------------------- kill -9

def test_kill9_acked_data_survives(server_factory):
    s = server_factory(args=["--max-msg-rate", "0"])   # it streams as fast as it can
    drone = new_id("k9")
    state = {}

    async def go():
        d = await Drone.connect(s, drone)
        rd = asyncio.create_task(reader(d))
        seq = 0
        killed = False
        try:
            while seq < 200000:
                batch = [minimal(seq + i + 1) for i in range(10)]
                seq += 10
                await d.send(batch)
                if not killed and d.acks and d.acks[-1] >= 300:
                    s.kill9()
                    killed = True
                await asyncio.sleep(0)
        except (websockets.ConnectionClosed, ConnectionError):
            pass
        await asyncio.wait_for(rd, T(10))
        state["max_ack"] = d.max_ack
        state["sent"] = seq
    run(go())
    max_ack = state["max_ack"]
    assert max_ack and max_ack >= 300
    have = db_seqs(s.db, drone)
    missing = [i for i in range(1, max_ack + 1) if i not in have]
    assert not missing, f"{len(missing)} acked seqs lost after kill -9 (first {missing[:10]}), last ack {max_ack}"
    s.restart()
    got = s.seqs(drone)
    assert got[:max_ack] == list(range(1, max_ack + 1)), "after restart, REST history misses acked seqs"
    assert got == sorted(set(got)), "duplicate seqs after restart"
    # redelivery of everything after the crash is idempotent
    resend_to = state["sent"]

    async def resend():
        d = await Drone.connect(s, drone)
        for i in range(1, resend_to + 1, 100):
            await d.send([minimal(j) for j in range(i, min(i + 100, resend_to + 1))])
        await d.wait_ack(resend_to, T(20))
        await d.close()
    run(resend())
    assert s.seqs(drone) == list(range(1, resend_to + 1))


# ---------------------------------------------------------------- restarts

def test_data_and_registry_survive_restart(server_factory):
    s = server_factory()
    drone = new_id("rs")

    async def go(first, last):
        d = await Drone.connect(s, drone)
        await d.send([minimal(i, status=f"s{i}") for i in range(first, last + 1)])
        await d.wait_ack(last)
        await d.close()
    run(go(1, 50))
    s.stop()
    s.restart()
    assert s.seqs(drone) == list(range(1, 51))
    st = s.get_json(f"/api/v1/drones/{drone}")
    assert st["seq"] == 50 and st["status"] == "s50" and st["online"] is False, st
    assert drone in {d["id"] for d in s.drones()}
    run(go(40, 60))      # overlap with what is stored: stored once
    assert s.seqs(drone) == list(range(1, 61))


# ---------------------------------------------------------------- configuration

def test_configuration_through_environment(server_factory):
    s = server_factory(config_via_env=True, secret="env-secret",
                       env={"DRONEGATE_IDLE_TIMEOUT": "400", "DRONEGATE_PING_INTERVAL": "100000"})
    drone = new_id("env")
    assert "auth is OFF" not in s.stderr()

    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as ei:
            await Drone.connect(s, drone, token="0" * 64)
        assert ei.value.status_code == 401
        d = await Drone.connect(s, drone)          # token from the secret
        await d.send(minimal(1))
        await d.wait_ack(1)
        code = await d.wait_closed(T(5))           # DRONEGATE_IDLE_TIMEOUT=400, no pings
        assert code == 1001, code
    run(go())
    assert s.db.exists(), "DRONEGATE_STORE was not used"
    assert db_seqs(s.db, drone) == {1}


def test_port_in_use_fails_with_a_clear_message(server_factory):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        s = server_factory(start=False)
        p = s.spawn(port=busy.getsockname()[1])
        try:
            rc = p.wait(timeout=T(10))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError("dronegate kept running although its port is in use")
        assert rc != 0
        err = s.stderr()
        assert str(busy.getsockname()[1]) in err or "in use" in err.lower(), f"unclear message:\n{err}"
        s.check_clean(whole=True)
    finally:
        busy.close()


@pytest.mark.parametrize("args,word", [(["--no-such-flag"], "no-such-flag"), (["--workers", "abc"], "workers"),
                                       (["--store", "bogus://x"], "bogus")])
def test_bad_configuration_fails(tmp_path, args, word):
    p = run_cli([BIN, "--listen", "127.0.0.1:0", "--store", f"sqlite:{tmp_path}/x.db"] + args)
    assert p.returncode != 0, f"{args}: exit 0"
    assert word in p.stderr, f"{args}: the error does not name the problem:\n{p.stderr}"


def test_null_store(server_factory):
    s = server_factory(store="null:")
    assert "null store" in s.stderr(), f"no 'null store' warning at start:\n{s.tail()}"
    assert s.get("/readyz").status == 200

    async def go():
        d = await Drone.connect(s, new_id("null"))
        await d.send([minimal(i) for i in range(1, 101)])
        await d.send(minimal(101, latitude=1000))
        await d.wait_ack(100)
        await d.wait_errors(1)
        assert d.errors[0]["field"] == "latitude"
        await d.close()
    run(go())
    assert not s.db.exists(), "the null store created a database file"


def test_fsync_option(server_factory):
    s = server_factory(args=["--fsync"])
    drone = new_id("fs")

    async def go():
        d = await Drone.connect(s, drone)
        for i in range(1, 21):
            await d.send(minimal(i))
        await d.wait_ack(20)
        await d.close()
    run(go())
    s.kill9()
    assert db_seqs(s.db, drone) == set(range(1, 21))


def test_readyz_and_healthz(server_factory):
    s = server_factory()
    assert s.get("/readyz").status == 200
    assert s.get("/healthz").status == 200
    assert s.get("/readyz", method="HEAD").status in (200, 405)
