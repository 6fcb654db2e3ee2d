"""The store interface's seq rules on every backend (sqlite:, postgresql://,
influxdb://), driven directly through build/bench/store_probe (a small CLI on
store.h, built by `make all`), plus the same rules end to end through the
gateway:

- last_seq: the highest stored seq of a drone, compared as uint64 (what the
  session message tells a drone after a restart of its counter);
- a reused seq (the same (drone_id, seq) with another timestamp) is flagged
  DG_REC_REJECTED_REUSED by write_batch and not stored, also within one
  batch; a redelivery (same seq, same timestamp) is stored once.
"""
import os
import subprocess
import uuid

import pytest

import servers
from dg import ASAN, BIN, T
from storetest import DB, IDB

PROBE = os.path.join(os.path.dirname(BIN), "bench", "store_probe")

STORES = ["sqlite", "postgresql", "influxdb"]


@pytest.fixture(params=STORES)
def store_uri(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:{tmp_path}/seq.db"
    if request.param == "postgresql":
        return DB(servers.shared_postgres()).uri()
    return IDB(servers.shared_influx()).uri()


def probe(uri, *args, stdin=""):
    assert os.path.exists(PROBE), f"{PROBE} is missing: build it with make {os.path.relpath(PROBE)}"
    env = dict(os.environ)
    if ASAN:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    p = subprocess.run([PROBE, uri, *args], input=stdin, capture_output=True, text=True,
                       timeout=T(60), env=env)
    assert p.returncode == 0, f"store_probe {args}: rc {p.returncode}: {p.stderr}"
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    return p.stdout.split("\n")[:-1]


def write(uri, recs):
    """recs: (drone, seq or None, ts_ms or None, lat) -> one result per record."""
    lines = "".join(f"{d} {'-' if s is None else s} {'-' if t is None else t} {lat}\n"
                    for d, s, t, lat in recs)
    return probe(uri, "write", stdin=lines)


def history(uri, drone):
    out = []
    for line in probe(uri, "query", drone):
        seq, ts, lat = line.split(" ")
        out.append((None if seq == "-" else int(seq), int(ts), float(lat)))
    return out


def new_drone(p):
    return f"{p}-{uuid.uuid4().hex[:8]}"


def test_last_seq(store_uri):
    a, b, big, noseq = (new_drone(x) for x in ("a", "b", "big", "noseq"))
    assert probe(store_uri, "last_seq", a) == ["none"]
    t = 1_767_225_600_000       # 2026-01-01
    res = write(store_uri, [(a, 5, t, 1.0), (a, 17, t - 100, 2.0), (a, 3, t + 100, 3.0),
                            (b, 1, t, 4.0), (big, 2, t, 5.0), (big, 2**64 - 2, t + 1, 6.0),
                            (noseq, None, t, 7.0)])
    assert res == ["stored"] * 7
    assert probe(store_uri, "last_seq", a) == ["found 17"]          # not the newest sample's seq
    assert probe(store_uri, "last_seq", b) == ["found 1"]
    assert probe(store_uri, "last_seq", big) == [f"found {2**64 - 2}"]   # uint64 order
    assert probe(store_uri, "last_seq", noseq) == ["none"]
    assert probe(store_uri, "last_seq", new_drone("nobody")) == ["none"]
