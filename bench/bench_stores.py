#!/usr/bin/python3
"""bench_stores.py - rows/s into PostgreSQL and InfluxDB through dronegate,
against the raw bulk path of each database on the same machine, plus the
p99 ack latency at half that rate. Driven by bench/bench_pg.sh.

For each store (a throw-away server from tests/integration/servers.py, with
its stock durability: PostgreSQL fsync=on, synchronous_commit=on; influxd's
default WAL fsync on every write):

  1. gateway run   dronegate --max-msg-rate 0 --store URI, loaded by
                   dronegate-sim --drones N --rate 0 --window 2000
                   --duration D --json: rows per second committed between
                   5 s and D-1 s (dronegate_messages_stored_total; the sim's
                   acked/D would also count the drain of up to N x 2000
                   in-flight messages after the run); CPU seconds of the
                   gateway and of the database server during the run.
  2. raw limit     PostgreSQL: the rows the gateway stored, exported, the
                   table truncated, then `psql \\copy telemetry FROM file` in
                   binary and in text format (same table, same partitions,
                   same index). InfluxDB: a second, unmeasured gateway run through a
                   recording HTTP forwarder saves every /write body; curl
                   replays exactly those requests (one process, keep-alive)
                   into a fresh database.
  3. half rate     the gateway again with --rate such that drones x rate is
                   half the rate of step 1: p50/p99 ack latency from the sim.
  4. (--micro)     build/bench/bench_pg_write: the write paths of the
                   PostgreSQL backend side by side, without the network.

Prints a markdown summary and writes every figure as JSON (--json FILE).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import servers  # noqa: E402

BIN = os.environ.get("DRONEGATE_BIN") or str(REPO / "build" / "dronegate")
SIM = os.environ.get("DRONEGATE_SIM") or str(REPO / "build" / "dronegate-sim")
MICRO = os.environ.get("BENCH_PG_WRITE") or str(REPO / "build" / "bench" / "bench_pg_write")
GW_ARGS = []        # --gw-args
COLS = ("drone_id, \"timestamp\", seq, latitude, longitude, altitude, speed, heading, climb, battery, "
        "status, received_at")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def env():
    return {k: v for k, v in os.environ.items() if not k.startswith("DRONEGATE_")}


def cpu_seconds(pids, reaped=()):
    """CPU seconds (user + system) of pids; for those also in `reaped`, plus
    what their exited and reaped children used (PostgreSQL's postmaster
    reaps the backend of a psql that has exited: without this, the CPU of
    a finished COPY would be lost)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick
            if pid in reaped:
                total += (int(f[13]) + int(f[14])) / tick
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total


def children(ppid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append(int(d))
            except (FileNotFoundError, IndexError):
                pass
    return out


class Gateway:
    def __init__(self, store, workdir):
        self.port = servers.free_port()
        self.log = open(Path(workdir) / f"dronegate-{self.port}.log", "wb")
        self.p = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{self.port}", "--store", store,
                                   "--max-msg-rate", "0"] + GW_ARGS, stdout=self.log, stderr=self.log, env=env(),
                                  stdin=subprocess.DEVNULL)
        import http.client
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"dronegate exited {self.p.returncode}; see {self.log.name}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("dronegate did not become healthy")

    def cpu(self):
        return cpu_seconds([self.p.pid])

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=60)
        self.log.close()


def metric_sum(gw, name):
    """Sum of the samples of one metric from /metrics."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return sum(float(line.rsplit(None, 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def latency_sweep(a, workdir):
    """--latency R1,R2,..: the ack latency at fixed per-drone rates (each on
    a fresh database), with the share of the time the store writer was busy
    and the CPU of dronegate and of the database."""
    out = []
    if a.only == "influx":
        srv = servers.Influx()
        srv.start()

        def uri(i):
            return srv.uri(f"lat{i}") + ("?" + a.pg_params if a.pg_params else "")

        def db_cpu():
            return cpu_seconds([srv.proc.pid])
    else:
        srv = servers.Postgres(durable=True)
        srv.start()
        pm = int(open(srv.data / "postmaster.pid").read().split()[0])
        params = dict(kv.split("=", 1) for kv in a.pg_params.split("&") if kv) if a.pg_params else {}

        def uri(i):
            return srv.uri(f"lat{i}", **params)

        def db_cpu():
            return cpu_seconds([pm] + children(pm), reaped=(pm,))
    try:
        for i, per in enumerate(float(x) for x in a.latency.split(",")):
            gw = Gateway(uri(i), workdir)
            c0, d0, b0, t0 = gw.cpu(), db_cpu(), metric_sum(gw, "dronegate_store_batch_seconds_sum"), time.monotonic()
            rep = sim(gw, a.drones, per, a.duration)
            c1, d1, b1, t1 = gw.cpu(), db_cpu(), metric_sum(gw, "dronegate_store_batch_seconds_sum"), time.monotonic()
            gw.stop()
            L = rep["ack_latency_ms"]
            r = {"rate_hz_per_drone": per, "offered_per_s": per * a.drones, "acked": rep["acked"],
                 "sent": rep["sent"], "ack_latency_ms": L, "writer_busy": (b1 - b0) / (t1 - t0),
                 "gateway_cores": (c1 - c0) / (t1 - t0), "db_cores": (d1 - d0) / (t1 - t0)}
            log(f"{per * a.drones:.0f}/s ({per:g} Hz x {a.drones}): p50 {L['p50']} ms, p99 {L['p99']} ms, "
                f"acked {rep['acked']}/{rep['sent']}; writer busy {100 * r['writer_busy']:.0f}%, "
                f"dronegate {r['gateway_cores']:.2f} cores, database {r['db_cores']:.2f} cores")
            out.append(r)
    finally:
        srv.close()
    return out


def stored_total(gw):
    """dronegate_messages_stored_total from /metrics."""
    return metric_sum(gw, "dronegate_messages_stored_total")


def sim(gw, drones, rate, duration, window=2000, steady=None):
    """Run the sim; with steady=(t0, t1), also the stored rows/s between t0
    and t1 seconds after the start (from the gateway's counter: the sim's own
    acked/duration would count the drain after the run, up to drones x window
    messages, as if acked within the run)."""
    cmd = [SIM, "--url", f"ws://127.0.0.1:{gw.port}", "--drones", str(drones), "--rate", str(rate),
           "--window", str(window), "--duration", str(duration), "--json", "--quiet"]
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    steady_rate = None
    if steady:
        marks = []
        for t in steady:
            while time.monotonic() - start < t:
                time.sleep(0.05)
            marks.append((time.monotonic(), stored_total(gw)))
        steady_rate = (marks[1][1] - marks[0][1]) / (marks[1][0] - marks[0][0])
    out, err = p.communicate(timeout=duration + 120)
    if p.returncode != 0:
        raise RuntimeError(f"sim failed: {err[-2000:]}")
    rep = json.loads(out.strip().splitlines()[-1])
    rep["steady_rows_per_s"] = steady_rate
    return rep


def timed(cmd, server_pids=None, **kw):
    """Wall seconds of cmd; with server_pids (a callable giving the server's
    CPU seconds so far), also (wall, server
    CPU seconds, client CPU seconds)."""
    import resource
    s0 = server_pids() if server_pids else 0
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    wall = time.monotonic() - t
    if not server_pids:
        return wall
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, server_pids() - s0, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def run_gateway(store, db_cpu, a, workdir, what, rate=0):
    gw = Gateway(store, workdir)
    c0, d0 = gw.cpu(), db_cpu()
    rep = sim(gw, a.drones, rate, a.duration, steady=(min(5, a.duration / 4), a.duration - 1))
    c1, d1 = gw.cpu(), db_cpu()
    stored = stored_total(gw)
    gw.stop()
    rate = rep["steady_rows_per_s"]
    log(f"{what}: {rate:.0f} rows/s stored from {min(5, a.duration / 4):.0f} s to {a.duration - 1} s "
        f"({rep['acked']} acked in all), gateway {c1 - c0:.1f} CPU s, database {d1 - d0:.1f} CPU s")
    log(f"  CPU per row: database {1e6 * (d1 - d0) / stored:.2f} us, gateway {1e6 * (c1 - c0) / stored:.2f} us "
        f"({stored:.0f} rows stored during the run)")
    return {"acked": rep["acked"], "sent": rep["sent"], "duration_s": rep["duration_s"],
            "rows_per_s": rate, "gateway_cpu_s": c1 - c0, "db_cpu_s": d1 - d0, "stored": stored,
            "db_cpu_us_per_row": 1e6 * (d1 - d0) / stored, "gateway_cpu_us_per_row": 1e6 * (c1 - c0) / stored,
            "ack_latency_ms": rep["ack_latency_ms"]}


def half_rate(store, rate, a, workdir):
    per = max(1, round(rate / 2 / a.drones))
    gw = Gateway(store, workdir)
    rep = sim(gw, a.drones, per, a.duration)
    gw.stop()
    log(f"half rate ({per} Hz x {a.drones}): p50 {rep['ack_latency_ms']['p50']} ms, "
        f"p99 {rep['ack_latency_ms']['p99']} ms, acked {rep['acked']}/{rep['sent']}")
    return {"rate_hz_per_drone": per, "offered_per_s": per * a.drones, "acked": rep["acked"],
            "sent": rep["sent"], "ack_latency_ms": rep["ack_latency_ms"]}


# ---------------------------------------------------------------- PostgreSQL

def bench_pg(a, workdir):
    res = {}
    pg = servers.Postgres(durable=True)
    pg.start()
    try:
        pm = int(open(pg.data / "postmaster.pid").read().split()[0])

        def pg_cpu():
            return cpu_seconds([pm] + children(pm), reaped=(pm,))
        params = dict(kv.split("=", 1) for kv in a.pg_params.split("&") if kv) if a.pg_params else {}
        uri = pg.uri("bench", **params)
        res["store_uri_params"] = params
        res["gateway"] = run_gateway(uri, pg_cpu, a, workdir, "postgresql gateway")
        n = int(pg.psql("SELECT count(*) FROM telemetry", db="bench"))
        res["rows_stored"] = n
        # the limit: the same rows, same table, same index, COPY by psql
        limit = {}
        for fmt in ("binary", "text"):
            f = Path(workdir) / f"telemetry.{fmt}"
            pg.psql(f"\\copy (SELECT {COLS} FROM telemetry) TO '{f}' (FORMAT {fmt})", db="bench")
            best = None
            for _ in range(a.repeat):
                pg.psql("TRUNCATE telemetry, telemetry_seq; CHECKPOINT", db="bench")
                t = timed([str(servers.PG_BIN / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                           "-d", "bench", "-v", "ON_ERROR_STOP=1", "-c",
                           f"\\copy telemetry ({COLS}) FROM '{f}' (FORMAT {fmt})"],
                          server_pids=pg_cpu)
                best = t if best is None or t[0] < best[0] else best
            limit[fmt] = {"rows": n, "seconds": best[0], "rows_per_s": n / best[0],
                          "db_cpu_us_per_row": 1e6 * best[1] / n, "client_cpu_us_per_row": 1e6 * best[2] / n}
            log(f"psql \\copy {fmt}: {n} rows in {best[0]:.2f}s = {n / best[0]:.0f}/s; CPU per row: database "
                f"{1e6 * best[1] / n:.2f} us, psql {1e6 * best[2] / n:.2f} us")
            f.unlink()
        if a.parallel_copy > 1:
            # the limit with as many COPYs at once as the gateway has writer
            # connections: the rows split by drone, one psql per part, timed
            # from the first start to the last exit
            k = a.parallel_copy
            files = [Path(workdir) / f"telemetry.{i}.bin" for i in range(k)]
            for i, f in enumerate(files):
                pg.psql(f"\\copy (SELECT {COLS} FROM telemetry WHERE abs(hashtext(drone_id)) % {k} = {i}) "
                        f"TO '{f}' (FORMAT binary)", db="bench")
            best = None
            for _ in range(a.repeat):
                pg.psql("TRUNCATE telemetry, telemetry_seq; CHECKPOINT", db="bench")
                s0 = pg_cpu()
                t0 = time.monotonic()
                ps = [subprocess.Popen([str(servers.PG_BIN / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p",
                                        str(pg.port), "-U", "postgres", "-d", "bench", "-v", "ON_ERROR_STOP=1",
                                        "-c", f"\\copy telemetry ({COLS}) FROM '{f}' (FORMAT binary)"],
                                       stdout=subprocess.DEVNULL) for f in files]
                for p in ps:
                    if p.wait() != 0:
                        raise RuntimeError("parallel psql \\copy failed")
                wall = time.monotonic() - t0
                dcpu = pg_cpu() - s0
                if best is None or wall < best[0]:
                    best = (wall, dcpu)
            limit[f"binary x{k}"] = {"rows": n, "seconds": best[0], "rows_per_s": n / best[0],
                                     "db_cpu_us_per_row": 1e6 * best[1] / n}
            log(f"{k} x psql \\copy binary at once: {n} rows in {best[0]:.2f}s = {n / best[0]:.0f}/s; "
                f"database CPU per row {1e6 * best[1] / n:.2f} us")
            for f in files:
                f.unlink()
        res["psql_copy"] = limit
        pg.psql("TRUNCATE telemetry, telemetry_seq, drones; CHECKPOINT", db="bench")
        res["half_rate"] = half_rate(uri, res["gateway"]["rows_per_s"], a, workdir)
        if a.micro and os.path.exists(MICRO):
            micro = {}
            for name, mode, q in (("copy text, raw (no dedup)", "copy", ""),
                                  ("backend: binary COPY + fallback (default)", "store", ""),
                                  ("backend: write=staging", "store", "?write=staging"),
                                  ("backend: dedup=strict", "store", "?dedup=strict"),
                                  ("backend, 10% redelivered batches", "store", ""),
                                  ("multi-row INSERT ... ON CONFLICT", "insert", "")):
                pg.psql("TRUNCATE telemetry, telemetry_seq; CHECKPOINT", db="bench")
                args = [MICRO, mode, uri + q, str(a.micro_rows), "2000"] + (["10"] if "10%" in name else [])
                p = subprocess.run(args, capture_output=True, text=True, env=env())
                if p.returncode != 0:
                    raise RuntimeError(f"{' '.join(args)}: {p.stderr[-1000:]}")
                micro[name] = float(p.stdout.split()[1])
                log(f"micro {name}: {micro[name]:.0f} rows/s")
            res["micro"] = micro
    finally:
        pg.close()
    return res


# ---------------------------------------------------------------- InfluxDB

def recording_proxy(ix, workdir):
    """An HTTP forwarder in front of influxd that saves every /write body the
    gateway sends (to replay exactly that stream with curl). Returns (server,
    list of (path, file)). Run unmeasured: it is slower than influxd."""
    import http.client
    import http.server
    import threading
    rec = []
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def fwd(self, method):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            if self.path.startswith("/write") and body:
                with lock:
                    f = Path(workdir) / f"rec{len(rec):06d}.lp"
                    rec.append((self.path, f))
                f.write_bytes(body)
            up = getattr(self, "_up", None) or http.client.HTTPConnection("127.0.0.1", ix.port, timeout=120)
            self._up = up
            up.request(method, self.path, body=body,
                       headers={"Content-Type": self.headers.get("Content-Type", "text/plain")})
            r = up.getresponse()
            data = r.read()
            self.send_response(r.status)
            self.send_header("Content-Type", r.getheader("Content-Type", "text/plain"))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.fwd("GET")

        def do_POST(self):
            self.fwd("POST")

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, rec


def bench_influx(a, workdir):
    res = {}
    ix = servers.Influx()
    ix.start()
    try:
        uri = ix.uri("bench")
        # --rate 0 (as for PostgreSQL): the sim stamps a whole burst of a
        # drone with one ms, and InfluxDB keeps one point per drone and ms
        res["gateway_rate0"] = run_gateway(uri, lambda: cpu_seconds([ix.proc.pid]), a, workdir, "influxdb gateway, rate 0")
        res["points_retained_rate0"] = ix.rows("SELECT count(latitude) FROM telemetry", "bench")[0]["count"]
        log(f"points retained: {res['points_retained_rate0']} of {res['gateway_rate0']['acked']} written")
        ix.query('DROP DATABASE "bench"')
        # saturating load with distinct timestamps: --rate INFLUX_RATE per drone
        # (far above what is acked; the window of 2000 bounds what is in flight)
        res["gateway"] = run_gateway(uri, lambda: cpu_seconds([ix.proc.pid]), a, workdir,
                                     f"influxdb gateway, rate {a.influx_rate}", rate=a.influx_rate)
        res["points_retained"] = ix.rows("SELECT count(latitude) FROM telemetry", "bench")[0]["count"]
        log(f"points retained: {res['points_retained']} of {res['gateway']['acked']} written")
        ix.query('DROP DATABASE "bench"')
        # the limit: the gateway's own write stream, recorded, replayed by curl
        proxy, rec = recording_proxy(ix, workdir)
        gw = Gateway(f"influxdb://127.0.0.1:{proxy.server_address[1]}/rec", workdir)
        sim(gw, a.drones, a.influx_rate, max(5, a.duration // 2))
        gw.stop()
        proxy.shutdown()
        points = sum(f.read_bytes().count(b"\n") for _, f in rec)
        best = None
        for r in range(a.repeat):
            db = f"raw{r}"
            ix.query(f'CREATE DATABASE "{db}"')
            cfg = Path(workdir) / "curl.cfg"
            with open(cfg, "w") as c:
                for k, (path, f) in enumerate(rec):
                    if k:
                        c.write("next\n")
                    c.write(f'url = "http://127.0.0.1:{ix.port}{path.replace("db=rec", "db=" + db)}"\n'
                            f'data-binary = "@{f}"\nheader = "Expect:"\n'
                            f'header = "Content-Type: text/plain; charset=utf-8"\noutput = "/dev/null"\nsilent\n')
            t = timed(["curl", "-K", str(cfg), "--fail-with-body"], server_pids=lambda: cpu_seconds([ix.proc.pid]))
            best = t if best is None or t[0] < best[0] else best
            ix.query(f'DROP DATABASE "{db}"')
        res["curl_write"] = {"rows": points, "requests": len(rec), "seconds": best[0], "rows_per_s": points / best[0],
                             "db_cpu_us_per_row": 1e6 * best[1] / points}
        log(f"curl replay of the gateway's writes: {points} points in {len(rec)} requests, {best[0]:.2f}s "
            f"= {points / best[0]:.0f}/s; influxd CPU per point {1e6 * best[1] / points:.2f} us")
        for _, f in rec:
            f.unlink()
        res["half_rate"] = half_rate(uri, res["gateway"]["rows_per_s"], a, workdir)
        if a.micro and os.path.exists(MICRO):
            p = subprocess.run([MICRO, "store", ix.uri("micro"), str(a.micro_rows), "2000"],
                               capture_output=True, text=True, env=env())
            if p.returncode == 0:
                res["micro_store"] = float(p.stdout.split()[1])
                log(f"micro influxdb write_batch: {res['micro_store']:.0f} rows/s")
    finally:
        ix.close()
    return res


def report(res, a):
    out = [f"machine: {os.cpu_count()} cores; load average at start {res['loadavg']}; "
           f"{a.drones} drones, {a.duration} s runs\n"]
    if "pg" in res:
        r = res["pg"]
        g, lim = r["gateway"]["rows_per_s"], max(v["rows_per_s"] for v in r["psql_copy"].values())
        out.append("| PostgreSQL | rows/s | vs best raw COPY |\n|---|---:|---:|")
        out.append(f"| dronegate {r.get('store_uri_params') or ''} (sim, rate 0) | {g:.0f} | {100 * g / lim:.0f}% |")
        for fmt, v in r["psql_copy"].items():
            out.append(f"| psql \\copy {fmt} ({v['rows']} rows) | {v['rows_per_s']:.0f} | "
                       f"{100 * v['rows_per_s'] / lim:.0f}% |")
        h = r["half_rate"]
        out.append(f"\nhalf rate ({h['offered_per_s']}/s offered): ack latency p50 "
                   f"{h['ack_latency_ms']['p50']} ms, p99 {h['ack_latency_ms']['p99']} ms")
        out.append(f"CPU during the gateway run: dronegate {r['gateway']['gateway_cpu_s']:.1f} s, "
                   f"PostgreSQL {r['gateway']['db_cpu_s']:.1f} s (of {2 * r['gateway']['duration_s']:.0f} "
                   f"core-seconds)")
        out.append(f"PostgreSQL CPU per row: through dronegate {r['gateway']['db_cpu_us_per_row']:.2f} us; "
                   + "; ".join(f"psql \\copy {k} {v['db_cpu_us_per_row']:.2f} us" +
                               (f" (psql itself {v['client_cpu_us_per_row']:.2f} us)" if "client_cpu_us_per_row" in v else "")
                               for k, v in r["psql_copy"].items())
                   + f"; dronegate itself {r['gateway']['gateway_cpu_us_per_row']:.2f} us\n")
        for k, v in r.get("micro", {}).items():
            out.append(f"- micro: {k}: {v:.0f} rows/s")
    if "influx" in res:
        r = res["influx"]
        g, lim = r["gateway"]["rows_per_s"], r["curl_write"]["rows_per_s"]
        out.append("\n| InfluxDB | points/s | vs curl |\n|---|---:|---:|")
        out.append(f"| dronegate (sim, rate {a.influx_rate} per drone: saturating, distinct timestamps) | "
                   f"{g:.0f} | {100 * g / lim:.0f}% |")
        g0 = r["gateway_rate0"]["rows_per_s"]
        out.append(f"| dronegate (sim, rate 0: {r['points_retained_rate0']} of {r['gateway_rate0']['acked']} "
                   f"points retained) | {g0:.0f} | {100 * g0 / lim:.0f}% |")
        out.append(f"| curl /write: the gateway's requests replayed ({r['curl_write']['rows']} points, "
                   f"{r['curl_write']['requests']} requests) | {lim:.0f} | 100% |")
        out.append(f"\npoints written by the gateway run: {r['gateway']['acked']}, retained: {r['points_retained']}")
        h = r["half_rate"]
        out.append(f"\nhalf rate ({h['offered_per_s']}/s offered): ack latency p50 "
                   f"{h['ack_latency_ms']['p50']} ms, p99 {h['ack_latency_ms']['p99']} ms")
        out.append(f"CPU during the gateway run: dronegate {r['gateway']['gateway_cpu_s']:.1f} s, "
                   f"influxd {r['gateway']['db_cpu_s']:.1f} s")
        out.append(f"influxd CPU per point: through dronegate {r['gateway']['db_cpu_us_per_row']:.2f} us, curl replay "
                   f"{r['curl_write']['db_cpu_us_per_row']:.2f} us; dronegate itself "
                   f"{r['gateway']['gateway_cpu_us_per_row']:.2f} us")
        if "micro_store" in r:
            out.append(f"- micro: influxdb write_batch (2000 points per request): {r['micro_store']:.0f} rows/s")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("pg", "influx"))
    ap.add_argument("--drones", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2, help="raw runs, best kept")
    ap.add_argument("--influx-rate", type=int, default=1000,
                    help="per-drone rate of the saturating InfluxDB run (distinct ms timestamps)")
    ap.add_argument("--store-params", "--pg-params", dest="pg_params", default="",
                    help="dronegate's store URI options, e.g. 'writers=1'")
    ap.add_argument("--parallel-copy", type=int, default=2,
                    help="also time N psql \\copy binary at once (0/1: skip)")
    ap.add_argument("--latency", metavar="HZ,HZ,..",
                    help="only the ack latency at these per-drone rates (PostgreSQL, or InfluxDB with --only influx)")
    ap.add_argument("--gw-args", default="", help="extra dronegate flags, e.g. '--workers 1'")
    ap.add_argument("--micro", action="store_true", help="also run bench_pg_write")
    ap.add_argument("--micro-rows", type=int, default=300000)
    ap.add_argument("--json", help="write every figure to this file")
    a = ap.parse_args()
    for b in (BIN, SIM):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} is not built (make build/dronegate build/dronegate-sim)")
    workdir = tempfile.mkdtemp(prefix="dg-bench-")
    os.chmod(workdir, 0o755)
    GW_ARGS.extend(a.gw_args.split())
    res = {"loadavg": open("/proc/loadavg").read().split()[:3], "drones": a.drones, "duration": a.duration,
           "gw_args": a.gw_args}
    if a.latency:
        try:
            res["latency"] = latency_sweep(a, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=2))
        return
    try:
        if a.only in (None, "pg"):
            res["pg"] = bench_pg(a, workdir)
        if a.only in (None, "influx"):
            res["influx"] = bench_influx(a, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    report(res, a)


if __name__ == "__main__":
    main()
