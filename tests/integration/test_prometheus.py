"""deploy/prometheus and deploy/grafana against the real tools (issue 12 s5).

1. promtool (Debian package prometheus): `check config` on the shipped
   prometheus.yml, `check rules` on the rules, `test rules` on the unit tests.
2. The Grafana dashboard: structure (datasource variable, every panel and
   target on it, unique ids, only defined template variables).
3. Every PromQL expression of the rules and of the dashboard (template
   variables replaced by concrete values) parsed by Prometheus' own lezer
   grammar, npm @prometheus-io/lezer-promql (tests/promql/, pinned by its
   lock file, installed by tests/promql/install.sh).
4. A real Prometheus (/usr/bin/prometheus, temp dir, free loopback port,
   scrape and evaluation every 1 s, the shipped config with its targets
   pointed at the test gateway, the rules loaded) scrapes a gateway while
   dronegate-sim drones fly, a drone sends a bad message and a command is
   posted: the target is up, both rule groups load and evaluate without
   error, every dashboard query returns data (a finite sample), every rule
   expression is accepted by /api/v1/query, every metric name used exists
   on the gateway's /metrics, the `gateway` label is relabelled from
   dronegate_build_info, no alert fires on a healthy gateway, and the
   commented kubernetes_sd job of prometheus.yml (Debian's Prometheus is
   built without Kubernetes discovery) relabels a pod target given the same
   __meta_kubernetes_* labels through file_sd into the `namespace` and `pod`
   labels deploy/k8s/prometheus-adapter.yaml needs.
5. Real faults fire the real alert expressions (the shipped rules with `for`
   at 0 and the windows at 6 s): SQLite locked by another connection, then
   released, then every drone gone, then the gateway killed with -9.
"""
import json
import math
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from dg import REPO, SIM, T, Drone, clean_env, free_port, minimal, npm_tool, run, wait_until

# Prometheus config, rules and dashboard: no gateway code path the ASan pass would add to (deselected there: pytest.ini)
pytestmark = pytest.mark.plain_only


PROM_DIR = REPO / "deploy" / "prometheus"
PROM_YML = PROM_DIR / "prometheus.yml"
RULES = PROM_DIR / "rules" / "dronegate.rules.yml"
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))
DASHBOARD = REPO / "deploy" / "grafana" / "dronegate.json"
PROMQL_DIR = REPO / "tests" / "promql"
PROMTOOL = os.environ.get("PROMTOOL", "/usr/bin/promtool")
PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
INSTANCE_NAME = "gw-prom-test"
RATE_INTERVAL = "15s"        # $__rate_interval: 4 x a 1 s scrape, rounded up
# Grafana's own variables; the dashboard's ($job, $instance, $datasource) are added per run
GRAFANA_GLOBALS = {"__rate_interval": RATE_INTERVAL, "__interval": "5s", "__range": "5m",
                   "__range_s": "300", "__interval_ms": "5000"}


def need(path, pkg):
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: install the Debian package {pkg} "
                    f"(scripts/deps.sh reads scripts/deps.d/prom.list)", pytrace=False)


def promtool(*args, timeout=60):
    need(PROMTOOL, "prometheus")
    p = subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, cwd=REPO)
    return p.returncode, p.stdout + p.stderr


# ---------------------------------------------------------------- expressions

def rule_exprs():
    doc = yaml.safe_load(RULES.read_text())
    out = []
    for g in doc["groups"]:
        for r in g["rules"]:
            name = r.get("record") or r.get("alert")
            out.append((f"{RULES.name}: {g['name']}/{name}", r["expr"].strip()))
    assert out, "no rules found"
    return out


def dashboard():
    return json.loads(DASHBOARD.read_text())


def all_panels(d):
    for p in d.get("panels", []):
        yield p
        for q in p.get("panels", []) or []:
            yield q


def dashboard_exprs(d=None):
    """(where, expr, panel type) of every target of every panel, and the
    selectors inside the label_values() of query variables."""
    d = d or dashboard()
    out = []
    for p in all_panels(d):
        for t in p.get("targets", []) or []:
            out.append((f"{DASHBOARD.name}: panel {p['id']} '{p['title']}' target {t.get('refId')}",
                        t.get("expr", ""), p["type"]))
    for v in d["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
        assert m, f"variable {v['name']}: expected label_values(SELECTOR, LABEL), got {q!r}"
        out.append((f"{DASHBOARD.name}: variable ${v['name']}", m.group(1), "variable"))
    assert out, "no queries in the dashboard"
    return out


def substitute(expr, values):
    """Replace $var / ${var} / [[var]] by values[var]; unknown variables fail."""
    def rep(m):
        name = m.group(1) or m.group(2) or m.group(3)
        name = name.split(":")[0]
        assert name in values, f"unknown template variable ${name} in {expr!r}"
        return values[name]
    return re.sub(r"\$\{(\w+(?::\w+)?)\}|\$(\w+)|\[\[(\w+)\]\]", rep, expr)


def metric_names(expr):
    """dronegate_* metric names an expression reads (not recording-rule names)."""
    return set(re.findall(r"(?<![\w:])(dronegate_[A-Za-z0-9_]+)", expr))


def lezer_parse(items):
    """[(where, expr)] -> [(where, error)] of the rejected ones."""
    node = npm_tool("promql", "@prometheus-io/lezer-promql")
    p = subprocess.run([node, str(PROMQL_DIR / "parse.mjs")], input=json.dumps(
        [{"where": w, "expr": e} for w, e in items]), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"parse.mjs failed: {p.stderr}"
    res = json.loads(p.stdout)
    assert len(res) == len(items)
    return [(r["where"], r["error"]) for r in res if not r["ok"]]


# ---------------------------------------------------------------- static checks

def test_promtool_check_config_rules_and_unit_tests():
    rc, out = promtool("check", "config", PROM_YML)
    assert rc == 0, f"promtool check config {PROM_YML}:\n{out}"
    assert "1 rules files found" in out or "rules found" in out, \
        f"prometheus.yml's rule_files found no rules file:\n{out}"
    rc, out = promtool("check", "rules", RULES)
    assert rc == 0, f"promtool check rules:\n{out}"
    assert RULE_TESTS, "no promtool unit tests in deploy/prometheus/tests/"
    rc, out = promtool("test", "rules", *RULE_TESTS)
    assert rc == 0, f"promtool test rules:\n{out}"
    # every alert has a unit test that expects it to fire
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    fired = set()
    for f in RULE_TESTS:
        for t in yaml.safe_load(f.read_text())["tests"]:
            for a in t.get("alert_rule_test", []) or []:
                if a.get("exp_alerts"):
                    fired.add(a["alertname"])
    assert alerts <= fired, f"alerts without a unit test that makes them fire: {sorted(alerts - fired)}"


def test_dashboard_structure():
    d = dashboard()
    tvars = {v["name"]: v for v in d["templating"]["list"]}
    ds = tvars.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", \
        f"no Prometheus datasource variable: {list(tvars)}"
    ids = [p["id"] for p in all_panels(d)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    want = {"ingest rate": r"dronegate_messages_received_total", "acks": r"dronegate_acks_sent_total",
            "latency percentiles": r"histogram_quantile\(0\.99, .*dronegate_ingest_latency_seconds_bucket",
            "connections per transport and instance": r"by \(instance, transport\) \(dronegate_connections",
            "store batch time": r"dronegate_store_batch_seconds_bucket",
            "backlog": r"dronegate_backlog_records", "spool": r"dronegate_spool_bytes",
            "commands": r"dronegate_commands_total",
            "rejections by reason": r"by \(reason\) \(rate\(dronegate_messages_rejected_total"}
    exprs = [e for _, e, _ in dashboard_exprs(d)]
    for what, rx in want.items():
        assert any(re.search(rx, e) for e in exprs), f"no dashboard query for {what} (/{rx}/)"
    known = set(tvars) | set(GRAFANA_GLOBALS)
    for p in all_panels(d):
        if p["type"] == "row":
            continue
        assert p.get("datasource") == {"type": "prometheus", "uid": "${datasource}"}, \
            f"panel {p['id']} '{p['title']}' is not on the $datasource variable: {p.get('datasource')}"
        assert p.get("targets"), f"panel {p['id']} '{p['title']}' has no query"
        for t in p["targets"]:
            assert t.get("datasource", {}).get("uid") == "${datasource}", f"panel {p['id']} target {t}"
            for name in re.findall(r"\$\{?(\w+)", t["expr"]):
                assert name in known, f"panel {p['id']}: undefined variable ${name} in {t['expr']!r}"


def concrete(expr, instance):
    # a selected instance as Grafana's Prometheus data source formats it for =~:
    # regex-escaped, each backslash doubled inside the PromQL string
    return substitute(expr, {**GRAFANA_GLOBALS, "job": "dronegate",
                             "instance": re.escape(instance).replace("\\", "\\\\")})


def test_every_promql_expression_parses_with_lezer():
    items = [(w, e) for w, e in rule_exprs()]
    items += [(w, concrete(e, "127.0.0.1:8080")) for w, e, _ in dashboard_exprs()]
    bad = lezer_parse(items)
    assert not bad, "PromQL syntax errors (@prometheus-io/lezer-promql):\n" + \
        "\n".join(f"  {w}: {e}" for w, e in bad)
    # the checker itself rejects a broken expression
    assert lezer_parse([("self-test", "sum by (job (rate(dronegate_acks_sent_total[5m]))")]), \
        "the lezer check accepted a broken expression"


# ---------------------------------------------------------------- real Prometheus

class Prometheus:
    def __init__(self, root, config):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.conf = self.root / "prometheus.yml"
        self.conf.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = self.root / "prometheus.log"
        self.proc = None
        self.port = None

    def start(self):
        need(PROMETHEUS, "prometheus")
        rc, out = promtool("check", "config", self.conf)
        assert rc == 0, f"generated config rejected:\n{out}\n{self.conf.read_text()}"
        for attempt in range(5):
            self.port = free_port()
            with open(self.log, "ab") as logf:
                self.proc = subprocess.Popen(
                    [PROMETHEUS, f"--config.file={self.conf}", f"--storage.tsdb.path={self.root / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
                     "--storage.tsdb.retention.time=1h"],
                    stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
            try:
                wait_until(lambda: self.proc.poll() is not None or self._ready(), T(30), "prometheus /-/ready")
            except AssertionError:
                raise AssertionError(f"prometheus not ready:\n{self.tail()}")
            if self.proc.poll() is None:
                return self
            if "address already in use" in self.tail() and attempt < 4:
                continue
            raise AssertionError(f"prometheus exited {self.proc.returncode}:\n{self.tail()}")
        return self

    def _ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def tail(self, n=40):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"

    def api(self, path, **params):
        """GET /api/v1/PATH -> (http status, json)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=T(10)) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def query(self, expr):
        return self.api("query", query=expr)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def k8s_job_from_comment(text):
    """The commented kubernetes_sd job of prometheus.yml, uncommented."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("  # - job_name: dronegate"))
    block = []
    for l in lines[start:]:
        if not l.startswith("  #"):
            break
        block.append(l[:2] + l[4:] if l.startswith("  # ") else "")
    jobs = yaml.safe_load("\n".join(block))
    assert isinstance(jobs, list) and len(jobs) == 1, f"cannot read the commented job:\n{block}"
    return jobs[0]


def prom_config(gw_port, sd_file):
    cfg = yaml.safe_load(PROM_YML.read_text())
    jobs = [j for j in cfg["scrape_configs"] if j["job_name"] == "dronegate"]
    assert len(jobs) == 1, "prometheus.yml must have one job called dronegate (the rules select on it)"
    job = jobs[0]
    assert job.get("metric_relabel_configs"), "the dronegate job lost its metric_relabel_configs"
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(RULES)]
    cfg.pop("alerting", None)
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{gw_port}"], "labels": {"fleet": "test"}}]
    # the kubernetes_sd example, fed by file_sd with the labels Kubernetes discovery would give
    k8s = k8s_job_from_comment(PROM_YML.read_text())
    assert "kubernetes_sd_configs" in k8s, k8s
    k8s.pop("kubernetes_sd_configs")
    k8s["job_name"] = "dronegate-k8s"
    k8s["scrape_interval"] = k8s["scrape_timeout"] = "1s"
    k8s["file_sd_configs"] = [{"files": [str(sd_file)], "refresh_interval": "1s"}]
    sd_file.write_text(json.dumps([{
        # a pod IP with its container port; the annotation names the metrics port
        "targets": ["127.0.0.1:1"],
        "labels": {"__meta_kubernetes_namespace": "dronegate",
                   "__meta_kubernetes_pod_name": "dronegate-7d9f-abcde",
                   "__meta_kubernetes_pod_node_name": "node-1",
                   "__meta_kubernetes_pod_label_app_kubernetes_io_name": "dronegate",
                   "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
                   "__meta_kubernetes_pod_annotation_prometheus_io_port": str(gw_port),
                   "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics"}},
        {"targets": ["127.0.0.1:2"],     # another app's pod: dropped by the keep rule
         "labels": {"__meta_kubernetes_namespace": "dronegate", "__meta_kubernetes_pod_name": "other",
                    "__meta_kubernetes_pod_label_app_kubernetes_io_name": "other",
                    "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true"}}]))
    cfg["scrape_configs"].append(k8s)
    return cfg


def finite(result):
    vals = []
    if result["resultType"] == "vector":
        vals = [float(s["value"][1]) for s in result["result"]]
    elif result["resultType"] == "scalar":
        vals = [float(result["result"][1])]
    return [v for v in vals if not math.isnan(v)]


@pytest.fixture
def prom_env(server_factory, tmp_path):
    gw = server_factory(args=["--instance", INSTANCE_NAME])
    assert os.access(SIM, os.X_OK), f"simulator not built: {SIM}"
    sim = subprocess.Popen([SIM, "--url", gw.ws_base, "--drones", "4", "--rate", "20", "--duration", "0",
                            "--prefix", "prom-", "--quiet"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=open(tmp_path / "sim.log", "wb"), env=clean_env())
    prom = Prometheus(tmp_path / "prom", prom_config(gw.port, tmp_path / "k8s-pods.json"))
    try:
        prom.start()
        yield gw, prom, sim
    finally:
        prom.stop()
        if sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(timeout=T(30))
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()


def test_real_prometheus_scrapes_gateway_rules_and_dashboard_queries(prom_env):
    gw, prom, sim = prom_env
    target = f"127.0.0.1:{gw.port}"

    # -- the target is up
    def targets_up():
        st, j = prom.api("targets")
        assert st == 200, j
        act = j["data"]["activeTargets"]
        mine = [t for t in act if t["labels"].get("job") == "dronegate"]
        return mine if mine and all(t["health"] == "up" for t in mine) else None
    try:
        mine = wait_until(targets_up, T(30), "the dronegate target up in /api/v1/targets", interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}: {prom.api('targets')[1]}\n{prom.tail()}")
    assert [t["labels"]["instance"] for t in mine] == [target], mine

    # -- both rule groups loaded, every rule evaluated without error
    want_rules = {n.split("/")[-1] for n, _ in rule_exprs()}

    def rules_ok():
        st, j = prom.api("rules")
        assert st == 200, j
        groups = {g["name"]: g for g in j["data"]["groups"]}
        if set(groups) != {"dronegate.recording", "dronegate.alerts"}:
            return None
        rules = [r for g in groups.values() for r in g["rules"]]
        for r in rules:
            assert r.get("health") in ("ok", "unknown"), f"rule {r['name']} unhealthy: {r.get('lastError')}"
            assert not r.get("lastError"), f"rule {r['name']}: {r['lastError']}"
        return rules if all(r["health"] == "ok" for r in rules) else None
    rules = wait_until(rules_ok, T(30), "rule groups loaded and evaluated (health ok)", interval=0.2)
    assert {r["name"] for r in rules} == want_rules, sorted(r["name"] for r in rules)

    # -- traffic the dashboard shows: a rejected message, a command
    async def bad_drone():
        d = await Drone.connect(gw, "prom-bad-drone")
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.send("{not json")
        await d.wait_errors(1)
        await d.close()
    run(bad_drone())
    wait_until(lambda: any(s.get("id") == "prom-0000" for s in gw.drones()),
               T(20), "simulated drone prom-0000 registered")
    r = gw.get("/api/v1/drones/prom-0000/commands", method="POST", body=json.dumps({"name": "land"}),
               headers={"Content-Type": "application/json"})
    assert r.status == 202, r

    # -- every metric the rules and the dashboard read exists on /metrics
    exported = {n for (n, _, _) in gw.metrics()}
    used = set()
    for _, e in rule_exprs():
        used |= metric_names(e)
    for _, e, _ in dashboard_exprs():
        used |= metric_names(e)
    missing = sorted(n for n in used if n not in exported)
    assert not missing, f"metric names used by the rules/dashboard that the gateway does not export: {missing}"

    # -- the gateway's --instance name arrives as the `gateway` label
    def build_info():
        st, j = prom.query('dronegate_build_info{job="dronegate"}')
        assert st == 200, j
        return j["data"]["result"] or None
    bi = wait_until(build_info, T(20), "dronegate_build_info scraped")
    assert bi[0]["metric"].get("gateway") == INSTANCE_NAME, bi
    assert "exported_instance" not in bi[0]["metric"], bi
    assert bi[0]["metric"]["instance"] == target, bi

    # -- every rule expression is valid PromQL for the real engine
    for where, e in rule_exprs():
        st, j = prom.query(e)
        assert st == 200 and j["status"] == "success", f"{where}: {e!r} -> {st} {j}"
    for rec in ("instance:dronegate_messages_received:rate1m", "job:dronegate_drones_connected:sum",
                "instance:dronegate_ingest_latency_seconds:p99_5m"):
        wait_until(lambda: finite(prom.query(rec)[1]["data"]), T(20), f"data for the recording rule {rec}")

    # -- every dashboard query returns data (a finite sample)
    queries = [(w, concrete(e, target), kind) for w, e, kind in dashboard_exprs()]
    pending = {}

    def all_have_data():
        pending.clear()
        for where, e, kind in queries:
            st, j = prom.query(e)
            assert st == 200 and j["status"] == "success", f"{where}: {e!r} rejected by Prometheus: {st} {j}"
            if not finite(j["data"]):
                pending[where] = (e, j["data"])
        return not pending
    try:
        wait_until(all_have_data, T(40), "data for every dashboard query", interval=0.5)
    except AssertionError as err:
        raise AssertionError(f"{err}; queries without data:\n" +
                             "\n".join(f"  {w}: {e}\n    -> {d}" for w, (e, d) in pending.items()))

    # -- the traffic shows where it should
    def by_label(expr, label):
        st, j = prom.query(expr)
        return {s["metric"].get(label): float(s["value"][1]) for s in j["data"]["result"]}
    rej = next(e for _, e, _ in queries if "by (reason) (rate(dronegate_messages_rejected_total" in e)
    wait_until(lambda: by_label(rej, "reason").get("invalid_json", 0) > 0, T(20),
               f"invalid_json > 0 in {rej}")
    conn = next(e for _, e, _ in queries if "by (instance, transport) (dronegate_connections" in e)
    wait_until(lambda: by_label(conn, "transport").get("websocket", 0) >= 4, T(20),
               f"4 websocket connections in {conn}")
    cmd = next(e for _, e, _ in queries if "dronegate_commands_total" in e)
    wait_until(lambda: by_label(cmd, "status").get("pending", 0) > 0, T(20), f"a pending command in {cmd}")

    # -- a healthy gateway fires no alert
    st, j = prom.query('ALERTS{alertname=~"Dronegate.*"}')
    assert st == 200 and j["data"]["result"] == [], f"alerts on a healthy gateway: {j['data']['result']}"
    assert sim.poll() is None, "the simulator stopped early"

    # -- the kubernetes_sd example: pod target relabelled, adapter labels present
    def k8s_up():
        st, j = prom.api("targets")
        ts = [t for t in j["data"]["activeTargets"] if t["labels"].get("job") == "dronegate-k8s"]
        return ts if ts and all(t["health"] == "up" for t in ts) else None
    ts = wait_until(k8s_up, T(30), "the dronegate-k8s (file_sd) target up", interval=0.2)
    assert len(ts) == 1, f"the keep rules should drop the other app's pod: {ts}"
    lab = ts[0]["labels"]
    assert lab["instance"] == target and lab["namespace"] == "dronegate" and \
        lab["pod"] == "dronegate-7d9f-abcde" and lab["node"] == "node-1", lab
    adapter = ('sum(dronegate_connections{job="dronegate-k8s",namespace="dronegate",pod!="",'
               'transport=~"websocket|grpc"}) by (namespace, pod)')   # prometheus-adapter's metricsQuery
    wait_until(lambda: finite(prom.query(adapter)[1]["data"]), T(20), f"data for {adapter}")


# ---------------------------------------------------------------- alerts on real faults

def fast_rules(dst):
    """The shipped rules with every `for` at 0 and every window 6 s, so that
    real faults fire the real expressions within seconds."""
    t = RULES.read_text()
    t = re.sub(r"\bfor: \d+[smh]", "for: 0s", t)
    t = re.sub(r"\[\d+[smh]\]", "[6s]", t)
    t = re.sub(r"\boffset \d+[smh]", "offset 6s", t)
    dst.write_text(t)
    rc, out = promtool("check", "rules", dst)
    assert rc == 0, out
    return dst


def test_alerts_fire_on_real_faults(server_factory, tmp_path):
    """Store outage (SQLite locked by another connection, as in
    test_outage.py), then recovery, then every drone gone, then the gateway
    killed: each alert fires from the gateway's real metrics (rules with the
    `for` durations and windows shortened, nothing else changed)."""
    import sqlite3
    gw = server_factory(args=["--instance", INSTANCE_NAME, "--batch-records", "64", "--batch-pool", "4"])
    sim = subprocess.Popen([SIM, "--url", gw.ws_base, "--drones", "12", "--rate", "20", "--duration", "0",
                            "--window", "100000", "--prefix", "fault-", "--quiet"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=open(tmp_path / "sim.log", "wb"), env=clean_env())
    cfg = yaml.safe_load(PROM_YML.read_text())
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(fast_rules(tmp_path / "fast.rules.yml"))]
    cfg.pop("alerting", None)
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "dronegate")
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{gw.port}"]}]
    prom = Prometheus(tmp_path / "prom", cfg)
    con = None
    try:
        prom.start()

        def firing():
            st, j = prom.api("alerts")
            assert st == 200, j
            return {a["labels"]["alertname"] for a in j["data"]["alerts"] if a["state"] == "firing"}

        def wait_firing(names, what):
            try:
                return wait_until(lambda: set(names) <= firing(), T(30), what, interval=0.2)
            except AssertionError as e:
                raise AssertionError(f"{e}; firing: {sorted(firing())}\n{prom.tail()}")

        wait_until(lambda: finite(prom.query('job:dronegate_drones_connected:sum >= 12')[1]["data"]),
                   T(30), "12 simulated drones connected, seen by Prometheus", interval=0.2)
        # give the 6 s windows healthy data, then nothing fires
        wait_until(lambda: finite(prom.query(
            'sum(increase(dronegate_messages_stored_total{job="dronegate"}[6s])) > 0 and '
            'sum(count_over_time(up{job="dronegate"}[6s])) >= 5')[1]["data"]), T(30), "6 s of healthy data")
        assert not firing(), f"alerts on a healthy gateway: {firing()}"

        # -- store outage
        con = sqlite3.connect(str(gw.db), timeout=30, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        wait_firing({"DronegateStoreFailing", "DronegateStoreErrors", "DronegateBacklogGrowing",
                     "DronegateSpoolGrowing"}, "store alerts during the outage")
        assert "DronegateInstanceDown" not in firing()

        # -- recovery: the spool is replayed; those messages waited seconds
        con.rollback()
        con.close()
        con = None
        wait_firing({"DronegateIngestLatencyHigh"}, "ingest p99 over target after the replay")
        wait_until(lambda: "DronegateStoreFailing" not in firing(), T(30), "DronegateStoreFailing resolved")

        # -- every drone gone at once
        sim.kill()
        sim.wait()
        wait_firing({"DronegateDronesDroppedOffline"}, "drones dropped offline")

        # -- the gateway dies
        gw.kill9()
        wait_firing({"DronegateInstanceDown", "DronegateNoInstanceUp"}, "instance down")
    finally:
        if con is not None:
            con.rollback()
            con.close()
        prom.stop()
        if sim.poll() is None:
            sim.kill()
            sim.wait()
