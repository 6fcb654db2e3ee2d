"""test_install.py - what an operator installs (issue 14, item 4): --version,
the dronegate_build_info metric, GET /api/v1/config for the dashboard,
`make install` (PREFIX, DESTDIR) with the man page and the systemd unit, the
unit checked by `systemd-analyze verify`, and the installed dashboard served
with every asset it loads answering 200.

`make install` runs in the repository (it builds build/dronegate if needed:
a few seconds when `make test` built it already).
"""
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

import dg

MAKE_TIMEOUT = 600


def version_of(binary):
    p = dg.run_cli([binary, "--version"])
    assert p.returncode == 0, p.stderr
    m = re.fullmatch(r"dronegate (\S+) \(commit (\S+)\)\n", p.stdout)
    assert m, f"--version printed {p.stdout!r}"
    return m.group(1), m.group(2)


def test_version_and_build_info_metric(srv):
    version, commit = version_of(dg.BIN)
    assert version != "unknown" and commit != "unknown"
    samples = srv.metrics()
    assert dg.metric(samples, "dronegate_build_info", version=version, commit=commit) == 1
    text = srv.get("/metrics").text
    assert "# TYPE dronegate_build_info gauge" in text


def test_help_lists_version():
    p = dg.run_cli([dg.BIN, "--help"])
    assert p.returncode == 0 and "--version" in p.stdout and "--map-tiles" in p.stdout


def test_config_endpoint_default_and_tiles(server_factory):
    s = server_factory()
    cfg = s.get_json("/api/v1/config")
    assert cfg["map_tiles"] == "" and cfg["map_attribution"] == ""
    assert cfg["version"] == version_of(dg.BIN)[0]
    t = server_factory(args=["--map-tiles", "http://127.0.0.1:9/{z}/{x}/{y}.png",
                             "--map-attribution", 'Tiles "test" & co'])
    cfg = t.get_json("/api/v1/config")
    assert cfg["map_tiles"] == "http://127.0.0.1:9/{z}/{x}/{y}.png"
    assert cfg["map_attribution"] == 'Tiles "test" & co'
    assert t.get("/api/v1/config", method="POST", body=b"{}").status in (403, 405)


def test_config_endpoint_needs_operator_token(server_factory):
    s = server_factory(secret="s3cret")
    assert s.get("/api/v1/config", operator=False).status == 401
    assert s.get("/api/v1/config").status == 200


@pytest.mark.parametrize("bad", ["ftp://x/{z}/{x}/{y}", "http://x/tiles.png", "http://x/{z}/{y}"])
def test_map_tiles_rejects_a_bad_template(bad):
    p = dg.run_cli([dg.BIN, "--map-tiles", bad, "--listen", "127.0.0.1:0"])
    assert p.returncode == 2 and "--map-tiles" in p.stderr


def make_install(*args):
    p = subprocess.run(["make", "--no-print-directory", "-C", str(dg.REPO), "install", *args],
                       capture_output=True, text=True, timeout=MAKE_TIMEOUT, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"make install {' '.join(args)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """`make install PREFIX=<tmp>/usr`: real paths, so the unit can be verified."""
    root = tmp_path_factory.mktemp("prefix")
    make_install(f"PREFIX={root}/usr")
    return root / "usr"


def test_install_layout(prefix):
    for rel in ("bin/dronegate", "bin/dronegate-sim", "share/man/man8/dronegate.8", "share/man/man1/dronegate-sim.1",
                "lib/systemd/system/dronegate.service", "share/dronegate/web/index.html",
                "share/dronegate/web/app.js", "share/dronegate/web/live-worker.js",
                "share/dronegate/web/vendor/leaflet/leaflet.js"):
        assert (prefix / rel).is_file(), f"{rel} not installed"
    assert version_of(str(prefix / "bin/dronegate"))[0] != "unknown"
    assert not (prefix / "share/dronegate/web/build.sh").exists()
    assert not (prefix / "share/dronegate/web/node_modules").exists()


def test_destdir_keeps_prefix_paths(tmp_path):
    make_install(f"DESTDIR={tmp_path}", "PREFIX=/usr")
    unit = (tmp_path / "usr/lib/systemd/system/dronegate.service").read_text()
    assert "ExecStart=/usr/bin/dronegate\n" in unit
    assert "DRONEGATE_WEB_ROOT=/usr/share/dronegate/web" in unit
    assert (tmp_path / "usr/bin/dronegate").is_file()
    assert str(tmp_path) not in unit


def test_man_page_lists_every_flag(prefix):
    page = prefix / "share/man/man8/dronegate.8"
    if shutil.which("groff"):
        p = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True)
        assert p.returncode == 0 and p.stderr == "", p.stderr
    text = page.read_text().replace("\\-", "-")
    flags = re.findall(r"^  --([a-z][a-z0-9-]*)", dg.run_cli([dg.BIN, "--help"]).stdout, re.M)
    assert len(flags) > 20
    missing = [f for f in flags if f"--{f}" not in text]
    assert not missing, f"flags missing from dronegate.8: {missing}"


def test_systemd_unit_is_hardened_and_verifies(prefix):
    unit_path = prefix / "lib/systemd/system/dronegate.service"
    unit = unit_path.read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    for key, want in [("DynamicUser", "yes"), ("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"),
                      ("StateDirectory", "dronegate"), ("KillSignal", "SIGTERM"),
                      ("ExecStart", f"{prefix}/bin/dronegate")]:
        assert settings.get(key) == want, f"{key}={settings.get(key)!r}, expected {want!r}"
    assert int(settings["LimitNOFILE"]) >= 65536
    # the drain (--shutdown-timeout, default 10 s) must end before systemd's SIGKILL
    assert int(settings["TimeoutStopSec"].rstrip("s")) > 10
    assert "ExecReload" not in settings, "the gateway has no reload: no ExecReload"
    sa = shutil.which("systemd-analyze")
    if not sa:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    p = subprocess.run([sa, "verify", "--man=no", str(unit_path)], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr.strip() == "", f"systemd-analyze verify:\n{p.stdout}{p.stderr}"
    p = subprocess.run([sa, "security", "--offline=yes", "--threshold=30", str(unit_path)],
                       capture_output=True, text=True)
    assert p.returncode == 0, f"systemd-analyze security (exposure above 3.0):\n{p.stdout[-2000:]}"


class Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("rel") == "stylesheet":
            self.urls.append(a["href"])


def test_installed_dashboard_answers_200(prefix, server_factory):
    web = prefix / "share/dronegate/web"
    s = server_factory(args=["--web-root", str(web)])
    r = s.get("/")
    assert r.status == 200 and b"vendor/leaflet/leaflet.js" in r.body
    parser = Assets()
    parser.feed(r.text)
    urls = parser.urls + ["vendor/world-atlas/countries-50m.json", "live-worker.js"]
    assert len(urls) >= 5
    for u in urls:
        assert s.get("/" + u).status == 200, f"{u} does not answer 200 from the installed web root"


def run_script(tmp_path, *args):
    """scripts/run.sh (what `make run` / `make demo` run after the build) on a free port."""
    port = dg.free_port()
    out = open(tmp_path / "run.out", "w+")
    p = subprocess.Popen([str(dg.REPO / "scripts/run.sh"), *args, "--", "--listen", f"127.0.0.1:{port}",
                          "--store", f"sqlite:{tmp_path}/dg.db"],
                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=dg.clean_env(DG_GATEWAY=dg.BIN, DG_SIM=dg.SIM), start_new_session=True)
    return p, port, out


def read_until(p, out, pattern, timeout):
    def seen():
        out.seek(0)
        text = out.read()
        assert p.poll() is None, f"run.sh exited ({p.returncode}):\n{text[-3000:]}"
        return re.search(pattern, text, re.M) and text
    return dg.wait_until(seen, timeout, f"{pattern!r} in the run.sh output")


def stop_script(p):
    p.send_signal(subprocess.signal.SIGTERM)
    try:
        return p.wait(timeout=dg.T(20))
    finally:
        if p.poll() is None:
            os.killpg(p.pid, subprocess.signal.SIGKILL)
            p.wait()


def test_make_run_ends_with_the_url_and_the_simulator_command(tmp_path):
    p, port, out = run_script(tmp_path)
    try:
        text = read_until(p, out, r"^simulated drones: ", dg.T(60))
        lines = text.rstrip("\n").splitlines()
        assert lines[-2] == f"dashboard: http://127.0.0.1:{port}/", lines[-3:]
        assert re.fullmatch(rf"simulated drones: \S*dronegate-sim --url ws://127\.0\.0\.1:{port} .*make demo.*",
                            lines[-1]), lines[-1]
        assert dg.http_get(port, "/").status == 200
        assert dg.http_get(port, "/vendor/leaflet/leaflet.js").status == 200
    finally:
        rc = stop_script(p)
    assert rc == 0, "the gateway did not drain cleanly on SIGTERM through run.sh"


def test_make_demo_flies_drones(tmp_path):
    p, port, out = run_script(tmp_path, "--demo", "5")
    try:
        read_until(p, out, r"^dashboard: ", dg.T(60))
        drones = dg.wait_until(lambda: len(json.loads(dg.http_get(port, "/api/v1/drones").body)["drones"]) == 5,
                               dg.T(20), "5 simulated drones")
        assert drones
        # the map moves at once: the demo drones fly (dronegate-sim --airborne)
        # from their first message instead of waiting on the ground to take off
        for d in json.loads(dg.http_get(port, "/api/v1/drones").body)["drones"]:
            def first_stored():
                body = dg.http_get(port, f"/api/v1/drones/{d['id']}/telemetry?limit=100000").body
                return min(json.loads(body)["telemetry"], key=lambda r: r["seq"], default=None)
            first = dg.wait_until(first_stored, dg.T(20), f"a stored message from {d['id']}")
            assert first["seq"] == 1 and first["status"] == "airborne" and first["speed"] > 0, \
                f"demo drone {d['id']} does not fly from its first message: {first}"
    finally:
        rc = stop_script(p)
    assert rc == 0
