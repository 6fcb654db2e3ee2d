"""The event loop knows no protocol (issue 8 §3): structural checks on the
source tree, no server needed.

- net/ includes nothing of http/ and, of core/, only the utilities below the
  loop (buffers, log, metrics, clocks, server/config, registry types);
- net/worker.c never branches on the kind of a connection (handler tables);
- no include cycle among the headers of net/, core/, http/;
- core/ does not call http/ (main.c, the composition root, excepted).
"""
import os
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
NET_MAY_USE_CORE = {"buf.h", "log.h", "metrics.h", "timefmt.h", "server.h", "registry.h"}


def _includes(path):
    out = []
    for m in re.finditer(r'#include "([^"]+)"', path.read_text()):
        out.append(os.path.normpath(os.path.join(str(path.parent.relative_to(SRC)), m.group(1))))
    return out


def test_net_includes_no_protocol():
    bad = []
    for p in sorted((SRC / "net").glob("*.[ch]")):
        for inc in _includes(p):
            top, _, name = inc.partition("/")
            if top == "http" or (top == "core" and name not in NET_MAY_USE_CORE):
                bad.append(f"{p.relative_to(SRC)} -> {inc}")
    assert not bad, "net/ depends on a protocol layer: " + ", ".join(bad)


def test_core_does_not_call_http():
    bad = []
    for p in sorted((SRC / "core").glob("*.[ch]")):
        if p.name == "main.c":   # the composition root wires every layer
            continue
        bad += [f"{p.relative_to(SRC)} -> {inc}" for inc in _includes(p) if inc.startswith("http/")]
    assert not bad, "core/ depends on http/: " + ", ".join(bad)


def test_worker_has_no_branch_on_connection_kind():
    text = (SRC / "net" / "worker.c").read_text()
    hits = [line.strip() for line in text.splitlines()
            if re.search(r"->kind\s*[=!]=|DG_CONN_(HTTP|DRONE|LIVE)", line)]
    assert not hits, "worker.c branches on the connection kind:\n" + "\n".join(hits)


def test_no_header_include_cycles():
    graph = {}
    for layer in ("net", "core", "http"):
        for p in (SRC / layer).glob("*.h"):
            graph[str(p.relative_to(SRC))] = [i for i in _includes(p) if i.endswith(".h")]
    state = {}

    def visit(n, path):
        state[n] = 1
        for t in graph.get(n, ()):
            if state.get(t) == 1:
                raise AssertionError("include cycle: " + " -> ".join(path + [t]))
            if t not in state:
                visit(t, path + [t])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [n])
