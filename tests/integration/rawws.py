"""rawws.py - a raw-socket WebSocket client (RFC 6455) for conformance tests.

Nothing is done for the caller: frames are built by hand (any opcode, RSV
bits, FIN, masked or not, any declared length, any length encoding), bytes
can be written in chunks of any size (down to one byte at a time), pings are
NOT answered automatically, and every frame the server sends is returned as
is (after checking the server did not mask it, RFC 6455 5.1).
"""
import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OP_NAMES = {0: "CONT", 1: "TEXT", 2: "BINARY", 8: "CLOSE", 9: "PING", 10: "PONG"}


class Closed(Exception):
    """The server closed the TCP connection (EOF or reset)."""


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "masked", "payload")

    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload

    @property
    def close_code(self):
        assert self.opcode == OP_CLOSE
        if len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 60 else self.payload[:60] + b"..."
        return f"<Frame {OP_NAMES.get(self.opcode, self.opcode)} fin={int(self.fin)} len={len(self.payload)} {p!r}>"


def mask_bytes(data, key):
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, key=None,
                length=None, len_form=None):
    """Bytes of one frame.

    length: declared payload length (default len(payload)); the payload bytes
            are appended as given, so a frame can be truncated or overlong.
    len_form: force the length encoding: 7, 16 or 64 (default minimal).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mb = 0x80 if mask else 0
    form = len_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        hdr = bytes([b0, mb | n])
    elif form == 16:
        hdr = bytes([b0, mb | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([b0, mb | 127]) + struct.pack("!Q", n)
    if mask:
        key = key or os.urandom(4)
        return hdr + key + mask_bytes(payload, key)
    return hdr + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class HttpResponse:
    def __init__(self, status, reason, headers, body, raw):
        self.status, self.reason, self.headers, self.body, self.raw = status, reason, headers, body, raw

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<HttpResponse {self.status} {self.reason} {self.headers}>"


class RawWS:
    """One TCP connection to the server, speaking WebSocket by hand."""

    def __init__(self, port, timeout=5.0):
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.key = None
        self.response = None
        self.sent_close = False
        self.session = None

    # ------------------------------------------------------------ writing

    def send(self, data, chunk=None, pause=0.0):
        """Write bytes, optionally chunk bytes per write with a pause between."""
        if not chunk:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), chunk):
            self.sock.sendall(data[i:i + chunk])
            if pause:
                time.sleep(pause)

    def send_frame(self, opcode, payload=b"", chunk=None, pause=0.0, **kw):
        if opcode == OP_CLOSE:
            self.sent_close = True
        self.send(build_frame(opcode, payload, **kw), chunk=chunk, pause=pause)

    def text(self, s, **kw):
        self.send_frame(OP_TEXT, s, **kw)

    def ping(self, payload=b"", **kw):
        self.send_frame(OP_PING, payload, **kw)

    def close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    # ------------------------------------------------------------ handshake

    def request_bytes(self, path, protocols=None, headers=None, key=None, version="13",
                      omit=(), method="GET"):
        self.key = key or base64.b64encode(os.urandom(16)).decode()
        h = [("Host", f"127.0.0.1:{self.port}"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
             ("Sec-WebSocket-Key", self.key), ("Sec-WebSocket-Version", version)]
        if protocols:
            h.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
        for k, v in (headers or {}).items():
            h = [(a, b) for (a, b) in h if a.lower() != k.lower()]
            if v is not None:
                h.append((k, v))
        h = [(a, b) for (a, b) in h if a.lower() not in {o.lower() for o in omit}]
        return (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{a}: {b}\r\n" for a, b in h) + "\r\n").encode()

    def handshake(self, path, protocols=None, headers=None, chunk=None, pause=0.0, session=True, **kw):
        """Send the upgrade request and read the HTTP response (status, headers
        and, for non-101 answers, the body). session: after a 101 on a drone
        channel (/ws/...), read the server's first message,
        {"type":"session","last_seq":N|null}, into self.session."""
        self.send(self.request_bytes(path, protocols, headers, **kw), chunk=chunk, pause=pause)
        self.response = self.read_http_response()
        self.session = None
        if session and self.response.status == 101 and path.startswith("/ws/"):
            f = self.recv_frame()
            m = json.loads(f.payload) if f.opcode == OP_TEXT else None
            assert m and m.get("type") == "session" and "last_seq" in m, \
                f"first frame is not the session message: {f!r}"
            self.session = m
        return self.response

    def read_http_response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill(what="HTTP response headers")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        assert parts[0].startswith("HTTP/1."), f"bad status line {lines[0]!r}"
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            headers[k] = (headers[k] + ", " + v.strip()) if k in headers else v.strip()
        body = b""
        if status != 101:
            n = int(headers.get("content-length", "0") or 0)
            while len(self.buf) < n:
                self._fill(what="HTTP response body")
            body, self.buf = self.buf[:n], self.buf[n:]
        return HttpResponse(status, parts[2] if len(parts) > 2 else "", headers, body, head)

    def expected_accept(self):
        return base64.b64encode(hashlib.sha1((self.key + GUID).encode()).digest()).decode()

    @classmethod
    def open(cls, port, path, protocols=("dronegate.json.v1",), timeout=5.0, session=True, **kw):
        """Connect and complete the handshake; fails unless 101 with a correct accept key.
        session: on a drone channel (/ws/...), read the server's first message,
        {"type":"session","last_seq":N|null}, into ws.session."""
        ws = cls(port, timeout=timeout)
        r = ws.handshake(path, list(protocols) if protocols else None, session=session, **kw)
        assert r.status == 101, f"handshake for {path}: HTTP {r.status} {r.reason} {r.body[:200]!r}"
        assert r.header("sec-websocket-accept") == ws.expected_accept(), \
            f"bad Sec-WebSocket-Accept {r.header('sec-websocket-accept')!r}, expected {ws.expected_accept()!r}"
        return ws

    # ------------------------------------------------------------ reading

    def _fill(self, timeout=None, what="data"):
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError(f"no {what} from the server within {self.sock.gettimeout():.1f}s "
                               f"(buffered {len(self.buf)} bytes)")
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(f"connection reset while waiting for {what}: {e}")
        if not d:
            raise Closed(f"server closed the TCP connection while waiting for {what}")
        self.buf += d

    def _need(self, n, deadline, what):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what} from the server in time")
            self._fill(left, what)

    def recv_frame(self, timeout=None):
        """The next frame from the server (TimeoutError / Closed otherwise)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        self._need(2, deadline, "frame")
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline, "frame")
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._need(10, deadline, "frame")
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        masked = bool(b1 & 0x80)
        assert not masked, "server sent a masked frame (RFC 6455 5.1 forbids it)"
        self._need(pos + n, deadline, "frame payload")
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload)
        assert f.rsv == 0, f"server frame with RSV bits set: {f!r}"
        if f.opcode >= 8:
            assert f.fin, f"server sent a fragmented control frame: {f!r}"
            assert len(payload) <= 125, f"server control frame longer than 125: {f!r}"
        return f

    def recv_until_close(self, timeout=None, echo=True):
        """Read frames until a close frame. Returns (close_frame, frames_before).
        echo: answer with a close frame of the same code (as a client must),
        unless a close was sent already."""
        timeout = timeout if timeout is not None else self.timeout
        deadline = time.monotonic() + timeout
        before = []
        while True:
            left = deadline - time.monotonic()
            try:
                f = self.recv_frame(max(left, 0.001))
            except Closed as e:
                raise AssertionError(f"connection dropped without a close frame ({e}); frames before: {before}")
            except TimeoutError:
                raise AssertionError(f"no close frame within {timeout:.1f}s; frames before: {before}")
            if f.opcode == OP_CLOSE:
                if echo and not self.sent_close:
                    try:
                        code = f.close_code
                        self.sock.sendall(build_frame(OP_CLOSE, close_payload(code) if code else b""))
                    except OSError:
                        pass
                return f, before
            before.append(f)

    def expect_close(self, code, timeout=None, allow_before=None):
        """The server closes with `code` (int or set of ints). Also checks the
        close reason is valid UTF-8 and that the TCP connection then ends.
        allow_before: opcodes tolerated before the close (default: any)."""
        f, before = self.recv_until_close(timeout)
        codes = {code} if isinstance(code, int) else set(code)
        got = f.close_code
        assert got in codes, f"expected close code {sorted(codes)}, got {got} (reason {f.close_reason!r}); frames before: {before}"
        try:
            f.close_reason.decode("utf-8")
        except UnicodeDecodeError:
            raise AssertionError(f"server close reason is not UTF-8: {f.close_reason!r}")
        if allow_before is not None:
            bad = [b for b in before if b.opcode not in allow_before]
            assert not bad, f"unexpected frames before the close: {bad}"
        self.expect_eof()
        return f, before

    def expect_eof(self, timeout=None):
        """The server ends the TCP connection (it should, after the close handshake)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return
            if not d:
                return
            self.buf += d
        raise AssertionError("server did not close the TCP connection after the close handshake")

    def shutdown(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
