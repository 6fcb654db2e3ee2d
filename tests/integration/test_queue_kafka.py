"""Kafka between gateways and stores (issue 9): --queue kafka://... and
`dronegate sink`.

Debian packages no Kafka broker: the broker is librdkafka's mock cluster
(build/kafka-mockcluster, tests/kafka/mockcluster.c: 3 brokers on loopback,
error injection and brokers down/up on its stdin). The producer and the
consumer under test are dronegate's production code; the topic is read with
kcat (Debian package kcat), a client we did not write.

  - the gateway publishes: key = drone id, value per contract, header
    content-type: application/json; the drone's ack follows the delivery
  - brokers down: nothing acked, /readyz 503; brokers back: everything is
    delivered and acked without a restart, the topic holds every acked seq
  - the sink stores everything once (same SQLite as the gateway: REST
    history shows it); poison messages are counted and skipped
  - store outage under the sink: nothing committed, /readyz 503; kill -9 of
    the sink meanwhile; after restart every message is stored exactly once
    (the offset is committed only after the store commit)
"""
import json
import subprocess
import time
from pathlib import Path

import pytest
import websockets

import dg
import servers
from storetest import DB
from test_outage import lock_db, stored_seqs as db_seqs
from dg import T, Drone, metric, minimal, new_id, run, wait_until

MOCK = str(dg.REPO / "build" / "kafka-mockcluster")
TOPIC = "dronegate.telemetry"

pytestmark = pytest.mark.skipif(not Path(MOCK).exists(), reason="build/kafka-mockcluster not built (mk/kafka.mk)")


class Mock:
    """The mock cluster process; cmd() waits for its "ok"."""

    def __init__(self, topic=TOPIC, partitions=3):
        self.p = subprocess.Popen([MOCK, topic, str(partitions)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.bootstrap = self.p.stdout.readline().strip()
        assert self.bootstrap.count(",") == 2, f"mock cluster said {self.bootstrap!r}"

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        r = self.p.stdout.readline().strip()
        assert r == "ok", f"mock cluster: {line} -> {r!r}"

    def uri(self, topic=TOPIC, **params):
        q = "&".join(f"{k}={v}" for k, v in params.items())
        return f"kafka://{self.bootstrap}/{topic}" + (f"?{q}" if q else "")

    def close(self):
        # a test tool: no graceful teardown needed (librdkafka's takes ~1 s)
        self.p.kill()
        self.p.wait(timeout=10)
        self.p.stdin.close()
        self.p.stdout.close()


@pytest.fixture
def mock():
    # listed before server_factory in the tests: set up first, torn down
    # last, so the gateways stop while the brokers are still there
    m = Mock()
    yield m
    m.close()


def kcat(m, topic=TOPIC):
    """Every message of the topic, as kcat's JSON envelopes."""
    p = subprocess.run(["kcat", "-b", m.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J"],
                       capture_output=True, text=True, timeout=T(30))
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


class Sink(dg.Server):
    """`dronegate sink` with dg.Server's process handling (start waits for
    /healthz, stop checks the exit code and sanitizer reports)."""

    def _cmd_env(self):
        cmd, env = super()._cmd_env()
        return [cmd[0], "sink"] + cmd[1:], env


# a killed consumer keeps its partitions until its session times out
# (librdkafka's default 45 s): short for the tests, but above the mock
# cluster's 3 s initial rebalance delay (a member must outlive its first join)
SINK_PARAMS = {"session.timeout.ms": "4000", "heartbeat.interval.ms": "500"}


def sink_factory(tmp_path, queue, store, group="g1", extra=()):
    queue += ("&" if "?" in queue else "?") + "&".join(f"{k}={v}" for k, v in SINK_PARAMS.items())
    s = Sink(tmp_path / f"sink-{dg.uuid.uuid4().hex[:6]}", store=store,
             args=["--queue", queue, "--group", group, "--shutdown-timeout", "3000", *extra])
    return s


def publish(s, drone, n, first=1, chunk=50):
    """Send seqs first..n through gateway s in frames of chunk; wait for the ack of n."""
    async def go():
        d = await Drone.connect(s, drone)
        for i in range(first, n + 1, chunk):
            await d.send([minimal(j) for j in range(i, min(i + chunk, n + 1))])
        await d.wait_ack(n)
        await d.close()
    run(go())


def test_gateway_publishes_per_contract_and_acks_after_delivery(mock, server_factory):
    s = server_factory(args=["--queue", mock.uri(), "--ack-interval", "0"])
    drone = new_id("kq")
    n = 40

    async def go():
        d = await Drone.connect(s, drone)
        await d.send([minimal(i, timestamp=1795428000000 + i, speed=1.5, status="ok") for i in range(1, n + 1)])
        await d.wait_ack(n)
        await d.close()
    run(go())
    msgs = [m for m in kcat(mock) if m["key"] == drone]
    assert sorted(json.loads(m["payload"])["seq"] for m in msgs) == list(range(1, n + 1))
    for m in msgs:
        assert m["headers"] == ["content-type", "application/json"], m
        v = json.loads(m["payload"])
        assert v["drone_id"] == drone
        assert v["timestamp"] == 1795428000000 + v["seq"]
        assert (v["latitude"], v["longitude"], v["altitude"], v["speed"], v["status"]) == (10.0, 20.0, 30.0, 1.5, "ok")
        assert isinstance(v["received_at"], int) and abs(v["received_at"] - time.time() * 1000) < 600000
    assert metric(s.metrics(), "dronegate_queue_published_total") == n
    # the gateway wrote no telemetry itself (dronegate sink does)
    assert s.seqs(drone) == []
    assert s.get("/readyz").status == 200


@pytest.mark.plain_only   # start-up sentences; the 5 s broker check dominates
def test_bad_queue_uri_or_no_broker_exits_2(mock, server_factory):
    for uri, says in (("kafka://", "HOST:PORT"), ("nats://x:1/t", "unknown queue URI scheme"),
                      (mock.uri(**{"enable.idempotence": "false"}), "enable.idempotence cannot be changed"),
                      (f"kafka://127.0.0.1:{dg.free_port()}/t", "no Kafka broker")):
        s = server_factory(start=False, args=["--queue", uri])
        s.spawn()
        assert s.wait_exit(T(20)) == 2, s.tail()
        err = s.stderr()
        assert says in err, err
        assert "--queue" in err, err


def test_brokers_down_nothing_acked_readyz_503_then_recovery(mock, server_factory):
    s = server_factory(args=["--queue", mock.uri(), "--ack-interval", "0"])
    drone = new_id("kdown")

    async def go():
        d = await Drone.connect(s, drone)
        await d.send([minimal(i) for i in range(1, 11)])
        await d.wait_ack(10)
        mock.cmd("alldown")
        for i in range(11, 61):
            await d.send(minimal(i))
        wait_until(lambda: s.get("/readyz").status == 503, T(20), "readyz 503 while every broker is down")
        assert s.get("/readyz").body == b"queue unreachable\n"
        # a delivery failed (message.timeout.ms): the batch is produced again, not acked
        await d.sync()
        assert d.max_ack == 10, f"acked {d.max_ack} while no broker could confirm"
        assert s.get("/readyz").status == 503
        mock.cmd("allup")
        await d.wait_ack(60, T(30))
        wait_until(lambda: s.get("/readyz").status == 200, T(20), "readyz 200 after the brokers came back")
        # Produce requests fail (a non-retriable error, 10 = MESSAGE_TOO_LARGE):
        # the failed records' batches are produced again, nothing acked before
        mock.cmd("err 0 4 10")
        await d.send([minimal(i) for i in range(61, 81)])
        wait_until(lambda: "kafka: delivery of" in s.stderr(), T(20), "a failed delivery report")
        await d.wait_ack(80, T(30))
        await d.close()
    run(go(), T(90))
    seqs = {json.loads(m["payload"])["seq"] for m in kcat(mock) if m["key"] == drone}
    assert seqs == set(range(1, 81))   # every acked seq is in the topic (duplicates allowed)


def test_brokers_down_and_batch_pool_full_drone_gets_1008(mock, server_factory):
    # as with a failing store: a full batch pool while nothing can be
    # confirmed is said to the drone (1008), not a silent stall
    s = server_factory(args=["--queue", mock.uri(), "--batch-records", "16", "--batch-pool", "2", "--workers", "1",
                             "--shutdown-timeout", "1000"])
    drone = new_id("k1008")
    mock.cmd("alldown")
    wait_until(lambda: s.get("/readyz").status == 503, T(20), "readyz 503")

    async def go():
        d = await Drone.connect(s, drone)
        try:
            for i in range(1, 2001, 20):
                await d.send([minimal(j) for j in range(i, i + 20)])
        except websockets.ConnectionClosed:
            pass
        assert await d.wait_closed(T(20)) == 1008
        assert d.max_ack is None
    run(go())
    # SIGTERM while no broker confirms: the drain ends at --shutdown-timeout,
    # exit 0, nothing acked
    s.stop(timeout=T(10))
    assert "not acked (the drones resend it)" in s.stderr()


def test_sink_stores_everything_once_and_skips_poison(mock, server_factory, tmp_path):
    s = server_factory(args=["--queue", mock.uri(), "--ack-interval", "0"])
    drones = [new_id("ks") for _ in range(3)]
    n = 300

    for drone in drones:
        publish(s, drone, n)
    # a message without seq (never acked: there is nothing to ack) is
    # published and stored all the same
    noseq = new_id("kns")
    async def send_noseq():
        d = await Drone.connect(s, noseq)
        await d.send(minimal())
        await d.sync()
        await d.close()
    run(send_noseq())
    wait_until(lambda: metric(s.metrics(), "dronegate_queue_published_total") == 3 * n + 1, T(10), "the seq-less message published")
    # a poison message in the topic: counted and skipped, not a stop
    p = subprocess.run(["kcat", "-b", mock.bootstrap, "-P", "-t", TOPIC, "-k", "junk"], input="not json\n",
                       capture_output=True, text=True, timeout=T(30))
    assert p.returncode == 0, p.stderr
    sk = sink_factory(tmp_path, mock.uri(), s.store, extra=["--batch-records", "128"])
    sk.start()
    for drone in drones:
        wait_until(lambda: len(db_seqs(s.db, drone)) >= n, T(30), f"the sink stored {drone}")
    wait_until(lambda: db_seqs(s.db, noseq), T(10), "the seq-less message stored")
    wait_until(lambda: metric(sk.metrics(), "dronegate_sink_lag_messages") == 0, T(15), "lag 0")
    m = sk.metrics()
    assert metric(m, "dronegate_sink_poison_total") == 1
    assert metric(m, "dronegate_messages_stored_total") == 3 * n + 1
    assert sk.get("/readyz").status == 200
    assert db_seqs(s.db, noseq) == [None]
    for drone in drones:
        assert db_seqs(s.db, drone) == list(range(1, n + 1))
        assert s.seqs(drone) == list(range(1, n + 1))   # the gateway's REST history reads what the sink stored
    sk.stop()   # SIGTERM: exit 0 with every stored batch committed
    sk.restart()
    # one new message: once it is stored, the restarted sink has read
    # everything after the committed offsets, and nothing before them
    publish(s, drones[0], n + 1, first=n + 1)
    wait_until(lambda: len(db_seqs(s.db, drones[0])) == n + 1, T(30), "the new message stored")
    assert metric(sk.metrics(), "dronegate_sink_consumed_total") == 1, "messages stored before SIGTERM came again"
    sk.stop()


@pytest.mark.plain_only   # slow (store busy timeout, group rebalance); the bytes are the same as above
def test_sink_store_outage_commits_nothing_kill9_restart_exactly_once(mock, server_factory, tmp_path):
    s = server_factory(args=["--queue", mock.uri(), "--ack-interval", "0"])
    drone = new_id("kx")
    n = 400
    store = tmp_path / "sink.db"
    sk = sink_factory(tmp_path, mock.uri(), f"sqlite:{store}", group="gx", extra=["--batch-records", "64"])
    sk.start()
    # from now on the sink's store cannot commit: another connection holds
    # it exclusively (as a competing writer would)
    con = lock_db(store)
    try:
        publish(s, drone, n, chunk=100)
        wait_until(lambda: metric(sk.metrics(), "dronegate_store_errors_total") >= 1, T(20), "a failed store commit")
        wait_until(lambda: sk.get("/readyz").status == 503, T(10), "sink readyz 503 while the store fails")
        assert sk.get("/readyz").body == b"store unreachable\n"
        # the sink polls what the broker has (up to --batch-records): its
        # first batch can be a handful of messages, not 64 (CI saw 6)
        assert metric(sk.metrics(), "dronegate_sink_consumed_total") >= 1
        # the lag gauge moves while the batch waits for the store
        wait_until(lambda: metric(sk.metrics(), "dronegate_sink_lag_messages") > 0, T(10), "lag > 0 during the outage")
        assert metric(sk.metrics(), "dronegate_sink_commits_total") == 0, "an offset was committed while the store failed"
        sk.kill9()
    finally:
        con.rollback()
        con.close()
    assert db_seqs(store, drone) == []
    sk.restart()
    wait_until(lambda: len(db_seqs(store, drone)) >= n, T(30), "everything stored after the restart")
    assert db_seqs(store, drone) == list(range(1, n + 1))
    # redelivered from the start: nothing was committed before the kill
    assert metric(sk.metrics(), "dronegate_sink_consumed_total") >= n
    wait_until(lambda: sk.get("/readyz").status == 200, T(10), "sink ready again")
    sk.stop()


@pytest.mark.plain_only   # needs the PostgreSQL fixture; the bytes are the same as above
@pytest.mark.skipif(not servers.pg_available(), reason="PostgreSQL binaries not installed")
def test_two_gateways_one_sink_postgresql_exactly_once(mock, server_factory, tmp_path):
    """The README's example: two gateways publish, one sink stores into the
    PostgreSQL they share; a sink killed with -9 mid-run and restarted still
    stores every message once."""
    db = DB(servers.shared_postgres())
    gws = [server_factory(store=db.uri(), args=["--queue", mock.uri(), "--ack-interval", "0", "--instance", f"gw{i}"])
           for i in range(2)]
    drones = [new_id("kpg") for _ in range(4)]
    n = 500
    sk = sink_factory(tmp_path, mock.uri(), db.uri(), group="gpg", extra=["--batch-records", "32"])
    sk.start()

    async def go():
        ds = [await Drone.connect(gws[i % 2], drone) for i, drone in enumerate(drones)]
        for i in range(1, n + 1, 50):
            for d in ds:
                await d.send([minimal(j) for j in range(i, i + 50)])
        for d in ds:
            await d.wait_ack(n)
            await d.close()
    run(go())

    def stored():
        return db.one("SELECT count(*) FROM telemetry")
    wait_until(lambda: stored() >= 64, T(30), "the sink storing")
    sk.kill9()
    sk.restart()
    wait_until(lambda: stored() >= 4 * n, T(40), "every message stored")
    rows = db.rows("SELECT drone_id, count(*), count(DISTINCT seq), min(seq), max(seq) FROM telemetry GROUP BY drone_id")
    assert sorted(rows) == sorted((d, n, n, 1, n) for d in drones)
    # either gateway's REST history reads what the sink stored
    assert gws[1].seqs(drones[0]) == list(range(1, n + 1))
    sk.stop()
