"""RFC 6455 conformance of the WebSocket endpoint, in the spirit of the
Autobahn testsuite (case numbers in comments refer to its sections), with a
raw-socket client: every frame is built by hand.

Each case ends with the connection either closed by the server with the
expected code (and the TCP connection then closed), or still open and
answering correctly (ack/error for text, pong for ping, echo for close).

Two shared servers: `srv` (default limits, 1 MiB messages) and `small_srv`
(--max-message 4096) for the size-limit cases.
"""
import json
import os

import pytest

from conftest import shared_fixture
from dg import T, dumps, minimal, new_id, telem, wait_until
from rawws import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS,
                   build_frame, close_payload)

SMALL = 4096
_small_mod, _small = shared_fixture("small_srv", args=["--max-message", str(SMALL)])

LENGTHS = [0, 125, 126, 127, 65535, 65536]


# ---------------------------------------------------------------- helpers

def open_ws(s, drone=None, **kw):
    return RawWS.open(s.port, f"/ws/{drone or new_id('cf')}", timeout=T(5), **kw)


def padded(n, seq=1, how="spaces"):
    """A valid telemetry message of exactly n bytes (UTF-8)."""
    base = dumps(minimal(seq))
    if how == "spaces":
        assert n >= len(base)
        return base[:-1] + " " * (n - len(base)) + "}"
    # an unknown field holding the padding
    pre = base[:-1] + ',"pad":"'
    fill = n - len(pre) - 2
    assert fill >= 0
    return pre + "x" * fill + '"}'


def read_json(ws, timeout=None, skip=(OP_PONG,)):
    """Next text message from the server as a dict (skipping pongs)."""
    seen = []
    while True:
        f = ws.recv_frame(timeout or T(5))
        if f.opcode in skip:
            seen.append(f)
            continue
        assert f.opcode == OP_TEXT, f"expected a text frame, got {f!r} (after {seen})"
        assert f.fin, f"server sent a fragmented text message: {f!r}"
        return json.loads(f.payload.decode("utf-8"))


def expect_ack(ws, seq, timeout=None):
    """Read until an ack covering seq. Returns the non-ack frames seen."""
    timeout = timeout or T(10)
    others = []
    while True:
        f = ws.recv_frame(timeout)
        if f.opcode == OP_TEXT:
            m = json.loads(f.payload)
            if m.get("type") == "ack" and m["seq"] >= seq:
                return others
            assert m.get("type") == "ack", f"expected an ack for seq {seq}, got {m}"
            continue
        assert f.opcode != OP_CLOSE, f"server closed ({f.close_code} {f.close_reason!r}) before acking seq {seq}"
        others.append(f)


def expect_error(ws, code, seq=None, field=None):
    m = read_json(ws)
    assert m.get("type") == "error", f"expected an error, got {m}"
    assert m.get("code") == code, f"expected code {code}, got {m}"
    if seq is not None:
        assert m.get("seq") == seq, f"expected seq {seq} in {m}"
    if field is not None:
        assert m.get("field") == field, f"expected field {field} in {m}"
    return m


def still_open(ws, seq=9999):
    """The connection still works: a valid message is acked and a ping answered."""
    ws.text(dumps(minimal(seq)))
    expect_ack(ws, seq)
    ws.ping(b"still-open")
    f = ws.recv_frame(T(5))
    assert f.opcode == OP_PONG and f.payload == b"still-open", f"expected pong, got {f!r}"


# ---------------------------------------------------------------- 1.x data frames

@pytest.mark.parametrize("n", LENGTHS)
def test_text_lengths(srv, n):
    # Autobahn 1.1.x: text messages of various lengths get their answer
    with open_ws(srv) as ws:
        if n == 0:
            ws.text(b"")
            expect_error(ws, "invalid_json")
        else:
            ws.text(padded(n, seq=7))
            expect_ack(ws, 7)
        still_open(ws)


def test_text_65536_padded_with_unknown_field(srv):
    with open_ws(srv) as ws:
        ws.text(padded(65536, seq=3, how="field"))
        expect_ack(ws, 3)


@pytest.mark.parametrize("n", LENGTHS)
def test_binary_frame_closes_1003(srv, n):
    # Autobahn 1.2.x; the JSON subprotocol takes text frames only
    with open_ws(srv) as ws:
        ws.send_frame(OP_BINARY, os.urandom(n))
        ws.expect_close(1003)


def test_text_frame_written_in_small_chunks(srv):
    # Autobahn 1.1.7/1.1.8: a 65536-byte frame in chunks of 997 bytes
    with open_ws(srv) as ws:
        ws.send(build_frame(OP_TEXT, padded(65536, seq=11)), chunk=997)
        expect_ack(ws, 11)


def test_several_frames_in_one_write(srv):
    with open_ws(srv) as ws:
        ws.send(build_frame(OP_TEXT, dumps(minimal(1))) + build_frame(OP_PING, b"p")
                + build_frame(OP_TEXT, dumps(minimal(2))))
        others = expect_ack(ws, 2)
        if not others:
            f = ws.recv_frame(T(5))
            others.append(f)
        assert [(f.opcode, f.payload) for f in others] == [(OP_PONG, b"p")]


# ---------------------------------------------------------------- 2.x pings and pongs

@pytest.mark.parametrize("payload", [b"", b"\x00\xff" + os.urandom(123), b"x" * 125],
                         ids=["empty", "binary125", "ascii125"])
def test_ping_gets_pong_with_same_payload(srv, payload):
    with open_ws(srv) as ws:
        ws.ping(payload)
        f = ws.recv_frame(T(5))
        assert f.opcode == OP_PONG and f.payload == payload, f"expected pong with the ping payload, got {f!r}"
        still_open(ws)


def test_ping_126_closes_1002(srv):
    # Autobahn 2.5: control frame payload > 125
    with open_ws(srv) as ws:
        ws.ping(b"x" * 126)
        ws.expect_close(1002, allow_before=())


def test_fragmented_ping_closes_1002(srv):
    # Autobahn 5.1/5.2: control frames must not be fragmented
    with open_ws(srv) as ws:
        ws.send_frame(OP_PING, b"frag", fin=False)
        ws.send_frame(OP_CONT, b"ment", fin=True)
        ws.expect_close(1002, allow_before=())


def test_unsolicited_pong_is_ignored(srv):
    # Autobahn 2.8/2.9
    with open_ws(srv) as ws:
        ws.send_frame(OP_PONG, b"unsolicited")
        ws.ping(b"after")
        f = ws.recv_frame(T(5))
        assert f.opcode == OP_PONG and f.payload == b"after", f"got {f!r}"


def test_ten_pings_ten_pongs_in_order(srv):
    # Autobahn 2.10/2.11, the second half written one byte at a time
    with open_ws(srv) as ws:
        data = b"".join(build_frame(OP_PING, f"ping-{i}".encode()) for i in range(10))
        ws.send(data[:len(data) // 2])
        ws.send(data[len(data) // 2:], chunk=1)
        got = [ws.recv_frame(T(5)) for _ in range(10)]
        assert [(f.opcode, f.payload) for f in got] == [(OP_PONG, f"ping-{i}".encode()) for i in range(10)]


# ---------------------------------------------------------------- 3.x reserved bits

@pytest.mark.parametrize("rsv", range(1, 8))
def test_rsv_bits_on_text_close_1002(srv, rsv):
    with open_ws(srv) as ws:
        ws.send_frame(OP_TEXT, dumps(minimal(1)), rsv=rsv)
        ws.expect_close(1002, allow_before=())


@pytest.mark.parametrize("op", [OP_PING, OP_CLOSE, OP_CONT], ids=["ping", "close", "cont"])
def test_rsv_bits_on_other_frames_close_1002(srv, op):
    with open_ws(srv) as ws:
        if op == OP_CONT:
            ws.send_frame(OP_TEXT, b'{"seq":1,', fin=False)
            ws.send_frame(OP_CONT, b'"latitude":1,"longitude":1,"altitude":1}', rsv=4)
        else:
            ws.send_frame(op, close_payload(1000) if op == OP_CLOSE else b"hi", rsv=2)
        ws.expect_close(1002, allow_before=())


# ---------------------------------------------------------------- 4.x opcodes

@pytest.mark.parametrize("op", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
@pytest.mark.parametrize("payload", [b"", b"reserved"], ids=["empty", "payload"])
def test_reserved_opcode_closes_1002(srv, op, payload):
    with open_ws(srv) as ws:
        ws.send_frame(op, payload)
        ws.expect_close(1002, allow_before=())


def test_reserved_opcode_after_valid_message(srv):
    # Autobahn 4.1.3: a valid frame, the reserved one, then a ping that must not be answered
    with open_ws(srv) as ws:
        ws.send(build_frame(OP_TEXT, dumps(minimal(1))) + build_frame(5) + build_frame(OP_PING, b"no"))
        f, before = ws.recv_until_close(T(5))
        assert f.close_code == 1002, f"expected 1002, got {f.close_code}"
        assert all(b.opcode != OP_PONG for b in before), f"ping after the bad frame was answered: {before}"


# ---------------------------------------------------------------- masking

@pytest.mark.parametrize("op", [OP_TEXT, OP_PING, OP_CLOSE], ids=["text", "ping", "close"])
def test_unmasked_client_frame_closes_1002(srv, op):
    payload = {OP_TEXT: dumps(minimal(1)).encode(), OP_PING: b"p", OP_CLOSE: close_payload(1000)}[op]
    with open_ws(srv) as ws:
        ws.send_frame(op, payload, mask=False)
        ws.expect_close(1002, allow_before=())


def test_mask_key_all_zero_is_fine(srv):
    with open_ws(srv) as ws:
        ws.send_frame(OP_TEXT, dumps(minimal(5)), key=b"\0\0\0\0")
        expect_ack(ws, 5)


# ---------------------------------------------------------------- 5.x fragmentation

def fragments(s, sizes):
    b = s.encode() if isinstance(s, str) else s
    out, i = [], 0
    for n in sizes:
        out.append(b[i:i + n])
        i += n
    out.append(b[i:])
    return out


def send_fragmented(ws, parts, opcode=OP_TEXT, between=None):
    for i, p in enumerate(parts):
        ws.send_frame(opcode if i == 0 else OP_CONT, p, fin=(i == len(parts) - 1))
        if between and i < len(parts) - 1:
            between(i)


def test_fragmented_text_message(srv):
    with open_ws(srv) as ws:
        send_fragmented(ws, fragments(dumps(telem(21)), [10, 30]))
        expect_ack(ws, 21)


def test_fragmented_text_with_pings_interleaved(srv):
    # Autobahn 5.6-5.8
    with open_ws(srv) as ws:
        send_fragmented(ws, fragments(dumps(telem(22)), [5, 40, 20]),
                        between=lambda i: ws.ping(f"between-{i}".encode()))
        others = expect_ack(ws, 22)
        assert [(f.opcode, f.payload) for f in others] == \
            [(OP_PONG, f"between-{i}".encode()) for i in range(3)], f"frames before the ack: {others}"


def test_text_in_one_byte_fragments(srv):
    # Autobahn 5.15-ish: every fragment one byte, and each written byte by byte
    msg = dumps(minimal(23))
    with open_ws(srv) as ws:
        frames = b"".join(build_frame(OP_TEXT if i == 0 else OP_CONT, msg[i], fin=(i == len(msg) - 1))
                          for i in range(len(msg)))
        ws.send(frames, chunk=7)
        expect_ack(ws, 23)


def test_empty_fragments(srv):
    # Autobahn 5.18/6.1.x: empty first and last fragments
    with open_ws(srv) as ws:
        send_fragmented(ws, [b"", dumps(minimal(24)).encode(), b""])
        expect_ack(ws, 24)


@pytest.mark.parametrize("fin", [True, False], ids=["fin", "nofin"])
def test_continuation_without_start_closes_1002(srv, fin):
    # Autobahn 5.9-5.14
    with open_ws(srv) as ws:
        ws.send_frame(OP_CONT, dumps(minimal(1)), fin=fin)
        ws.expect_close(1002, allow_before=())


def test_continuation_after_finished_message_closes_1002(srv):
    with open_ws(srv) as ws:
        send_fragmented(ws, fragments(dumps(minimal(25)), [10]))
        ws.send_frame(OP_CONT, b" ", fin=True)
        f, before = ws.recv_until_close(T(5))
        assert f.close_code == 1002, f"expected 1002, got {f.close_code}; before {before}"


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_new_message_while_fragmented_open_closes_1002(srv, second):
    with open_ws(srv) as ws:
        ws.send_frame(OP_TEXT, b'{"seq":1,', fin=False)
        ws.send_frame(second, dumps(minimal(2)).encode(), fin=True)
        ws.expect_close(1002, allow_before=())


def test_fragmented_binary_closes_1003(srv):
    with open_ws(srv) as ws:
        send_fragmented(ws, [b"\x01\x02", b"\x03"], opcode=OP_BINARY)
        ws.expect_close(1003, allow_before=())


def test_close_between_fragments_is_answered(srv):
    # control frames may be interleaved; a close ends the connection cleanly
    with open_ws(srv) as ws:
        ws.send_frame(OP_TEXT, b'{"seq":1,', fin=False)
        ws.close(1000)
        f, _ = ws.expect_close(1000)


# ---------------------------------------------------------------- 6.x UTF-8

UNICODE_STATUS = "Grüße ✈ 𝄞"    # 2-, 3- and 4-byte sequences, 16 bytes


def test_valid_utf8_multibyte_round_trip(srv):
    drone = new_id("utf8")
    with open_ws(srv, drone) as ws:
        ws.text(dumps(minimal(1, status=UNICODE_STATUS)))
        expect_ack(ws, 1)
    rows = srv.history(drone)
    assert [r.get("status") for r in rows] == [UNICODE_STATUS]


def test_valid_utf8_split_inside_code_points(srv):
    # Autobahn 6.2.x: fragment boundaries in the middle of multi-byte characters
    b = dumps(minimal(2, status=UNICODE_STATUS)).encode("utf-8")
    i = b.index("✈".encode()) + 1            # inside the 3-byte sequence
    j = b.index("𝄞".encode()) + 2            # inside the 4-byte sequence
    with open_ws(srv) as ws:
        send_fragmented(ws, [b[:i], b[i:j], b[j:]])
        expect_ack(ws, 2)


INVALID_UTF8 = {
    "ff": b"\xff",
    "lone_continuation": b"\x80",
    "overlong_slash": b"\xc0\xaf",
    "overlong_3byte": b"\xe0\x80\xaf",
    "surrogate": b"\xed\xa0\x80",
    "above_10ffff": b"\xf4\x90\x80\x80",
    "five_byte": b"\xf8\x88\x80\x80\x80",
    "truncated_at_end": b"\xe2\x82",
}


def with_bad_status(bad):
    # the bytes inside a JSON string; for "truncated_at_end" the message ends there
    pre = b'{"seq":1,"latitude":1,"longitude":1,"altitude":1,"status":"ok'
    return pre + bad + (b'"}' if bad != b"\xe2\x82" else b"")


@pytest.mark.parametrize("bad", list(INVALID_UTF8.values()), ids=list(INVALID_UTF8))
def test_invalid_utf8_single_frame_closes_1007(srv, bad):
    with open_ws(srv) as ws:
        ws.send_frame(OP_TEXT, with_bad_status(bad))
        ws.expect_close(1007, allow_before=())


def test_invalid_utf8_in_first_fragment_fails_fast(srv):
    # Autobahn 6.4.x: the rest of the message is never sent; 1007 must come anyway
    with open_ws(srv) as ws:
        ws.send_frame(OP_TEXT, b'{"seq":1,"status":"\xff', fin=False)
        ws.expect_close(1007, timeout=T(5), allow_before=())


def test_invalid_utf8_in_partial_frame_fails_fast(srv):
    # the frame declares 200 bytes, only 25 (holding the bad byte) arrive
    with open_ws(srv) as ws:
        start = b'{"seq":1,"status":"ab\xc0\xaf'
        ws.send(build_frame(OP_TEXT, start, length=200))
        ws.expect_close(1007, timeout=T(5), allow_before=())


def test_invalid_utf8_split_across_fragments(srv):
    # E2 82 | 28: the lead byte is valid at the end of fragment 1, the next byte is not a continuation
    with open_ws(srv) as ws:
        ws.send_frame(OP_TEXT, b'{"seq":1,"status":"a\xe2\x82', fin=False)
        ws.send_frame(OP_CONT, b'(b","latitude":1,"longitude":1,"altitude":1}', fin=True)
        ws.expect_close(1007, allow_before=())


def test_message_ending_inside_code_point_closes_1007(srv):
    with open_ws(srv) as ws:
        ws.send_frame(OP_TEXT, b'{"seq":1,"latitude":1,"longitude":1,"altitude":1}', fin=False)
        ws.send_frame(OP_CONT, b"\xf0\x9d", fin=True)
        ws.expect_close(1007, allow_before=())


# ---------------------------------------------------------------- 7.x close handling

@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999])
def test_valid_close_code_is_echoed(srv, code):
    # Autobahn 7.7.x
    with open_ws(srv) as ws:
        ws.close(code, b"bye")
        f, before = ws.expect_close(code)
        assert not before, f"frames before the close echo: {before}"


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
def test_invalid_close_code_closes_1002(srv, code):
    # Autobahn 7.9.x
    with open_ws(srv) as ws:
        ws.close(code)
        ws.expect_close(1002, allow_before=())


def test_close_without_payload_is_answered(srv):
    # Autobahn 7.3.1: empty close -> the server closes (empty payload or 1000)
    with open_ws(srv) as ws:
        ws.send_frame(OP_CLOSE, b"")
        f, before = ws.recv_until_close(T(5))
        assert f.payload == b"" or f.close_code == 1000, f"unexpected close answer {f!r}"
        ws.expect_eof()


def test_close_payload_length_1_closes_1002(srv):
    # Autobahn 7.3.2
    with open_ws(srv) as ws:
        ws.send_frame(OP_CLOSE, b"\x03")
        ws.expect_close(1002, allow_before=())


def test_close_with_max_reason_is_echoed(srv):
    # Autobahn 7.3.5: 2 + 123 bytes
    with open_ws(srv) as ws:
        ws.close(1000, b"r" * 123)
        ws.expect_close(1000)


def test_close_payload_126_closes_1002(srv):
    # Autobahn 7.3.6
    with open_ws(srv) as ws:
        ws.send_frame(OP_CLOSE, close_payload(1000, b"r" * 124))
        ws.expect_close(1002, allow_before=())


def test_close_reason_invalid_utf8_closes_1007(srv):
    # Autobahn 7.5.1
    with open_ws(srv) as ws:
        ws.close(1000, b"bad \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80 reason")
        ws.expect_close(1007, allow_before=())


def test_frames_after_close_are_ignored(srv):
    # Autobahn 7.1.x: nothing is answered after the client's close
    with open_ws(srv) as ws:
        ws.send(build_frame(OP_CLOSE, close_payload(1000)) + build_frame(OP_PING, b"late")
                + build_frame(OP_TEXT, dumps(minimal(1))))
        ws.sent_close = True
        f, before = ws.expect_close(1000)
        assert not before, f"frames answered around the close: {before}"


def test_valid_message_then_close(srv):
    # Autobahn 7.1.6-ish: a message then a close; the message is acked before the close echo
    drone = new_id("cl")
    with open_ws(srv, drone) as ws:
        ws.text(dumps(minimal(31)))
        ws.close(1000)
        ws.expect_close(1000)
    wait_until(lambda: 31 in srv.seqs(drone), T(5), "seq 31 (sent right before a normal close) stored")


# ---------------------------------------------------------------- 9.x / limits

def test_message_exactly_at_limit_is_accepted(small_srv):
    with open_ws(small_srv) as ws:
        ws.text(padded(SMALL, seq=41))
        expect_ack(ws, 41)


def test_message_over_limit_closes_1009(small_srv):
    with open_ws(small_srv) as ws:
        ws.text(padded(SMALL + 1, seq=42))
        ws.expect_close(1009, allow_before=())


def test_fragmented_message_over_limit_closes_1009(small_srv):
    with open_ws(small_srv) as ws:
        parts = fragments(padded(SMALL + 1, seq=43), [2000, 2000])
        send_fragmented(ws, parts)
        ws.expect_close(1009, allow_before=())


def test_fragmented_message_at_limit_is_accepted(small_srv):
    with open_ws(small_srv) as ws:
        send_fragmented(ws, fragments(padded(SMALL, seq=44), [1000, 1000, 1000]))
        expect_ack(ws, 44)


def test_huge_declared_length_closes_1009_without_body(small_srv):
    # the header announces 2^40 bytes; the server must not wait for them
    with open_ws(small_srv) as ws:
        ws.send(build_frame(OP_TEXT, b"{", length=1 << 40))
        ws.expect_close(1009, timeout=T(5), allow_before=())


def test_length_with_top_bit_set_fails(small_srv):
    # RFC 6455 5.2: the most significant bit of the 64-bit length must be 0
    with open_ws(small_srv) as ws:
        ws.send(build_frame(OP_TEXT, b"{", length=(1 << 63) + 5))
        ws.expect_close({1002, 1009}, timeout=T(5), allow_before=())


def test_ping_is_fine_on_small_server(small_srv):
    with open_ws(small_srv) as ws:
        ws.ping(b"y" * 125)
        f = ws.recv_frame(T(5))
        assert f.opcode == OP_PONG and f.payload == b"y" * 125


# ---------------------------------------------------------------- byte-at-a-time

def test_whole_session_one_byte_at_a_time(srv):
    drone = new_id("byte")
    ws = RawWS(srv.port, timeout=T(5))
    with ws:
        r = ws.handshake(f"/ws/{drone}", ["dronegate.json.v1"], chunk=1, pause=0.0005)
        assert r.status == 101, f"handshake written byte by byte: HTTP {r.status} {r.body!r}"
        assert r.header("sec-websocket-accept") == ws.expected_accept()
        assert r.header("sec-websocket-protocol") == "dronegate.json.v1"
        one = lambda data: ws.send(data, chunk=1, pause=0.0005)  # noqa: E731
        one(build_frame(OP_TEXT, dumps(telem(1))))
        one(build_frame(OP_PING, b"byte-ping"))
        ws.send_frame(OP_TEXT, b'{"seq":2,"latitude":', fin=False, chunk=1, pause=0.0005)
        one(build_frame(OP_CONT, b'1.5,"longitude":2.5,"altitude":3.5}'))
        others = expect_ack(ws, 2)
        if not any(f.opcode == OP_PONG for f in others):
            others.append(ws.recv_frame(T(5)))
        assert [(f.opcode, f.payload) for f in others] == [(OP_PONG, b"byte-ping")]
        ws.send_frame(OP_CLOSE, close_payload(1000, b"done"), chunk=1, pause=0.0005)
        ws.expect_close(1000)
    assert srv.seqs(drone) == [1, 2]


def test_oversize_message_with_body_in_flight_closes_1009(small_srv):
    # the client keeps writing the body of an oversize frame while the server
    # closes: the 1009 close frame must still reach it (the server must not
    # reset the connection with unread data, which destroys the close frame)
    import threading
    with open_ws(small_srv) as ws:
        body = b" " * (4 << 20)
        errors = []

        def writer():
            try:
                ws.sock.sendall(build_frame(OP_TEXT, body))
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            ws.sent_close = True          # no echo: the writer thread owns the socket's send side
            f, before = ws.recv_until_close(T(10))
            assert f.close_code == 1009, f"expected 1009, got {f.close_code}"
        finally:
            ws.shutdown()
            t.join(T(10))
