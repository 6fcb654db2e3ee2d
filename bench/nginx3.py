#!/usr/bin/python3
"""nginx3.py - what nginx costs, and how fast a killed gateway's drones are
back (issue 12 §6). Driven by bench/nginx3.sh; figures in docs/benchmarks.md.

Configurations (same machine, same store per pair):
  direct1   one gateway, dronegate-sim straight to it (ws://)
  nginx3    three gateways (--instance g1..g3, one shared store) behind one
            nginx with deploy/nginx/dronegate.conf (tests/integration/nginx.py,
            2 nginx workers), dronegate-sim to nginx's plain listener (ws://:
            the simulator has no TLS)
Stores: null: (the network path only: what the proxy hop costs) and
PostgreSQL 15 (servers.Postgres, stock durability: fsync on; one database
per run; the three gateways share it).

Runs, each --duration seconds, for every store x configuration:
  sat     dronegate-sim --drones N --rate 0 --window W: acked msgs/s and ack p99
  fixed   dronegate-sim --drones N --rate R: ack p50/p99 at a load all configs carry

Failover (PostgreSQL, nginx3): the simulator at --rate R; once every drone
is in dronegate_presence, kill -9 the gateway holding the most drones. For
each of its drones, the time from the kill to the first message of that
drone stored by another gateway (telemetry.received_at, set by the gateway
that stores it; the ack follows that commit): p50 / max over the drones.
Includes the simulator's reconnect backoff (first retry after 50-150 ms).

Prints a markdown table; --json FILE writes every figure.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import dg  # noqa: E402
import nginx  # noqa: E402
import servers  # noqa: E402

SIM = os.environ.get("DRONEGATE_SIM") or str(REPO / "build" / "dronegate-sim")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def env():
    return {k: v for k, v in os.environ.items() if not k.startswith("DRONEGATE_")}


class Setup:
    """n gateways on one store (+ nginx when behind)."""

    def __init__(self, root, store_uri, n, behind, gw_args):
        self.gws = []
        for i in range(n):
            s = dg.Server(root / f"g{i + 1}", store=store_uri(),
                          args=["--max-msg-rate", "0", "--instance", f"g{i + 1}"] + gw_args)
            s.start(timeout=30)
            self.gws.append(s)
        self.ngx = None
        if behind:
            self.ngx = nginx.Nginx(root / "nginx", [("127.0.0.1", s.port) for s in self.gws],
                                   worker_processes=2, worker_connections=16384)
            self.ngx.start()
        self.url = self.ngx.ws_base if behind else self.gws[0].ws_base

    def stop(self):
        if self.ngx:
            self.ngx.stop()
        for s in self.gws:
            if s.alive():
                s.stop(timeout=60)


def sim(url, prefix, args, duration, wait=True):
    cmd = [SIM, "--url", url, "--prefix", prefix, "--quiet", "--json", "--duration", str(duration),
           "--drain", "10"] + args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    if not wait:
        return p
    return sim_result(p)


def sim_result(p):
    out, err = p.communicate(timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"dronegate-sim failed ({p.returncode}): {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def pick(r):
    lat = r["ack_latency_ms"]
    return {"acked_per_s": round(r["acked_per_s"]), "sent": r["sent"], "acked": r["acked"],
            "errors": r["errors"], "p50_ms": round(lat["p50"], 2), "p99_ms": round(lat["p99"], 2),
            "connect_failures": r["connect_failures"], "drops": r["drops"]}


def failover(pg, root, args, gw_args):
    db = f"fo_{int(time.time())}"
    uri = pg.uri(db)
    st = Setup(root / "failover", lambda: uri, 3, True, gw_args)
    prefix = "fo-"
    try:
        p = sim(st.url, prefix, ["--drones", str(args.drones), "--rate", str(args.rate)],
                args.failover_duration, wait=False)
        deadline = time.monotonic() + 60
        while True:
            rows = pg.psql(f"SELECT drone_id, instance FROM dronegate_presence WHERE drone_id LIKE '{prefix}%'", db=db)
            held = dict(r.split("|") for r in rows.split("\n") if r)
            if len(held) == args.drones:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(held)} drones present")
            time.sleep(0.1)
        time.sleep(3)      # let the fleet run at its steady rate before the kill (a pacing pause)
        by = {}
        for d, i in held.items():
            by.setdefault(i, []).append(d)
        victim = max(by, key=lambda k: len(by[k]))
        victims = by[victim]
        g = st.gws[int(victim[1:]) - 1]
        t_kill = time.time()
        g.kill9()
        log(f"failover: killed {victim} holding {len(victims)}/{args.drones} drones")
        r = sim_result(p)
        ids = ",".join(f"'{d}'" for d in victims)
        out = pg.psql(f"SELECT drone_id, extract(epoch from min(received_at)) FROM telemetry "
                      f"WHERE drone_id IN ({ids}) AND received_at > to_timestamp({t_kill}) GROUP BY 1", db=db)
        back = sorted(float(x.split("|")[1]) - t_kill for x in out.split("\n") if x)
        dup = pg.psql(f"SELECT count(*) - count(DISTINCT (drone_id, seq)) FROM telemetry "
                      f"WHERE drone_id LIKE '{prefix}%'", db=db).strip()
        res = {"victim_drones": len(victims), "drones": args.drones, "rate": args.rate,
               "back": len(back), "p50_s": round(back[len(back) // 2], 3) if back else None,
               "max_s": round(back[-1], 3) if back else None, "first_s": round(back[0], 3) if back else None,
               "duplicates": int(dup), "sim": pick(r), "resent": r["resent"]}
        return res
    finally:
        st.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--drones", type=int, default=300)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--rate", type=float, default=10, help="msgs/s per drone for the fixed runs")
    ap.add_argument("--stores", default="null,pg")
    ap.add_argument("--configs", default="direct1,nginx3")
    ap.add_argument("--failover-duration", type=int, default=15)
    ap.add_argument("--no-failover", action="store_true")
    ap.add_argument("--gw-args", default="")
    ap.add_argument("--json")
    args = ap.parse_args()
    gw_args = args.gw_args.split()
    root = Path(tempfile.mkdtemp(prefix="dg-nginx3-"))
    pg = servers.Postgres(durable=True)
    pg.start()
    results = {"machine": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg()[0]}, "runs": []}
    try:
        n = 0
        for store in args.stores.split(","):
            for cfg in args.configs.split(","):
                n += 1
                if store == "null":
                    uri = lambda: "null:"   # noqa: E731
                else:
                    u = pg.uri(f"b{n}_{int(time.time())}")
                    uri = lambda u=u: u     # noqa: E731
                st = Setup(root / f"{store}-{cfg}", uri, 3 if cfg == "nginx3" else 1, cfg == "nginx3", gw_args)
                try:
                    for kind, sargs in (("sat", ["--rate", "0", "--window", str(args.window)]),
                                        ("fixed", ["--rate", str(args.rate)])):
                        r = sim(st.url, f"{store}{cfg}{kind}-", ["--drones", str(args.drones)] + sargs,
                                args.duration)
                        row = {"store": store, "config": cfg, "run": kind, **pick(r),
                               "loadavg": round(os.getloadavg()[0], 2)}
                        log(json.dumps(row))
                        results["runs"].append(row)
                finally:
                    st.stop()
        if not args.no_failover:
            results["failover"] = failover(pg, root, args, gw_args)
            log(json.dumps(results["failover"]))
    finally:
        pg.close()
    print(f"| store | config | run | acked msgs/s | p50 ms | p99 ms | errors | load avg |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in results["runs"]:
        print(f"| {r['store']} | {r['config']} | {r['run']} | {r['acked_per_s']} | {r['p50_ms']} | "
              f"{r['p99_ms']} | {r['errors']} | {r['loadavg']} |")
    if "failover" in results:
        f = results["failover"]
        print(f"\nfailover: {f['victim_drones']}/{f['drones']} drones on the killed gateway; "
              f"{f['back']} back and stored on another gateway: first {f['first_s']} s, p50 {f['p50_s']} s, "
              f"max {f['max_s']} s after the kill; duplicates {f['duplicates']}; sim resent {f['resent']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
