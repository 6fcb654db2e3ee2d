"""test_readme.py - the README stays true (issue 14, item 5).

- every flag of `dronegate --help` has a row in the README's flag table, and
  every row is a real flag;
- every metric family of GET /metrics has a row in the metric table, and every
  row is a real metric;
- the five-minute tour's Python block (between the tour-python markers) runs
  against a gateway: its telemetry is stored and acked, exported as CSV, and
  a command sent while it flies is answered `done`.
"""
import json
import os
import re
import subprocess
import sys
import time

import dg

README = (dg.REPO / "README.md").read_text()


def section(title):
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def test_every_flag_is_in_the_readme_table():
    helptext = dg.run_cli([dg.BIN, "--help"]).stdout
    flags = set(re.findall(r"^  --([a-z][a-z0-9-]*)", helptext, re.M))
    assert len(flags) > 20, helptext
    rows = dict(re.findall(r"^\| `--([a-z][a-z0-9-]*)` \| `(DRONEGATE_[A-Z0-9_]+)` \|", section("Flags"), re.M))
    missing = sorted(flags - rows.keys())
    assert not missing, f"flags of --help missing from the README's Flags table: {missing}"
    stale = sorted(rows.keys() - flags)
    assert not stale, f"README Flags rows that --help does not know: {stale}"
    for flag, env in rows.items():
        assert env == "DRONEGATE_" + flag.upper().replace("-", "_"), f"--{flag}: env {env}"


def test_every_metric_is_in_the_readme_table(srv):
    text = srv.get("/metrics").text
    names = set(re.findall(r"^# TYPE (\S+) \S+$", text, re.M))
    assert "dronegate_build_info" in names and len(names) > 10
    rows = set(re.findall(r"^\| `(dronegate_[a-z0-9_]+)` \|", section("Metrics"), re.M))
    missing = sorted(names - rows)
    assert not missing, f"metrics of /metrics missing from the README's Metrics table: {missing}"
    stale = sorted(rows - names)
    assert not stale, f"README Metrics rows that /metrics does not serve: {stale}"


def tour_code():
    m = re.search(r"<!-- tour-python[^>]*-->\n```python\n(.*?)```\n<!-- /tour-python -->", README, re.S)
    assert m, "README: no tour-python block"
    return m.group(1)


def test_the_tour_works(server_factory, tmp_path):
    s = server_factory()
    script = tmp_path / "fly.py"
    script.write_text(tour_code())
    out = open(tmp_path / "fly.out", "w+")
    p = subprocess.Popen([sys.executable, str(script)], stdout=out, stderr=subprocess.STDOUT,
                         env=dg.clean_env(DG_URL=f"ws://127.0.0.1:{s.port}", DG_SECONDS="8"))
    try:
        dg.wait_until(lambda: s.get("/api/v1/drones/demo-1").status == 200, dg.T(10), "demo-1 online")
        r = s.get("/api/v1/drones/demo-1/commands", method="POST", body=b'{"name":"return_to_home"}',
                  headers={"Content-Type": "application/json"})
        assert r.status == 202, r
        cid = r.json()["id"]
        dg.wait_until(lambda: s.get_json(f"/api/v1/commands/{cid}")["status"] == "done", dg.T(10),
                      "the command done")
        assert p.wait(timeout=dg.T(30)) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out.seek(0)
    printed = out.read()
    assert "'type': 'ack', 'seq': 8" in printed, printed
    assert "'type': 'command'" in printed, printed
    csv = s.get("/api/v1/drones/demo-1/telemetry?format=csv")
    assert csv.status == 200
    lines = csv.text.strip().splitlines()
    assert len(lines) == 1 + 8, csv.text
