"""dronegate-sim --airborne (what `make demo` uses): every drone starts at its
cruise altitude somewhere along its mission, so it moves across the map from
its first message instead of sitting on the ground and then climbing
vertically. Shown by the positions the gateway stored (REST history)."""
import os
import signal
import subprocess

from dg import SIM, T, clean_env, wait_until

DRONES = 4
RATE = 5          # Hz: N messages per drone take about N / RATE s
N = 6             # messages per drone looked at
MIN_CRUISE = 460  # metres AMSL: ground 400-550 m + cruise height 60-120 m


def start_sim(s, *args):
    assert os.access(SIM, os.X_OK), f"simulator not built: {SIM}"
    cmd = [SIM, "--url", s.ws_base, *[str(a) for a in args]]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=clean_env()), cmd


def stop_sim(p, cmd):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=T(15))
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"{' '.join(cmd)} did not stop on SIGTERM\nstderr: {err[-2000:]}")
    return p.returncode, out, err


def first_messages(s, ids, n, p, cmd):
    """The first n stored messages of every drone (by seq), read once each
    drone has at least n stored (stored = acked: acks follow the commit)."""
    def stored():
        if p.poll() is not None:
            _, out, err = stop_sim(p, cmd)
            raise AssertionError(f"{' '.join(cmd)} exited {p.returncode} before {n} messages per drone "
                                 f"were stored\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}")
        have = {d["id"]: d.get("seq") or 0 for d in s.drones() if d["id"] in ids}
        if not (len(have) == len(ids) and all(v >= n for v in have.values())):
            return False
        # the drones list shows what was received (the live state); the
        # rows are committed a little later
        return all(sum(1 for r in s.history(i) if r["seq"] <= n) >= n for i in ids)
    wait_until(stored, T(30), f"{n} stored messages from each of {len(ids)} drones")
    out = {}
    for i in ids:
        rows = sorted((r for r in s.history(i) if r["seq"] <= n), key=lambda r: r["seq"])
        assert [r["seq"] for r in rows] == list(range(1, n + 1)), f"{i}: stored seqs {[r['seq'] for r in rows]}"
        out[i] = rows
    return out


def test_airborne_drones_move_horizontally_at_cruise_altitude_from_the_first_message(server_factory):
    s = server_factory()
    prefix = "air-"
    ids = [f"{prefix}{i:04d}" for i in range(DRONES)]
    p, cmd = start_sim(s, "--airborne", "--drones", DRONES, "--rate", RATE, "--duration", 0,
                       "--prefix", prefix, "--quiet", "--json")
    try:
        msgs = first_messages(s, ids, N, p, cmd)
    finally:
        rc, out, err = stop_sim(p, cmd)
    assert rc == 0, f"{' '.join(cmd)} exited {rc}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"

    for i, rows in msgs.items():
        trace = [(r["seq"], r["status"], r["latitude"], r["longitude"], r["altitude"], r["climb"], r["speed"])
                 for r in rows]
        # at cruise from the first message: flying, level, above any ground + cruise height
        assert all(r["status"] == "airborne" for r in rows), f"{i} is not airborne from seq 1: {trace}"
        assert rows[0]["altitude"] >= MIN_CRUISE, f"{i} starts below any cruise altitude: {trace}"
        assert all(r["altitude"] == rows[0]["altitude"] and r["climb"] == 0 for r in rows), \
            f"{i} climbs or sinks instead of cruising level: {trace}"
        # moving across the map: every message at a new horizontal position, at speed
        assert rows[0]["speed"] > 0, f"{i} is not moving at seq 1: {trace}"
        for a, b in zip(rows, rows[1:]):
            assert (a["latitude"], a["longitude"]) != (b["latitude"], b["longitude"]), \
                f"{i} did not move horizontally between seq {a['seq']} and {b['seq']}: {trace}"

    # the drones are spread over their missions, not stacked on one point
    starts = {(rows[0]["latitude"], rows[0]["longitude"]) for rows in msgs.values()}
    assert len(starts) == DRONES, f"drones start on the same point: {starts}"


def test_without_airborne_drones_start_on_the_ground(server_factory):
    """The default is unchanged: landed at first (other tests and the
    benchmarks rely on the default missions)."""
    s = server_factory()
    prefix = "gnd-"
    ids = [f"{prefix}{i:04d}" for i in range(2)]
    p, cmd = start_sim(s, "--drones", 2, "--rate", RATE, "--duration", 0, "--prefix", prefix, "--quiet")
    try:
        msgs = first_messages(s, ids, 1, p, cmd)
    finally:
        rc, out, err = stop_sim(p, cmd)
    assert rc == 0, f"{' '.join(cmd)} exited {rc}\nstderr: {err[-2000:]}"
    for i, rows in msgs.items():
        assert rows[0]["status"] == "landed" and rows[0]["speed"] == 0, f"{i}: {rows[0]}"
