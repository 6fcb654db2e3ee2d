"""Store outage without loss (SQLite): while the store cannot commit, the
gateway keeps accepting into its backlog (memory, then the on-disk spool),
acks nothing, answers /readyz 503, and when the store is back it drains the
backlog in order and acks everything, each message stored exactly once.
When memory and spool are full, drones are told with close 1008.

The outage is real: another SQLite connection holds an EXCLUSIVE
transaction on the database, so the gateway's commits fail (SQLITE_BUSY
after its busy timeout) exactly as under a competing writer.
"""
import asyncio
import sqlite3

import websockets

from dg import T, Drone, metric, minimal, new_id, run, wait_until


def lock_db(path):
    con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    return con


def stored_seqs(path, drone):
    con = sqlite3.connect(str(path), timeout=30)
    try:
        return [r[0] for r in con.execute("SELECT seq FROM telemetry WHERE drone_id=? ORDER BY seq", (drone,))]
    finally:
        con.close()


def test_outage_spools_then_drains_exactly_once(server_factory):
    # small batches so that the spool is used after a few hundred messages;
    # --ack-interval 0: an ack is written as soon as its batch is back on the
    # worker, so Drone.sync() (a marker answered after it) sees it
    s = server_factory(args=["--batch-records", "64", "--batch-pool", "4", "--ack-interval", "0"])
    drone = new_id("outage")
    n1, n2 = 600, 400

    async def go():
        d = await Drone.connect(s, drone)
        await d.send([minimal(i) for i in range(1, 11)])
        await d.wait_ack(10)
        con = lock_db(s.db)
        try:
            for i in range(11, 11 + n1):
                await d.send(minimal(i))
            # the check ran: commits failed and batches went to the spool,
            # i.e. came back to the worker not durable (where an ack must not
            # be sent)
            wait_until(lambda: metric(s.metrics(), "dronegate_store_errors_total") >= 1, T(15), "a failed commit")
            wait_until(lambda: metric(s.metrics(), "dronegate_spool_bytes") > 0, T(15), "records spooled to disk")
            spooled1 = metric(s.metrics(), "dronegate_spool_bytes")
            await d.sync()      # read everything the server sent so far
            assert d.max_ack == 10, f"acked {d.max_ack} while the store could not commit"
            wait_until(lambda: s.get("/readyz").status == 503, T(10), "readyz 503 during the outage")
            assert s.get("/readyz").body == b"store unreachable\n"
            h = s.get("/healthz")
            assert (h.status, h.body) == (200, b"ok\n"), h     # alive, just not ready
            # still accepting while down
            for i in range(11 + n1, 11 + n1 + n2):
                await d.send(minimal(i))
            wait_until(lambda: metric(s.metrics(), "dronegate_spool_bytes") > spooled1, T(15),
                       "the second burst spooled too")
            await d.sync()
            assert d.max_ack == 10, f"acked {d.max_ack} while the store could not commit"
        finally:
            con.rollback()
            con.close()
        last = 10 + n1 + n2
        await d.wait_ack(last, T(60))
        await d.close()
        return last

    last = run(go(), T(120))
    seqs = stored_seqs(s.db, drone)
    assert seqs == list(range(1, last + 1)), f"stored {len(seqs)} rows, expected {last} exactly once"
    wait_until(lambda: s.get("/readyz").status == 200, T(10), "readyz 200 after the outage")
    assert s.get("/readyz").body == b"ready\n"
    m = s.metrics()
    assert metric(m, "dronegate_spool_bytes") == 0
    assert metric(m, "dronegate_backlog_records") == 0


def test_backlog_full_closes_1008(server_factory):
    # no spool, tiny memory backlog: the drone must be told, not silently stalled
    s = server_factory(args=["--batch-records", "16", "--batch-pool", "2", "--spool-max-mb", "0"])
    drone = new_id("full")

    async def go():
        d = await Drone.connect(s, drone)
        con = lock_db(s.db)
        try:
            try:
                for i in range(1, 5001):
                    await d.send(minimal(i))
                    if i % 100 == 0:
                        await asyncio.sleep(0.05)
                await d.wait(lambda: False, T(15), "close 1008")
            except (websockets.ConnectionClosed, AssertionError):
                pass
            code = d.ws.close_code
            assert code == 1008, f"expected close 1008 when the backlog is full, got {code} {d.ws.close_reason!r}"
            assert "backlog" in (d.ws.close_reason or "")
            assert d.max_ack is None, "acked while the store was locked"
        finally:
            con.rollback()
            con.close()
        # once the gateway is ready again, the drone comes back and resends
        # everything: all stored once
        wait_until(lambda: s.get("/readyz").status == 200, T(20), "readyz 200 after the outage")
        d2 = await Drone.connect(s, drone)
        await d2.send([minimal(i) for i in range(1, 201)])
        await d2.wait_ack(200, T(60))
        await d2.close()

    run(go(), T(120))
    assert stored_seqs(s.db, drone) == list(range(1, 201))
