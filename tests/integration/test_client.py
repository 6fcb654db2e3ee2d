"""libdronegate (the drone-side C client, issue 13) against the real gateway.

The drone is examples/drone.c built on the library (build/examples/drone, or
drone-asan with DRONEGATE_ASAN=1; mk/client.mk). It talks to the gateway
through LinkProxy, a loopback TCP proxy written here that can drop every
connection (RST) or stall them (the sockets stay open, nothing moves), and
that follows the gateway to its new port after a kill -9 and restart.

The promise under test: every sample the application handed to
dg_client_send() is stored exactly once (all timestamps present, each seq
once), whatever happens to the link and the gateway in between.
"""
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

import dg
from dg import ASAN, T, clean_env, free_port, new_id, wait_until

DRONE = os.environ.get("DRONEGATE_DRONE") or str(
    Path(dg.BIN).resolve().parent / "examples" / ("drone-asan" if ASAN else "drone"))


@pytest.fixture(autouse=True)
def _need_drone():
    if not os.access(DRONE, os.X_OK):
        pytest.fail(f"{DRONE} is missing: build it with `make {os.path.relpath(DRONE, dg.REPO)}` "
                    "(mk/client.mk; `make integration` builds it)", pytrace=False)


class LinkProxy:
    """Loopback TCP proxy drone -> gateway. upstream may change at any time
    (new connections go there); drop_all() resets every open connection;
    stall_all() stops forwarding on every open connection without closing it."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.ls.settimeout(0.1)
        self.port = self.ls.getsockname()[1]
        self.pairs = []
        self.accepted = 0
        self.held = 0           # drone -> gateway bytes that arrived on a stalled connection
        self.lock = threading.Lock()
        self.closed = False
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
            except OSError:
                c.close()          # gateway down: the drone sees a dropped connection
                continue
            pair = {"s": (c, u), "go": threading.Event(), "dead": False}
            pair["go"].set()
            with self.lock:
                self.pairs.append(pair)
                self.accepted += 1
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b, pair), daemon=True).start()

    def _pump(self, src, dst, pair):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not pair["go"].is_set() and src is pair["s"][0]:
                    self.held += len(data)
                while not pair["go"].wait(0.2):   # stalled: hold the bytes
                    if pair["dead"]:
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._kill(pair)

    @staticmethod
    def _kill(pair):
        if pair["dead"]:
            return
        pair["dead"] = True
        for s in pair["s"]:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()
            except OSError:
                pass

    def drop_all(self):
        """RST every open connection; returns how many were live."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        live = [p for p in pairs if not p["dead"]]
        for p in pairs:
            self._kill(p)
        return len(live)

    def stall_all(self):
        with self.lock:
            live = [p for p in self.pairs if not p["dead"]]
        for p in live:
            p["go"].clear()
        return len(live)

    def close(self):
        self.closed = True
        self.drop_all()
        self.ls.close()


@pytest.fixture
def proxy_factory():
    made = []

    def make(upstream):
        p = LinkProxy(upstream)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def stored_count(db, drone):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM telemetry WHERE drone_id=?", (drone,)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def start_drone(tmp_path, port, drone, *args, log=None):
    log = log or drone
    errf = open(tmp_path / f"{log}.stderr", "wb")
    p = subprocess.Popen([DRONE, "--url", f"ws://127.0.0.1:{port}", "--id", drone, *map(str, args)],
                         stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL, env=clean_env())
    p.errlog = tmp_path / f"{log}.stderr"
    return p


def finish_drone(p, timeout):
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        raise AssertionError(f"drone did not finish within {timeout:.0f}s\n{p.errlog.read_text()[-3000:]}")
    err = p.errlog.read_text(errors="replace")
    for pat in dg.SANITIZER_PATTERNS:
        assert pat not in err, f"sanitizer report from the drone:\n{err[-4000:]}"
    lines = out.decode().strip().splitlines()
    assert lines, f"drone printed no stats (exit {p.returncode})\n{err[-3000:]}"
    return p.returncode, json.loads(lines[-1]), err


def finish_stored_once(srv, p, drone, ts0, n, min_sessions):
    """Let drone process p flush and exit: it must have
    given n samples, all acked, over at least min_sessions sessions, and
    every one is stored exactly once (finish_drone kills a drone that hangs).
    Returns (stats, stderr)."""
    rc, st, err = finish_drone(p, T(60))
    assert rc == 0 and st["left"] == 0, f"drone exit {rc}, stats {st}\n{err[-3000:]}"
    assert st["given"] == n and st["sessions"] >= min_sessions, st
    check_exactly_once(srv, drone, ts0, n)
    return st, err


def check_exactly_once(srv, drone, ts0, n, first_seq=1):
    rows = srv.history(drone, limit=n + 1000)
    seqs = [r["seq"] for r in rows]
    ts = sorted(dg.to_ms(r["timestamp"]) for r in rows)
    missing = sorted(set(range(ts0, ts0 + n)) - set(ts))
    assert len(rows) == n and not missing, (
        f"{len(rows)} rows stored, {n} given; {len(missing)} missing (first: {missing[:10]}); "
        f"{len(ts) - len(set(ts))} duplicated timestamps")
    assert len(set(seqs)) == n, "a seq stored twice"
    assert sorted(seqs) == list(range(first_seq, first_seq + n)), "seqs are not contiguous"
    # in order: seq order is timestamp order (resends kept the order)
    by_seq = sorted(rows, key=lambda r: r["seq"])
    assert [dg.to_ms(r["timestamp"]) for r in by_seq] == list(range(ts0, ts0 + n))


def test_every_sample_stored_once_through_kills_drops_and_stalls(server_factory, proxy_factory, tmp_path):
    srv = server_factory()
    px = proxy_factory(srv.port)
    drone = new_id("lib")
    n, rate = 6000, 400
    ts0 = int(time.time() * 1000) - 3_600_000
    p = start_drone(tmp_path, px.port, drone, "--count", n, "--rate", rate, "--ts0", ts0,
                    "--ping-ms", 300, "--backoff-min-ms", 50, "--backoff-max-ms", 400,
                    "--batch", 32, "--flush-ms", int(T(40) * 1000))
    try:
        progress = lambda k: wait_until(lambda: stored_count(srv.db, drone) >= k, T(20), f"{k} rows stored")

        progress(400)
        srv.kill9()                                  # 1. the gateway dies (kill -9) ...
        srv.restart()                                # ... and comes back on another port
        px.upstream = srv.port
        base = stored_count(srv.db, drone)
        progress(base + 400)
        assert px.drop_all() >= 1                    # 2. the link drops (RST)
        base = stored_count(srv.db, drone)
        progress(base + 400)
        before = px.accepted
        assert px.stall_all() >= 1                   # 3. the link stalls: only the ping timeout sees it
        wait_until(lambda: px.accepted > before, T(10), "the drone to reconnect after the stall")
        base = stored_count(srv.db, drone)
        progress(base + 400)
        srv.kill9()                                  # 4. another kill -9 while samples flow
        srv.restart()
        px.upstream = srv.port
    except BaseException:
        p.kill()
        p.wait()
        raise
    st, _ = finish_stored_once(srv, p, drone, ts0, n, 5)   # start, restart, drop, stall, restart
    assert st["refused_full"] == 0 and st["dropped_oldest"] == 0, st
    assert st["resent"] > 0 or st["skipped_by_session"] > 0, st
    print("stats:", st)


@pytest.mark.parametrize("mode", ["loop", "thread"])
def test_restarted_drone_process_continues_after_last_seq(server_factory, tmp_path, mode):
    """A new drone process (memory queue: its counter starts at 1) learns the
    gateway's last_seq from the session message and renumbers its unsent
    samples after it, instead of having them rejected as reused seqs. Both
    ways of driving the client: the example's poll loop and --thread."""
    srv = server_factory()
    drone = new_id("reb")
    ts0 = int(time.time() * 1000) - 7_200_000
    for run in range(2):
        p = start_drone(tmp_path, srv.port, drone, "--count", 300, "--rate", 0,
                        "--ts0", ts0 + run * 300, "--flush-ms", int(T(20) * 1000),
                        *(["--thread"] if mode == "thread" else []))
        rc, st, err = finish_drone(p, T(30))
        assert rc == 0 and st["left"] == 0 and st["server_errors"] == 0, f"run {run}: {st}\n{err[-2000:]}"
        assert st["next_seq"] == 301 + run * 300, st
    check_exactly_once(srv, drone, ts0, 600)


@pytest.mark.parametrize("policy", ["refuse", "drop"])
def test_full_queue_policy_is_counted(tmp_path, policy):
    """No gateway at all: the queue (bound 10) fills; refuse-newest refuses
    the rest, drop-oldest takes them and drops the oldest; both counted."""
    port = free_port()   # nothing listens there
    p = start_drone(tmp_path, port, new_id("full"), "--count", 50, "--rate", 2000, "--queue-max", 10,
                    "--policy", policy, "--flush-ms", 200, "--backoff-min-ms", 20)
    rc, st, err = finish_drone(p, T(20))
    assert rc == 3 and st["left"] == 10, f"exit {rc}, {st}"   # 3: samples left unacked
    assert st["connects"] >= 1 and st["sessions"] == 0
    if policy == "refuse":
        assert st["given"] == 10 and st["refused_full"] == 40 and st["dropped_oldest"] == 0, st
    else:
        assert st["given"] == 50 and st["dropped_oldest"] == 40 and st["refused_full"] == 0, st
    assert "connection refused" in err.lower(), err[-2000:]


def test_command_round_trip(server_factory, tmp_path):
    srv = server_factory()
    drone = new_id("cmdc")
    command_round_trip(srv, start_drone(tmp_path, srv.port, drone, "--count", 0, "--rate", 20, "--flush-ms", 2000),
                       drone)


def command_round_trip(srv, p, drone):
    """A running drone process p (examples/drone) gets return_to_home
    (accepted, its args printed) and an unknown command (rejected); SIGTERM
    flushes, every sample stored. Shared with test_client_grpc.py."""
    try:
        wait_until(lambda: any(d["id"] == drone and d.get("online") for d in srv.drones()), T(10), "drone online")
        r = srv.get(f"/api/v1/drones/{drone}/commands", method="POST",
                    body=json.dumps({"name": "return_to_home", "args": {"alt": 50}}),
                    headers={"Content-Type": "application/json"})
        assert r.status == 202, r
        cid = r.json()["id"]
        wait_until(lambda: srv.get_json(f"/api/v1/commands/{cid}")["status"] == "accepted", T(10), "accepted")
        r = srv.get(f"/api/v1/drones/{drone}/commands", method="POST",
                    body=json.dumps({"name": "barrel_roll"}), headers={"Content-Type": "application/json"})
        cid2 = r.json()["id"]
        wait_until(lambda: srv.get_json(f"/api/v1/commands/{cid2}")["status"] == "rejected", T(10), "rejected")
        p.send_signal(signal.SIGTERM)
        rc, st, err = finish_drone(p, T(20))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 0 and st["left"] == 0, f"{st}\n{err[-2000:]}"
    assert re.search(rf'command {cid} return_to_home \{{"alt": ?50\}}', err), err[-2000:]
    assert stored_count(srv.db, drone) == st["given"] > 0


def test_make_install_and_pkg_config_build(server_factory, tmp_path):
    """`make install-client` (part of `make install`) into a DESTDIR; the
    example builds against the installed library with
    `pkg-config --cflags --libs dronegate` and runs on the shared library."""
    root = tmp_path / "root"
    p = subprocess.run(["make", "--no-print-directory", "-C", str(dg.REPO), "install-client",
                        f"DESTDIR={root}", "PREFIX=/usr"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"make install-client failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    lib = root / "usr" / "lib"
    for f in ("libdronegate.a", "libdronegate.so", "libdronegate.so.0", "pkgconfig/dronegate.pc"):
        assert (lib / f).exists(), f"{f} not installed"
    assert (root / "usr/include/dronegate/client.h").exists()
    env = dict(clean_env(), PKG_CONFIG_PATH=str(lib / "pkgconfig"), PKG_CONFIG_SYSROOT_DIR=str(root))
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "dronegate"], capture_output=True, text=True, env=env)
    assert pc.returncode == 0, f"pkg-config (apt-get install pkg-config): {pc.stderr}"
    assert "-ldronegate" in pc.stdout and str(root) in pc.stdout, pc.stdout
    exe = tmp_path / "drone-pc"
    cc = subprocess.run(["cc", "-o", str(exe), str(dg.REPO / "examples/drone.c"), *pc.stdout.split(), "-lm"],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    srv = server_factory()
    drone = new_id("pc")
    r = subprocess.run([str(exe), "--url", srv.ws_base, "--id", drone, "--count", "50", "--rate", "0", "--quiet"],
                       capture_output=True, text=True, timeout=T(30),
                       env=dict(clean_env(), LD_LIBRARY_PATH=str(lib)))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["acked"] == 50
    ldd = subprocess.run(["ldd", str(exe)], capture_output=True, text=True,
                         env=dict(clean_env(), LD_LIBRARY_PATH=str(lib))).stdout
    assert f"{lib}/libdronegate.so.0" in ldd, ldd
    assert stored_count(srv.db, drone) == 50
    # the minimal example too (thread mode), built the same way
    mexe = tmp_path / "minimal-pc"
    cc = subprocess.run(["cc", "-o", str(mexe), str(dg.REPO / "examples/minimal.c"), *pc.stdout.split()],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    mdrone = new_id("min")
    r = subprocess.run([str(mexe), srv.ws_base, mdrone, "5"], capture_output=True, text=True, timeout=T(30),
                       env=dict(clean_env(), LD_LIBRARY_PATH=str(lib)))
    assert r.returncode == 0 and "5 samples sent, 0 not acknowledged" in r.stdout, (r.stdout, r.stderr)
    assert stored_count(srv.db, mdrone) == 5


def test_rate_limit_close_slows_the_client_down(server_factory, tmp_path):
    """A gateway with --max-msg-rate 1000 closes a drone sending 4000/s with
    1008; the library halves its rate after each 1008, resends what was not
    acked, and ends with everything stored exactly once."""
    srv = server_factory(args=["--max-msg-rate", "1000"])
    drone = new_id("rate")
    ts0 = int(time.time() * 1000) - 900_000
    p = start_drone(tmp_path, srv.port, drone, "--count", 3000, "--rate", 0, "--max-rate", 4000,
                    "--ts0", ts0, "--backoff-min-ms", 20, "--backoff-max-ms", 200,
                    "--flush-ms", int(T(30) * 1000))
    rc, st, err = finish_drone(p, T(45))
    assert rc == 0 and st["left"] == 0, f"{st}\n{err[-2000:]}"
    check_exactly_once(srv, drone, ts0, 3000)
    assert "1008" in err and "rate_limited" in err, err[-2000:]
    assert 2 <= st["sessions"] <= 6, st     # 4000 -> 2000 -> 1000 -> 500: a few closes, not a storm


def test_drone_crash_with_file_queue_loses_nothing(server_factory, proxy_factory, tmp_path):
    """The drone process is killed -9 while the link is stalled (a backlog of
    unacked samples in its queue) and started again on the same queue file:
    it replays the file, resends what was not acked, continues the seq
    counter, and every sample the first process gave to send is stored once."""
    srv = server_factory()
    px = proxy_factory(srv.port)
    drone = new_id("fq")
    qf = tmp_path / "drone.queue"
    n = 3000
    ts0 = int(time.time() * 1000) - 1_800_000
    a = start_drone(tmp_path, px.port, drone, "--queue-file", qf, "--count", n, "--rate", 500,
                    "--ts0", ts0, "--ping-ms", 20000, "--flush-ms", 1000)
    try:
        wait_until(lambda: stored_count(srv.db, drone) >= 500, T(20), "500 rows stored")
        assert px.stall_all() >= 1
        size = qf.stat().st_size
        wait_until(lambda: qf.stat().st_size >= size + 200 * 104, T(10), "200 more samples queued in the file")
        a.kill()                                     # the drone process crashes
        a.wait()
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    px.drop_all()
    b = start_drone(tmp_path, px.port, drone, "--queue-file", qf, "--resume", "--count", n,
                    "--rate", 0, "--ts0", ts0, "--flush-ms", int(T(20) * 1000), log=drone + "-b")
    rc, st, err = finish_drone(b, T(40))
    assert rc != 2, err
    assert rc == 0 and st["left"] == 0, f"{st}\n{err[-2000:]}"
    check_exactly_once(srv, drone, ts0, n)
    assert st["replayed"] >= 200, st


def test_token_auth(server_factory, tmp_path):
    """With --auth-secret the library's bearer token gets the drone in; a wrong
    token is refused (HTTP 401, reported, retried with backoff, nothing stored)."""
    srv = server_factory(secret="client-s3cret")
    token_auth(srv, lambda drone, *a: start_drone(tmp_path, srv.port, drone, *a), "http_401")


def token_auth(srv, start, refusal):
    """start(drone, *args) starts examples/drone; `refusal` is how the wrong
    token's refusal is reported. Shared with test_client_grpc.py."""
    drone = new_id("auth")
    p = start(drone, "--token", srv.token(drone), "--count", 40, "--rate", 0)
    rc, st, err = finish_drone(p, T(20))
    assert rc == 0 and st["acked"] == 40, f"{st}\n{err[-2000:]}"
    bad = new_id("auth")
    p = start(bad, "--token", srv.token(drone), "--count", 5, "--rate", 0, "--flush-ms", 600, "--backoff-min-ms", 50)
    rc, st, err = finish_drone(p, T(20))
    assert rc == 3 and st["sessions"] == 0 and st["connects"] >= 2, st
    assert refusal in err and "wrong token?" in err, err[-2000:]
    assert stored_count(srv.db, bad) == 0
