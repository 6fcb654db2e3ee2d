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
import re
import shutil
import subprocess

import pytest

import dg

K8S = dg.REPO / "deploy" / "k8s"
RUN = dg.REPO / "tests" / "deploy" / "run.sh"


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
    assert one(r"^EXPOSE (\d+)/tcp$", cf, "EXPOSE") == one(r"^              containerPort: (\d+)$", dep, "containerPort")
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
    ("refused-flag", [("configmap.yaml", '  DRONEGATE_LOG_LEVEL: "info"\n',
                       '  DRONEGATE_LOG_LEVEL: "info"\n  DRONEGATE_GRPC_LISTEN: "0.0.0.0:50051"\n')],
     "the gateway refuses --grpc-listen at start"),
    ("grace-too-short", [("deployment.yaml", "terminationGracePeriodSeconds: 40", "terminationGracePeriodSeconds: 25")],
     "terminationGracePeriodSeconds 25 must be above preStop 5 s + drain 20 s"),
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
