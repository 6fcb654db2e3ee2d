"""test_httpsec.py - the HTTP/auth surface as an attacker sees it (issue 8, 1.8).

Each test guards one defect found against bcdadab:
  * static files: symlinks inside --web-root must not lead out of it; "..",
    %2e%2e and NUL in paths are 404;
  * DNS rebinding: an Origin that matches an attacker-chosen Host header is not
    "same origin" unless the Host names the gateway (--allowed-hosts), and an
    open API (no operator auth) answers only requests whose Host names it;
  * operator tokens without --auth-secret protect the API;
  * operator tokens up to 1024 characters work, longer ones are 401 (never a
    truncated compare);
  * NUL and control characters in query values are 400;
  * security headers on the dashboard and nosniff on API responses;
  * token edge cases (appended characters, empty, over-long) are 401.
Everything talks to 127.0.0.1 on a free port; no test waits on a timer.
"""
import json
import os
import socket

import pytest

import dg
from dg import T, Drone, minimal, run


# ---------------------------------------------------------------- helpers

def raw(port, request: bytes):
    """Send one raw HTTP request, return (status, headers dict, body bytes).
    Reads until the end of the headers, then Content-Length bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=T(10)) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines and lines[0].startswith("HTTP/1.1 "), f"no HTTP response: {data[:200]!r}"
        status = int(lines[0].split()[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(body) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, headers, body


def upgrade_req(path, host, origin=None, token=None):
    h = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    if origin:
        h.append(f"Origin: {origin}")
    if token:
        h.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(h) + "\r\n\r\n").encode()


def post_req(path, host, body=b"{}", origin=None, token=None):
    h = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
         f"Content-Length: {len(body)}", "Connection: close"]
    if origin:
        h.append(f"Origin: {origin}")
    if token:
        h.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


def get_req(path, host="127.0.0.1", token=None, extra=()):
    h = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close", *extra]
    if token:
        h.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(h) + "\r\n\r\n").encode()


def bearer(tok):
    return {"Authorization": f"Bearer {tok}"}


# ---------------------------------------------------------------- 1. static files

@pytest.fixture
def webroot(tmp_path):
    """A web root with a file, a subdirectory, and symlinks that lead out of
    it (directory and file), plus a secret outside it."""
    root = tmp_path / "web"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>t</title>ok-index\n")
    (root / "sub" / "inner.js").write_text("console.log('inner');\n")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "secret.txt").write_text("TOP-SECRET\n")
    os.symlink(secret, root / "linkdir")                      # directory symlink out of the root
    os.symlink(secret / "secret.txt", root / "leak.txt")      # file symlink out of the root
    os.symlink(root / "sub", root / "innerlink")              # a symlink that stays inside
    return root


def test_static_symlinked_directory_does_not_leave_web_root(server_factory, webroot):
    s = server_factory(args=["--web-root", str(webroot)])
    assert s.get("/sub/inner.js").status == 200                 # plain files in subdirectories work
    r = s.get("/linkdir/secret.txt")
    assert r.status == 404, f"symlinked directory followed out of --web-root: {r.status} {r.body!r}"
    assert b"TOP-SECRET" not in r.body
    r = s.get("/leak.txt")
    assert r.status == 404 and b"TOP-SECRET" not in r.body, "symlinked file followed"
    # a symlink that stays inside is not followed either (documented: no symlinks below the root)
    assert s.get("/innerlink/inner.js").status == 404


def test_static_web_root_itself_may_be_a_symlink(server_factory, webroot, tmp_path):
    link = tmp_path / "webroot-link"
    os.symlink(webroot, link)
    s = server_factory(args=["--web-root", str(link)])
    r = s.get("/")
    assert r.status == 200 and b"ok-index" in r.body, r
    assert s.get("/sub/inner.js").status == 200


def test_static_fifo_does_not_block_a_worker(server_factory, webroot):
    """open() of a FIFO without O_NONBLOCK waits for a writer: one request
    held the worker (and every drone on it) forever."""
    os.mkfifo(webroot / "pipe.txt")
    s = server_factory(args=["--web-root", str(webroot)], workers=1)
    r = s.get("/pipe.txt", timeout=T(5))
    assert r.status == 404
    assert s.get("/healthz", timeout=T(5)).status == 200


@pytest.mark.parametrize("path", [
    "/../secret/secret.txt", "/sub/../../secret/secret.txt", "/%2e%2e/secret/secret.txt",
    "/%2E%2E/secret/secret.txt", "/sub/%2e%2e/%2e%2e/secret/secret.txt", "/..%2fsecret%2fsecret.txt",
    "/index.html%00.txt", "/sub%00/inner.js", "/.%2e/secret/secret.txt", "//etc/passwd",
])
def test_static_traversal_is_404(server_factory, webroot, path):
    s = server_factory(args=["--web-root", str(webroot)])
    st, _, body = raw(s.port, get_req(path))
    assert st in (400, 404), f"{path} -> {st} {body[:100]!r}"
    assert b"TOP-SECRET" not in body and b"root:" not in body


# ---------------------------------------------------------------- 2. DNS rebinding

def test_rebinding_host_with_matching_origin_is_refused(server_factory):
    """A page on evil.example whose name was rebound to 127.0.0.1 sends
    Host: evil.example:PORT and Origin: http://evil.example:PORT. Before, the
    Origin check compared the two and let it in (auth off: commands and the
    live stream for any web page the operator visits)."""
    s = server_factory()
    evil = f"evil.example:{s.port}"
    st, _, body = raw(s.port, post_req("/api/v1/drones/d1/commands", evil, b'{"name":"land"}',
                                       origin=f"http://{evil}"))
    assert st == 421, f"rebinding POST -> {st} {body!r}, expected 421"
    assert b"--allowed-hosts" in body
    st, _, body = raw(s.port, upgrade_req("/api/v1/live", evil, origin=f"http://{evil}"))
    assert st == 421, f"rebinding live upgrade -> {st} {body!r}, expected 421"
    # a foreign Origin with our Host stays 403
    st, _, _ = raw(s.port, upgrade_req("/api/v1/live", f"127.0.0.1:{s.port}", origin=f"http://{evil}"))
    assert st == 403


@pytest.mark.parametrize("host", ["127.0.0.1:{p}", "localhost:{p}", "LocalHost:{p}", "[::1]:{p}",
                                  "10.1.2.3:{p}", "dronebox:{p}"])
def test_same_origin_with_a_host_that_names_the_gateway(server_factory, host):
    s = server_factory()
    h = host.format(p=s.port)
    st, hd, body = raw(s.port, upgrade_req("/api/v1/live", h, origin=f"http://{h}"))
    assert st == 101, f"Host {h} -> {st} {body!r}"
    st, _, body = raw(s.port, post_req("/api/v1/drones/nobody/commands", h, b'{"name":"land"}',
                                       origin=f"http://{h}"))
    assert st == 404, f"Host {h}: POST -> {st} {body!r} (unknown drone: 404 after the checks)"


def test_allowed_hosts_and_allowed_origins(server_factory):
    s = server_factory(args=["--allowed-hosts", "gw.example.com, ops.example.net,pinned.example:8443",
                             "--allowed-origins", "https://dash.example.org"])
    for h in (f"gw.example.com:{s.port}", "OPS.example.net"):
        st, _, body = raw(s.port, upgrade_req("/api/v1/live", h, origin=f"http://{h}"))
        assert st == 101, f"--allowed-hosts {h}: {st} {body!r}"
    st, _, _ = raw(s.port, upgrade_req("/api/v1/live", "pinned.example:8443", origin="https://pinned.example:8443"))
    assert st == 101                                  # an entry with a port matches that port only
    st, _, _ = raw(s.port, upgrade_req("/api/v1/live", "pinned.example:9", origin="https://pinned.example:9"))
    assert st == 421
    # an allowed origin needs no allowed host (a dashboard served elsewhere)
    st, _, body = raw(s.port, upgrade_req("/api/v1/live", f"api.example.org:{s.port}",
                                          origin="https://dash.example.org"))
    assert st == 101, (st, body)
    # not listed
    h = f"evil.example:{s.port}"
    st, _, _ = raw(s.port, upgrade_req("/api/v1/live", h, origin=f"http://{h}"))
    assert st == 421
    # a name that only starts like an allowed one
    h = f"gw.example.com.evil.example:{s.port}"
    st, _, _ = raw(s.port, upgrade_req("/api/v1/live", h, origin=f"http://{h}"))
    assert st == 421


def test_open_api_read_through_a_rebound_name_is_refused(server_factory):
    """With operator auth off, a rebound page reads the API with a same-origin
    fetch (no Origin header; no Sec-Fetch-* either over plain http): the Host
    is the only sign. Every /api/ request must then name the gateway."""
    s = server_factory()
    evil = f"evil.example:{s.port}"
    st, _, body = raw(s.port, get_req("/api/v1/drones", host=evil))
    assert st == 421, f"open API read through a rebound name -> {st} {body[:200]!r}"
    st, _, _ = raw(s.port, get_req("/api/v1/drones/d1/telemetry", host=evil))
    assert st == 421
    st, _, _ = raw(s.port, upgrade_req("/api/v1/live", evil))        # no Origin either
    assert st == 421
    for ok in (f"127.0.0.1:{s.port}", f"localhost:{s.port}", "dronebox", "x", f"[::1]:{s.port}"):
        st, _, _ = raw(s.port, get_req("/api/v1/drones", host=ok))
        assert st == 200, f"Host {ok} -> {st}"
    # the dashboard files and health endpoints are not affected
    assert raw(s.port, get_req("/healthz", host=evil))[0] == 200
    assert raw(s.port, get_req("/", host=evil))[0] == 200


def test_protected_api_does_not_depend_on_host(server_factory):
    """With operator auth on, the token decides (a rebound page has none):
    scripts through a proxy under any name keep working."""
    s = server_factory(secret="k", operator_token="tok")
    st, _, _ = raw(s.port, get_req("/api/v1/drones", host="gw.example.com", token="tok"))
    assert st == 200
    st, _, _ = raw(s.port, get_req("/api/v1/drones", host="gw.example.com"))
    assert st == 401


# ---------------------------------------------------------------- 3. operator token without --auth-secret

@pytest.mark.parametrize("flag", ["--operator-token", "--operator-read-token"])
def test_operator_token_alone_protects_the_api(server_factory, flag):
    s = server_factory(args=[flag, "op-only-token"])
    r = s.get("/api/v1/drones", operator=False)
    assert r.status == 401, f"{flag} without --auth-secret: API open ({r.status})"
    assert s.get("/api/v1/drones", headers=bearer("op-only-token")).status == 200
    assert s.get("/api/v1/drones?token=op-only-token", operator=False).status == 200
    st, _, _ = raw(s.port, upgrade_req("/api/v1/live", f"127.0.0.1:{s.port}"))
    assert st == 401
    st, _, _ = raw(s.port, upgrade_req("/api/v1/live", f"127.0.0.1:{s.port}", token="op-only-token"))
    assert st == 101
    st, _, _ = raw(s.port, post_req("/api/v1/drones/x/commands", f"127.0.0.1:{s.port}", b'{"name":"land"}'))
    assert st == 401
    # drones are still unauthenticated (no --auth-secret), and the log says what is protected
    async def go():
        d = await Drone.connect(s, "free-drone")
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(go())
    assert "not checked" not in s.stderr()


# ---------------------------------------------------------------- 4. long operator tokens

def test_operator_token_of_1024_characters(server_factory):
    tok = ("T0k-" * 256)[:1024]
    s = server_factory(secret="k", operator_token=tok)
    assert s.get("/api/v1/drones", headers=bearer(tok)).status == 200
    assert s.get(f"/api/v1/drones?token={tok}", operator=False).status == 200
    st, _, _ = raw(s.port, upgrade_req("/api/v1/live", f"127.0.0.1:{s.port}", token=tok))
    assert st == 101
    # longer than the limit, or the token with anything appended: 401
    for bad in (tok + "x", tok + tok, tok[:-1], tok[:248], tok[:255]):
        assert s.get("/api/v1/drones", headers=bearer(bad)).status == 401, len(bad)
        assert s.get(f"/api/v1/drones?token={bad}", operator=False).status == 401, len(bad)


def test_operator_token_of_300_characters(server_factory):
    tok = "a" * 300
    s = server_factory(secret="k", operator_token=tok)
    assert s.get("/api/v1/drones", headers=bearer(tok)).status == 200
    # the first 248 characters, what fitted in the old header copy, are not enough
    assert s.get("/api/v1/drones", headers=bearer(tok[:248])).status == 401


def test_operator_token_longer_than_1024_is_refused_at_start(server_factory):
    s = server_factory(start=False, secret="k", operator_token="x" * 1025)
    p = s.spawn()
    rc = s.wait_exit()
    assert rc != 0
    err = s.stderr()
    assert "operator-token" in err and "1024" in err, err


# ---------------------------------------------------------------- 5. NUL / control characters in query values

@pytest.mark.parametrize("q", ["from=0%00junk", "to=9999999999999%00", "limit=5%00", "limit=5%0a",
                               "format=csv%00", "from=1%1f", "from=1%7f"])
def test_control_characters_in_query_values_are_400(server_factory, q):
    s = server_factory()
    r = s.get(f"/api/v1/drones/d1/telemetry?{q}")
    assert r.status == 400, f"?{q} -> {r.status} {r.body[:200]!r}"


def test_nul_in_live_filter_and_token_is_refused(server_factory):
    s = server_factory()
    st, _, _ = raw(s.port, upgrade_req("/api/v1/live?drones=a%00b", f"127.0.0.1:{s.port}"))
    assert st == 400
    s2 = server_factory(secret="k", operator_token="tok")
    assert s2.get("/api/v1/drones?token=tok%00", operator=False).status == 401
    assert s2.get("/api/v1/drones?token=tok", operator=False).status == 200


# ---------------------------------------------------------------- 6. security headers

CSP_NEEDS = ["default-src 'self'", "img-src 'self' data:", "worker-src 'self'", "connect-src 'self'",
             "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"]


def check_page_headers(h, what):
    assert h.get("x-content-type-options") == "nosniff", (what, h)
    assert h.get("referrer-policy") == "no-referrer", (what, h)
    assert h.get("x-frame-options") == "DENY", (what, h)
    csp = h.get("content-security-policy", "")
    for need in CSP_NEEDS:
        assert need in csp, f"{what}: CSP {csp!r} lacks {need!r}"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp


def test_dashboard_security_headers(server_factory, webroot):
    s = server_factory(args=["--web-root", str(webroot)])
    r = s.get("/")
    assert r.status == 200
    check_page_headers(r.headers, "GET / (web root)")
    r = s.get("/sub/inner.js")
    check_page_headers(r.headers, "GET /sub/inner.js")
    s2 = server_factory(args=["--web-root", str(webroot / "missing")])
    r = s2.get("/")                      # the built-in page when there is no web root
    assert r.status == 200
    check_page_headers(r.headers, "GET / (built-in)")


def test_api_responses_are_nosniff(server_factory):
    s = server_factory()
    for path, status in (("/api/v1/drones", 200), ("/api/v1/drones/nobody", 404),
                         ("/api/v1/drones/bad%20id", 400), ("/nothing-here", 404), ("/metrics", 200)):
        r = s.get(path)
        assert r.status == status, (path, r)
        assert r.headers.get("x-content-type-options") == "nosniff", (path, r.headers)


# ---------------------------------------------------------------- 7. token edge cases

@pytest.mark.parametrize("read_token", [None, "reader-tok"])
def test_operator_token_edges_are_401(server_factory, read_token):
    args = ["--operator-read-token", read_token] if read_token else []
    s = server_factory(secret="k", operator_token="full-tok", args=args)
    cases = [
        ({"Authorization": "Bearer full-tokX"}, ""),
        ({"Authorization": "Bearer full-to"}, ""),
        ({"Authorization": "Bearer "}, ""),
        ({"Authorization": "Bearer"}, ""),
        ({"Authorization": "Basic full-tok"}, ""),
        ({}, "?token="),
        ({}, "?token"),
        ({}, "?token=full-tok%20"),
        ({}, "?token=full-tokfull-tok"),
        ({"Authorization": "Bearer " + "f" * 5000}, ""),
        ({}, "?token=" + "f" * 5000),
    ]
    if read_token:
        cases += [({"Authorization": f"Bearer {read_token}x"}, ""), ({}, f"?token={read_token[:-1]}")]
    for hdr, q in cases:
        r = s.get("/api/v1/drones" + q, headers=hdr, operator=False)
        assert r.status == 401, f"{hdr} {q[:40]} -> {r.status}"
    assert s.get("/api/v1/drones", headers=bearer("full-tok")).status == 200


def test_drone_token_edges_are_401(server_factory):
    s = server_factory(secret="k")
    good = s.token("edge1")
    host = f"127.0.0.1:{s.port}"
    for tok in (good + "x", good[:-1], "", good + good, good.upper(), "x" * 3000):
        st, _, _ = raw(s.port, upgrade_req("/ws/edge1", host, token=tok or None))
        assert st == 401, f"drone token of {len(tok)} chars -> {st}"
        st, _, _ = raw(s.port, upgrade_req(f"/ws/edge1?token={tok}", host))
        assert st == 401, f"drone ?token= of {len(tok)} chars -> {st}"
    # an over-long Authorization header does not fall back to a good ?token=
    st, _, _ = raw(s.port, upgrade_req(f"/ws/edge1?token={good}", host, token="y" * 3000))
    assert st == 401
    st, _, _ = raw(s.port, upgrade_req("/ws/edge1", host, token=good))
    assert st == 101
