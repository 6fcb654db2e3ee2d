"""WebSocket opening handshake: subprotocol selection, drone id validation,
authentication, the `dronegate token` command."""
import re

import pytest
import websockets

from conftest import shared_fixture
from dg import BIN, PROTO, T, Drone, dumps, minimal, new_id, run, run_cli, token_for, wait_until
from rawws import RawWS

SECRET = "s3cr3t-for-tests"
_auth_mod, _auth = shared_fixture("auth_srv", secret=SECRET)

ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def handshake(s, path, protocols=(PROTO,), **kw):
    with RawWS(s.port, timeout=T(5)) as ws:
        return ws.handshake(path, list(protocols) if protocols else None, **kw), ws.key


def accept_for(key):
    import base64
    import hashlib
    return base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()


# ---------------------------------------------------------------- upgrade + subprotocol

def test_upgrade_response_headers(srv):
    r, key = handshake(srv, f"/ws/{new_id()}")
    assert r.status == 101, r
    assert r.header("upgrade").lower() == "websocket", r
    assert "upgrade" in r.header("connection").lower(), r
    assert r.header("sec-websocket-accept") == accept_for(key), r
    assert r.header("sec-websocket-protocol") == PROTO, r
    assert r.header("sec-websocket-extensions") is None, "no extension was negotiated"


def test_json_protocol_picked_among_others(srv):
    r, _ = handshake(srv, f"/ws/{new_id()}", protocols=["chat", PROTO, "superchat"])
    assert r.status == 101, r
    assert r.header("sec-websocket-protocol") == PROTO, r


def test_no_protocol_offered_defaults_to_json_without_header(srv):
    drone = new_id()
    with RawWS(srv.port, timeout=T(5)) as ws:
        r = ws.handshake(f"/ws/{drone}", None)
        assert r.status == 101, r
        assert r.header("sec-websocket-protocol") is None, f"protocol header sent though none offered: {r}"
        ws.text(dumps(minimal(1)))
        f = ws.recv_frame(T(10))
        assert b'"ack"' in f.payload, f"JSON protocol not active by default: {f!r}"


@pytest.mark.parametrize("protos", [["chat"], ["chat", "v2.json"], ["dronegate.json.v2"]])
def test_only_unknown_protocols_400(srv, protos):
    r, _ = handshake(srv, f"/ws/{new_id()}", protocols=protos)
    assert r.status == 400, r


def test_websockets_client_negotiates_json_protocol(srv):
    async def go():
        d = await Drone.connect(srv, new_id())
        assert d.ws.subprotocol == PROTO
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
        d2 = await Drone.connect(srv, new_id(), subprotocols=None)
        assert d2.ws.subprotocol is None
        await d2.send(minimal(1))
        await d2.wait_ack(1)
        await d2.close()
    run(go())


def test_websockets_client_with_compression_offer(srv):
    # python-websockets offers permessage-deflate by default: the server must not accept it blindly
    async def go():
        d = await Drone.connect(srv, new_id(), compression="deflate")
        assert d.ws.extensions == [], f"server negotiated extensions {d.ws.extensions}"
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(go())


def test_header_names_and_values_case_insensitive(srv):
    with RawWS(srv.port, timeout=T(5)) as ws:
        req = ws.request_bytes(f"/ws/{new_id()}", [PROTO],
                               headers={"Connection": "keep-alive, Upgrade", "Upgrade": "WebSocket"})
        req = req.replace(b"Sec-WebSocket-Key", b"sec-websocket-key").replace(b"Sec-WebSocket-Version", b"SEC-WEBSOCKET-VERSION")
        ws.send(req)
        r = ws.read_http_response()
        assert r.status == 101, r
        assert r.header("sec-websocket-accept") == ws.expected_accept()


def test_missing_key_400(srv):
    r, _ = handshake(srv, f"/ws/{new_id()}", omit=("Sec-WebSocket-Key",))
    assert r.status == 400, r


def test_unsupported_version_announces_13(srv):
    r, _ = handshake(srv, f"/ws/{new_id()}", version="8")
    assert r.status in (400, 426), r
    assert r.header("sec-websocket-version") is not None and "13" in r.header("sec-websocket-version"), \
        f"RFC 6455 4.4: the answer must say which version is supported: {r}"


def test_plain_get_on_ws_path_426(srv):
    r = srv.get(f"/ws/{new_id()}")
    assert r.status == 426, r


def test_post_with_upgrade_headers_refused(srv):
    r, _ = handshake(srv, f"/ws/{new_id()}", method="POST")
    assert r.status in (400, 404, 405), r


def test_unknown_path_404(srv):
    assert srv.get("/nope").status == 404
    r, _ = handshake(srv, "/websocket/d1")
    assert r.status == 404, r


def test_query_string_is_not_part_of_drone_id(srv):
    drone = new_id("q")

    async def go():
        ws = await websockets.connect(f"{srv.ws_base}/ws/{drone}?foo=bar&x=1", subprotocols=[PROTO],
                                      ping_interval=None, open_timeout=T(10))
        d = Drone(ws, drone)
        await d.send(minimal(3))
        await d.wait_ack(3)
        await d.close()
    run(go())
    assert srv.seqs(drone) == [3]


# ---------------------------------------------------------------- drone ids

BAD_IDS = ["a" * 65, "bad$id", "bad%20id", "dr!one", "a:b", "a@b", "a+b", "%C3%A9t%C3%A9",
           "a%2Fb", "x%00y", "a,b", "a;b", "a~b"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_invalid_drone_id_400_before_upgrade(srv, bad):
    r, _ = handshake(srv, f"/ws/{bad}")
    assert r.status == 400, f"/ws/{bad}: {r}"


@pytest.mark.parametrize("path", ["/ws/", "/ws/a/b"])
def test_empty_or_nested_id_refused(srv, path):
    r, _ = handshake(srv, path)
    assert r.status in (400, 404), f"{path}: {r}"


def test_invalid_ids_never_written(srv):
    for bad in BAD_IDS:
        handshake(srv, f"/ws/{bad}")
    ids = [d["id"] for d in srv.drones()]
    wrong = [i for i in ids if not ID_RE.match(i)]
    assert not wrong, f"invalid drone ids in the registry: {wrong}"
    assert "a" * 65 not in ids
    assert srv.get(f"/api/v1/drones/{'a' * 65}").status == 400
    assert srv.get("/api/v1/drones/bad$id").status == 400


@pytest.mark.parametrize("good", ["a" * 64, "x", "A.b_c-9", "-._", "drone.007"])
def test_valid_edge_ids_accepted(srv, good):
    async def go():
        d = await Drone.connect(srv, good)
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(go())
    assert srv.get_json(f"/api/v1/drones/{good}")["id"] == good


# ---------------------------------------------------------------- auth

def test_auth_off_is_announced(srv):
    assert "auth is OFF" in srv.stderr(), f"no 'auth is OFF' warning at start:\n{srv.tail()}"


def test_auth_on_is_not_announced_off(auth_srv):
    assert "auth is OFF" not in auth_srv.stderr()


def test_auth_missing_token_401(auth_srv):
    r, _ = handshake(auth_srv, f"/ws/{new_id()}")
    assert r.status == 401, r


@pytest.mark.parametrize("how", ["wrong", "other_drone", "truncated", "empty", "not_bearer"])
def test_auth_bad_token_401(auth_srv, how):
    drone = new_id()
    good = token_for(SECRET, drone)
    hdr = {
        "wrong": f"Bearer {token_for('other-secret', drone)}",
        "other_drone": f"Bearer {token_for(SECRET, drone + 'x')}",
        "truncated": f"Bearer {good[:-1]}",
        "empty": "Bearer ",
        "not_bearer": f"Basic {good}",
    }[how]
    r, _ = handshake(auth_srv, f"/ws/{drone}", headers={"Authorization": hdr})
    assert r.status == 401, f"{how}: {r}"


def test_auth_bad_query_token_401(auth_srv):
    drone = new_id()
    r, _ = handshake(auth_srv, f"/ws/{drone}?token={token_for(SECRET, 'someone-else')}")
    assert r.status == 401, r
    r, _ = handshake(auth_srv, f"/ws/{drone}?token=")
    assert r.status == 401, r


def test_auth_refusal_with_websockets_client(auth_srv):
    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as ei:
            await Drone.connect(auth_srv, new_id(), token="00" * 32)
        assert ei.value.status_code == 401
    run(go())


def test_auth_header_token_ok(auth_srv):
    drone = new_id("auth")

    async def go():
        d = await Drone.connect(auth_srv, drone, token=token_for(SECRET, drone))
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(go())
    assert auth_srv.seqs(drone) == [1]


def test_auth_query_token_ok(auth_srv):
    drone = new_id("authq")

    async def go():
        d = await Drone.connect(auth_srv, drone, query_token=token_for(SECRET, drone))
        await d.send(minimal(2))
        await d.wait_ack(2)
        await d.close()
    run(go())
    assert auth_srv.seqs(drone) == [2]


def test_auth_raw_handshake_ok(auth_srv):
    drone = new_id()
    r, _ = handshake(auth_srv, f"/ws/{drone}", headers={"Authorization": f"Bearer {token_for(SECRET, drone)}"})
    assert r.status == 101, r


# ---------------------------------------------------------------- token command

@pytest.mark.parametrize("secret,drone", [("s", "d1"), (SECRET, "a" * 64), ("ü-secret with spaces", "X.y_z-1")])
def test_token_command_matches_hmac(secret, drone):
    p = run_cli([BIN, "token", drone, "--auth-secret", secret])
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr}"
    assert p.stdout.strip() == token_for(secret, drone), f"stdout {p.stdout!r}"
    assert re.fullmatch(r"[0-9a-f]{64}\n?", p.stdout), f"not lowercase hex + newline: {p.stdout!r}"


def test_token_command_secret_from_env():
    p = run_cli([BIN, "token", "d42"], DRONEGATE_AUTH_SECRET="env-secret")
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr}"
    assert p.stdout.strip() == token_for("env-secret", "d42")


def test_token_from_command_opens_connection(auth_srv):
    drone = new_id("cli")
    p = run_cli([BIN, "token", drone, "--auth-secret", SECRET])
    assert p.returncode == 0, p.stderr
    tok = p.stdout.strip()

    async def go():
        d = await Drone.connect(auth_srv, drone, token=tok)
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(go())
    wait_until(lambda: auth_srv.seqs(drone) == [1], T(5), "seq stored")


# ---------------------------------------------------------------- operator API with auth on

def test_rest_needs_operator_token_when_auth_on(auth_srv):
    assert auth_srv.get("/api/v1/drones", operator=False).status == 401
    assert auth_srv.get("/api/v1/drones", headers={"Authorization": "Bearer wrong"}).status == 401
    drone_tok = token_for(SECRET, "d1")
    assert auth_srv.get("/api/v1/drones/d1", headers={"Authorization": f"Bearer {drone_tok}"}).status == 401, \
        "a drone token must not open the operator API"
    assert auth_srv.get("/api/v1/drones").status == 200
    assert auth_srv.get(f"/api/v1/drones?token={auth_srv.operator_token}", operator=False).status == 200
    # liveness, readiness and metrics stay open for probes and scrapers
    for path in ("/healthz", "/readyz", "/metrics"):
        assert auth_srv.get(path).status == 200, path
