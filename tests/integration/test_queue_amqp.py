"""test_queue_amqp.py - the AMQP (RabbitMQ) publisher and consumer of
--queue amqp://... (src/queue/amqp.c) against a real rabbitmq-server
(rabbit.py: one broker for the module, free loopback ports, a temp dir).

build/amqp-drive (tests/amqp/drive.c) drives the publisher's sink ops and the
consumer ops directly; a client we did not write (python3-pika) reads what we
publish and checks the contract's message format. The gateway tests run the
real binary with --queue.

Synchronisation is on events: lines the driver prints when the publisher
hands a batch back ("done ID STATUS FIRST LAST"), the publisher's log line on
stderr when the broker refuses or goes away, and the broker's own startup.

Plain pass only (module mark): a broker start costs ~10 s and these tests
feed no bytes from drones to a parser the ASan pass does not already cover.
"""
import asyncio
import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest

import dg
import rabbit
import servers
from storetest import DB
from test_outage import lock_db, stored_seqs as db_seqs
from test_queue_kafka import Sink   # `dronegate sink` as a dg.Server

pytestmark = [pytest.mark.skipif(not rabbit.available(), reason="rabbitmq-server not installed"),
              pytest.mark.plain_only]
pika = pytest.importorskip("pika")

ROOT = Path(__file__).resolve().parents[2]
DRIVE = Path(os.environ.get("AMQP_DRIVE", ROOT / "build" / "amqp-drive"))


rb = pytest.fixture(scope="module", name="rb")(rabbit.module_fixture)   # one broker per module


class Drive:
    """build/amqp-drive publish URI, with its stdout and stderr as event queues."""

    def __init__(self, uri):
        self.p = subprocess.Popen([str(DRIVE), "publish", uri], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.out, self.err = queue.Queue(), queue.Queue()
        self.err_lines = []
        for f, q in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=self._pump, args=(f, q), daemon=True).start()

    @staticmethod
    def _pump(f, q):
        for line in f:
            q.put(line.rstrip("\n"))
        q.put(None)

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def expect(self, q, pred, timeout=30, what=""):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; saw {seen}; stderr {self.err_lines}")
            try:
                line = q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"amqp-drive exited waiting for {what}; saw {seen}; stderr {self.err_lines}")
            if q is self.err:
                self.err_lines.append(line)
            seen.append(line)
            if pred(line):
                return line, seen

    def stdout_until(self, pred, **kw):
        return self.expect(self.out, pred, **kw)

    def stderr_until(self, text, **kw):
        return self.expect(self.err, lambda l: text in l, what=repr(text), **kw)

    def pub(self, n, drone="d1"):
        self.cmd(f"pub {n} {drone}")
        line, _ = self.stdout_until(lambda l: l.startswith("submitted "), what="submitted")
        return int(line.split()[1])

    def done(self, bid, **kw):
        """Wait for batch bid to come back: its status; fails if a later batch comes back first."""
        line, seen = self.stdout_until(lambda l: l.startswith(f"done {bid} "), what=f"done {bid}", **kw)
        early = [l for l in seen if l.startswith("done ") and int(l.split()[1]) > bid]
        assert not early, f"batches handed back out of order: {seen}"
        return int(line.split()[2]), seen

    def state(self):
        self.cmd("state")
        line, _ = self.stdout_until(lambda l: l.startswith("state "), what="state")
        return dict(kv.split("=") for kv in line.split()[1:])

    def stop(self, ms=500):
        self.cmd(f"stop {ms}")
        _, seen = self.stdout_until(lambda l: l == "stopped", what="stopped", timeout=ms / 1000 + 15)
        self.p.stdin.close()
        assert self.p.wait(timeout=10) == 0
        return seen


def consume(uri, n, commit=True, prefetch=100, idle_ms=3000):
    """amqp-drive consume: stops after n messages or idle_ms without one."""
    r = subprocess.run([str(DRIVE), "consume", uri, str(n), "commit" if commit else "nocommit", str(prefetch),
                        str(idle_ms)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(l.split(" ", 2)[2]) for l in r.stdout.splitlines() if l.startswith("msg ")]
    lag = [int(l.split()[1]) for l in r.stdout.splitlines() if l.startswith("lag ")]
    return msgs, lag[0]


def pika_get_all(rb, q):
    c = pika.BlockingConnection(rb.pika_params())
    try:
        ch = c.channel()
        out = []
        while True:
            method, props, body = ch.basic_get(q, auto_ack=False)
            if method is None:
                return out
            out.append((method, props, body))
            ch.basic_ack(method.delivery_tag)
    finally:
        c.close()


def queue_types(rb):
    rows = rb.ctl("list_queues", "name", "type", "durable", "--no-table-headers", "-q").splitlines()
    return {r.split()[0]: r.split()[1:] for r in rows if r.strip()}


def test_pika_reads_contract_format_default_exchange(rb):
    d = Drive(rb.uri("fmt.q"))
    b1 = d.pub(3, "drone-A")
    b2 = d.pub(2, "drone.B")
    assert d.done(b1)[0] == 0
    assert d.done(b2)[0] == 0
    d.stop()
    assert queue_types(rb)["fmt.q"] == ["quorum", "true"]
    got = pika_get_all(rb, "fmt.q")
    assert len(got) == 5
    for i, (method, props, body) in enumerate(got):
        seq = i + 1
        drone = "drone-A" if seq <= 3 else "drone.B"
        assert method.exchange == "" and method.routing_key == "fmt.q"
        assert props.delivery_mode == 2
        assert props.content_type == "application/json"
        assert props.message_id == f"{drone}:{seq}"
        v = json.loads(body)
        assert v["drone_id"] == drone and v["seq"] == seq
        assert v["timestamp"] == 1795000000000 + seq
        assert v["received_at"] == 1795000000500 + seq
        assert v["latitude"] == pytest.approx(47.0 + seq * 1e-6, abs=1e-12)
        assert v["longitude"] == 8.5 and v["altitude"] == 400.25 and v["battery"] == 0.5
        assert "speed" not in v and "status" not in v


def test_exchange_routing_key_is_drone_id_and_stream_type(rb):
    d = Drive(rb.uri("fmt.s", type="stream", exchange="dg.x"))
    b = d.pub(2, "drone-7")
    assert d.done(b)[0] == 0
    d.stop()
    assert queue_types(rb)["fmt.s"] == ["stream", "true"]
    # a stream is read with basic.consume, manual acks and a prefetch (pika)
    c = pika.BlockingConnection(rb.pika_params())
    try:
        ch = c.channel()
        ch.basic_qos(prefetch_count=10)
        got = []
        for method, props, body in ch.consume("fmt.s", arguments={"x-stream-offset": "first"},
                                              inactivity_timeout=10):
            assert method is not None, f"stream delivered {len(got)} of 2"
            got.append((method, props, body))
            ch.basic_ack(method.delivery_tag)
            if len(got) == 2:
                break
        ch.cancel()
    finally:
        c.close()
    assert [m.exchange for m, _, _ in got] == ["dg.x", "dg.x"]
    assert [m.routing_key for m, _, _ in got] == ["drone-7", "drone-7"]
    assert [p.message_id for _, p, _ in got] == ["drone-7:1", "drone-7:2"]
    assert all(p.delivery_mode == 2 and p.content_type == "application/json" for _, p, _ in got)
    # our consumer ops read the stream too (x-stream-offset first, manual acks)
    msgs, _ = consume(rb.uri("fmt.s", type="stream", exchange="dg.x"), 2)
    assert [(m["drone_id"], m["seq"]) for m in msgs] == [("drone-7", 1), ("drone-7", 2)]


def test_broker_nack_acks_nothing(rb):
    """x-max-length 4 with overflow reject-publish (a policy): the broker
    nacks the 5th message on; the batch holding it and every later one are
    never handed back with status 0, failing() turns true, and at stop they
    come back with status < 0 (the drones resend)."""
    rb.ctl("set_policy", "maxlen", "^rej\\.q$", '{"max-length":4,"overflow":"reject-publish"}',
           "--apply-to", "queues")
    d = Drive(rb.uri("rej.q", type="classic"))
    b1 = d.pub(4)
    assert d.done(b1)[0] == 0
    b2 = d.pub(3)
    b3 = d.pub(1)
    d.stderr_until("basic.nack")
    assert d.state()["failing"] == "1"
    assert d.state()["backlog_full"] == "1"
    seen = d.stop(300)
    dones = [l.split() for l in seen if l.startswith("done ")]
    assert [(int(x[1]), int(x[2])) for x in dones] == [(b2, -1), (b3, -1)], seen
    assert rb.message_count("rej.q") == 4
    rb.ctl("clear_policy", "maxlen")


def test_gateway_broker_nack_no_drone_ack(rb, server_factory):
    """The same through the gateway: with room for 3 messages, a drone that
    sends 8 gets acks up to 3 at most, /readyz says 503."""
    rb.ctl("set_policy", "maxlen3", "^gwrej\\.q$", '{"max-length":3,"overflow":"reject-publish"}',
           "--apply-to", "queues")
    srv = server_factory(args=["--queue", rb.uri("gwrej.q", type="classic")])
    did = dg.new_id("rj")

    async def go():
        d = await dg.Drone.connect(srv, did)
        for seq in range(1, 9):
            await d.send(dg.telem(seq))
        dg.wait_until(lambda: "basic.nack" in srv.stderr(), 30, "the broker's nack in the log")
        await d.sync()
        assert d.max_ack is None or d.max_ack <= 3, d.acks
        assert srv.get("/readyz").status == 503
        await d.close()
    dg.run(go())
    assert rb.message_count("gwrej.q") == 3
    rb.ctl("clear_policy", "maxlen3")


def test_consumer_acks_only_committed(rb):
    """Consumer ops: without commit the messages come back (closing the
    connection requeues them); committed ones (basic.ack multiple) are gone."""
    uri = rb.uri("cons.q")
    d = Drive(uri)
    b = d.pub(10, "dc")
    assert d.done(b)[0] == 0
    d.stop()
    msgs, lag = consume(uri, 10, commit=False, prefetch=2, idle_ms=1000)
    assert [m["seq"] for m in msgs] == [1, 2, 3, 4]      # basic.qos 2 x 2 holds the rest back
    msgs, lag = consume(uri, 10, commit=False, prefetch=20)
    assert [m["seq"] for m in msgs] == list(range(1, 11))
    assert rb.message_count("cons.q") == 10
    msgs, lag = consume(uri, 10, commit=True, prefetch=4)
    assert sorted(m["seq"] for m in msgs) == list(range(1, 11))
    assert lag == 0
    assert rb.message_count("cons.q") == 0


def test_competing_consumers_share_a_queue(rb):
    """Two consumers on one queue, both subscribed before anything is
    published: the broker spreads the messages, each is delivered to one."""
    uri = rb.uri("comp.q")
    procs = [subprocess.Popen([str(DRIVE), "consume", uri, "40", "commit", "5", "1000"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:                     # "amqp consumer: consuming comp.q ..." once subscribed
        while "consuming" not in (line := p.stderr.readline()):
            assert line, "amqp-drive consume exited before subscribing"
    d = Drive(uri)
    b = d.pub(40, "dcc")
    assert d.done(b)[0] == 0
    d.stop()
    seqs = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        seqs.append([json.loads(l.split(" ", 2)[2])["seq"] for l in out.splitlines() if l.startswith("msg ")])
    assert sorted(seqs[0] + seqs[1]) == list(range(1, 41))
    assert seqs[0] and seqs[1], "one consumer got everything"


def test_gateway_publishes_acks_follow_confirms(rb, server_factory):
    """drones -> gateway --queue amqp://...&exchange=X -> RabbitMQ: every
    acked message is in the queue, read by pika with routing key = drone id;
    the telemetry is not written to the gateway's store."""
    srv = server_factory(args=["--queue", rb.uri("gw.q", exchange="gw.x")])
    ids = [dg.new_id("gw") for _ in range(2)]

    async def go():
        for i in ids:
            d = await dg.Drone.connect(srv, i)
            for seq in range(1, 21):
                await d.send(dg.telem(seq))
            assert await d.wait_ack(20) == 20
            await d.close()
    dg.run(go())
    got = pika_get_all(rb, "gw.q")
    by = {}
    for method, props, body in got:
        v = json.loads(body)
        assert method.exchange == "gw.x" and method.routing_key == v["drone_id"]
        assert props.delivery_mode == 2 and props.content_type == "application/json"
        assert props.message_id == f"{v['drone_id']}:{v['seq']}"
        by.setdefault(v["drone_id"], set()).add(v["seq"])
        t = dg.telem(v["seq"])
        assert v["timestamp"] == dg.to_ms(t["timestamp"])
        assert v["latitude"] == t["latitude"] and v["status"] == "airborne" and v["battery"] == 76.5
    assert by == {i: set(range(1, 21)) for i in ids}
    assert dg.metric(srv.metrics(), "dronegate_queue_published_total") == 40
    r = srv.get(f"/api/v1/drones/{ids[0]}/telemetry?limit=10")
    assert r.status == 404 or r.json()["telemetry"] == [], r


def test_gateway_start_errors_exit_2(rb, server_factory):
    """A bad amqp:// URI, no broker, an unknown vhost, or a queue that exists
    with another type: one sentence on stderr, exit 2."""
    rb.ctl("add_vhost", "other")        # guest has no permission there
    c = pika.BlockingConnection(rb.pika_params())
    c.channel().queue_declare("pre.q", durable=True, arguments={"x-queue-type": "quorum"})
    c.close()
    for uri, says in ((rb.uri("x", type="lazy"), "type must be quorum, stream or classic"),
                      (f"amqp://guest:guest@127.0.0.1:{dg.free_port()}/?queue=x", "connect to 127.0.0.1"),
                      (rb.uri("x", vhost="nope"), "login"),
                      (rb.uri("x", vhost="other"), "refused for user"),
                      (rb.uri("pre.q", type="classic"), "PRECONDITION_FAILED")):
        s = server_factory(start=False, args=["--queue", uri])
        s.spawn()
        assert s.wait_exit(30) == 2, s.tail()
        assert says in s.stderr(), s.tail()
        assert "guest:guest" not in s.stderr(), "the password is in the log"


def test_broker_memory_alarm_blocks_then_recovers(rb, server_factory):
    """A broker resource alarm (memory watermark 0) blocks publishers
    (connection.blocked): no ack, /readyz 503; the alarm cleared, the
    messages are confirmed and acked, /readyz 200."""
    srv = server_factory(args=["--queue", rb.uri("alarm.q", type="classic")])
    did = dg.new_id("al")

    async def go():
        d = await dg.Drone.connect(srv, did)
        await d.send(dg.telem(1))
        assert await d.wait_ack(1) == 1
        rb.ctl("set_vm_memory_high_watermark", "0")
        try:
            dg.wait_until(lambda: "memory" in rb.ctl("eval", "rabbit_alarm:get_alarms()."), 30, "the memory alarm")
            for seq in range(2, 6):
                await d.send(dg.telem(seq))
            dg.wait_until(lambda: "blocks publishers" in srv.stderr(), 30, "connection.blocked in the log")
            assert srv.get("/readyz").status == 503
            await d.sync()
            assert d.max_ack == 1, d.acks
        finally:
            rb.ctl("set_vm_memory_high_watermark", "0.4")
        assert await d.wait_ack(5, timeout=30) == 5
        dg.wait_until(lambda: srv.get("/readyz").status == 200, 30, "readyz 200")
        await d.close()
    dg.run(go(), timeout=120)


def test_broker_down_nothing_acked_readyz_503_then_recovery(rb, server_factory, tmp_path):
    """The broker stops mid-run. The gateway: nothing acked meanwhile, /readyz
    503, acks after the broker is back (no restart). The publisher ops
    (amqp-drive): a batch submitted meanwhile is not handed back, failing() is
    true; it is confirmed after the broker is back. The sink: /readyz 503
    while the broker is away, then it reconnects and stores the rest. One
    broker restart for all three."""
    srv = server_factory(args=["--queue", rb.uri("down.gw", type="classic")])
    store = tmp_path / "sink.db"
    sk = Sink(tmp_path / "sink", store=f"sqlite:{store}", args=["--queue", rb.uri("down.gw", type="classic")])
    sk.start()
    drv = Drive(rb.uri("down.q", type="classic"))
    b1 = drv.pub(5)
    assert drv.done(b1)[0] == 0
    did = dg.new_id("dn")

    async def go():
        d = await dg.Drone.connect(srv, did)
        for seq in range(1, 6):
            await d.send(dg.telem(seq))
        assert await d.wait_ack(5) == 5
        assert srv.get("/readyz").status == 200
        dg.wait_until(lambda: db_seqs(store, did) == [1, 2, 3, 4, 5], 20, "the sink stored 1..5")
        rb.stop()
        drv.stderr_until("amqp:")                      # the publisher saw the connection go
        dg.wait_until(lambda: srv.get("/readyz").status == 503, 30, "readyz 503")
        dg.wait_until(lambda: sk.get("/readyz").status == 503, 30, "sink readyz 503")
        for seq in range(6, 11):
            await d.send(dg.telem(seq))
        b2 = drv.pub(5)
        await d.sync()                                 # everything the gateway sent so far is read
        assert d.max_ack == 5
        assert drv.state()["failing"] == "1"
        rb.start()
        assert await d.wait_ack(10, timeout=60) == 10
        status, seen = drv.done(b2, timeout=60)
        assert status == 0, seen
        dg.wait_until(lambda: srv.get("/readyz").status == 200, 30, "readyz 200")
        await d.close()
    try:
        dg.run(go(), timeout=150)
        assert drv.state()["failing"] == "0"
        drv.stop()
        seqs = sorted(json.loads(b)["seq"] for _, _, b in pika_get_all(rb, "down.q"))
        assert set(seqs) == set(range(1, 11))
        dg.wait_until(lambda: db_seqs(store, did) == list(range(1, 11)), 30, "the sink stored 1..10")
        dg.wait_until(lambda: sk.get("/readyz").status == 200, 30, "sink readyz 200")
    finally:
        if sk.alive():
            sk.stop()


def test_sink_exactly_once_store_outage_then_kill9(rb, server_factory, tmp_path):
    """drones -> gateway -> RabbitMQ (quorum) -> dronegate sink -> SQLite.
    While the sink's store cannot commit, nothing is acked to the broker (the
    delivered messages stay unacked); the sink is killed -9 then, the broker
    redelivers, and the restarted sink stores every message exactly once."""
    uri = rb.uri("e2e.q")
    s = server_factory(args=["--queue", uri, "--ack-interval", "0"])
    drone = dg.new_id("ae")
    n = 400
    store = tmp_path / "sink.db"
    sk = Sink(tmp_path / "sink", store=f"sqlite:{store}",
              args=["--queue", uri, "--batch-records", "64", "--shutdown-timeout", "3000"])
    sk.start()
    con = lock_db(store)                 # the sink's store commits fail from now on
    try:
        async def go():
            d = await dg.Drone.connect(s, drone)
            for i in range(1, n + 1, 100):
                await d.send([dg.minimal(j) for j in range(i, i + 100)])
            assert await d.wait_ack(n) == n
            await d.close()
        dg.run(go())
        dg.wait_until(lambda: dg.metric(sk.metrics(), "dronegate_store_errors_total") >= 1, 20,
                      "a failed store commit")
        assert sk.get("/readyz").status == 503
        assert dg.metric(sk.metrics(), "dronegate_sink_consumed_total") >= 1
        assert dg.metric(sk.metrics(), "dronegate_sink_commits_total") == 0
        sk.kill9()
    finally:
        con.rollback()
        con.close()
    # nothing was acked: the broker takes the deliveries back, all n are ready
    dg.wait_until(lambda: rb.message_count("e2e.q") == n, 15, f"{n} messages ready again after the kill")
    assert db_seqs(store, drone) == []
    sk.restart()
    dg.wait_until(lambda: len(db_seqs(store, drone)) >= n, 30, "everything stored after the restart")
    assert db_seqs(store, drone) == list(range(1, n + 1))
    dg.wait_until(lambda: rb.message_count("e2e.q") == 0 and
                  dg.metric(sk.metrics(), "dronegate_sink_lag_messages") == 0, 30, "every delivery acked")
    assert sk.get("/readyz").status == 200
    sk.stop()


@pytest.mark.skipif(not servers.pg_available(), reason="PostgreSQL not installed")
def test_two_gateways_two_sinks_postgres_exactly_once_with_kill9(rb, server_factory, tmp_path):
    """Two gateways publish to one quorum queue; two competing sinks store
    into one PostgreSQL; one sink is killed -9 between the two halves of the
    run (its unacked deliveries go to the other). Every message is stored
    exactly once."""
    db = DB(servers.shared_postgres())
    uri = rb.uri("pg.q")
    gws = [server_factory(store=db.uri(), args=["--queue", uri, "--instance", f"gw-{c}", "--ack-interval", "0"])
           for c in "ab"]
    sinks = [Sink(tmp_path / f"sink{i}", store=db.uri(),
                  args=["--queue", uri, "--batch-records", "50", "--shutdown-timeout", "3000"]) for i in range(2)]
    drones = [dg.new_id("pg") for _ in range(4)]
    n = 300

    async def send(gw, did, lo, hi):
        d = await dg.Drone.connect(gw, did)
        for i in range(lo, hi + 1, 50):
            await d.send([dg.minimal(j) for j in range(i, min(i + 50, hi + 1))])
        assert await d.wait_ack(hi) == hi
        await d.close()

    async def half(lo, hi):
        await asyncio.gather(*(send(gws[i % 2], did, lo, hi) for i, did in enumerate(drones)))
    try:
        for sk in sinks:
            sk.start()
        dg.run(half(1, n // 2))
        dg.wait_until(lambda: dg.metric(sinks[0].metrics(), "dronegate_sink_consumed_total") >= 1, 20,
                      "sink 0 consumed something")
        sinks[0].kill9()
        dg.run(half(n // 2 + 1, n))
        total = len(drones) * n
        dg.wait_until(lambda: db.one("SELECT count(*) FROM telemetry") >= total, 60, "everything stored")
        assert db.one("SELECT count(*) FROM telemetry") == total
        for did in drones:
            assert [r[0] for r in db.rows("SELECT seq FROM telemetry WHERE drone_id = %s ORDER BY seq", did)] \
                == list(range(1, n + 1))
        dg.wait_until(lambda: rb.message_count("pg.q") == 0, 30, "every delivery acked")
    finally:
        for sk in sinks:
            if sk.alive():
                sk.stop()
