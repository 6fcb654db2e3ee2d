"""The event loop knows no protocol (issue 8 §3): structural checks on the
source tree, no server needed.

- net/ includes nothing of a protocol layer (http/, ws/, codec/, grpc/,
  mavlink/, ...) and, of core/, only the utilities below the loop (buffers,
  log, metrics, clocks, server/config);
- conn.h and worker.h do not pull a protocol in through other headers either
  (no http_parser.h, ws/ws.h, codec/json_telemetry.h, ... anywhere in what
  they include): a protocol's per-connection state lives in the connection's
  opaque pstate, its per-worker state behind dg_worker_ext_t;
- net/ holds no protocol state (no http/drone/live union members, no
  connection kinds, no ack list, decoder or live watchers);
- net/worker.c never branches on the kind of a connection (handler tables);
- no include cycle among the headers of net/, core/, http/;
- core/ does not call http/ (main.c, the composition root, excepted);
- store/ knows records, not connections: nothing of net/, pipeline/ or a
  protocol is reachable from it, and it never reads a record's origin.
"""
import os
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
NET_MAY_USE_CORE = {"buf.h", "log.h", "metrics.h", "timefmt.h", "server.h"}
# folders of protocols and codecs: net/ must not reach them, not even
# through another header
PROTOCOL_DIRS = {"http", "ws", "codec", "grpc", "mavlink", "fleet", "queue"}
# the protocols that live in core/ (the drone channel, the live stream, ...)
CORE_PROTOCOL_HEADERS = {"ingest.h", "live.h", "reads.h", "commands.h", "auth.h"}
# libraries that parse a protocol
PROTOCOL_SYSTEM_HEADERS = re.compile(r"#include\s*<(http_parser\.h|nghttp2/|protobuf-c/|jsmn|amqp|librdkafka/)")


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
            if top in PROTOCOL_DIRS or (top == "core" and name not in NET_MAY_USE_CORE):
                bad.append(f"{p.relative_to(SRC)} -> {inc}")
    assert not bad, "net/ depends on a protocol layer: " + ", ".join(bad)


def _closure(start):
    """Every header of src/ that `start` includes, directly or not."""
    seen, todo = set(), [start]
    while todo:
        n = todo.pop()
        if n in seen or not (SRC / n).is_file():
            continue
        seen.add(n)
        todo += _includes(SRC / n)
    return seen


def test_net_headers_pull_in_no_protocol():
    bad = []
    for h in sorted((SRC / "net").glob("*.h")):
        for n in sorted(_closure(str(h.relative_to(SRC)))):
            top, _, name = n.partition("/")
            if top in PROTOCOL_DIRS or (top == "core" and name in CORE_PROTOCOL_HEADERS):
                bad.append(f"{h.relative_to(SRC)} -> ... -> {n}")
            m = PROTOCOL_SYSTEM_HEADERS.search((SRC / n).read_text())
            if m:
                bad.append(f"{h.relative_to(SRC)} -> ... -> {n} -> <{m.group(1)}>")
    assert not bad, "a net/ header pulls in a protocol:\n" + "\n".join(bad)


def _code_hits(folder, pat):
    """Lines of code (not comments) in src/FOLDER/*.[ch] that match pat."""
    hits = []
    for p in sorted((SRC / folder).glob("*.[ch]")):
        # comments may name the layers above; code may not (line numbers kept)
        code = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), p.read_text(), flags=re.S)
        for i, line in enumerate(code.splitlines(), 1):
            if pat.search(line.split("//")[0]):
                hits.append(f"{p.relative_to(SRC)}:{i}: {line.strip()}")
    return hits


def test_net_holds_no_protocol_state():
    pat = re.compile(r"\bu\.(http|drone|live)\b|DG_CONN_(HTTP|DRONE|LIVE)|\bdg_conn_kind\b|->kind\b|"
                     r"\b(ack_list|ack_timer|ack_dirty|ack_next|live_open|watchers|nwatchers|dg_json_decoder\w*)\b")
    hits = _code_hits("net", pat)
    assert not hits, "protocol state in net/:\n" + "\n".join(hits)


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


# what the store layer may use: records, commands (a stored type), buffers,
# hashes, strings, clocks, logs, metrics, and JSON writing/reading helpers
STORE_MAY_USE = {"core/record.h", "core/commands.h", "core/buf.h", "core/hash.h", "core/strutil.h",
                 "core/log.h", "core/metrics.h", "core/timefmt.h", "codec/jsmn_util.h", "codec/jsonw.h"}


def test_store_knows_no_connections_and_no_pipeline():
    """The store layer defines no worker messages and knows no connections
    (issue 8 §3): nothing of net/, pipeline/, a protocol or the server is
    reachable from store/ (directly or through another header), and its code
    names no connection, worker, inbox message or ack; a record's origin is
    carried, never read."""
    bad = []
    for p in sorted((SRC / "store").glob("*.[ch]")):
        for n in sorted(_closure(str(p.relative_to(SRC)))):
            if n.startswith("store/"):
                continue
            if n not in STORE_MAY_USE:
                bad.append(f"{p.relative_to(SRC)} -> ... -> {n}")
    assert not bad, "store/ reaches beyond records and utilities:\n" + "\n".join(bad)
    pat = re.compile(r"\b(dg_conn_t|dg_worker_t|dg_msg_t|DG_MSG_\w+|dg_server_t|dg_batch_t|"
                     r"dg_origin_\w+|dg_ingest_\w+|dg_writer_\w+)\b|->origin\b|\.origin\b")
    hits = _code_hits("store", pat)
    assert not hits, "store/ code knows connections or the pipeline:\n" + "\n".join(hits)
