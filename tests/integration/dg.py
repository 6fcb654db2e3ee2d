"""dg.py - helpers for the dronegate integration tests.

What lives here:
  * Server      start/stop the real binary in its own temp dir, on a free
                loopback port, wait for /healthz with a deadline, keep its
                stderr in a file, check it for sanitizer reports.
  * HTTP        small http.client wrappers (get, get_json, history ...).
  * Drone       a python3-websockets (10.4, asyncio API) drone client that
                keeps track of acks and errors.
  * misc        telemetry builders, token computation, Prometheus text parser,
                wait_until (polling with a deadline; never a bare sleep).

The raw-socket WebSocket client used by the conformance suite is in rawws.py.

Environment:
  DRONEGATE_BIN   server binary (default: <repo>/build/dronegate)
  DRONEGATE_SIM   simulator binary (default: <repo>/build/dronegate-sim)
  DRONEGATE_ASAN  "1" when DRONEGATE_BIN is a sanitizer build: every timeout
                  is multiplied by SCALE.
"""
import asyncio
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import websockets

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("DRONEGATE_BIN") or str(REPO / "build" / "dronegate")
SIM = os.environ.get("DRONEGATE_SIM") or str(REPO / "build" / "dronegate-sim")
ASAN = os.environ.get("DRONEGATE_ASAN", "") not in ("", "0")
SCALE = 4.0 if ASAN else 1.0

# appended to assertion messages when a close code is 1006 (no close frame seen)
RST_HINT = (" -- 1006 means no close frame reached the client: the server probably close()d the "
            "socket with unread client data (TCP RST, which makes the client drop what it has not "
            "read yet); it should shutdown(SHUT_WR) after the close frame and keep reading/discarding "
            "until the client's close or EOF (lingering close)")

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
PROTO = "dronegate.json.v1"


def T(seconds):
    """A timeout, scaled for sanitizer builds."""
    return seconds * SCALE


def new_id(prefix="d"):
    """A fresh valid drone id (tests sharing a server never collide)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def token_for(secret, drone_id):
    return hmac.new(secret.encode(), drone_id.encode(), hashlib.sha256).hexdigest()


def clean_env(**extra):
    """os.environ without DRONEGATE_* (the test harness' own variables, or a
    developer's shell settings, must not configure the binaries under test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRONEGATE_")}
    if ASAN:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    env.update(extra)
    return env


def npm_tool(folder, what):
    """Install the npm tool pinned in tests/<folder>/ (its install.sh: npm ci
    from the lock file, skipped while installed) and return node's path; the
    test fails with npm's output when the install does."""
    import shutil
    inst = subprocess.run([str(REPO / "tests" / folder / "install.sh")], capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    if inst.returncode != 0:
        import pytest
        pytest.fail(f"tests/{folder}/install.sh failed (npm {what}):\n{inst.stdout[-2000:]}\n"
                    f"{inst.stderr[-2000:]}", pytrace=False)
    node = shutil.which("node")
    assert node, f"node is not on PATH after tests/{folder}/install.sh"
    return node


def run_cli(args, timeout=None, **env):
    """Run a short-lived command (e.g. `dronegate token`); fails on a sanitizer report."""
    p = subprocess.run(args, capture_output=True, text=True, env=clean_env(**env),
                       timeout=timeout or T(15), stdin=subprocess.DEVNULL)
    for pat in SANITIZER_PATTERNS:
        assert pat not in p.stderr, f"sanitizer report from {' '.join(args)}:\n{p.stderr[-4000:]}"
    return p


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what="condition", interval=0.02):
    """Poll pred() until it returns something truthy; fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def parse_time(s):
    """RFC 3339 -> aware datetime (accepts Z, offsets, fractions)."""
    assert isinstance(s, str), f"timestamp is not a string: {s!r}"
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", s), \
        f"not an RFC 3339 timestamp: {s!r}"
    d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    assert d.tzinfo is not None, f"timestamp without offset: {s!r}"
    return d


def to_ms(s):
    d = parse_time(s)
    return round(d.timestamp() * 1000)


def ms_to_rfc3339(ms):
    d = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def telem(seq=None, **over):
    """A valid telemetry object; position moves with seq. Keys set to None are removed."""
    n = seq or 0
    m = {
        "timestamp": ms_to_rfc3339(1795428000000 + n * 100),
        "latitude": 47.397742 + n * 1e-5,
        "longitude": 8.545594 + n * 1e-5,
        "altitude": 488.25,
        "speed": 12.5,
        "heading": 271.0,
        "climb": -0.5,
        "battery": 76.5,
        "status": "airborne",
    }
    if seq is not None:
        m["seq"] = seq
    m.update(over)
    return {k: v for k, v in m.items() if v is not None}


def minimal(seq=None, **over):
    m = {"latitude": 10.0, "longitude": 20.0, "altitude": 30.0}
    if seq is not None:
        m["seq"] = seq
    m.update(over)
    return {k: v for k, v in m.items() if v is not None}


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- metrics

_LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text -> list of (name, {labels}, value)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$", line)
        assert m, f"malformed metrics line: {line!r}"
        labels = dict(_LABEL_RE.findall(m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def metric(samples, name, **labels):
    """Sum of every sample called name whose labels include `labels` (None if none)."""
    vals = [v for (n, l, v) in samples
            if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
    return sum(vals) if vals else None


# ---------------------------------------------------------------- HTTP

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # dict, lower-case names
        self.body = body                # bytes

    @property
    def text(self):
        return self.body.decode("utf-8")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"response is not JSON ({e}): {self.body[:300]!r}")

    def __repr__(self):
        return f"<Resp {self.status} {self.body[:200]!r}>"


def http_get(port, path, headers=None, timeout=None, method="GET", body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout or T(10))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        c.close()


# ---------------------------------------------------------------- server

_ALL_PROCS = []


def _kill_leftovers():
    for p in _ALL_PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()


class ServerDied(AssertionError):
    pass


class Server:
    """One dronegate process (and its restarts) on one working directory.

    args: extra command-line arguments (list of str).
    store: store URI; default sqlite:<workdir>/dg.db.
    env: extra environment; config_via_env=True passes --listen/--store/--workers
    as DRONEGATE_* variables instead of flags.
    """

    def __init__(self, workdir, args=(), store=None, env=None, secret=None,
                 workers=2, config_via_env=False, operator_token=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = self.dir / "dg.db"
        self.store = store or f"sqlite:{self.db}"
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.secret = secret
        # with auth on, the REST API needs an operator token: give every such
        # server one (get() sends it for /api/ paths)
        if operator_token is None and secret is not None:
            operator_token = "op-" + uuid.uuid4().hex
        self.operator_token = operator_token
        self.workers = workers
        self.config_via_env = config_via_env
        self.proc = None
        self.port = None
        self.runs = 0
        self.logs = []          # stderr files, one per run
        self.returncodes = []
        self._checked = 0       # stderr bytes already checked by check_clean
        self.start_failed = False  # start() failed and said why already

    # -- process management

    def _cmd_env(self):
        env = clean_env()
        cmd = [BIN]
        listen = f"127.0.0.1:{self.port}"
        if self.config_via_env:
            env["DRONEGATE_LISTEN"] = listen
            env["DRONEGATE_STORE"] = self.store
            env["DRONEGATE_WORKERS"] = str(self.workers)
            if self.secret is not None:
                env["DRONEGATE_AUTH_SECRET"] = self.secret
            if self.operator_token:
                env["DRONEGATE_OPERATOR_TOKEN"] = self.operator_token
        else:
            cmd += ["--listen", listen, "--store", self.store, "--workers", str(self.workers)]
            if self.secret is not None:
                cmd += ["--auth-secret", self.secret]
            if self.operator_token:
                cmd += ["--operator-token", self.operator_token]
        cmd += self.args
        env.update(self.extra_env)
        return cmd, env

    def spawn(self, port=None):
        """Start the process without waiting for it (for tests of start-up failures)."""
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.port = port or free_port()
        self.runs += 1
        log = self.dir / f"stderr.{self.runs}.log"
        self.logs.append(log)
        self._checked = 0
        cmd, env = self._cmd_env()
        self.cmd = cmd
        with open(log, "wb") as errf, open(self.dir / f"stdout.{self.runs}.log", "wb") as outf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=outf,
                                         stderr=errf, env=env, cwd=self.dir,
                                         preexec_fn=getattr(self, "preexec", None))
        _ALL_PROCS.append(self.proc)
        return self.proc

    def start(self, timeout=None):
        """Start on a free port and wait for GET /healthz -> 200 ok."""
        timeout = timeout or T(15)
        for attempt in range(4):
            self.spawn()
            ok = self._wait_healthy(timeout)
            if ok:
                return self
            rc = self.proc.poll()
            err = self.stderr()
            in_use = "in use" in err.lower() or "eaddrinuse" in err.lower()
            if rc is not None and in_use and attempt < 3:
                continue        # lost the race for the port: pick another
            if rc is None:
                self.proc.kill()
                self.proc.wait()
                why = f"did not become healthy within {timeout:.0f}s"
            else:
                why = f"exited with code {rc} before answering /healthz"
            self.start_failed = True
            raise AssertionError(f"dronegate {why}; cmd: {' '.join(self.cmd)}\n--- stderr ---\n{self.tail()}")
        raise AssertionError("could not find a free port")

    def _wait_healthy(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = http_get(self.port, "/healthz", timeout=1.0)
                if r.status == 200 and r.body.strip() == b"ok":
                    return True
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.02)
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=None):
        """Wait for the process to exit; returns the exit code or fails."""
        timeout = timeout or T(15)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"dronegate did not exit within {timeout:.0f}s\n{self.tail()}")
        self.returncodes.append(rc)
        return rc

    def stop(self, sig=signal.SIGTERM, expect_rc=0, timeout=None):
        """Graceful stop; checks the exit code and the sanitizer output."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.wait_exit(timeout)
        self.check_clean(whole=True)
        if expect_rc is not None:
            assert rc == expect_rc, (
                f"dronegate exited with {rc} after {signal.Signals(sig).name}, expected "
                f"{expect_rc}\n--- stderr tail ---\n{self.tail()}")
        return rc

    def kill9(self):
        self.proc.kill()
        rc = self.proc.wait()
        self.returncodes.append(rc)
        self.check_clean(whole=True)
        return rc

    def restart(self):
        assert not self.alive()
        return self.start()

    # -- logs

    def stderr(self, run=None):
        if not self.logs:
            return ""
        p = self.logs[-1] if run is None else self.logs[run]
        try:
            return p.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def all_stderr(self):
        return "".join(f"--- run {i + 1} ---\n" + p.read_text(errors="replace")
                       for i, p in enumerate(self.logs) if p.exists())

    def tail(self, n=40):
        lines = self.stderr().splitlines()
        return "\n".join(lines[-n:]) if lines else "(stderr empty)"

    def sanitizer_report(self, text):
        for pat in SANITIZER_PATTERNS:
            i = text.find(pat)
            if i >= 0:
                return text[max(0, i - 200): i + 4000]
        return None

    def check_clean(self, whole=False):
        """Fail if the stderr (only the part not yet checked, unless whole) holds
        a sanitizer report."""
        for p in (self.logs if whole else self.logs[-1:]):
            if not p.exists():
                continue
            text = p.read_text(errors="replace")
            part = text if whole else text[self._checked:]
            rep = self.sanitizer_report(part)
            if rep:
                raise AssertionError(f"sanitizer report in dronegate stderr ({p.name}):\n{rep}")
        if self.logs and self.logs[-1].exists():
            self._checked = len(self.logs[-1].read_text(errors="replace"))

    def check_alive(self):
        self.check_clean()
        if not self.alive():
            rc = self.proc.poll() if self.proc else None
            raise ServerDied(f"dronegate died (exit code {rc})\n--- stderr tail ---\n{self.tail(80)}")

    # -- HTTP

    @property
    def ws_base(self):
        return f"ws://127.0.0.1:{self.port}"

    def get(self, path, headers=None, timeout=None, method="GET", body=None, operator=True):
        """HTTP request; sends the operator token for /api/ paths unless
        operator=False or an Authorization header is given."""
        headers = dict(headers or {})
        if operator and self.operator_token and path.startswith("/api/") and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.operator_token}"
        return http_get(self.port, path, headers=headers, timeout=timeout, method=method, body=body)

    def get_json(self, path, status=200):
        r = self.get(path)
        assert r.status == status, f"GET {path} -> {r.status} {r.body[:300]!r}, expected {status}\n{self.tail()}"
        return r.json()

    def metrics(self):
        r = self.get("/metrics")
        assert r.status == 200, f"/metrics -> {r.status}"
        return parse_metrics(r.text)

    def drones(self):
        """Every drone: walks the pages of GET /api/v1/drones (next_cursor)."""
        out, cursor = [], None
        while True:
            doc = self.get_json("/api/v1/drones?limit=10000" + (f"&cursor={cursor}" if cursor else ""))
            out += doc["drones"]
            cursor = doc.get("next_cursor")
            if not cursor:
                return out

    def history(self, drone_id, **params):
        params.setdefault("limit", 100000)
        q = "&".join(f"{k}={v}" for k, v in params.items())
        doc = self.get_json(f"/api/v1/drones/{drone_id}/telemetry?{q}")
        assert doc.get("drone_id") == drone_id, f"drone_id in history: {doc.get('drone_id')!r}"
        return doc["telemetry"]

    def seqs(self, drone_id):
        return [row["seq"] for row in self.history(drone_id) if "seq" in row]

    def token(self, drone_id):
        return token_for(self.secret, drone_id)


# ---------------------------------------------------------------- drone client

def run(coro, timeout=None):
    """Run a coroutine with an overall deadline (no test hangs forever)."""
    return asyncio.run(asyncio.wait_for(coro, timeout or T(60)))


class Drone:
    """python3-websockets client for one drone; tracks acks and errors."""

    def __init__(self, ws, drone_id):
        self.ws = ws
        self.id = drone_id
        self.acks = []          # every ack seq in arrival order
        self.errors = []        # every error object
        self.other = []         # anything else the server sent
        self.closed = None      # (code, reason) once the server closed
        self.session = None     # the server's first message {"type":"session","last_seq":N|null}

    @property
    def max_ack(self):
        return max(self.acks) if self.acks else None

    @classmethod
    async def connect(cls, srv, drone_id, token=None, query_token=None,
                      subprotocols=(PROTO,), headers=None, session=True, **kw):
        uri = f"{srv.ws_base}/ws/{drone_id}"
        if query_token is not None:
            uri += f"?token={query_token}"
        hdrs = dict(headers or {})
        if token is None and srv.secret is not None and query_token is None:
            token = srv.token(drone_id)
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        kw.setdefault("open_timeout", T(10))
        kw.setdefault("close_timeout", T(5))
        kw.setdefault("ping_interval", None)
        kw.setdefault("max_size", None)
        ws = await websockets.connect(uri, subprotocols=list(subprotocols) if subprotocols else None,
                                      extra_headers=hdrs, **kw)
        d = cls(ws, drone_id)
        if session:
            # contract: the first message after the upgrade is the session message
            raw = await asyncio.wait_for(ws.recv(), T(10))
            m = json.loads(raw)
            assert m.get("type") == "session" and "last_seq" in m, f"first message is not the session message: {raw!r}"
            assert m["last_seq"] is None or isinstance(m["last_seq"], int), raw
            d.session = m
        return d

    @property
    def last_seq(self):
        return self.session["last_seq"] if self.session else None

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else dumps(obj))

    def _take(self, raw):
        assert isinstance(raw, str), f"server sent a binary frame on the JSON subprotocol: {raw[:50]!r}"
        m = json.loads(raw)
        assert isinstance(m, dict), f"server message is not an object: {raw!r}"
        if m.get("type") == "ack":
            assert isinstance(m.get("seq"), int), f"ack without integer seq: {raw!r}"
            if self.acks:
                assert m["seq"] >= self.acks[-1], f"ack went backwards: {self.acks[-1]} then {m['seq']}"
            self.acks.append(m["seq"])
        elif m.get("type") == "error":
            self.errors.append(m)
        else:
            self.other.append(m)
        return m

    async def recv(self, timeout):
        """One server message (dict), or None on timeout. Records a close."""
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            return None
        except websockets.ConnectionClosed:
            self.closed = (self.ws.close_code, self.ws.close_reason)
            raise
        return self._take(raw)

    async def wait(self, pred, timeout, what):
        """Read messages until pred() is true."""
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"drone {self.id}: timed out after {timeout:.1f}s waiting for {what}; "
                                     f"acks={self.acks[-5:]} errors={self.errors[-3:]} other={self.other[-3:]}")
            try:
                await self.recv(left)
            except websockets.ConnectionClosed:
                raise AssertionError(f"drone {self.id}: connection closed ({self.ws.close_code} "
                                     f"{self.ws.close_reason!r}) while waiting for {what}; "
                                     f"acks={self.acks[-5:]} errors={self.errors[-3:]}")
        return True

    async def wait_ack(self, seq, timeout=None):
        await self.wait(lambda: self.acks and self.acks[-1] >= seq, timeout or T(10), f"ack >= {seq}")
        return self.acks[-1]

    async def sync(self, timeout=None):
        """Read everything the server sent before now: send an invalid message
        (no seq) and read until its error reply. Acks queued earlier on this
        connection are written before that reply, so after sync() self.acks
        holds them (with --ack-interval 0 an ack is flushed as soon as its
        batch is back on the worker). Returns the marker's error."""
        n = len(self.errors)
        await self.send({"latitude": 1000.0, "longitude": 0.0, "altitude": 0.0})
        await self.wait_errors(n + 1, timeout)
        return self.errors[-1]

    async def wait_errors(self, n, timeout=None):
        await self.wait(lambda: len(self.errors) >= n, timeout or T(10), f"{n} error(s)")
        return self.errors

    async def wait_closed(self, timeout=None):
        """Read (and record) messages until the server closes; returns the close code."""
        timeout = timeout or T(10)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"drone {self.id}: not closed by the server within {timeout:.1f}s")
            try:
                await self.recv(left)
            except websockets.ConnectionClosed:
                return self.ws.close_code

    async def close(self):
        await self.ws.close()
