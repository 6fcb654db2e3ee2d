"""Inputs that once broke the gateway (found by fuzzing)."""
import socket

from dg import T


def test_upgrade_headers_the_http_parser_does_not_accept(srv):
    # "Connection: Upgrade<TAB>" is not an upgrade for http_parser; the gateway
    # upgraded anyway from inside the parser's callback and the parser's state
    # (in a union with the WebSocket state) was overwritten: abort().
    req = (b"GET /ws/d1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\t\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
           b"\xff\xff\xff\x12\x00\x00\x00\xff\xff\xff\xff 1}")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T(5)) as s:
        s.sendall(req)
        head = s.recv(200)
    assert head.startswith(b"HTTP/1.1 400"), head
    assert srv.get("/healthz").status == 200
    srv.check_alive()
