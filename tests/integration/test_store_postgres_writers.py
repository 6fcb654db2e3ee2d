"""Several PostgreSQL writer connections (`writers=N`): a big batch is split
by drone over N connections written in parallel, and a writer connection
killed by the server mid-batch (its part fails, others committed) loses
nothing acked and stores nothing twice.
"""
import threading
import uuid

from test_store_postgres import DB, check_complete, pg, run_sim, sim_report  # noqa: F401 (pg: fixture)
from dg import T, metric, wait_until


def copies(db, blocked=False):
    """Backend pids of dronegate connections whose (current or last) query
    writes telemetry (a COPY, or the staging path's INSERT of a batch being
    retried after a redelivery); blocked=True: only those waiting for a lock
    now."""
    return [r[0] for r in db.rows(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'dronegate'"
        " AND (query LIKE 'COPY telemetry %%' OR query LIKE '%%INSERT INTO telemetry (%%')" +
        (" AND state = 'active' AND wait_event_type = 'Lock'" if blocked else ""))]


def diagnosis(db, s):
    """What the gateway's connections and queue look like (for a failure message)."""
    rows = db.rows("SELECT pid, state, wait_event_type, wait_event, left(query, 90)"
                   " FROM pg_stat_activity WHERE application_name = 'dronegate' OR query LIKE 'LOCK%%'")
    m = s.metrics()
    q = {k: metric(m, k) for k in ("dronegate_queue_depth", "dronegate_backlog_records",
                                   "dronegate_connections", "dronegate_messages_stored_total")}
    return f"metrics {q}; backends {rows}"


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


class QueuedLock:
    """The same SHARE lock requested from a thread while a COPY already waits
    for the table: PostgreSQL queues it behind that COPY (it conflicts with
    the COPY's request), so once the first lock goes, the waiting batch
    commits and the next batch's COPYs wait for this lock. Deterministic:
    no timing window between releasing one lock and taking another."""

    def __init__(self, db):
        self.con = db.pg.connect(db.name)
        self.pid = self.con.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.con.execute("BEGIN")
        self.granted = threading.Event()
        self.t = threading.Thread(target=self._take, daemon=True)
        self.t.start()

    def _take(self):
        self.con.execute("LOCK TABLE telemetry IN SHARE MODE")
        self.granted.set()

    def release(self):
        assert self.granted.wait(T(30)), "the queued lock was never granted"
        self.t.join()
        self.con.execute("ROLLBACK")
        self.con.close()


def test_parallel_writers_split_batches_and_survive_a_killed_connection(server_factory, pg):
    """No sampling: with the table locked, the COPYs of one split batch queue
    up on the lock; at least two waiting at once is the parallelism, and
    one of them is killed while it is surely mid-batch."""
    db = DB(pg)
    s = server_factory(store=db.uri(writers=3), args=["--commit-interval", "50"])
    prefix = "pgw-" + uuid.uuid4().hex[:6] + "-"
    # --duration long enough for both rounds on a loaded machine (the rounds
    # need writes in flight; the test ends when the simulator does)
    sim = run_sim(s, "--drones", 60, "--rate", 0, "--window", 600, "--duration", 30,
                  # every ack waits for the retried batch, however slow the machine
                  "--drain", T(60), "--prefix", prefix)
    seen, killed = [], []
    try:
        wait_until(lambda: db.one("SELECT count(*) FROM telemetry") >= 1000, T(15), "telemetry flowing")
        for _ in range(2):
            before = db.one("SELECT count(*) FROM telemetry")
            locks = [TableLock(db)]   # [the lock every COPY waits for now, a lock queued behind it]
            try:
                wait_until(lambda: copies(db, blocked=True), T(20), "a COPY waiting for the lock")
                pids = None
                for _hop in range(6):
                    # queue_depth counts the waiting batch, the queued ones and
                    # the workers' open batches (< 2 x 2048): at 30,000 of the
                    # simulator's 36,000 in flight (60 drones x window 600),
                    # more than 17,000 wait behind, a batch that is surely split
                    wait_until(lambda: len(copies(db, blocked=True)) >= 2 or
                               metric(s.metrics(), "dronegate_queue_depth") >= 30000,
                               T(30), "a split-sized batch queued behind the waiting one")
                    p = copies(db, blocked=True)
                    if len(p) >= 2:
                        pids = p
                        break
                    # One COPY waits: a batch too small to split, or one part
                    # of a split batch whose other part has not reached its
                    # COPY yet (a helper thread not scheduled on a loaded
                    # machine: CI once). Queue the next lock behind it
                    # (PostgreSQL queues it behind the waiting COPY, so no
                    # window between one lock and the next) and let that COPY
                    # commit: what waits next is that late part or the next,
                    # split, batch; both end the next hop or this loop.
                    nxt = QueuedLock(db)
                    locks.append(nxt)
                    wait_until(lambda: db.one("SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
                                              " AND wait_event_type = 'Lock'", nxt.pid),
                               T(20), "the next lock queued behind the waiting COPY")
                    locks.pop(0).release()
                    # granted once the waiting COPY's transaction committed:
                    # whatever waits from now on waits for nxt
                    assert nxt.granted.wait(T(30)), "the queued lock was never granted"
                    wait_until(lambda: copies(db, blocked=True), T(30), "a COPY waiting for the next lock")
                assert pids, f"no split batch after 6 batches; {diagnosis(db, s)}"
                seen.append(len(pids))
                db.rows("SELECT pg_terminate_backend(%s)", pids[-1])
                killed.append(pids[-1])
            finally:
                for lk in locks:
                    lk.release()
            wait_until(lambda: db.one("SELECT count(*) FROM telemetry") > before, T(20), "writes going on")
            # the batch that lost a part is retried (staging path, the killed
            # connection reconnects): start the next round once it is stored
            wait_until(lambda: metric(s.metrics(), "dronegate_backlog_records") == 0, T(30),
                       "the failed batch retried and stored")
        rep = sim_report(sim, T(90))
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.communicate()
    assert rep["sent"] > 0 and rep["acked"] == rep["sent"], rep
    check_complete(db, prefix, rep["sent"])
    assert min(seen) >= 2 and len(killed) == 2, (seen, killed)
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
            # the one writer connection is taken: nothing else can COPY, so
            # exactly one waits however long we look
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
    # (the one-writer property is the check above: with the table locked,
    # exactly one COPY waits; a backend's *last* query says nothing since a
    # batch now ends with COPY telemetry_seq/telemetry, COMMIT and the drones
    # upsert)
