"""Spool left by a crash (issue 8 §1.7).

Records spooled by an earlier run carry the origin (worker, slot,
generation) of connections that no longer exist; connection slots and
generations restart at 1 in the new run. Replaying them must store them but
ack nobody: acking by origin would give a drone of the new run an ack for a
seq it never sent (it would then drop that data), and a restart with fewer
--workers would index past the workers array.

The outage: a trigger in the test's SQLite database makes every insert
into telemetry fail while a flag row says so (the gateway sees a failing
commit, exactly as on a full disk); unlike a held lock it lets the gateway
start (schema check, registry restore) while its writes still fail, so the
new run's drones are connected before the spool can be replayed.
"""
import asyncio
import sqlite3

import pytest

from dg import T, Drone, metric, minimal, new_id, run, wait_until


def set_outage(path, on):
    con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        con.execute("CREATE TABLE IF NOT EXISTS test_outage(fail INTEGER NOT NULL)")
        con.execute("CREATE TRIGGER IF NOT EXISTS test_outage_insert BEFORE INSERT ON telemetry "
                    "WHEN (SELECT fail FROM test_outage) BEGIN SELECT RAISE(ABORT, 'test outage'); END")
        con.execute("DELETE FROM test_outage")
        con.execute("INSERT INTO test_outage VALUES (?)", (1 if on else 0,))
    finally:
        con.close()


def stored(path):
    con = sqlite3.connect(str(path), timeout=30)
    try:
        return {(d, s) for d, s in con.execute("SELECT drone_id, seq FROM telemetry")}
    finally:
        con.close()


# 1 -> 1 worker: the replayed origins name slots of the new run's drones;
# 4 -> 1: they also name workers that do not exist any more.
@pytest.mark.parametrize("first_workers", [1, 4])
def test_replayed_spool_of_a_crashed_run_acks_nobody(server_factory, first_workers):
    args = ["--batch-records", "16", "--batch-pool", "2", "--ack-interval", "0"]
    s = server_factory(args=args, workers=first_workers)
    old = [new_id("old") for _ in range(16)]
    n_old = 200           # seqs 1..200 per old drone, far above what new drones send
    n_new = 5

    async def first_run():
        ds = [await Drone.connect(s, i) for i in old]
        for d in ds:
            await d.send(minimal(1))
        for d in ds:
            await d.wait_ack(1)
        set_outage(s.db, True)
        for d in ds:
            for i in range(2, n_old + 1):
                await d.send(minimal(i))
        # what the old run could not commit goes to the spool
        wait_until(lambda: metric(s.metrics(), "dronegate_spool_bytes") > 0, T(30), "records spooled")
        for d in ds:
            assert d.max_ack == 1, f"{d.id} acked {d.max_ack} while the store could not commit"

    run(first_run(), T(90))
    s.kill9()
    # fewer workers, other drones: they hold the slots/generations the
    # spooled records name
    s.workers = 1
    s.restart()
    new = [new_id("new") for _ in range(16)]

    async def second_run():
        try:
            ds = [await Drone.connect(s, i) for i in new]
            for d in ds:
                await d.send([minimal(i) for i in range(1, n_new + 1)])
        finally:
            set_outage(s.db, False)
        # the spool is replayed before anything newer is written, so once a
        # drone has the ack of its own last seq, any ack the replay caused
        # has been sent to it already
        for d in ds:
            assert s.alive(), f"dronegate died while replaying the spool\n{s.tail()}"
            await d.wait_ack(n_new, T(60))
        for d in ds:
            await d.close()
        return ds

    ds = run(second_run(), T(120))
    rows = stored(s.db)
    for d in ds:
        for a in d.acks:
            assert (d.id, a) in rows, f"new drone {d.id} got an ack for seq {a}, which is not stored for it"
        assert max(d.acks) == n_new, f"new drone {d.id} got acks {sorted(set(d.acks))}, sent only 1..{n_new}"
    # the crashed run's spool was replayed (stored, not lost)
    wait_until(lambda: metric(s.metrics(), "dronegate_spool_bytes") == 0, T(30), "spool drained")
    rows = stored(s.db)
    replayed = [(i, q) for (i, q) in rows if i in old and q > 1]
    assert replayed, "nothing of the crashed run's spool was stored"
    assert s.alive()


def test_spool_of_another_format_stops_the_start_with_a_sentence(server_factory):
    s = server_factory(start=False)
    spool_dir = s.dir / "dg.db.spool"
    spool_dir.mkdir(parents=True)
    # the raw-struct spool of earlier builds: never overwritten, never misread
    old = b"dronegate-spool-1 208".ljust(64, b"\0") + b"\x01" * 400
    (spool_dir / "backlog.spool").write_bytes(old)
    s.spawn()
    rc = s.wait_exit()
    assert rc != 0
    err = s.stderr()
    assert "is not a dronegate spool of format version 1" in err, err
    assert (spool_dir / "backlog.spool").read_bytes() == old
