"""test_k8s_manifests.py - deploy/k8s checked without a cluster (issue 12 section 4).

No Kubernetes cluster can run here. tests/deploy/validate-k8s.mjs (run through
tests/deploy/run.sh, which installs npm kubernetes-models and yaml from
tests/deploy/package-lock.json) loads every manifest listed in
deploy/k8s/kustomization.yaml, validates each object against the Kubernetes
schemas with kubernetes-models' validate() plus an unknown-field pass, and
checks the cross-references a schema cannot see. What the gateway knows comes
from the binary under test: its `--help` (DRONEGATE_* variables, defaults,
flags this build refuses) and the /metrics page of a running gateway (the
series the prometheus-adapter rule reads).

The validator must be able to fail: each case below breaks a copy of the
folder in one way (and one copy in three ways at once) and asserts that the
validator names the error for that copy. All copies go to one validator run
(one node process, `--dir` repeated; each copy is reported on its own).
"""
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request

import pytest

import dg

# Kubernetes manifests: no gateway code path the ASan pass would add to (deselected there: pytest.ini)
pytestmark = pytest.mark.plain_only


K8S = dg.REPO / "deploy" / "k8s"
RUN = dg.REPO / "tests" / "deploy" / "run.sh"
PROMETHEUS = "/usr/bin/prometheus"


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    """`dronegate --help` and a /metrics page of the binary under test, as files."""
    d = tmp_path_factory.mktemp("gwfacts")
    p = dg.run_cli([dg.BIN, "--help"])
    assert p.returncode == 0, p.stderr
    (d / "help.txt").write_text(p.stdout)
    s = dg.Server(d / "srv")
    s.start()
    try:
        r = dg.http_get(s.port, "/metrics")
        assert r.status == 200, r.status
        (d / "metrics.txt").write_text(r.text)
    finally:
        s.stop()
    return d


def validate(facts, *folders):
    dirs = [a for f in folders for a in ("--dir", str(f))]
    p = subprocess.run([str(RUN), "validate-k8s.mjs", *dirs,
                        "--help-text", str(facts / "help.txt"), "--metrics", str(facts / "metrics.txt")],
                       capture_output=True, text=True, timeout=dg.T(300), stdin=subprocess.DEVNULL)
    assert p.returncode in (0, 1), f"validator failed to run (exit {p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p


def test_manifests_are_valid(facts):
    p = validate(facts, K8S)
    assert p.returncode == 0, f"deploy/k8s has errors:\n{p.stdout}\n{p.stderr}"
    assert "0 errors" in p.stdout, p.stdout
    # every kind the issue asks for is there
    kinds = {}
    for f in K8S.glob("*.yaml"):
        for line in f.read_text().splitlines():
            if line.startswith("kind: "):
                kinds[line[6:].strip()] = kinds.get(line[6:].strip(), 0) + 1
    for k in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap", "Secret"):
        assert k in kinds, f"no {k} in deploy/k8s"


def one(pattern, text, what):
    m = re.findall(pattern, text, re.M)
    assert len(m) == 1, f"expected one {what} ({pattern!r}), found {m}"
    return m[0]


def test_image_and_manifests_agree():
    """deploy/Containerfile and deploy/k8s describe the same container: the
    user, the writable volume, the port, the dashboard path, the image name
    `make image` builds. The Kubernetes schema cannot see these."""
    cf = (dg.REPO / "deploy" / "Containerfile").read_text()
    dep = (K8S / "deployment.yaml").read_text()
    cm = (K8S / "configmap.yaml").read_text()
    mk = (dg.REPO / "mk" / "k8s.mk").read_text()
    uid, gid = one(r"^USER (\d+):(\d+)$", cf, "USER")
    assert one(r"^        runAsUser: (\d+)$", dep, "pod runAsUser") == uid
    assert one(r"^        runAsGroup: (\d+)$", dep, "pod runAsGroup") == gid
    assert one(r"^        fsGroup: (\d+)$", dep, "pod fsGroup") == gid
    volume = one(r"^VOLUME (\S+)$", cf, "VOLUME")
    assert one(r"^              mountPath: (\S+)$", dep, "volumeMount") == volume
    spool = one(r'^  DRONEGATE_SPOOL_DIR: "([^"]+)"$', cm, "DRONEGATE_SPOOL_DIR")
    assert spool.startswith(volume + "/"), f"spool {spool} outside the image's volume {volume}"
    exposed = sorted((p, proto.upper()) for p, proto in re.findall(r"^EXPOSE (\d+)/(tcp|udp)$", cf, re.M))
    ports = sorted(re.findall(r"^              containerPort: (\d+)\n              protocol: (TCP|UDP)$", dep, re.M))
    assert exposed and exposed == ports, f"EXPOSE {exposed} vs containerPort {ports}"
    web = one(r'^  DRONEGATE_WEB_ROOT: "([^"]+)"$', cm, "DRONEGATE_WEB_ROOT")
    assert one(r"DRONEGATE_WEB_ROOT=(\S+)", cf, "ENV DRONEGATE_WEB_ROOT") == web
    assert one(r"^COPY --from=build /out/usr/share/dronegate/ (\S+)$", cf, "dashboard COPY").rstrip("/") + "/web" == web
    assert one(r"^IMAGE\s+\?= (\S+)$", mk, "IMAGE in mk/k8s.mk") == one(r"^          image: (\S+)$", dep, "image")


def broken_copy(d, edits):
    """A copy of deploy/k8s in d with edits [(file, old, new)]: each old text
    must be there (the first occurrence is replaced), so a stale case fails
    loudly."""
    shutil.copytree(K8S, d)
    for f, old, new in edits:
        p = d / f
        if old is None:                       # a new file / a removed file
            if new is None:
                p.unlink()
            else:
                p.write_text(new)
            continue
        text = p.read_text()
        assert old in text, f"test case is stale: {old!r} is not in {f}"
        p.write_text(text.replace(old, new, 1))
    return d


# (id, edits, what the validator must say)
CASES = [
    ("wrong-type", [("deployment.yaml", "  replicas: 2\n", '  replicas: "two"\n')],
     "Deployment/dronegate: schema: data/spec/replicas must be integer"),
    ("unknown-field", [("deployment.yaml", "imagePullPolicy: IfNotPresent", "imagePullPolicyy: IfNotPresent")],
     "unknown field /spec/template/spec/containers/0/imagePullPolicyy"),
    ("unknown-field-service", [("service.yaml", "  type: ClusterIP\n", "  type: ClusterIP\n  sessionAfinity: ClientIP\n")],
     "Service/dronegate: unknown field /spec/sessionAfinity"),
    ("service-selector", [("service.yaml", "    app.kubernetes.io/component: gateway\n  ports:",
                           "    app.kubernetes.io/component: gatway\n  ports:")],
     "Service/dronegate: selector {\"app.kubernetes.io/name\":\"dronegate\",\"app.kubernetes.io/component\":\"gatway\"} selects no pods"),
    ("service-target-port", [("service.yaml", "targetPort: http", "targetPort: 9090")],
     "targetPort 9090 is not a container port of Deployment/dronegate"),
    ("unlisted-file", [("extra.yaml", None, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")],
     "extra.yaml: is in the folder but not listed in kustomization.yaml"),
    ("listed-missing", [("pdb.yaml", None, None)],
     "pdb.yaml is listed but does not exist"),
    ("unknown-env", [("configmap.yaml", "DRONEGATE_PING_INTERVAL:", "DRONEGATE_PING_INTERVAL_MS:")],
     "DRONEGATE_PING_INTERVAL_MS (from ConfigMap/dronegate-config) is not a variable the gateway knows"),
    ("drain-longer-than-grace", [("configmap.yaml", 'DRONEGATE_SHUTDOWN_TIMEOUT: "20000"', 'DRONEGATE_SHUTDOWN_TIMEOUT: "60000"')],
     "terminationGracePeriodSeconds 40 must be above preStop 5 s + drain 60 s"),
    ("no-prestop", [("deployment.yaml", '          lifecycle:\n            preStop:\n              exec:\n                command: ["/bin/sleep", "5"]\n', "")],
     "no lifecycle.preStop"),
    ("hpa-target", [("hpa.yaml", "    name: dronegate\n  minReplicas", "    name: dronegate-gw\n  minReplicas")],
     "scaleTargetRef Deployment/dronegate-gw is not a Deployment"),
    ("hpa-metric", [("hpa.yaml", "name: dronegate_connections\n", "name: dronegate_connection\n")],
     "Pods metric dronegate_connection is served by no prometheus-adapter rule"),
    ("adapter-series", [("prometheus-adapter.yaml", "seriesQuery: 'dronegate_connections{", "seriesQuery: 'dronegate_conns{")],
     "dronegate_conns is not on the gateway's /metrics page"),
    ("adapter-label", [("prometheus-adapter.yaml", 'transport=~"websocket|grpc"', 'transport=~"websocket|mavlink"')],
     'filters transport="mavlink" but the gateway\'s /metrics has no dronegate_connections series with it'),
    ("probe-port", [("deployment.yaml", "path: /readyz\n              port: http", "path: /readyz\n              port: metrics")],
     'readinessProbe port "metrics" is not a port of the container'),
    ("probe-path", [("deployment.yaml", "path: /readyz", "path: /healthz")],
     "readinessProbe must GET /readyz"),
    ("pdb-selector", [("pdb.yaml", "      app.kubernetes.io/component: gateway", "      app.kubernetes.io/component: gw")],
     "PodDisruptionBudget/dronegate: selector"),
    ("pdb-blocks", [("pdb.yaml", "  maxUnavailable: 1", "  minAvailable: 2")],
     "minAvailable 2 >= 2 replicas"),
    ("secret-key", [("deployment.yaml", "key: auth-secret", "key: auth_secret")],
     "Secret dronegate-secrets has no key auth_secret"),
    ("configmap-name", [("deployment.yaml", "name: dronegate-config", "name: dronegate-conf")],
     "envFrom ConfigMap dronegate-conf does not exist"),
    ("spool-not-writable", [("configmap.yaml", '"/var/lib/dronegate/spool"', '"/data/spool"')],
     "spool directory /data/spool (DRONEGATE_SPOOL_DIR) is not under a writable volume mount"),
    ("spool-over-volume", [("deployment.yaml", "sizeLimit: 768Mi", "sizeLimit: 256Mi")],
     "sizeLimit 256Mi is below DRONEGATE_SPOOL_MAX_MB 512"),
    ("writable-root", [("deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")],
     "readOnlyRootFilesystem must be true"),
    ("capabilities", [("deployment.yaml", 'drop: ["ALL"]', 'drop: ["NET_RAW"]')],
     "capabilities.drop must hold ALL"),
    ("service-links", [("deployment.yaml", "enableServiceLinks: false", "enableServiceLinks: true")],
     "enableServiceLinks must be false: Service dronegate, dronegate-metrics, dronegate-mavlink would inject DRONEGATE_SERVICE_HOST"),
    ("root-user", [("deployment.yaml", "            runAsNonRoot: true\n", "            runAsNonRoot: false\n"),
                   ("deployment.yaml", "        runAsNonRoot: true\n", "        runAsNonRoot: false\n")],
     "runAsNonRoot must be true"),
]


# wrong field type, unknown field (both in the Deployment) and a mismatched
# selector in one copy: each is reported, none hides another
THREE = [
    ("deployment.yaml", "  replicas: 2\n", '  replicas: "2"\n'),
    ("deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: true\n            readOnlyRootFS: true"),
    ("service.yaml", "    app.kubernetes.io/component: gateway\n  ports:\n    - name: metrics",
     "    app.kubernetes.io/component: metrics\n  ports:\n    - name: metrics"),
]


@pytest.fixture(scope="module")
def broken_reports(facts, tmp_path_factory):
    """Every broken copy through one validator run: {case id: its report}."""
    root = tmp_path_factory.mktemp("broken")
    copies = {cid: broken_copy(root / cid, edits) for cid, edits, _ in CASES}
    copies["three-errors"] = broken_copy(root / "three-errors", THREE)
    p = validate(facts, *copies.values())
    assert p.returncode == 1, f"validator accepted every broken copy (exit 0):\n{p.stdout}"
    reports, cur = {}, None
    by_dir = {str(d): cid for cid, d in copies.items()}
    for line in p.stdout.splitlines():
        if line.startswith("== "):
            cur = by_dir[line[3:]]
            reports[cur] = []
        elif cur:
            reports[cur].append(line)
    assert set(reports) == set(copies), f"not every copy was reported:\n{p.stdout}\n{p.stderr}"
    return {cid: "\n".join(lines) for cid, lines in reports.items()}


def test_flag_this_build_refuses_is_reported(facts, tmp_path):
    """A DRONEGATE_* variable whose flag `--help` marks "not available in this
    build" would crash-loop the pod. This build refuses no flag any more, so
    the help text is doctored: --queue marked as a build without brokers
    would say it."""
    help_text = (facts / "help.txt").read_text()
    marked = re.sub(r"(\[DRONEGATE_QUEUE\]\n\s+)(.*)\n", r"\1\2 (not available in this build)\n", help_text, count=1)
    assert marked != help_text, "--queue is not in --help"
    doctored = tmp_path / "facts"
    doctored.mkdir()
    (doctored / "help.txt").write_text(marked)
    (doctored / "metrics.txt").write_text((facts / "metrics.txt").read_text())
    copy = broken_copy(tmp_path / "refused-flag", [("configmap.yaml", '  DRONEGATE_LOG_LEVEL: "info"\n',
                                                    '  DRONEGATE_LOG_LEVEL: "info"\n  DRONEGATE_QUEUE: "kafka://kafka:9092/t"\n')])
    p = validate(doctored, copy)
    assert p.returncode == 1 and "the gateway refuses --queue at start" in p.stdout, p.stdout


@pytest.mark.parametrize("cid,expect", [(c[0], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_broken_copy_is_reported(broken_reports, cid, expect):
    r = broken_reports[cid]
    assert expect in r, f"expected {expect!r} in the report of copy {cid}:\n{r}"
    assert " 0 errors" not in r, r


def test_three_errors_in_one_copy_are_all_reported(broken_reports):
    r = broken_reports["three-errors"]
    for expect in ("Deployment/dronegate: schema: data/spec/replicas must be integer",
                   "unknown field /spec/template/spec/containers/0/securityContext/readOnlyRootFS",
                   "Service/dronegate-metrics: selector"):
        assert expect in r, f"expected {expect!r} in:\n{r}"
    assert r.endswith(" 3 errors"), r


# ------------------------------------------------- the adapter rule, for real

def adapter_rule():
    text = (K8S / "prometheus-adapter.yaml").read_text()
    return (one(r"seriesQuery: '([^']+)'$", text, "seriesQuery"),
            one(r"metricsQuery: '([^']+)'$", text, "metricsQuery"),
            one(r'^\s+as: "([^"]+)"$', text, "name.as"))


def adapter_query(metrics_query, series, namespace, pods):
    """The PromQL prometheus-adapter runs for a Pods metric of these pods
    (its template: <<.Series>>, <<.LabelMatchers>>, <<.GroupBy>>)."""
    matchers = f'namespace="{namespace}",pod=~"{"|".join(pods)}"'
    return (metrics_query.replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", matchers).replace("<<.GroupBy>>", "pod"))


def prom_api(port, path, **params):
    url = f"http://127.0.0.1:{port}/api/v1/{path}?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(url, timeout=dg.T(10)) as r:
        return json.loads(r.read())


def test_adapter_rule_counts_drone_connections_per_pod(server_factory, tmp_path):
    """A real Prometheus (Debian) scrapes two gateways labelled as two pods
    (the namespace/pod labels a kubernetes_sd relabelling gives); the
    adapter rule's seriesQuery finds them and its metricsQuery, expanded as
    prometheus-adapter expands it, gives each pod its number of drone
    connections: 3 and 1, not counting the HTTP connection of the scrape."""
    assert os.access(PROMETHEUS, os.X_OK), \
        "prometheus is missing: apt-get install prometheus (scripts/deps.d/k8s.list)"
    series_query, metrics_query, served = adapter_rule()
    series = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", series_query).group(1)
    gws = [server_factory(), server_factory()]
    pods = ["dronegate-6d8f9c7b5-x2k4p", "dronegate-6d8f9c7b5-q7zmn"]
    targets = "\n".join(
        f"      - targets: ['127.0.0.1:{g.port}']\n        labels: {{namespace: dronegate, pod: {p}}}"
        for g, p in zip(gws, pods))
    root = tmp_path / "prom"
    root.mkdir()
    (root / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: dronegate\n    static_configs:\n{targets}\n")
    port = dg.free_port()
    log = open(root / "prometheus.log", "wb")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={root / 'prometheus.yml'}",
                             f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    def ready():
        assert prom.poll() is None, f"prometheus exited:\n{(root / 'prometheus.log').read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    async def scenario():
        drones = [await dg.Drone.connect(gws[0], dg.new_id("k8s")) for _ in range(3)]
        drones.append(await dg.Drone.connect(gws[1], dg.new_id("k8s")))
        try:
            await asyncio.to_thread(dg.wait_until, ready, dg.T(30), "prometheus /-/ready")
            def both_pods():
                found = prom_api(port, "series", **{"match[]": series_query})["data"]
                return found if {x.get("pod") for x in found} == set(pods) else None
            found = await asyncio.to_thread(dg.wait_until, both_pods, dg.T(30),
                                            f"{series_query} series of both pods")
            assert all(x.get("namespace") == "dronegate" for x in found), found
            q = adapter_query(metrics_query, series, "dronegate", pods)

            def per_pod():
                r = prom_api(port, "query", query=q)
                assert r["status"] == "success", r
                got = {x["metric"]["pod"]: float(x["value"][1]) for x in r["data"]["result"]}
                return got if got == {pods[0]: 3.0, pods[1]: 1.0} else None

            try:
                await asyncio.to_thread(dg.wait_until, per_pod, dg.T(30), f"{q} == 3 and 1 per pod")
            except AssertionError:
                raise AssertionError(f"{q} gave {prom_api(port, 'query', query=q)['data']['result']}, "
                                     "expected 3 and 1 (the drones of each pod)")
        finally:
            for d in drones:
                await d.close()

    try:
        dg.run(scenario(), timeout=dg.T(90))
    finally:
        prom.send_signal(signal.SIGTERM)
        try:
            prom.wait(timeout=30)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()
    # the HPA asks for the name the rule serves
    assert f"name: {served}\n" in (K8S / "hpa.yaml").read_text()
