"""The influxdb:// store against a real influxd 1.x (servers.py starts one
per pytest process; each test gets its own database), and the same REST
answers from sqlite:, postgresql:// and influxdb:// for the same telemetry.

InfluxDB semantics checked here (documented in src/store/influxdb.c): one
point per drone and timestamp, so a redelivery overwrites itself; messages
without a timestamp are deduplicated by a per-drone seq watermark. Commands
read back after a restart exactly as before it (as on SQLite). With
authentication on (a second influxd, `auth-enabled = true`): the right
user/password works, a wrong one or none stops the start with one sentence
that names what to check and never the secret; a user without admin rights
works on an existing database. The token= option (InfluxDB 2.x) is parsed,
sent and never logged, but no 2.x server is available to accept it here.
"""
import asyncio
import csv
import io
import json
import re
import sqlite3
import time
import uuid

import pytest

import servers
from dg import T, Drone, metric, minimal, new_id, run, telem, wait_until
from storetest import DB, IDB, expected_row, rest_rows, send_all, to_ms


@pytest.fixture(scope="module")
def ix():
    return servers.shared_influx()


@pytest.fixture
def idb(ix):
    return IDB(ix)


def test_every_field_round_trips(server_factory, idb):
    s = server_factory(store=idb.uri())
    drone, big = new_id("ixrt"), new_id("ixbig")
    # fixed times far from the receive time of seq 8 (which has no timestamp
    # and is stamped on arrival): the range query below must not catch it
    now = 1700000000000
    msgs = [
        telem(1),
        minimal(2, timestamp=now),
        telem(3, timestamp=now + 1, status='q"uote \\ tab\t nl\n ünï €', speed=0.0,
              heading=359.999, climb=-12.25, battery=0.0),
        minimal(4, latitude=-90.0, longitude=180.0, altitude=-1000.0, timestamp="1970-01-01T00:00:00Z"),
        minimal(5, latitude=90.0, longitude=-180.0, altitude=100000.0, timestamp="1969-07-20T20:17:40.001Z"),
        minimal(None, timestamp=now + 2, latitude=0.1, longitude=0.2, altitude=0.3),
        minimal(7, latitude=1.0000000000000002, longitude=-179.99999999999997, altitude=5e-324,
                timestamp="2026-11-24T12:00:00.123456+02:00"),
        telem(9, timestamp=now + 3, status=""),
    ]
    t_before = int(time.time() * 1000)
    # 8 comes before 9: a message without timestamp whose seq is below one
    # already stored would be taken for a redelivery (documented)
    run(send_all(s, drone, msgs[:-1] + [minimal(8), msgs[-1]], 9))
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
    # in InfluxDB: tag drone_id, seq the uint64 bit pattern as an integer field
    assert [r["seq"] for r in idb.rows(f"SELECT seq FROM telemetry WHERE drone_id = '{big}'")] == [-2**63, -1]
    types = {r["fieldKey"]: r["fieldType"] for r in idb.rows("SHOW FIELD KEYS FROM telemetry")}
    assert types == {"seq": "integer", "received_at": "integer", "status": "string", "latitude": "float",
                     "longitude": "float", "altitude": "float", "speed": "float", "heading": "float",
                     "climb": "float", "battery": "float"}, types
    assert [r["tagKey"] for r in idb.rows("SHOW TAG KEYS FROM telemetry")] == ["drone_id"]
    # range and limit
    assert [r.get("seq") for r in rest_rows(s, drone, **{"from": now, "to": now + 2})] == [2, 3, None]
    assert [r["seq"] for r in rest_rows(s, drone, **{"from": now, "limit": 1})] == [2]


def test_redelivered_messages_are_stored_once(server_factory, idb):
    s = server_factory(store=idb.uri())
    drone = new_id("ixdup")
    with_ts = [telem(i) for i in range(1, 11)]
    without_ts = [minimal(i) for i in range(11, 16)]
    run(send_all(s, drone, with_ts + without_ts, 15, batch=True))
    run(send_all(s, drone, with_ts + without_ts, 15, batch=True))
    run(send_all(s, drone, [telem(16), telem(16), minimal(17), minimal(17), telem(18)], 18, batch=True))
    run(send_all(s, drone, [minimal(12), telem(5), telem(18)], 18, batch=True))
    assert sorted(r["seq"] for r in s.history(drone)) == list(range(1, 19))
    # the watermark of messages without timestamp survives a restart (seeded
    # from the newest point of each drone)
    s.stop()
    s.restart()
    run(send_all(s, drone, without_ts + [minimal(17), minimal(19)], 19, batch=True))
    assert sorted(r["seq"] for r in s.history(drone)) == list(range(1, 20))
    assert idb.rows(f"SELECT count(seq) FROM telemetry WHERE drone_id = '{drone}'")[0]["count"] == 19


def test_drones_and_commands_measurements(server_factory, idb):
    s = server_factory(store=idb.uri())
    drone = new_id("ixcmd")

    async def go():
        d = await Drone.connect(s, drone)
        await d.send(telem(1, status="airborne"))
        await d.wait_ack(1)
        r = s.get(f"/api/v1/drones/{drone}/commands", method="POST",
                  body=json.dumps({"name": "land", "args": {}}), headers={"Content-Type": "application/json"})
        assert r.status == 202, r
        cid = r.json()["id"]
        await d.wait(lambda: any(m.get("type") == "command" for m in d.other), T(10), "command")
        await d.send({"type": "command_ack", "id": cid, "status": "done", "message": "landed"})
        q = f"""SELECT "id", "name", "status", "message" FROM commands WHERE drone_id = '{drone}'"""
        wait_until(lambda: [(r["id"], r["name"], r["status"], r["message"]) for r in idb.rows(q)]
                   == [(cid, "land", "done", "landed")], T(10), "one commands point, status done")
        await d.close()

    run(go())
    wait_until(lambda: [(r["last_seq"], r["status"]) for r in
                        idb.rows(f"SELECT last_seq, status FROM drones WHERE drone_id = '{drone}'")]
               == [(1, "airborne")], T(10), "drones point")


def test_influx_down_then_back_loses_nothing_acked(server_factory, idb, ix):
    s = server_factory(store=idb.uri(timeout="2s"))
    drone = new_id("ixdown")
    state = {}

    async def go():
        d = await Drone.connect(s, drone)
        await d.send([telem(i) for i in range(1, 51)])
        await d.wait_ack(50)
        ix.stop()
        try:
            await d.send([telem(i) for i in range(51, 101)] + [minimal(i) for i in range(101, 111)])
            wait_until(lambda: s.get("/readyz").status == 503, T(10), "/readyz 503 while InfluxDB is down")
            assert s.get(f"/api/v1/drones/{drone}/telemetry").status == 503
            state["acks_while_down"] = [a for a in d.acks if a > 50]
            await d.recv(0.5)
            assert not [a for a in d.acks if a > 50], "acked while the store was down"
        finally:
            ix.start()
        await d.wait_ack(110, T(30))
        wait_until(lambda: s.get("/readyz").status == 200, T(10), "/readyz 200 again")
        await d.close()

    run(go())
    assert sorted(r["seq"] for r in s.history(drone)) == list(range(1, 111))
    assert "writes succeed again" in s.stderr()


def test_kill9_loses_nothing_acked(server_factory, idb):
    s = server_factory(store=idb.uri())
    drone = new_id("ixk9")
    state = {}

    async def stream():
        d = await Drone.connect(s, drone)
        seq = 0
        while not (d.acks and d.acks[-1] >= 400):
            await d.send([telem(seq + i, timestamp=1795428000000 + (seq + i) * 10) for i in range(1, 21)])
            seq += 20
            await d.recv(0.001)
            while d.acks and seq - d.acks[-1] > 200:
                await d.wait_ack(d.acks[-1] + 1, T(10))
        assert d.max_ack >= 400 and not d.errors, (d.max_ack, d.errors[:3])
        state["acked"], state["sent"] = d.max_ack, seq
        s.kill9()

    run(stream())
    seqs = [r["seq"] for r in idb.rows(f"SELECT seq FROM telemetry WHERE drone_id = '{drone}'")]
    missing = set(range(1, state["acked"] + 1)) - set(seqs)
    assert not missing, f"acked up to {state['acked']} but {sorted(missing)[:10]} missing"
    s.restart()
    assert s.get_json(f"/api/v1/drones/{drone}")["seq"] == max(seqs)     # registry from the newest points


SECRET = "s3cr3t-Zq9"     # must never show in a message


@pytest.mark.parametrize("uri,env,words", [
    ("influxdb://127.0.0.1:1/x", {}, ["cannot use InfluxDB at 127.0.0.1:1/x"]),
    ("influxdb://127.0.0.1:8086", {}, ["is not an InfluxDB URI"]),
    (f"influxdb://u:{SECRET}@127.0.0.1:8086?token={SECRET}", {},
     ["store URI 'influxdb://u:***@127.0.0.1:8086?...' is not an InfluxDB URI"]),
    ("influxdb://127.0.0.1:8086/x?bogus=1", {}, ["unknown InfluxDB store option 'bogus'"]),
    ("influxdb://127.0.0.1:8086/x?token=a%20b", {}, ["option token must be 1-512 printable ASCII"]),
    ("influxdb://127.0.0.1:8086/x?token=", {}, ["option token must be 1-512 printable ASCII"]),
    ("influxdb://127.0.0.1:8086/x", {"DRONEGATE_INFLUX_TIMEOUT": "soon"},
     ["option (env DRONEGATE_INFLUX_TIMEOUT) timeout must be like 10s"]),
    (f"influxdb://u:{SECRET}@127.0.0.1:8086/x?token={SECRET}", {}, ["either USER:PASS@ in the URI or a token"]),
    # the variable is read: with a password in the URI it is one credential too many
    (f"influxdb://u:{SECRET}@127.0.0.1:8086/x", {"DRONEGATE_INFLUX_TOKEN": SECRET},
     ["either USER:PASS@ in the URI or a token"]),
])
def test_start_failures_say_why(server_factory, uri, env, words):
    s = server_factory(start=False, store=uri, env=env)
    s.spawn()
    assert s.wait_exit(T(20)) == 1
    err = s.stderr()
    for w in words:
        assert w in err, err
    assert SECRET not in err, err
    assert len([ln for ln in err.splitlines() if ln.startswith("dronegate: ")]) == 1, err


# ---------------------------------------------------------------- commands after a restart

def post_command(s, drone, body):
    r = s.get(f"/api/v1/drones/{drone}/commands", method="POST",
              body=(body if isinstance(body, str) else json.dumps(body)).encode(),
              headers={"Content-Type": "application/json"})
    assert r.status == 202, r
    return r.json()["id"]


def stored_status(store, db_path, idb, cid, pgdb=None):
    """The status of command cid in the store itself (None until written)."""
    if store == "postgresql":
        rows = pgdb.rows("SELECT status FROM commands WHERE id = %s", cid)
        return rows[0][0] if rows else None
    if store == "sqlite":
        con = sqlite3.connect(str(db_path))
        try:
            row = con.execute("SELECT status FROM commands WHERE id = ?", (cid,)).fetchone()
        finally:
            con.close()
        return row[0] if row else None
    rows = idb.rows(f"""SELECT "status" FROM commands WHERE "id" = '{cid}'""")
    return rows[0]["status"] if rows else None


@pytest.mark.parametrize("store", ["sqlite", "influxdb", "postgresql"])
def test_commands_read_back_after_restart(server_factory, idb, store):
    """GET /api/v1/commands/{id} answers the same after a restart (from the
    store) as before it (from memory), on InfluxDB and PostgreSQL exactly as
    on SQLite."""
    args = ["--command-timeout", "600000"]          # nothing expires during the test
    pgdb = DB(servers.shared_postgres()) if store == "postgresql" else None
    s = server_factory(args=args, store=idb.uri() if store == "influxdb" else
                       pgdb.uri() if pgdb else None)
    uri = s.store
    drone = new_id("ixcmdrs")
    # args as the operator wrote them (spaces, newlines, escapes, non-ASCII):
    # they are stored and given back as text
    goto = ('{"name": "goto", "args": {\n  "lat": 47.397742, "lon": 8.545594, "alt": 488.5,\n'
            '  "note": "q\\"uote \\\\ \u00fc\u20ac \\ud83d\\ude81", "nested": {"a": [1, 2.5, null, true]}\n}}')
    acks = {}

    async def go():
        d = await Drone.connect(s, drone)
        await d.send(telem(1))
        await d.wait_ack(1)
        done = post_command(s, drone, goto)
        accepted = post_command(s, drone, {"name": "land"})
        rejected = post_command(s, drone, {"name": "return_to_home", "args": {}})
        await d.wait(lambda: len([m for m in d.other if m.get("type") == "command"]) == 3, T(10), "3 commands")
        acks[done] = [("accepted", ""), ("done", 'landed "ok" \\ \u00fc\nline 2 \u20ac')]
        acks[accepted] = [("accepted", "on my way")]
        acks[rejected] = [("rejected", "no GPS fix")]
        for cid, steps in acks.items():
            for status, msg in steps:
                await d.send({"type": "command_ack", "id": cid, "status": status, "message": msg})
        for cid, steps in acks.items():
            wait_until(lambda: s.get_json(f"/api/v1/commands/{cid}")["status"] == steps[-1][0], T(10),
                       f"command {cid} {steps[-1][0]}")
            wait_until(lambda: stored_status(store, s.db, idb, cid, pgdb) == steps[-1][0], T(10),
                       f"command {cid} {steps[-1][0]} in the store")
        await d.close()

    run(go())
    before = {cid: s.get_json(f"/api/v1/commands/{cid}") for cid in acks}
    done = next(iter(acks))
    assert before[done]["message"] == 'landed "ok" \\ \u00fc\nline 2 \u20ac'
    assert before[done]["args"]["note"] == 'q"uote \\ \u00fc\u20ac \U0001F681', before[done]
    assert [before[c]["status"] for c in acks] == ["done", "accepted", "rejected"]
    s.stop()

    s2 = server_factory(args=args, store=uri)       # a new gateway on the same database
    for cid, want in before.items():
        assert s2.get_json(f"/api/v1/commands/{cid}") == want, cid
    # args come back as the very text that was posted
    posted_args = goto[goto.index('"args": ') + len('"args": '):-1]
    assert posted_args in s2.get(f"/api/v1/commands/{done}").text
    # unknown ids: 404 (not in the store; not an id at all: never asked)
    for bad in [uuid.uuid4().hex, done.upper(), done[:-1], done + "0", "'or''='" + "a" * 25, "%27" + done[3:]]:
        r = s2.get(f"/api/v1/commands/{bad}")
        assert r.status == 404, (bad, r)
    s2.check_alive()


def test_command_read_fails_clearly_while_influx_is_down(server_factory, idb, ix):
    s = server_factory(store=idb.uri(timeout="2s"))
    cid = uuid.uuid4().hex
    assert s.get(f"/api/v1/commands/{cid}").status == 404
    ix.stop()
    try:
        r = s.get(f"/api/v1/commands/{cid}")
        assert r.status == 503, r
        assert f"reading a command from the store failed: InfluxDB at 127.0.0.1:{ix.port}/{idb.name}: " \
            in s.stderr(), s.tail()
    finally:
        ix.start()
    wait_until(lambda: s.get(f"/api/v1/commands/{cid}").status == 404, T(10), "404 again")


# ---------------------------------------------------------------- credentials

@pytest.fixture(scope="module")
def ix_auth():
    """A second influxd with `[http] auth-enabled = true` and an admin user."""
    ix = servers.Influx(auth=True)
    ix.start()
    yield ix
    ix.close()


def test_user_password_right_works_wrong_refused(server_factory, ix_auth):
    ix = ix_auth
    name = "t_" + uuid.uuid4().hex[:12]
    s = server_factory(store=ix.uri(name, user=ix.admin, password=ix.admin_password))
    drone = new_id("ixauth")
    run(send_all(s, drone, [telem(i) for i in range(1, 6)], 5, batch=True))
    assert [r["seq"] for r in s.history(drone)] == [1, 2, 3, 4, 5]
    assert [r["seq"] for r in ix.rows(f"SELECT seq FROM telemetry WHERE drone_id = '{drone}'", name)] == [1, 2, 3, 4, 5]
    s.stop()
    assert ix.admin_password not in s.all_stderr()

    where = f"InfluxDB at 127.0.0.1:{ix.port}/{name}"
    wrong = ("authentication failed (HTTP 401: authorization failed): check the user name and password "
             "(USER:PASS@ in the store URI)")
    for user, password, words in [
        (ix.admin, SECRET, wrong),
        ("nobody", SECRET, wrong),
        (None, None, "authentication failed (HTTP 401: unable to parse authentication credentials): it needs "
                     "credentials: USER:PASS@ in the store URI, or token=T (InfluxDB 2.x)"),
    ]:
        bad = server_factory(start=False, store=ix.uri(name, user=user, password=password))
        bad.spawn()
        assert bad.wait_exit(T(20)) == 1
        err = bad.stderr()
        lines = [ln for ln in err.splitlines() if ln.startswith("dronegate: ")]
        assert lines == [f"dronegate: cannot use {where}: {words}"], err
        assert SECRET not in err

    # a token: InfluxDB 1.x accepts `Authorization: Token` only from 1.8 on, so
    # 1.6 refuses it like no credentials at all; the gateway says what to check
    bad = server_factory(start=False, store=ix.uri(name) + "?token=" + SECRET)
    bad.spawn()
    assert bad.wait_exit(T(20)) == 1
    err = bad.stderr()
    assert "authentication failed (HTTP 401: unable to parse authentication credentials): check the token " \
           "(token= or DRONEGATE_INFLUX_TOKEN; InfluxDB 1.x accepts tokens only from 1.8 on" in err, err
    assert SECRET not in err


def test_user_without_admin_rights(server_factory, ix_auth):
    """CREATE DATABASE needs admin rights (and InfluxDB 2.x has no CREATE
    DATABASE at all): refused, the gateway still starts when the database
    exists and can be read; when it does not, it says both."""
    ix = ix_auth
    name, missing = "t_" + uuid.uuid4().hex[:12], "t_" + uuid.uuid4().hex[:12]
    user, pw = "u_" + uuid.uuid4().hex[:8], "pw-" + uuid.uuid4().hex[:8]
    ix.query(f'CREATE DATABASE "{name}"')
    ix.create_user(user, pw)
    ix.query(f'GRANT ALL ON "{name}" TO "{user}"')

    s = server_factory(store=ix.uri(name, user=user, password=pw))
    assert "CREATE DATABASE was refused (" in s.stderr() and "requires admin privilege" in s.stderr(), s.stderr()
    drone = new_id("ixuser")
    run(send_all(s, drone, [telem(i) for i in range(1, 4)], 3, batch=True))
    assert [r["seq"] for r in s.history(drone)] == [1, 2, 3]

    bad = server_factory(start=False, store=ix.uri(missing, user=user, password=pw))
    bad.spawn()
    assert bad.wait_exit(T(20)) == 1
    err = bad.stderr()
    assert f"dronegate: cannot use InfluxDB at 127.0.0.1:{ix.port}/{missing}: CREATE DATABASE was refused (" in err
    assert "and the database cannot be read (" in err and f"requires READ on {missing}" in err, err
    assert pw not in err


def test_token_is_sent_but_never_logged(server_factory, idb):
    """influxd 1.6 without authentication ignores the Authorization header:
    this checks the option end to end (parsed, every request still works)
    and that the token shows nowhere, from the URI or from the environment.
    Whether a 2.x server accepts it is not tested (none is packaged)."""
    for kw in ({"store": idb.uri(token=SECRET)}, {"store": idb.uri(), "env": {"DRONEGATE_INFLUX_TOKEN": SECRET}}):
        s = server_factory(**kw)
        drone = new_id("ixtok")
        run(send_all(s, drone, [telem(1), telem(2)], 2, batch=True))
        assert [r["seq"] for r in s.history(drone)] == [1, 2]
        s.stop()
        assert SECRET not in s.all_stderr(), s.all_stderr()
        if "token=" in kw["store"]:
            assert "token=***" in s.all_stderr()


# ---------------------------------------------------------------- same answers everywhere

def test_same_answers_on_sqlite_postgresql_influxdb(server_factory, idb, tmp_path):
    pg = servers.shared_postgres()
    pdb = DB(pg)
    gws = {
        "sqlite": server_factory(),
        "postgresql": server_factory(store=pdb.uri()),
        "influxdb": server_factory(store=idb.uri()),
    }
    now = int(time.time() * 1000) - 600000   # every drone timestamp in the past, receive times after
    a, b = new_id("same"), new_id("same")
    first = [
        telem(1),
        telem(2, timestamp=now - 5000),
        minimal(3, timestamp=now - 4000),
        telem(4, timestamp=ms_rfc(now - 3000), status='s "q" \\ \u00e9\u20ac\U0001F681', speed=0.5,
              heading=0.0, climb=-0.25, battery=100.0),
        minimal(5, timestamp=now - 2000, latitude=-33.8688197, longitude=151.2092955, altitude=58.123456789,
                battery=3.3333333333333335),
        minimal(None, timestamp=now - 1500),                          # no seq
        telem(6, timestamp=now - 1000, speed=None, heading=None),     # some optional fields absent
        minimal(7),                                                   # no timestamp: receive time
    ]
    second = [telem(i, timestamp=now + i) for i in range(10, 60)]

    for name, s in gws.items():
        run(send_all(s, a, first, 7))
        run(send_all(s, b, second, 59, batch=True))
        # redelivery: the same batches again (new connection), and part of
        # them; not the message without seq: nothing can deduplicate it, and
        # InfluxDB's one-point-per-timestamp would keep one copy where the
        # SQL stores keep two (documented)
        run(send_all(s, a, [m for m in first[1:] if "seq" in m], 7, batch=True))
        run(send_all(s, b, second[20:40] + [telem(60, timestamp=now + 60)], 60, batch=True))

    def norm_row(row):
        """received_at out; seq 7's timestamp (each gateway's receive time) checked and out."""
        row.pop("received_at")
        if row.get("seq") == 7:
            assert now < to_ms(row.pop("timestamp")) < now + 1200000, row
        return row

    def answers(s):
        out = {}
        for drone in (a, b):
            for q in ("", "limit=3", f"from={now - 4000}&to={now - 1000}", f"from={now + 30}&to={now + 100}&limit=5",
                      f"to={now}&limit=100000", "format=geojson", "format=csv"):
                r = s.get(f"/api/v1/drones/{drone}/telemetry?{q}")
                assert r.status == 200, (q, r)
                if q == "format=csv":
                    body = list(csv.DictReader(io.StringIO(r.text, newline="")))
                    for row in body:
                        row.pop("received_at")
                        if row["seq"] == "7":
                            assert now < to_ms(row.pop("timestamp")) < now + 1200000, row
                elif q == "format=geojson":
                    body = [norm_row(dict(f["properties"], geometry=f["geometry"])) for f in r.json()["features"]]
                else:
                    body = [norm_row(row) for row in r.json()["telemetry"]]
                out[(drone, q)] = body
        return out

    res = {name: answers(s) for name, s in gws.items()}
    ref = res["sqlite"]
    assert len(ref[(a, "")]) == 8 and len(ref[(b, "")]) == 51, ref[(a, "")]
    assert len(ref[(a, "format=csv")]) == 8
    for name in ("postgresql", "influxdb"):
        for key in ref:
            assert res[name][key] == ref[key], (name, key, res[name][key][:3], ref[key][:3])


def ms_rfc(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms % 1000:03d}Z"


# ---------------------------------------------------------------- parallel writes

@pytest.mark.parametrize("writers", [1, 3])
def test_big_batches_split_over_parallel_write_requests(server_factory, idb, ix, writers):
    """writers=N: a batch of 2 x 2048+ points goes out as up to N requests at
    once (split by drone); writers=1: one request. Every point is stored
    either way, and influxd going away mid-stream loses nothing acked."""
    s = server_factory(store=idb.uri(writers=writers),
                       args=["--commit-interval", "300", "--log-level", "debug", "--ack-interval", "0"])
    drones = [new_id(f"ixpar{k}") for k in range(12)]

    async def burst(lo, hi):
        ds = [await Drone.connect(s, d) for d in drones]
        await asyncio.gather(*(d.send([telem(i) for i in range(lo, hi)]) for d in ds))
        for d in ds:
            await d.wait_ack(hi - 1, T(30))
            await d.close()

    run(burst(1, 1001))
    run(burst(1001, 2001))
    split = re.findall(r"influxdb: (\d+) points as (\d+) parallel write requests", s.stderr())
    if writers == 1:
        assert not split, split
    else:
        assert split and all(int(k) <= 3 and int(n) >= 2 * 2048 for n, k in split), split
    # influxd stopped while a burst waits for its acks, started again
    state = {}

    async def outage():
        ds = [await Drone.connect(s, d) for d in drones]
        errors0 = metric(s.metrics(), "dronegate_store_errors_total")
        ix.stop()
        try:
            await asyncio.gather(*(d.send([telem(i) for i in range(2001, 4001)]) for d in ds))
            # the check ran: writes failed and batches went to the spool, i.e.
            # came back to the workers not durable (no ack may follow)
            wait_until(lambda: metric(s.metrics(), "dronegate_store_errors_total") > errors0, T(30),
                       "a failed write")
            wait_until(lambda: metric(s.metrics(), "dronegate_spool_bytes") > 0, T(30), "batches spooled")
            for d in ds:
                await d.sync()      # read everything sent so far (acks are flushed at once: --ack-interval 0)
            state["early"] = [d.max_ack for d in ds]
        finally:
            ix.start()
        for d in ds:
            await d.wait_ack(4000, T(60))
            await d.close()

    run(outage())
    assert all(a is None for a in state["early"]), f"acked while influxd was down: {state}"
    assert "writes succeed again" in s.stderr(), s.tail()
    for d in drones:
        seqs = [r["seq"] for r in s.history(d, limit=5000)]
        assert seqs == list(range(1, 4001)), (d, len(seqs), seqs[:5])
    s.check_alive()


@pytest.mark.parametrize("store", ["sqlite", "influxdb", "postgresql"])
def test_open_commands_are_taken_back_after_restart(server_factory, idb, store):
    """A command that was sent (or accepted) when the gateway stopped is
    taken back from the store at the next start: the drone's later
    command_ack is applied (stored, live, GET) instead of being unknown."""
    args = ["--command-timeout", "600000"]
    pgdb = DB(servers.shared_postgres()) if store == "postgresql" else None
    s = server_factory(args=args, store=idb.uri() if store == "influxdb" else
                       pgdb.uri() if pgdb else None)
    uri = s.store
    drone = new_id("opencmd")
    ids = {}

    async def before():
        d = await Drone.connect(s, drone)
        await d.send(telem(1))
        await d.wait_ack(1)
        ids["a"] = post_command(s, drone, {"name": "land"})
        ids["b"] = post_command(s, drone, {"name": "return_to_home"})
        await d.wait(lambda: len([m for m in d.other if m.get("type") == "command"]) == 2, T(10), "2 commands")
        await d.send({"type": "command_ack", "id": ids["a"], "status": "accepted", "message": "on it"})
        wait_until(lambda: stored_status(store, s.db, idb, ids["a"], pgdb) == "accepted", T(10), "a accepted, stored")
        wait_until(lambda: stored_status(store, s.db, idb, ids["b"], pgdb) == "sent", T(10), "b sent, stored")
        await d.close()

    run(before())
    s.stop()
    s2 = server_factory(args=args, store=uri)
    assert "took back 2 open commands of an earlier run" in s2.stderr(), s2.tail()
    assert s2.get_json(f"/api/v1/commands/{ids['a']}")["status"] == "accepted"
    assert s2.get_json(f"/api/v1/commands/{ids['b']}")["status"] == "sent"

    async def after():
        d = await Drone.connect(s2, drone)
        await d.send({"type": "command_ack", "id": ids["a"], "status": "done", "message": "landed"})
        await d.send({"type": "command_ack", "id": ids["b"], "status": "rejected", "message": "no"})
        await d.send(telem(2))
        await d.wait_ack(2)
        await d.close()
        assert not d.errors, d.errors

    run(after())
    wait_until(lambda: s2.get_json(f"/api/v1/commands/{ids['a']}")["status"] == "done", T(10), "a done")
    b = s2.get_json(f"/api/v1/commands/{ids['b']}")
    assert (b["status"], b["message"]) == ("rejected", "no"), b
    wait_until(lambda: stored_status(store, s.db, idb, ids["a"], pgdb) == "done", T(10), "a done, stored")
    wait_until(lambda: stored_status(store, s.db, idb, ids["b"], pgdb) == "rejected", T(10), "b rejected, stored")
    s2.check_alive()
