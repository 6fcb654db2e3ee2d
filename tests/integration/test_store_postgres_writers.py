"""Several PostgreSQL writer connections (`writers=N`): a big batch is split
by drone over N connections written in parallel, and a writer connection
killed by the server mid-batch (its part fails, others committed) loses
nothing acked and stores nothing twice.
"""
import threading
import time
import uuid

from test_store_postgres import DB, check_complete, pg, run_sim, sim_report  # noqa: F401 (pg: fixture)
from dg import T, wait_until


def copy_backends(db):
    """Backend pids of dronegate connections running a COPY into telemetry now."""
    return [r[0] for r in db.rows(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'dronegate'"
        " AND state = 'active' AND query LIKE 'COPY telemetry %%'")]


def test_parallel_writers_split_batches_and_survive_a_killed_connection(server_factory, pg):
    db = DB(pg)
    s = server_factory(store=db.uri(writers=3), args=["--commit-interval", "50"])
    prefix = "pgw-" + uuid.uuid4().hex[:6] + "-"
    sim = run_sim(s, "--drones", 60, "--rate", 0, "--window", 400, "--duration", 10, "--prefix", prefix)
    seen, killed = [], []
    stop = threading.Event()

    def watch():
        # how many COPYs run at once; after a while, kill one of them (the
        # server side of a writer connection goes away mid-batch)
        while not stop.is_set():
            pids = copy_backends(db)
            seen.append(len(pids))
            if len(killed) < 3 and pids and len(seen) > 20 and len(seen) % 15 == 0:
                db.rows("SELECT pg_terminate_backend(%s)", pids[-1])
                killed.append(pids[-1])
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    try:
        wait_until(lambda: db.one("SELECT count(*) FROM telemetry") >= 1000, T(15), "telemetry flowing")
        t.start()
        rep = sim_report(sim, T(90))
    finally:
        stop.set()
        if sim.poll() is None:
            sim.kill()
            sim.communicate()
    t.join(5)
    assert rep["sent"] > 0 and rep["acked"] == rep["sent"], rep
    check_complete(db, prefix, rep["sent"])
    assert max(seen) >= 2, f"never more than one COPY at a time: {seen[:50]}"
    assert killed, "no writer connection was caught mid-COPY to be killed"
    err = s.stderr()
    assert "writer connection" in err or "terminat" in err, s.tail()
    s.check_alive()


def test_one_writer_connection_still_works(server_factory, pg):
    db = DB(pg)
    s = server_factory(store=db.uri(writers=1), args=["--commit-interval", "50"])
    prefix = "pgw1-" + uuid.uuid4().hex[:6] + "-"
    sim = run_sim(s, "--drones", 60, "--rate", 0, "--window", 400, "--duration", 4, "--prefix", prefix)
    seen = []
    while sim.poll() is None:
        seen.append(len(copy_backends(db)))
        time.sleep(0.02)
    rep = sim_report(sim, T(60))
    assert rep["sent"] > 0 and rep["acked"] == rep["sent"], rep
    check_complete(db, prefix, rep["sent"])
    assert max(seen) == 1, f"writers=1 but {max(seen)} COPYs at once"
