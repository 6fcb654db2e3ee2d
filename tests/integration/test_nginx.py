"""Three gateways on one PostgreSQL behind a real nginx with
deploy/nginx/dronegate.conf, drones over wss:// (issue 12 §2).

  * consistent hashing on the drone id: with every gateway up, a drone that
    reconnects lands on the gateway it had (read from dronegate_presence,
    the table the holding gateway writes), and the fleet is spread;
  * kill -9 of one gateway mid-run: its drones see the tunnel cut, reconnect
    through nginx (which skips the dead gateway), read last_seq from the
    session message, resend everything unacked and finish; the drones of the
    other gateways are not disturbed (never reconnect);
  * every acked message is in PostgreSQL exactly once: per drone, count =
    distinct seqs = every seq 1..M, in `telemetry` and in `telemetry_seq`;
  * a command POSTed to one gateway reaches a drone held by another, and one
    POSTed through nginx (https) reaches its drone too;
  * the same with SIGTERM (drain, a rolling restart): 1001 through nginx;
  * REST, /metrics and the live stream through nginx; requests about one
    drone reach its holder (every gateway shows it: the fleet view); gRPC
    through nginx's TLS and grpc_pass with python3-grpcio (session, ack,
    stored once) and the gateway's status through nginx;
  * removing a gateway (reload) moves only its drones (consistent hashing);
  * the proxy timeouts stay above the gateway's timers (from --help);
  * X-Real-IP / X-Forwarded-For / X-Forwarded-Proto reach the upstream.

Synchronisation: events only (acks, session messages, presence rows,
command status, access-log lines); the drones' sends are paced on purpose (RATE Hz) so the
kill lands while every drone has messages in flight.
"""
import asyncio
import json
import re
import shutil
import signal
import subprocess
import time

import pytest
import websockets

import servers
from dg import PROTO, T, dumps, metric, new_id, parse_metrics, telem, wait_until
from nginx import nginx_factory  # noqa: F401  (pytest fixture)
from storetest import DB

DRONES = 24
TOTAL = 240          # messages per drone
RATE = 40.0          # messages per second per drone (~6 s of flight)
WINDOW = 20          # unacked messages a drone keeps in flight at most
KILL_AT = 60         # kill a gateway once every drone has this many acked


@pytest.fixture(scope="module")
def pg():
    return servers.shared_postgres()


def presence(pg, db, prefix):
    out = pg.psql(f"SELECT drone_id, instance FROM dronegate_presence WHERE drone_id LIKE '{prefix}%'",
                  db=db.name)
    return dict(line.split("|", 1) for line in out.split("\n") if line)


def https(ngx, path, method="GET", body=None, headers=None):
    import http.client
    c = http.client.HTTPSConnection("127.0.0.1", ngx.tls_port, context=ngx.ssl_context(), timeout=T(10))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Flyer:
    """One drone through nginx over wss://: numbered telemetry, a window of
    unacked messages, and on any disconnect a reconnect through nginx that
    resends everything unacked. Answers commands with command_ack done."""

    def __init__(self, ngx, drone_id):
        self.ngx, self.id = ngx, drone_id
        self.ctx = ngx.ssl_context()
        self.ws = None
        self.acked = 0           # highest cumulative ack
        self.next = 1            # next seq never sent yet
        self.connects = 0
        self.sessions = []       # last_seq of every session message
        self.closes = []         # close codes seen
        self.connect_errors = []
        self.errors = []
        self.commands = []
        self.resent = 0          # messages resent after reconnects

    async def connect(self, timeout=None):
        deadline = time.monotonic() + (timeout or T(20))
        while True:
            try:
                ws = await websockets.connect(f"{self.ngx.wss_base}/ws/{self.id}", ssl=self.ctx,
                                              subprotocols=[PROTO], open_timeout=T(5),
                                              close_timeout=T(2), ping_interval=None, max_size=None)
                raw = await asyncio.wait_for(ws.recv(), T(5))
                break
            except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake,
                    websockets.ConnectionClosed) as e:
                self.connect_errors.append(repr(e))
                if time.monotonic() > deadline:
                    raise AssertionError(f"drone {self.id}: no connection through nginx within the "
                                         f"deadline; errors: {self.connect_errors[-3:]}")
                await asyncio.sleep(0.05)       # pace the retries
        m = json.loads(raw)
        assert m.get("type") == "session", f"{self.id}: first message is not the session: {raw!r}"
        last = m["last_seq"]
        self.sessions.append(last)
        # everything acked is durable: the store must know it
        assert (last or 0) >= self.acked, f"{self.id}: session last_seq {last} < acked {self.acked}"
        self.ws = ws
        self.connects += 1
        # resend everything unacked (same seq, same timestamp: a redelivery)
        self.resent += self.next - 1 - self.acked
        for s in range(self.acked + 1, self.next):
            await ws.send(dumps(telem(s)))

    def _take(self, raw):
        m = json.loads(raw)
        t = m.get("type")
        if t == "ack":
            assert m["seq"] < self.next, f"{self.id}: ack {m['seq']} of a seq never sent"
            self.acked = max(self.acked, m["seq"])
        elif t == "command":
            self.commands.append(m)
            return m
        elif t == "error":
            self.errors.append(m)
        return None

    async def fly(self, total, finish):
        """Send seq 1..total, paced at RATE, until all are acked and finish is set."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        if self.ws is None:
            await self.connect()
        while not (self.acked >= total and finish.is_set()):
            now = loop.time()
            can_send = self.next <= total and self.next - self.acked <= WINDOW
            try:
                if can_send and now >= due:
                    await self.ws.send(dumps(telem(self.next)))
                    self.next += 1
                    due = max(due + 1 / RATE, now - 0.5)
                    continue
                wait = max(0.001, due - now) if can_send else 0.1
                try:
                    raw = await asyncio.wait_for(self.ws.recv(), wait)
                except asyncio.TimeoutError:
                    continue
                cmd = self._take(raw)
                if cmd:
                    await self.ws.send(dumps({"type": "command_ack", "id": cmd["id"], "status": "done",
                                              "message": f"via {self.id}"}))
            except websockets.ConnectionClosed as e:
                self.closes.append(e.code)
                self.ws = None
                await self.connect()

    async def close(self):
        if self.ws is not None:
            await self.ws.close()
            self.ws = None


async def apoll(pred, timeout, what):
    """wait_until for coroutines: poll pred (a blocking call, run in a thread)."""
    deadline = time.monotonic() + timeout
    while True:
        v = await asyncio.to_thread(pred)
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        await asyncio.sleep(0.05)


def gateways(server_factory, pg, grpc=False):
    db = DB(pg)
    gws = {}
    for name in ("g1", "g2", "g3"):
        extra = ["--grpc-listen", "127.0.0.1:0"] if grpc else []
        gws[name] = server_factory(store=db.uri(), args=["--instance", name, *extra])
    for name, s in gws.items():
        wait_until(lambda: f"fleet: instance {name} listening" in s.stderr(), T(10), f"{name} fleet listener")
        if grpc:
            s.grpc_port = int(re.search(r"gRPC listening on 127\.0\.0\.1:(\d+)", s.stderr()).group(1))
    return db, gws


@pytest.mark.parametrize("stop", ["kill9", "sigterm"])
def test_three_gateways_behind_nginx_tls(server_factory, nginx_factory, pg, stop):  # noqa: F811
    """stop=kill9: the gateway dies mid-run. stop=sigterm: it drains (a rolling
    restart): its drones get 1001 through the tunnel and reconnect through
    nginx. (A draining gateway closes its listening socket at once, so the
    reconnects meet a refused connect, not a 503: this covers the `error`
    part of proxy_next_upstream, not `http_503`.)"""
    db, gws = gateways(server_factory, pg)
    ngx = nginx_factory([("127.0.0.1", s.port) for s in gws.values()])
    prefix = new_id("ngx") + "-"
    ids = [f"{prefix}{i:02d}" for i in range(DRONES)]
    flyers = {i: Flyer(ngx, i) for i in ids}

    async def go():
        # -- 1. consistent hashing: same gateway across reconnects, fleet spread
        # one at a time, in id order, then back in another order: a round robin
        # (no hash) would deal the gateways out differently the second time
        for d in ids:
            await flyers[d].connect()
        first = await apoll(lambda: (lambda p: p if len(p) == DRONES else None)(presence(pg, db, prefix)),
                            T(15), "every drone in dronegate_presence")
        assert len(set(first.values())) >= 2, f"nginx put every drone on one gateway: {first}"
        await asyncio.gather(*(f.close() for f in flyers.values()))
        await apoll(lambda: not presence(pg, db, prefix), T(15), "presence rows gone after close")
        for d in ids[1::2] + ids[0::2]:
            await flyers[d].connect()
        again = await apoll(lambda: (lambda p: p if len(p) == DRONES else None)(presence(pg, db, prefix)),
                            T(15), "every drone back in dronegate_presence")
        moved = {d: (first[d], again[d]) for d in ids if first[d] != again[d]}
        assert not moved, f"drones changed gateway on reconnect with every gateway up: {moved}"
        for f in flyers.values():
            f.connects = 0       # count the reconnections of the flight only

        # -- 2. fly; kill -9 the busiest gateway once every drone is well under way
        finish = asyncio.Event()
        tasks = [asyncio.create_task(f.fly(TOTAL, finish)) for f in flyers.values()]

        async def watch(pred, timeout, what):
            deadline = time.monotonic() + timeout
            while not pred():
                for t in tasks:
                    if t.done():
                        t.result()      # a flyer failed: raise its error
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; acked: "
                                         f"{sorted(f.acked for f in flyers.values())}")
                await asyncio.sleep(0.02)

        await watch(lambda: all(f.acked >= KILL_AT for f in flyers.values()), T(30),
                    f"every drone acked {KILL_AT}")
        held = {}
        for d, inst in again.items():
            held.setdefault(inst, []).append(d)
        victim = max(held, key=lambda k: len(held[k]))
        victims = set(held[victim])
        # freeze it first (SIGSTOP) until each of its drones has messages in
        # flight that it never read, then kill -9: those must be resent
        gws[victim].send_signal(signal.SIGSTOP)
        await watch(lambda: all(flyers[d].next - 1 - flyers[d].acked >= 3 for d in victims), T(15),
                    "unacked messages in flight on every drone of the frozen gateway")
        in_flight = {d: (flyers[d].acked, flyers[d].next - 1) for d in victims}
        if stop == "kill9":
            gws[victim].kill9()
        else:
            gws[victim].send_signal(signal.SIGTERM)     # handled once it runs again
            gws[victim].send_signal(signal.SIGCONT)
        t_kill = time.monotonic()
        survivors = [n for n in gws if n != victim]

        # its drones come back through nginx, on the other gateways, and go on
        await watch(lambda: all(flyers[d].connects >= 1 and flyers[d].acked > in_flight[d][0]
                                for d in victims), T(30), "the killed gateway's drones back and acked")
        t_back = time.monotonic() - t_kill
        if stop == "sigterm":
            rc = await asyncio.to_thread(gws[victim].wait_exit, T(30))
            assert rc == 0, f"{victim} exited with {rc} after SIGTERM\n{gws[victim].tail()}"
        now = await apoll(lambda: (lambda p: p if all(p.get(d) in survivors for d in victims) else None)(
            presence(pg, db, prefix)), T(15), "the killed gateway's drones present on the survivors")

        # -- 3. commands: POSTed to one gateway, delivered by another
        posted = []
        for a, b in ((survivors[0], survivors[1]), (survivors[1], survivors[0])):
            drone = next((d for d in ids if now.get(d) == b), None)
            if drone is None:
                continue
            r = await asyncio.to_thread(
                gws[a].get, f"/api/v1/drones/{drone}/commands", method="POST",
                body=json.dumps({"name": "return_to_home", "args": {"from": a}}),
                headers={"Content-Type": "application/json"})
            assert r.status == 202, f"POST to {a} for a drone on {b}: {r}"
            assert r.json()["instance"] == b, r.json()
            posted.append((a, drone, r.json()["id"]))
        assert posted, f"no survivor holds a drone: {now}"
        # and one through nginx (https, any gateway)
        drone = victims and sorted(victims)[0]
        st, body = await asyncio.to_thread(https, ngx, f"/api/v1/drones/{drone}/commands", "POST",
                                           json.dumps({"name": "land", "args": {}}),
                                           {"Content-Type": "application/json"})
        assert st == 202, (st, body)
        posted.append(("nginx", drone, json.loads(body)["id"]))
        await watch(lambda: all(any(c["id"] == cid for c in flyers[d].commands) for _, d, cid in posted),
                    T(15), f"commands delivered {posted}")
        for a, d, cid in posted:
            via = gws[a] if a != "nginx" else gws[survivors[0]]
            await apoll(lambda: via.get_json(f"/api/v1/commands/{cid}")["status"] == "done", T(10),
                        f"command {cid} done, seen on {a}")

        # -- 4. everything acked
        finish.set()
        await watch(lambda: all(t.done() for t in tasks), T(40), f"every drone acked {TOTAL}")
        for t in tasks:
            t.result()
        await asyncio.gather(*(f.close() for f in flyers.values()))
        return victim, victims, in_flight, t_back

    victim, victims, in_flight, t_back = asyncio.run(asyncio.wait_for(go(), T(120)))

    # -- the drones: the victims reconnected, nobody else did, nothing was refused
    for d, f in flyers.items():
        assert f.acked == TOTAL and not f.errors, (d, f.acked, f.errors[:3])
        # nginx fails over during the handshake itself (proxy_next_upstream):
        # no drone ever sees a refused or failed handshake
        assert not f.connect_errors, f"{d}: handshakes through nginx failed: {f.connect_errors[:3]}"
        if d in victims:
            assert f.connects >= 1, f"{d} (on killed {victim}) did not reconnect"
            assert f.closes, f"{d} saw no close"
            if stop == "sigterm":
                assert set(f.closes) == {1001}, f"{d}: drain close codes through nginx {f.closes}"
        else:
            assert f.connects == 0, (f"{d} was not on the killed gateway {victim} but reconnected "
                                     f"{f.connects} time(s) (closes {f.closes}): consistent hashing "
                                     f"should leave it alone")
        if stop == "kill9" or d not in victims:
            # a drain may still read and commit what was in flight; a kill never
            assert f.resent >= (3 if d in victims else 0), (d, f.resent, in_flight.get(d))
    print(f"{stop}: stopped {victim} holding {len(victims)}/{DRONES} drones; all back and acked beyond "
          f"the kill after {t_back:.2f}s")

    # -- the store: every message exactly once
    rows = pg.psql(f"SELECT drone_id, count(*), count(DISTINCT seq), min(seq), max(seq) FROM telemetry "
                   f"WHERE drone_id LIKE '{prefix}%' GROUP BY drone_id ORDER BY 1", db=db.name)
    got = {r.split("|")[0]: tuple(int(x) for x in r.split("|")[1:]) for r in rows.split("\n") if r}
    want = {d: (TOTAL, TOTAL, 1, TOTAL) for d in ids}
    bad = {d: got.get(d) for d in ids if got.get(d) != want[d]}
    assert not bad, f"(count, distinct seq, min, max) per drone, want {want[ids[0]]}: {bad}"
    dup = pg.psql(f"SELECT drone_id, seq, count(*) FROM telemetry WHERE drone_id LIKE '{prefix}%' "
                  f"GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 5", db=db.name)
    assert not dup.strip(), f"duplicate (drone_id, seq) rows: {dup}"
    seqrows = pg.psql(f"SELECT count(*) FROM telemetry_seq WHERE drone_id LIKE '{prefix}%'", db=db.name)
    assert int(seqrows) == DRONES * TOTAL, seqrows

    # -- nginx saw it: every drone handshake went to a live gateway through the hash upstream
    log = ngx.accesses()
    assert f'"GET /ws/{ids[0]} HTTP/1.1" 101' in log, log[-2000:]
    for name, s in gws.items():
        if name != victim:
            s.check_alive()


def test_rest_metrics_live_grpc_through_nginx(server_factory, nginx_factory, pg):  # noqa: F811
    db, gws = gateways(server_factory, pg, grpc=True)
    ngx = nginx_factory([("127.0.0.1", s.port) for s in gws.values()],
                        grpc_gateways=[("127.0.0.1", s.grpc_port) for s in gws.values()])
    drone = new_id("ngxr")

    async def go():
        f = Flyer(ngx, drone)
        await f.connect()
        await f.ws.send(dumps(telem(1)))
        f.next = 2
        while f.acked < 1:
            f._take(await asyncio.wait_for(f.ws.recv(), T(10)))
        # every gateway shows the drone (the fleet view) with the name of the
        # one holding it; a request about one drone goes to that one (same
        # hash as /ws/)
        def inst(s):
            r = s.get(f"/api/v1/drones/{drone}")
            return r.json().get("instance") if r.status == 200 else None
        wait_until(lambda: len({inst(s) for s in gws.values()} - {None}) == 1 and
                   all(inst(s) for s in gws.values()), T(15), "the drone on every gateway")
        holder = list({inst(s) for s in gws.values()})
        assert len(holder) == 1 and holder[0] in gws, holder
        for _ in range(6):
            st, body = https(ngx, f"/api/v1/drones/{drone}/telemetry")
            assert st == 200 and json.loads(body)["telemetry"][0]["seq"] == 1, (st, body[:300])
            st, body = https(ngx, f"/api/v1/drones/{drone}")
            assert st == 200 and json.loads(body).get("instance") == holder[0], (st, body[:300])
        # the live stream (WebSocket upgrade through the http upstream, TLS)
        async with websockets.connect(f"{ngx.wss_base}/api/v1/live?drones={drone}", ssl=ngx.ssl_context(),
                                      open_timeout=T(5), ping_interval=None) as live:
            raw = await asyncio.wait_for(live.recv(), T(10))
            assert json.loads(raw).get("type") == "snapshot", raw
        await f.close()

    asyncio.run(asyncio.wait_for(go(), T(60)))
    st, body = https(ngx, "/healthz")
    assert (st, body.strip()) == (200, b"ok")
    st, body = https(ngx, "/metrics")
    assert st == 200 and metric(parse_metrics(body.decode()), "dronegate_build_info") == 1, body[:300]
    # plain listener (what dronegate-sim uses)
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", ngx.plain_port, timeout=T(10))
    c.request("GET", "/readyz")
    assert c.getresponse().status == 200
    c.close()
    # gRPC through nginx (TLS, grpc_pass to the gateways' --grpc-listen), with
    # python3-grpcio: session, ack, stored once
    import grpc
    out = ngx.dir / "grpcgen"
    out.mkdir(exist_ok=True)
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    subprocess.run(["protoc", f"-I{root}/proto", f"--python_out={out}", f"--grpc_python_out={out}",
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                    "dronegate/v1/telemetry.proto"], check=True)
    import sys
    sys.path.insert(0, str(out))
    from dronegate.v1 import telemetry_pb2 as pb, telemetry_pb2_grpc as pbg
    gdrone = new_id("ngxg")
    creds = grpc.ssl_channel_credentials(root_certificates=ngx.cert.read_bytes())
    ch = grpc.secure_channel(f"127.0.0.1:{ngx.tls_port}", creds)
    m = pb.DroneMessage()
    m.telemetry.seq = 1
    m.telemetry.position.latitude, m.telemetry.position.longitude, m.telemetry.position.altitude = 47.0, 8.0, 400.0
    call = pbg.TelemetryStub(ch).Stream(iter([m]), metadata=[("drone-id", gdrone)], timeout=T(30))
    got = list(call)
    ch.close()
    kinds = [r.WhichOneof("body") for r in got]
    assert kinds[0] == "session" and any(r.WhichOneof("body") == "ack" and r.ack.seq == 1 for r in got), got
    assert call.code() == grpc.StatusCode.OK, (call.code(), call.details())
    assert db.one("SELECT count(*) FROM telemetry WHERE drone_id = %s", gdrone) == 1
    # curl (HTTP/2) to the same location without drone-id: the gateway's own
    # status (INVALID_ARGUMENT = 3) comes back through nginx
    curl = shutil.which("curl")
    assert curl, "curl not found: install the Debian package curl (scripts/deps.d/nginx.list)"
    p = subprocess.run([curl, "-s", "--http2", "--cacert", str(ngx.cert), "-o", "/dev/null", "-D", "-",
                        "-X", "POST", "-H", "content-type: application/grpc",
                        f"https://127.0.0.1:{ngx.tls_port}/dronegate.v1.Telemetry/Stream"],
                       capture_output=True, text=True, timeout=T(20))
    assert "grpc-status: 3" in p.stdout, (p.stdout, p.stderr)
    # real client address passed on: nginx logs it beside the upstream
    assert ngx.accesses().startswith("127.0.0.1 "), ngx.accesses()[:500]


def _blocks(text, kind):
    """{name: body} of every `kind NAME {...}` block (no nested braces inside)."""
    import re
    return {m.group(1): m.group(2) for m in
            re.finditer(kind + r"\s+(\S+)\s*\{([^{}]*)\}",
                        re.sub(r"\$\{\w+\}", "PLACEHOLDER", re.sub(r"#[^\n]*", "", text)))}


def _seconds(body, directive):
    import re
    m = re.search(r"(?m)^\s*" + directive + r"\s+(\d+)(ms|s|m)?;", body)
    assert m, f"no {directive} in\n{body}"
    return int(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60}[m.group(2)]


def test_timeouts_above_the_gateway_timers():
    """The proxy timeouts of the long-lived locations are above the gateway's
    ping interval and idle timeout (defaults read from `dronegate --help`),
    and nginx drops idle upstream keep-alive connections before the gateway's
    http-idle-timeout does."""
    import re
    from dg import BIN, run_cli
    from nginx import CONF
    helptext = run_cli([BIN, "--help"]).stdout
    defaults = {}
    for flag in ("ping-interval", "idle-timeout", "http-idle-timeout"):
        m = re.search(r"--" + flag + r"\s.*?\(default (\d+)\)", helptext, re.S)
        assert m, f"no default for --{flag} in dronegate --help"
        defaults[flag] = int(m.group(1)) / 1000
    conf = CONF.read_text()
    locs = _blocks(conf, "location(?:\\s+=)?")
    long_lived = {k: v for k, v in locs.items() if "Upgrade" in v}
    assert set(long_lived) == {"/ws/", "/api/v1/live"}, list(long_lived)
    for name, body in long_lived.items():
        for d in ("proxy_read_timeout", "proxy_send_timeout"):
            v = _seconds(body, d)
            assert v > defaults["ping-interval"] and v > defaults["idle-timeout"], (name, d, v, defaults)
    grpc = locs["/dronegate.v1.Telemetry/"]
    for d in ("grpc_read_timeout", "grpc_send_timeout", "client_body_timeout"):
        assert _seconds(grpc, d) > defaults["idle-timeout"], (d, defaults)
    up = _blocks(conf, "upstream")["dronegate_http"]
    assert _seconds(up, "keepalive_timeout") < defaults["http-idle-timeout"], defaults


def test_consistent_hash_moves_only_the_removed_gateways_drones(server_factory, nginx_factory):  # noqa: F811
    """Taking a gateway out of the list (nginx -s reload) moves only its own
    drones: `hash ... consistent` (ketama). A plain `hash` (modulo) would
    move about two thirds of every gateway's drones. Where each connection
    went is read from nginx's access log (up=ADDR)."""
    import re
    gws = [server_factory() for _ in range(3)]
    ngx = nginx_factory([("127.0.0.1", s.port) for s in gws])
    name = {f"127.0.0.1:{s.port}": f"g{i + 1}" for i, s in enumerate(gws)}
    ids = [new_id("hash") for _ in range(30)]

    async def visit():
        for d in ids:
            ws = await websockets.connect(f"{ngx.ws_base}/ws/{d}", subprotocols=[PROTO],
                                          open_timeout=T(5), ping_interval=None)
            assert json.loads(await asyncio.wait_for(ws.recv(), T(5)))["type"] == "session"
            await ws.close()

    def where(n_lines):
        rx = re.compile(r'"GET /ws/(\S+) HTTP/1.1" 101 .* up=(\S+) ')
        got = wait_until(lambda: (lambda m: m if len(m) >= n_lines else None)(rx.findall(ngx.accesses())),
                         T(10), f"{n_lines} /ws/ lines in nginx's access log")
        return {d: name[a] for d, a in got[n_lines - len(ids):n_lines]}

    asyncio.run(asyncio.wait_for(visit(), T(60)))
    before = where(len(ids))
    assert len(set(before.values())) == 3, f"30 drones did not spread over 3 gateways: {before}"
    # take g3 out; wait until the old worker (old configuration) has exited
    ngx.gateways = ngx.gateways[:2]
    mark = len(ngx.errors())
    ngx.reload()
    wait_until(lambda: re.search(r"reconfiguring.*start worker process.*worker process \d+ exited",
                                 ngx.errors()[mark:], re.S), T(10), "nginx reloaded, old worker gone")
    asyncio.run(asyncio.wait_for(visit(), T(60)))
    after = where(2 * len(ids))
    moved = {d: (before[d], after[d]) for d in ids if before[d] != "g3" and after[d] != before[d]}
    assert not moved, f"drones of the remaining gateways moved when g3 left: {moved}"
    assert all(after[d] in ("g1", "g2") for d in ids), after


def test_client_address_headers_reach_the_upstream(nginx_factory):  # noqa: F811
    """X-Real-IP (nginx's view of the peer, not spoofable), X-Forwarded-For
    (appended to whatever the client sent) and X-Forwarded-Proto reach the
    upstream on every kind of location. The gateway does not read them
    (nothing in src/ does), so the upstream here is a recording HTTP server."""
    import http.server
    import threading
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        ngx = nginx_factory([("127.0.0.1", srv.server_address[1])])
        for path in ("/ws/xff-drone", "/api/v1/drones/xff-drone", "/api/v1/drones", "/api/v1/live"):
            st, _ = https(ngx, path, headers={"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "198.51.100.7"})
            assert st == 200, (path, st)
            p, h = seen[-1]
            assert p == path, (p, path)
            assert h.get("x-real-ip") == "127.0.0.1", (path, h)
            assert h.get("x-forwarded-for") == "203.0.113.9, 127.0.0.1", (path, h)
            assert h.get("x-forwarded-proto") == "https", (path, h)
    finally:
        srv.shutdown()
        srv.server_close()
