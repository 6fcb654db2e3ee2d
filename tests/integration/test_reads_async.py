"""Store reads (history, commands of an earlier run) run off the event loop:
a read that hangs in the database holds up neither the drones of the same
worker nor other requests, and replies on one keep-alive connection stay in
request order. /readyz answers from the health check without touching the
store.

The hanging read is real: another PostgreSQL session holds an ACCESS
EXCLUSIVE lock on `commands`, so the gateway's SELECT of a command waits in
PostgreSQL (telemetry writes do not touch that table and go on).
"""
import asyncio
import socket
import threading
import time
import uuid

import pytest

import servers
from dg import T, Drone, new_id, run, telem, wait_until
from storetest import DB


@pytest.fixture(scope="module")
def pg():
    return servers.shared_postgres()


def test_hanging_store_read_does_not_stall_drones_or_other_requests(server_factory, pg):
    db = DB(pg)
    # one worker: the drone and the waiting request share the event loop
    s = server_factory(store=db.uri(), args=["--workers", "1"])
    drone = new_id("rdasync")
    cid = uuid.uuid4().hex                     # not in memory: read from the store
    locked, release, answer = threading.Event(), threading.Event(), {}

    def hold_lock():
        with pg.connect(db.name) as con:
            con.execute("BEGIN")
            con.execute("LOCK TABLE commands IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(T(60))
            con.execute("COMMIT")

    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    assert locked.wait(T(10))

    def ask():
        t0 = time.monotonic()
        r = s.get(f"/api/v1/commands/{cid}", timeout=T(60))
        answer.update(status=r.status, seconds=time.monotonic() - t0)

    asker = threading.Thread(target=ask, daemon=True)

    async def go():
        d = await Drone.connect(s, drone)
        await d.send(telem(1))
        await d.wait_ack(1)
        asker.start()
        # the read is now waiting for the lock (seen in PostgreSQL, not guessed)
        await asyncio.to_thread(wait_until, lambda: db.one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dronegate'"
            " AND wait_event_type = 'Lock' AND query ILIKE '%%commands%%'") >= 1,
            T(10), "the gateway's read of commands waiting for the lock")
        assert "status" not in answer, answer
        # the worker still serves its drone and other requests
        for seq in range(2, 12):
            await d.send(telem(seq))
            await d.wait_ack(seq, T(5))
        assert s.get("/healthz", timeout=T(5)).status == 200
        assert s.get("/readyz", timeout=T(5)).status == 200
        assert [r["seq"] for r in s.history(drone)] == list(range(1, 12))
        assert "status" not in answer, answer
        await d.close()

    try:
        run(go())
    finally:
        release.set()
    asker.join(T(30))
    holder.join(T(10))
    assert answer.get("status") == 404, answer   # answered once the lock went away
    s.check_alive()


def test_pipelined_requests_answered_in_order(server_factory):
    """A history read (the pool) followed on the same connection by requests
    answered at once: the replies come back in request order."""
    s = server_factory()
    drone = new_id("rdpipe")

    async def feed():
        d = await Drone.connect(s, drone)
        await d.send([telem(i) for i in range(1, 201)])
        await d.wait_ack(200)
        await d.close()

    run(feed())
    reqs = (f"GET /api/v1/drones/{drone}/telemetry?limit=200 HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            f"GET /api/v1/drones/{drone}/telemetry?limit=1&format=csv HTTP/1.1\r\nHost: x\r\n\r\n"
            f"GET /api/v1/commands/{uuid.uuid4().hex} HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    sk = socket.create_connection(("127.0.0.1", s.port), timeout=T(10))
    sk.sendall(reqs.encode())
    data = b""
    while True:
        chunk = sk.recv(65536)
        if not chunk:
            break
        data += chunk
    sk.close()
    # split the responses by their status lines and Content-Length
    out, rest = [], data
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        n = int(next(l for l in lines if l.lower().startswith(b"content-length:")).split(b":")[1])
        out.append((lines[0].split(b" ")[1], rest[:n]))
        rest = rest[n:]
    assert [st for st, _ in out] == [b"200", b"200", b"200", b"404", b"200"], out
    assert out[0][1].count(b'"seq"') == 200
    assert out[1][1] == b"ok\n" and out[4][1] == b"ok\n"
    assert out[2][1].startswith(b"drone_id,timestamp,") and out[2][1].count(b"\r\n") == 2
    assert b"unknown command" in out[3][1]
