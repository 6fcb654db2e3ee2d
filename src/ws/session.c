/* session.c - the server side of the RFC 6455 protocol for one connection:
 * a state machine fed with received bytes (dg_ws_feed) that delivers whole
 * messages and writes framed replies through callbacks. No sockets here.
 *
 * Thread: the connection's worker thread; a session is not thread-safe.
 * Callbacks run synchronously inside dg_ws_feed. on_message may call
 * dg_ws_send and dg_ws_close; it must not free the session.
 *
 * Input path, per frame:
 *
 *   header (2..14 bytes; buffered in s->hdr if split across reads)
 *     -> checks: RSV = 0, known opcode, fragmentation order, masked,
 *        control frames FIN and <= 125 bytes, message size (1009, decided
 *        from the declared length before any payload arrives). The checks
 *        that need only bytes 0..1 also run on a partial header, so a bad
 *        frame fails before its header is complete.
 *     -> zero copy: an unfragmented TEXT/BINARY frame whose whole payload is
 *        in the caller's buffer is unmasked in place and handed to
 *        on_message as a pointer into that buffer (no copy, no malloc).
 *     -> otherwise the payload is streamed: unmasked in place chunk by chunk,
 *        text validated as it arrives (invalid UTF-8 fails at once, 1007),
 *        and appended to s->msg (grown geometrically as bytes actually arrive,
 *        never beyond max_message, freed once the message is delivered).
 *        Control payloads go to s->ctl (<= 125 bytes, no allocation).
 *
 * Closing (choices where RFC 6455 leaves room):
 * - We fail the connection (protocol error, bad UTF-8, too big, on_message
 *   returned a code): send close with the code, the session is over at once
 *   (we do not wait for the peer's close; the caller closes the socket).
 * - The peer closes first: we echo its status code (an empty close if its
 *   close had no payload), call on_close, and return its code (1005 when it
 *   had none). The reason is not echoed.
 * - dg_ws_close (we close first, e.g. 1001 on drain): from then on data
 *   frames are skipped unread, pings are not answered, pongs are not
 *   reported; the peer's close frame completes the handshake and
 *   dg_ws_feed returns the code we closed with. The caller needs a timeout
 *   for peers that never answer.
 * - Codes that may not appear on the wire (outside 1000-1003, 1007-1011,
 *   3000-4999) are replaced by 1011 when we send them; 0 or 1005 given to
 *   dg_ws_close sends a close without a code.
 * - on_message returning a value that is not a sendable close code
 *   (negative, 1..999, 1005, 5000, ...) fails the connection with 1011.
 * - When `send` fails the session is over with 1006 (nothing more is sent),
 *   including when dg_ws_close called from inside on_message failed: the
 *   rest of that buffer is not processed.
 * - max_message 0 at init means DG_WS_MAX_MESSAGE_DEFAULT (1 MiB).
 * - dg_ws_send with len 0 makes one send call (the header), not two.
 *
 * Limits: max_message is capped to SIZE_MAX on 32-bit builds by the
 * caller's choice (not checked). The reassembly buffer is allocated per
 * fragmented/split message, so a peer that keeps such messages open holds up
 * to max_message bytes; the caller's idle/read timeouts bound how long.
 */
#include "ws.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(dg_ws_session_t) <= 256, "dg_ws_session_t is embedded in every connection");

#define MSG_MIN_CAP 256

static bool is_control(int op) { return op & 0x8; }

static bool is_known(int op)
{
    return op <= DG_WS_OP_BINARY || (op >= DG_WS_OP_CLOSE && op <= DG_WS_OP_PONG);
}

void dg_ws_session_init(dg_ws_session_t *s, uint64_t max_message)
{
    memset(s, 0, sizeof(*s));
    s->max_message = max_message ? max_message : DG_WS_MAX_MESSAGE_DEFAULT;
    s->utf8 = DG_UTF8_ACCEPT;
}

void dg_ws_session_free(dg_ws_session_t *s)
{
    free(s->msg);
    dg_ws_session_init(s, s->max_message);
}

static void msg_drop(dg_ws_session_t *s)
{
    free(s->msg);
    s->msg = NULL;
    s->msg_len = s->msg_cap = 0;
    s->msg_opcode = 0;
    s->utf8 = DG_UTF8_ACCEPT;
}

/* A control frame (payload <= 125) in one send call. */
static int send_control(int opcode, const uint8_t *payload, size_t len,
                        const dg_ws_callbacks_t *cb, void *ud)
{
    uint8_t f[2 + 125];
    size_t h = dg_ws_write_header(f, opcode, len);
    if (len) memcpy(f + h, payload, len);
    return cb->send(ud, f, h + len);
}

/* Send close (code 0 or 1005: no payload) and mark the session closed.
 * The reason is cut to 123 bytes at a code point boundary and dropped if it
 * is not valid UTF-8 (the peer would fail us for it). */
static int send_close(dg_ws_session_t *s, uint16_t code, const char *reason,
                      size_t rlen, const dg_ws_callbacks_t *cb, void *ud)
{
    uint8_t pl[125];
    size_t n = 0;

    if (code != 0 && code != DG_WS_CLOSE_NO_STATUS) {
        if (!dg_ws_close_code_valid(code)) code = DG_WS_CLOSE_INTERNAL;
        pl[0] = (uint8_t)(code >> 8);
        pl[1] = (uint8_t)code;
        n = 2;
        if (reason && rlen) {
            const uint8_t *r = (const uint8_t *)reason;
            if (rlen > sizeof(pl) - 2) {
                rlen = sizeof(pl) - 2;
                while (rlen > 0 && (r[rlen] & 0xc0) == 0x80) rlen--;
            }
            if (dg_utf8_update(DG_UTF8_ACCEPT, r, rlen) == DG_UTF8_ACCEPT) {
                memcpy(pl + 2, r, rlen);
                n += rlen;
            }
        }
    } else {
        code = DG_WS_CLOSE_NO_STATUS;
    }
    s->closed = 1;
    s->close_code = code;
    return send_control(DG_WS_OP_CLOSE, pl, n, cb, ud);
}

/* End the session with `code`, sending a close first unless one was sent. */
static int finish(dg_ws_session_t *s, int code, const dg_ws_callbacks_t *cb, void *ud)
{
    if (!s->closed) {
        if (!dg_ws_close_code_valid((uint16_t)code)) code = DG_WS_CLOSE_INTERNAL;
        send_close(s, (uint16_t)code, NULL, 0, cb, ud);  /* over either way */
    }
    msg_drop(s);
    s->in_frame = 0;
    s->hdr_have = 0;
    s->result = (uint16_t)code;
    return code;
}

static int send_failed(dg_ws_session_t *s)
{
    s->closed = 1;  /* the link is dead: send nothing more */
    return DG_WS_CLOSE_ABNORMAL;
}

/* Checks that need only the first `have` (>= 1) header bytes. Same order
 * whether the header arrives whole or in pieces, so the outcome does not
 * depend on how reads split the stream. */
static int check_prefix(const dg_ws_session_t *s, const uint8_t *h, size_t have)
{
    int op = h[0] & 0x0f;

    if (h[0] & 0x70) return DG_WS_CLOSE_PROTOCOL;         /* RSV1-3 */
    if (!is_known(op)) return DG_WS_CLOSE_PROTOCOL;
    if (is_control(op)) {
        if (!(h[0] & 0x80)) return DG_WS_CLOSE_PROTOCOL;  /* fragmented control */
    } else if (!s->closed) {
        if (op == DG_WS_OP_CONT && !s->msg_opcode) return DG_WS_CLOSE_PROTOCOL;
        if (op != DG_WS_OP_CONT && s->msg_opcode) return DG_WS_CLOSE_PROTOCOL;
    }
    if (have < 2) return 0;
    if (!(h[1] & 0x80)) return DG_WS_CLOSE_PROTOCOL;      /* client must mask */
    if (is_control(op) && (h[1] & 0x7f) > 125) return DG_WS_CLOSE_PROTOCOL;
    return 0;
}

/* A complete header is in s->frame (raw bytes at h). */
static int begin_frame(dg_ws_session_t *s, const uint8_t *h)
{
    int rc = check_prefix(s, h, 2);
    if (rc) return rc;
    int op = s->frame.opcode;
    if (!is_control(op) && !s->closed) {
        if (s->frame.len > s->max_message - s->msg_len) return DG_WS_CLOSE_TOO_BIG;
        if (op != DG_WS_OP_CONT) {
            s->msg_opcode = (uint8_t)op;
            s->utf8 = DG_UTF8_ACCEPT;
        }
    }
    s->frame_done = 0;
    s->ctl_len = 0;
    return 0;
}

static int deliver(int op, uint8_t *data, size_t len,
                   const dg_ws_callbacks_t *cb, void *ud)
{
    int rc = cb->on_message(ud, op, data, len);
    if (rc == 0) return 0;
    if (rc < 1000 || rc > 0xffff || !dg_ws_close_code_valid((uint16_t)rc))
        return DG_WS_CLOSE_INTERNAL;
    return rc;
}

static int msg_append(dg_ws_session_t *s, const uint8_t *d, size_t n)
{
    size_t need = s->msg_len + n;  /* <= max_message: checked per frame */
    if (need > s->msg_cap) {
        uint64_t cap = s->msg_cap ? (uint64_t)s->msg_cap * 2 : MSG_MIN_CAP;
        if (cap < need) cap = need;
        if (s->frame.fin) {  /* final size known: never allocate beyond it */
            uint64_t final = s->msg_len + (s->frame.len - s->frame_done);
            if (cap > final) cap = final;
        }
        if (cap > s->max_message) cap = s->max_message;
        uint8_t *m = realloc(s->msg, (size_t)cap);
        if (!m) return DG_WS_CLOSE_INTERNAL;
        s->msg = m;
        s->msg_cap = (size_t)cap;
    }
    memcpy(s->msg + s->msg_len, d, n);
    s->msg_len = need;
    return 0;
}

/* n payload bytes of the current frame at d (still masked). */
static int frame_payload(dg_ws_session_t *s, uint8_t *d, size_t n)
{
    if (is_control(s->frame.opcode)) {
        dg_ws_unmask(d, n, s->frame.mask, s->frame_done);
        memcpy(s->ctl + s->ctl_len, d, n);
        s->ctl_len = (uint8_t)(s->ctl_len + n);
        return 0;
    }
    if (s->closed) return 0;  /* closing: data is skipped */
    dg_ws_unmask(d, n, s->frame.mask, s->frame_done);
    if (s->msg_opcode == DG_WS_OP_TEXT) {
        s->utf8 = dg_utf8_update(s->utf8, d, n);
        if (s->utf8 == DG_UTF8_REJECT) return DG_WS_CLOSE_INVALID;
    }
    return msg_append(s, d, n);
}

static int peer_close(dg_ws_session_t *s, const dg_ws_callbacks_t *cb, void *ud)
{
    uint16_t code = DG_WS_CLOSE_NO_STATUS;
    const char *reason = "";
    size_t rlen = 0;
    int result;

    if (s->ctl_len == 1) return DG_WS_CLOSE_PROTOCOL;
    if (s->ctl_len >= 2) {
        code = (uint16_t)((s->ctl[0] << 8) | s->ctl[1]);
        if (!dg_ws_close_code_valid(code)) return DG_WS_CLOSE_PROTOCOL;
        reason = (const char *)s->ctl + 2;
        rlen = s->ctl_len - 2u;
        if (dg_utf8_update(DG_UTF8_ACCEPT, s->ctl + 2, rlen) != DG_UTF8_ACCEPT)
            return DG_WS_CLOSE_INVALID;
    }
    if (!s->closed) {
        send_close(s, code, NULL, 0, cb, ud);  /* echo; over either way */
        result = code;
    } else {
        result = s->close_code;
    }
    if (cb->on_close) cb->on_close(ud, code, reason, rlen);
    return result;
}

/* The current frame's payload is complete. 0, or a code that ends the session. */
static int end_frame(dg_ws_session_t *s, const dg_ws_callbacks_t *cb, void *ud)
{
    switch (s->frame.opcode) {
    case DG_WS_OP_PING:
        if (!s->closed && send_control(DG_WS_OP_PONG, s->ctl, s->ctl_len, cb, ud))
            return send_failed(s);
        return 0;
    case DG_WS_OP_PONG:
        if (!s->closed && cb->on_pong) cb->on_pong(ud);
        return 0;
    case DG_WS_OP_CLOSE:
        return peer_close(s, cb, ud);
    default:
        break;
    }
    if (s->closed) {
        msg_drop(s);
        return 0;
    }
    if (!s->frame.fin) return 0;
    int op = s->msg_opcode;
    if (op == DG_WS_OP_TEXT && s->utf8 != DG_UTF8_ACCEPT) return DG_WS_CLOSE_INVALID;
    /* empty message: a valid pointer, never NULL */
    int rc = deliver(op, s->msg ? s->msg : s->ctl, s->msg_len, cb, ud);
    msg_drop(s);
    return rc;
}

int dg_ws_feed(dg_ws_session_t *s, uint8_t *p, size_t n,
               const dg_ws_callbacks_t *cb, void *ud)
{
    size_t i = 0;
    int rc;

    if (s->result) return s->result;
    if (n == 0) return 0;

    for (;;) {
        if (s->result) return s->result;  /* a callback's dg_ws_close failed */
        if (!s->in_frame) {
            const uint8_t *h;
            int r;

            if (i == n) break;
            if (s->hdr_have == 0) {
                h = p + i;
                r = dg_ws_parse_header(h, n - i, &s->frame);
                if (r == DG_WS_INCOMPLETE) {  /* n - i < 14 here */
                    memcpy(s->hdr, h, n - i);
                    s->hdr_have = (uint8_t)(n - i);
                    i = n;
                    if ((rc = check_prefix(s, s->hdr, s->hdr_have))) goto fail;
                    break;
                }
                if (r < 0) { rc = DG_WS_CLOSE_PROTOCOL; goto fail; }
                i += (size_t)r;
            } else {
                size_t have = s->hdr_have;
                size_t take = sizeof(s->hdr) - have;
                if (take > n - i) take = n - i;
                memcpy(s->hdr + have, p + i, take);
                h = s->hdr;
                r = dg_ws_parse_header(h, have + take, &s->frame);
                if (r == DG_WS_INCOMPLETE) {  /* took all of p */
                    s->hdr_have = (uint8_t)(have + take);
                    i = n;
                    if ((rc = check_prefix(s, s->hdr, s->hdr_have))) goto fail;
                    break;
                }
                s->hdr_have = 0;
                if (r < 0) { rc = DG_WS_CLOSE_PROTOCOL; goto fail; }
                i += (size_t)r - have;
            }
            if ((rc = begin_frame(s, h))) goto fail;

            int op = s->frame.opcode;
            if (s->frame.fin && (op == DG_WS_OP_TEXT || op == DG_WS_OP_BINARY) &&
                !s->closed && s->frame.len <= n - i) {
                /* zero copy: the whole unfragmented frame is in p */
                uint8_t *d = p + i;
                size_t len = (size_t)s->frame.len;
                i += len;
                s->msg_opcode = 0;
                dg_ws_unmask(d, len, s->frame.mask, 0);
                if (op == DG_WS_OP_TEXT &&
                    dg_utf8_update(DG_UTF8_ACCEPT, d, len) != DG_UTF8_ACCEPT) {
                    rc = DG_WS_CLOSE_INVALID;
                    goto fail;
                }
                if ((rc = deliver(op, d, len, cb, ud))) goto fail;
                continue;
            }
            s->in_frame = 1;
        }

        uint64_t left = s->frame.len - s->frame_done;
        size_t take = left < n - i ? (size_t)left : n - i;
        if (take) {
            rc = frame_payload(s, p + i, take);
            i += take;
            s->frame_done += take;
            if (rc) goto fail;
        }
        if (s->frame_done < s->frame.len) break;  /* need more bytes */
        s->in_frame = 0;
        if ((rc = end_frame(s, cb, ud))) goto fail;
    }
    return 0;

fail:
    return finish(s, rc, cb, ud);
}

int dg_ws_close(dg_ws_session_t *s, uint16_t code, const char *reason,
                const dg_ws_callbacks_t *cb, void *ud)
{
    if (s->closed || s->result) return 0;
    size_t rlen = reason ? strlen(reason) : 0;
    int rc = send_close(s, code, reason, rlen, cb, ud);
    if (rc) s->result = DG_WS_CLOSE_ABNORMAL;
    return rc;
}

int dg_ws_send(int opcode, const void *data, size_t len,
               const dg_ws_callbacks_t *cb, void *ud)
{
    uint8_t h[10];
    int rc = cb->send(ud, h, dg_ws_write_header(h, opcode, len));
    if (rc || len == 0) return rc;
    return cb->send(ud, data, len);
}
