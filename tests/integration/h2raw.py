"""A hand-written HTTP/2 client for the gRPC tests that need to see or break
what grpc-core hides: flow-control windows, PINGs it answers by itself,
SETTINGS, a second stream on one connection. Requests use HPACK literals
(no Huffman); response header blocks are not decoded (their END_STREAM
flag is what the tests use; the status is read from the gateway's debug log).
Frames are parsed from a blocking socket with a timeout."""
import socket

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(ftype, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") + payload


def literal(name, value):
    """HPACK literal header field without indexing, new name, no Huffman."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def grpc_msg(raw):
    return b"\x00" + len(raw).to_bytes(4, "big") + raw


class H2:
    def __init__(self, target, timeout, settings=b"", answer_pings=True):
        host, port = target.split(":")
        self.sk = socket.create_connection((host, int(port)), timeout=timeout)
        self.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ping_acks = []
        self.sk.settimeout(timeout)
        self.buf = b""
        self.conn_win = 65535          # what we may still send
        self.stream_win = {}
        self.init_win = 65535          # the server's SETTINGS_INITIAL_WINDOW_SIZE
        self.server_settings = {}
        self.answer_pings = answer_pings
        self.pings = 0
        self.data = {}                 # stream -> DATA bytes received
        self.ended = set()             # streams the server ended (END_STREAM)
        self.reset = {}                # stream -> RST_STREAM error code
        self.headers = set()           # streams with response HEADERS
        self.goaway = None
        self.sk.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))

    def open(self, stream, target, drone, extra=()):
        hdrs = b"".join(literal(k, v) for k, v in (
            (":method", "POST"), (":scheme", "http"), (":path", "/dronegate.v1.Telemetry/Stream"),
            (":authority", target), ("content-type", "application/grpc"), ("te", "trailers"),
            ("drone-id", drone), *extra))
        self.stream_win[stream] = self.init_win
        self.sk.sendall(frame(HEADERS, END_HEADERS, stream, hdrs))

    def can_send(self, stream):
        return min(self.conn_win, self.stream_win[stream], 16384)

    def send_data(self, stream, payload, end=False):
        assert len(payload) <= self.can_send(stream) or not payload
        self.conn_win -= len(payload)
        self.stream_win[stream] -= len(payload)
        self.sk.sendall(frame(DATA, END_STREAM if end else 0, stream, payload))

    def read_frame(self):
        """One frame (type, flags, stream, payload), handled; None on EOF.
        socket.timeout when nothing comes within the socket's timeout."""
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            chunk = self.sk.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        n = int.from_bytes(self.buf[:3], "big")
        ftype, flags = self.buf[3], self.buf[4]
        stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
        if ftype == SETTINGS and not flags & ACK:
            for i in range(0, len(payload), 6):
                k, v = int.from_bytes(payload[i:i + 2], "big"), int.from_bytes(payload[i + 2:i + 6], "big")
                self.server_settings[k] = v
                if k == 4:
                    for s in self.stream_win:
                        self.stream_win[s] += v - self.init_win
                    self.init_win = v
            self.sk.sendall(frame(SETTINGS, ACK, 0))
        elif ftype == WINDOW_UPDATE:
            inc = int.from_bytes(payload, "big") & 0x7FFFFFFF
            if stream == 0:
                self.conn_win += inc
            elif stream in self.stream_win:
                self.stream_win[stream] += inc
        elif ftype == PING and flags & ACK:
            self.ping_acks.append(payload)
        elif ftype == PING and not flags & ACK:
            self.pings += 1
            if self.answer_pings:
                self.sk.sendall(frame(PING, ACK, 0, payload))
        elif ftype == DATA:
            self.data[stream] = self.data.get(stream, b"") + payload
            if payload:   # give the window back at once: acks must never be held by us
                self.sk.sendall(frame(WINDOW_UPDATE, 0, 0, len(payload).to_bytes(4, "big")) +
                                frame(WINDOW_UPDATE, 0, stream, len(payload).to_bytes(4, "big")))
        elif ftype == HEADERS:
            self.headers.add(stream)
        elif ftype == RST_STREAM:
            self.reset[stream] = int.from_bytes(payload, "big")
        elif ftype == GOAWAY:
            self.goaway = int.from_bytes(payload[4:8], "big")
        if ftype in (DATA, HEADERS) and flags & END_STREAM:
            self.ended.add(stream)
        return ftype, flags, stream, payload

    def until(self, pred, what):
        while not pred():
            if self.read_frame() is None:
                raise AssertionError(f"connection closed while waiting for {what}")

    def messages(self, stream, pb):
        """The ServerMessages received on a stream so far."""
        out, b = [], self.data.get(stream, b"")
        while len(b) >= 5 and len(b) >= 5 + int.from_bytes(b[1:5], "big"):
            n = int.from_bytes(b[1:5], "big")
            out.append(pb.ServerMessage.FromString(b[5:5 + n]))
            b = b[5 + n:]
        return out

    def send_all(self, stream, body):
        """Send body as DATA frames as the windows allow, reading frames
        (WINDOW_UPDATE) whenever they are exhausted."""
        off = 0
        while off < len(body):
            k = self.can_send(stream)
            if k > 0:
                self.send_data(stream, body[off:off + k])
                off += k
            elif self.read_frame() is None:
                raise AssertionError("connection closed while sending")

    def sync(self):
        """A PING and its ACK: the server has read every byte sent before it."""
        token = len(self.ping_acks).to_bytes(8, "big")
        self.sk.sendall(frame(PING, 0, 0, token))
        self.until(lambda: token in self.ping_acks, "the PING ACK")

    def close(self):
        self.sk.close()
