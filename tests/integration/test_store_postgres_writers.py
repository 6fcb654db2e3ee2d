"""Several PostgreSQL writer connections (`writers=N`): a big batch is split
by drone over N connections written in parallel, and a writer connection
killed by the server mid-batch (its part fails, others committed) loses
nothing acked and stores nothing twice.
"""
import time
import uuid

from test_store_postgres import DB, check_complete, pg, run_sim, sim_report  # noqa: F401 (pg: fixture)
from dg import T, wait_until


def copies(db, blocked=True):
    """Backend pids of dronegate writer connections writing telemetry and
    waiting for a lock now: the fast path (COPY telemetry) or, after a
    redelivery in a batch, the staging path (INSERT INTO telemetry SELECT)."""
    return [r[0] for r in db.rows(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'dronegate'"
        " AND (query LIKE 'COPY telemetry %%' OR query LIKE '%%INSERT INTO telemetry%%')" +
        (" AND state = 'active' AND wait_event_type = 'Lock'" if blocked else ""))]


class TableLock:
    """LOCK TABLE telemetry IN SHARE MODE from another connection: every COPY
    into it waits (visibly, in pg_stat_activity) until release()."""

    def __init__(self, db):
        self.con = db.pg.connect(db.name)
        self.con.execute("BEGIN")
        self.con.execute("LOCK TABLE telemetry IN SHARE MODE")

    def release(self):
        self.con.execute("ROLLBACK")
        self.con.close()


def test_parallel_writers_split_batches_and_survive_a_killed_connection(server_factory, pg):
    """No sampling: with the table locked, the COPYs of one split batch queue
    up on the lock; at least two waiting at once is the parallelism, and
    one of them is killed while it is surely mid-batch."""
    db = DB(pg)
    s = server_factory(store=db.uri(writers=3), args=["--commit-interval", "50"])
    prefix = "pgw-" + uuid.uuid4().hex[:6] + "-"
    sim = run_sim(s, "--drones", 60, "--rate", 0, "--window", 400, "--duration", 30, "--prefix", prefix)
    seen, killed = [], []
    try:
        wait_until(lambda: db.one("SELECT count(*) FROM telemetry") >= 1000, T(15), "telemetry flowing")
        # one round, while the writer is healthy (after a failure it drains
        # its backlog first, which under ASan can outlast the simulator)
        # A small batch (slow machine) is not split: then one COPY waits
        # alone; release, let writes go on, and try the next batch.
        deadline = time.monotonic() + T(60)
        while not killed:
            assert time.monotonic() < deadline, f"never two COPYs of one batch waiting at once: {seen}"
            before = db.one("SELECT count(*) FROM telemetry")
            lock = TableLock(db)
            try:
                wait_until(lambda: copies(db, blocked=True), T(20), "a COPY waiting for the lock")
                try:
                    pids = wait_until(lambda: (lambda p: p if len(p) >= 2 else None)(copies(db, blocked=True)),
                                      T(3), "a second COPY of the same batch")
                except AssertionError:
                    seen.append(1)
                    continue
                seen.append(len(pids))
                db.rows("SELECT pg_terminate_backend(%s)", pids[-1])
                killed.append(pids[-1])
            finally:
                lock.release()
                wait_until(lambda: db.one("SELECT count(*) FROM telemetry") > before, T(20), "writes going on")
        rep = sim_report(sim, T(120))
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.communicate()
    assert rep["sent"] > 0 and rep["acked"] == rep["sent"], rep
    check_complete(db, prefix, rep["sent"])
    assert seen[-1] >= 2 and len(killed) == 1, (seen, killed)
    err = s.stderr()
    assert "writer connection" in err or "terminat" in err, s.tail()
    s.check_alive()


def test_one_writer_connection_still_works(server_factory, pg):
    db = DB(pg)
    s = server_factory(store=db.uri(writers=1), args=["--commit-interval", "50"])
    prefix = "pgw1-" + uuid.uuid4().hex[:6] + "-"
    sim = run_sim(s, "--drones", 60, "--rate", 0, "--window", 400, "--duration", 4, "--prefix", prefix)
    try:
        wait_until(lambda: db.one("SELECT count(*) FROM telemetry") >= 1000, T(15), "telemetry flowing")
        lock = TableLock(db)
        try:
            wait_until(lambda: copies(db, blocked=True), T(20), "a COPY waiting for the lock")
            # the one writer connection is taken: nothing else can write, so
            # exactly one waits
            assert len(copies(db, blocked=True)) == 1
        finally:
            lock.release()
        rep = sim_report(sim, T(60))
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.communicate()
    assert rep["sent"] > 0 and rep["acked"] == rep["sent"], rep
    check_complete(db, prefix, rep["sent"])
