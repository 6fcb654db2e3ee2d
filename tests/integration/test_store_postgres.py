"""The postgresql:// store against a real PostgreSQL 15 (servers.py starts a
throw-away cluster once per pytest process; each test gets its own
database): every contract field round-trips, a redelivery is stored once,
schema versions and partitions, PostgreSQL stopped mid-stream for 10+ s,
kill -9 of the gateway, retention, start-up failures.

The database is checked directly with psycopg, not only through the REST API.
"""
import json
import subprocess
import time
import uuid

import pytest

import servers
from dg import SIM, T, Drone, clean_env, minimal, new_id, run, telem, wait_until
from storetest import DB, expected_row, rest_rows, send_all


@pytest.fixture(scope="module")
def pg():
    return servers.shared_postgres()


@pytest.fixture
def db(pg):
    return DB(pg)


# ---------------------------------------------------------------- round trip

VARIANTS = {"default": {}, "staging": {"write": "staging"}, "strict": {"dedup": "strict"}}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_field_round_trips(server_factory, db, variant):
    s = server_factory(store=db.uri(**VARIANTS[variant]))
    drone, big = new_id("pgrt"), new_id("pgbig")
    now = int(time.time() * 1000)
    msgs = [
        telem(1),                                                   # every field, RFC 3339, 3 days ago
        minimal(2, timestamp=now),                                  # only the required ones, epoch ms
        telem(3, timestamp=now + 1, status='q"uote \\ tab\t nl\n ünï €', speed=0.0,
              heading=359.999, climb=-12.25, battery=0.0),
        minimal(4, latitude=-90.0, longitude=180.0, altitude=-1000.0, timestamp="1677-09-22T00:00:00Z"),
        minimal(5, latitude=90.0, longitude=-180.0, altitude=100000.0, timestamp="2262-04-11T23:47:16.854Z"),
        minimal(None, timestamp=now + 2, latitude=0.1, longitude=0.2, altitude=0.3),   # no seq
        minimal(7, latitude=1.0000000000000002, longitude=-179.99999999999997, altitude=5e-324,
                timestamp="2026-11-24T12:00:00.123456+02:00"),      # offset, sub-ms fraction
        telem(9, timestamp=now + 3, status=""),
    ]
    t_before = int(time.time() * 1000)
    run(send_all(s, drone, msgs + [minimal(8)], 9))                 # 8: no timestamp (receive time)
    t_after = int(time.time() * 1000)
    run(send_all(s, big, [minimal(2**63, timestamp=now), minimal(2**64 - 1, timestamp=now + 1)], 2**64 - 1))

    got = rest_rows(s, drone)
    no_ts = [r for r in got if r.get("seq") == 8]
    assert len(no_ts) == 1, got
    assert t_before - 5 <= no_ts[0].pop("timestamp") <= t_after + 5, no_ts
    assert no_ts[0] == {"seq": 8, "latitude": 10.0, "longitude": 20.0, "altitude": 30.0}
    got = [r for r in got if r.get("seq") != 8]
    want = sorted((expected_row(m) for m in msgs), key=lambda r: (r["timestamp"], r.get("seq", -1)))
    assert got == want

    assert [r["seq"] for r in s.history(big)] == [2**63, 2**64 - 1]
    # seq is the uint64 bit pattern in a bigint, as in SQLite
    assert [r[0] for r in db.rows("SELECT seq FROM telemetry WHERE drone_id = %s ORDER BY timestamp", big)] \
        == [-2**63, -1]
    # the columns are what the contract says, with native types
    types = dict(db.rows("SELECT column_name, data_type FROM information_schema.columns "
                         "WHERE table_name = 'telemetry' AND table_schema = 'public'"))
    assert types == {"drone_id": "text", "timestamp": "timestamp with time zone", "seq": "bigint",
                     "latitude": "double precision", "longitude": "double precision",
                     "altitude": "double precision", "speed": "double precision",
                     "heading": "double precision", "climb": "double precision",
                     "battery": "double precision", "status": "text",
                     "received_at": "timestamp with time zone"}
    # the years 1677 and 2262 are outside every premade partition: default partition
    assert db.one("SELECT count(*) FROM telemetry_default WHERE drone_id = %s", drone) >= 3


def test_history_range_and_limit_across_partitions(server_factory, db):
    s = server_factory(store=db.uri())
    drone = new_id("pgq")
    day = 86400000
    base = int(time.time() * 1000) // day * day
    stamps = [base - 5 * day, base - day + 1, base, base + 10, base + day, base + 3 * day + 7, base + 30 * day]
    msgs = [minimal(i + 1, timestamp=t, altitude=float(i)) for i, t in enumerate(stamps)]
    run(send_all(s, drone, msgs, len(msgs), batch=True))
    assert [r["timestamp"] for r in rest_rows(s, drone)] == stamps
    assert [r["seq"] for r in rest_rows(s, drone, **{"from": base, "to": base + day})] == [3, 4, 5]
    assert [r["seq"] for r in rest_rows(s, drone, **{"from": base - day + 1, "limit": 2})] == [2, 3]
    assert [r["seq"] for r in rest_rows(s, drone, to=base - 1)] == [1, 2]
    assert rest_rows(s, drone, **{"from": base + 31 * day}) == []
    # rows went to their day's partition (premade: yesterday .. +7 days) or the default one
    parts = dict(db.rows("SELECT seq, tableoid::regclass::text FROM telemetry WHERE drone_id = %s", drone))
    assert parts[1] == "telemetry_default" and parts[7] == "telemetry_default", parts
    assert len({parts[3], parts[4]}) == 1 and parts[3].startswith("telemetry_p"), parts
    assert parts[5] != parts[3] and parts[6].startswith("telemetry_p"), parts


# ---------------------------------------------------------------- redelivery

@pytest.mark.parametrize("variant", list(VARIANTS))
def test_redelivered_messages_are_stored_once(server_factory, db, variant):
    s = server_factory(store=db.uri(**VARIANTS[variant]))
    drone = new_id("pgdup")
    with_ts = [telem(i) for i in range(1, 11)]
    without_ts = [minimal(i) for i in range(11, 16)]                 # receive time: differs per delivery
    run(send_all(s, drone, with_ts + without_ts, 15, batch=True))
    # the same batch again on a new connection (an ack that was lost), and a
    # frame that holds one message twice
    run(send_all(s, drone, with_ts + without_ts, 15, batch=True))
    run(send_all(s, drone, [telem(16), telem(16), minimal(17), minimal(17), telem(18)], 18, batch=True))
    run(send_all(s, drone, [minimal(12), telem(5), telem(18)], 18, batch=True))
    seqs = [r["seq"] for r in s.history(drone)]
    assert sorted(seqs) == list(range(1, 19)), seqs
    assert db.one("SELECT count(*) FROM telemetry WHERE drone_id = %s", drone) == 18
    assert db.one("SELECT count(DISTINCT seq) FROM telemetry WHERE drone_id = %s", drone) == 18


# ---------------------------------------------------------------- schema

def test_schema_versioned_partitioned_and_idempotent(server_factory, db):
    s = server_factory(store=db.uri())
    s.stop()
    s2 = server_factory(store=db.uri(scheme="postgres"))          # libpq's other scheme name
    assert db.rows("SELECT version FROM dronegate_schema ORDER BY 1") == [(1,), (2,), (3,)]
    assert db.one("SELECT relkind::text FROM pg_class WHERE relname = 'telemetry'") == "p"
    parts = [r[0] for r in db.rows(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'telemetry'::regclass ORDER BY 1")]
    assert "telemetry_default" in parts
    assert len([p for p in parts if p.startswith("telemetry_p")]) == 9, parts     # yesterday, today, +7
    idx = db.rows("SELECT indexdef FROM pg_indexes WHERE tablename = 'telemetry'")
    assert len(idx) == 1 and "UNIQUE" in idx[0][0] and "(drone_id, \"timestamp\", seq NULLS FIRST)" in idx[0][0], idx
    for t in ("drones", "commands", "telemetry_seq"):
        assert db.one("SELECT count(*) FROM pg_class WHERE relname = %s", t) == 1, t
    for col in ("timestamp", "instance", "fleet_txid"):       # version 3: the fleet view
        assert db.one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'drones'"
                      " AND column_name = %s", col) == 1, col
    s2.stop()
    # another partition interval on the same database: new partitions fill the
    # gaps, never overlap the old ones
    s3 = server_factory(store=db.uri(partition="6h", premake="40"))
    s3.stop()
    ranges = db.rows(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'telemetry'::regclass AND c.relname <> 'telemetry_default'")
    assert len(ranges) > 9
    assert db.rows("SELECT version FROM dronegate_schema ORDER BY 1") == [(1,), (2,), (3,)]


def test_newer_schema_is_refused(server_factory, db):
    s = server_factory(store=db.uri())
    s.stop()
    db.exec("INSERT INTO dronegate_schema (version, description) VALUES (99, 'from the future')")
    s2 = server_factory(start=False, store=db.uri())
    s2.spawn()
    assert s2.wait_exit(T(20)) == 1
    err = s2.stderr()
    assert "schema version 99" in err and "knows only up to 3" in err, err


@pytest.mark.parametrize("uri,words", [
    ("postgresql://dg:s3cretpw@127.0.0.1:1/nodb", ["cannot connect", "127.0.0.1:1"]),
    ("postgresql://127.0.0.1/x?partition=5m", ["partition=5m", "is not valid"]),
    ("postgresql://127.0.0.1/x?nosuchoption=1", ["not a valid PostgreSQL URI", "nosuchoption"]),
])
def test_start_failures_say_why(server_factory, uri, words):
    s = server_factory(start=False, store=uri)
    s.spawn()
    assert s.wait_exit(T(20)) == 1
    err = s.stderr()
    for w in words:
        assert w in err, err
    assert "s3cretpw" not in err, err


# ---------------------------------------------------------------- failures

def run_sim(s, *args):
    # --drain: the run ends when every ack is in, however slow the machine
    cmd = [SIM, "--url", s.ws_base, "--json", "--quiet", "--drain", str(T(30))] + [str(a) for a in args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(), stdin=subprocess.DEVNULL)


def sim_report(p, timeout):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, f"sim exited {p.returncode}: {out[-1000:]} {err[-1000:]}"
    return json.loads(out.strip().splitlines()[-1])


def check_complete(db, prefix, sent):
    """Every drone's seqs 1..n stored exactly once, n summing to sent."""
    per = db.rows("SELECT drone_id, count(*), count(DISTINCT seq), min(seq), max(seq) FROM telemetry "
                  "WHERE drone_id LIKE %s GROUP BY drone_id", prefix + "%")
    total = 0
    for drone, n, distinct, lo, hi in per:
        assert n == distinct == hi and lo == 1, (drone, n, distinct, lo, hi)
        total += n
    assert total == sent, (total, sent, per)


def test_postgres_stopped_mid_stream_loses_nothing_acked(server_factory, db, pg):
    s = server_factory(store=db.uri())
    prefix = "pgdown-" + uuid.uuid4().hex[:6] + "-"
    sim = run_sim(s, "--drones", 10, "--rate", 20, "--duration", 22, "--window", 1000, "--prefix", prefix)
    try:
        wait_until(lambda: db.one("SELECT count(*) FROM telemetry") >= 200, T(15), "telemetry flowing")
        pg.stop()
        down = time.monotonic()
        wait_until(lambda: s.get("/readyz").status == 503, T(10), "/readyz 503 while PostgreSQL is down")
        # down for 10+ s: the gateway stays up, answers 503 where the store is needed
        while time.monotonic() - down < 10.5:
            s.check_alive()
            assert s.get("/readyz").status == 503
            assert s.get("/healthz").status == 200
            h = s.get(f"/api/v1/drones/{prefix}0000/telemetry?limit=5")
            assert h.status in (503, 404), h
            time.sleep(0.5)
        pg.start()
        wait_until(lambda: s.get("/readyz").status == 200, T(20), "/readyz 200 after PostgreSQL is back")
        rep = sim_report(sim, T(60))
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.communicate()
        if not pg.running():
            pg.start()
    assert rep["sent"] > 0 and rep["acked"] == rep["sent"], rep
    check_complete(db, prefix, rep["sent"])
    err = s.stderr()
    assert "retrying with backoff" in err and "writes succeed again" in err, s.tail()
    s.check_alive()


def test_kill9_loses_nothing_acked(server_factory, db):
    s = server_factory(store=db.uri(), args=["--fsync"])
    drone = new_id("pgk9")
    state = {}

    async def stream():
        d = await Drone.connect(s, drone)
        seq = 0
        while True:
            frame = [telem(seq + i) for i in range(1, 21)]
            seq += 20
            await d.send(frame)
            await d.recv(0.001)
            while d.acks and seq - d.acks[-1] > 200:
                await d.wait_ack(d.acks[-1] + 1, T(10))
            if d.acks and d.acks[-1] >= 400:
                break
        assert not d.errors, d.errors[:3]
        state["acked"] = d.max_ack
        state["sent"] = seq
        s.kill9()

    run(stream())
    acked, sent = state["acked"], state["sent"]
    seqs = [r[0] for r in db.rows("SELECT seq FROM telemetry WHERE drone_id = %s", drone)]
    assert len(seqs) == len(set(seqs)), "duplicate rows"
    missing = set(range(1, acked + 1)) - set(seqs)
    assert not missing, f"acked up to {acked} but {sorted(missing)[:10]} missing"
    # restart: the registry comes back from telemetry, and a full redelivery
    # (everything sent before the kill) is stored once
    s.restart()
    last = max(seqs)
    assert s.get_json(f"/api/v1/drones/{drone}")["seq"] == last
    run(send_all(s, drone, [telem(i) for i in range(1, sent + 1)], sent, batch=True))
    assert db.one("SELECT count(*) FROM telemetry WHERE drone_id = %s", drone) == sent
    assert db.one("SELECT count(DISTINCT seq) FROM telemetry WHERE drone_id = %s", drone) == sent


# ---------------------------------------------------------------- tables, retention

def test_drones_and_commands_tables(server_factory, db):
    s = server_factory(store=db.uri())
    drone = new_id("pgcmd")

    async def go():
        d = await Drone.connect(s, drone)
        await d.send(telem(1, status="airborne"))
        await d.wait_ack(1)
        r = s.get(f"/api/v1/drones/{drone}/commands", method="POST",
                  body=json.dumps({"name": "goto", "args": {"lat": 47.1, "lon": 8.2, "alt": 500}}),
                  headers={"Content-Type": "application/json"})
        assert r.status == 202, r
        cid = r.json()["id"]
        await d.wait(lambda: any(m.get("type") == "command" for m in d.other), T(10), "command")
        await d.send({"type": "command_ack", "id": cid, "status": "accepted", "message": "on my way"})
        wait_until(lambda: db.rows("SELECT status, message FROM commands WHERE id = %s", cid)
                   == [("accepted", "on my way")], T(10), "commands row accepted")
        await d.close()
        return cid

    cid = run(go())
    row = db.rows("SELECT drone_id, name, args::jsonb, created_at <= updated_at FROM commands WHERE id = %s", cid)
    assert row == [(drone, "goto", {"lat": 47.1, "lon": 8.2, "alt": 500}, True)], row
    wait_until(lambda: db.rows("SELECT last_seq, status FROM drones WHERE drone_id = %s", drone) == [(1, "airborne")],
               T(10), "drones row")
    lat, seen = db.rows("SELECT latitude, last_seen FROM drones WHERE drone_id = %s", drone)[0]
    assert lat == telem(1)["latitude"] and seen is not None


def test_retention_drops_expired_partitions_and_rows(server_factory, db):
    s = server_factory(store=db.uri())
    s.stop()
    day = 86400000
    old = int(time.time() * 1000) // day * day - 10 * day
    db.exec(f"CREATE TABLE telemetry_old PARTITION OF telemetry FOR VALUES FROM (to_timestamp({old // 1000})) "
            f"TO (to_timestamp({(old + day) // 1000}))")
    db.exec("INSERT INTO telemetry (drone_id, timestamp, seq, latitude, longitude, altitude, received_at) "
            "VALUES ('old', to_timestamp(%s), 1, 1, 2, 3, now()), ('ancient', to_timestamp(%s), 1, 1, 2, 3, now()),"
            " ('keep', now(), 1, 1, 2, 3, now())", (old + 60000) / 1000, (old - 20 * day) / 1000)
    db.exec("INSERT INTO telemetry_seq VALUES ('ancient', 1, to_timestamp(%s))", (old - 20 * day) / 1000)
    assert db.one("SELECT count(*) FROM telemetry") == 3
    s2 = server_factory(store=db.uri(retention="5d"))
    assert db.one("SELECT count(*) FROM pg_class WHERE relname = 'telemetry_old'") == 0
    assert [r[0] for r in db.rows("SELECT drone_id FROM telemetry")] == ["keep"]
    assert db.one("SELECT count(*) FROM telemetry_seq") == 0
    assert "dropped partition telemetry_old" in s2.stderr()
