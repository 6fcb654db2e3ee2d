"""dronegate-sim's drones are libdronegate clients (issue 13 §4: one
implementation of the client protocol), so the simulator has the library's
store-and-forward: its drones go through LinkProxy (test_client.py), whose
connections are stalled (bytes the drones wrote are held, then thrown away)
and reset twice mid-run; the drones reconnect, resend what was not acked, and
every sample the simulator reports as sent is stored exactly once, seqs
1..n per drone without a gap or a duplicate. Both WebSocket subprotocols:
dronegate.json.v1 and dronegate.pb.v1 (--transport ws-pb: the library's
DG_FORMAT_PROTOBUF)."""
import json
import signal
import sqlite3
import subprocess

import pytest

from dg import SIM, T, clean_env, metric, new_id, wait_until
from test_client import proxy_factory  # noqa: F401 (fixture: LinkProxy, counts bytes held while stalled)

DRONES = 8


def rows(db, prefix):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT drone_id, count(*), count(DISTINCT seq), min(seq), max(seq) "
                               "FROM telemetry WHERE drone_id LIKE ? GROUP BY drone_id",
                               (prefix + "%",)).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return []


def stored(db, prefix):
    return sum(r[1] for r in rows(db, prefix))


@pytest.mark.parametrize("transport", ["ws-json", "ws-pb"])
def test_sim_drones_resend_through_stalls_and_drops_exactly_once(server_factory, proxy_factory,  # noqa: F811
                                                                 transport):
    srv = server_factory()
    px = proxy_factory(srv.port)
    prefix = new_id("simlib") + "-"
    cmd = [SIM, "--transport", transport, "--url", f"ws://127.0.0.1:{px.port}", "--prefix", prefix,
           "--drones", DRONES,
           "--rate", 40, "--batch", 4, "--window", 2000, "--duration", 0, "--drain", T(30),
           "--json", "--quiet"]
    p = subprocess.Popen([str(a) for a in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env(), stdin=subprocess.DEVNULL)
    try:
        def progress(k, what):
            wait_until(lambda: p.poll() is None and stored(srv.db, prefix) >= k, T(20), what)

        progress(200, "200 rows from the simulated drones")
        for round in range(2):
            base = stored(srv.db, prefix)
            held = px.held
            assert px.stall_all() >= DRONES // 2, "connections to stall"
            # the drones keep writing into the stalled links: samples that
            # never arrive there, only resent after the reconnect
            wait_until(lambda: px.held > held + 2000, T(10), "samples written into the stalled links")
            before = px.accepted
            assert px.drop_all() >= 1
            wait_until(lambda: px.accepted >= before + DRONES, T(20), f"the {DRONES} drones to reconnect")
            progress(base + 200, f"more rows after drop {round + 1}")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=T(60))
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err[-3000:]
    rep = json.loads(out.strip().splitlines()[-1])
    assert rep["sent"] > 0 and rep["acked"] == rep["sent"], rep
    assert rep["handshakes"] >= 3 * DRONES and rep["closes"].get("1006", 0) >= DRONES, rep
    per = rows(srv.db, prefix)
    assert len(per) == DRONES, per
    for drone, n, distinct, lo, hi in per:
        assert n == distinct == hi and lo == 1, f"{drone}: {n} rows, {distinct} seqs, {lo}..{hi}"
    assert sum(r[1] for r in per) == rep["sent"], (per, rep)
    assert rep["resent"] > 0, f"nothing was resent after the stalls: {rep}"
    # the subprotocol asked for is the one the gateway received
    fmt = "protobuf" if transport == "ws-pb" else "json"
    got = metric(srv.metrics(), "dronegate_messages_received_total", transport="websocket", format=fmt)
    assert got >= rep["sent"], (fmt, got, rep)
