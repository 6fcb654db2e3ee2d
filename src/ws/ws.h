/* ws.h - RFC 6455 WebSocket framing and the per-connection protocol state
 * machine (server side), independent of sockets.
 *
 * Data flow: the connection layer hands every received byte to
 * dg_ws_feed(); the session parses frames, unmasks payloads in place,
 * enforces the protocol (masking, reserved bits, opcodes, control-frame rules,
 * fragmentation, UTF-8 of text, close codes, message size limit), answers
 * pings, and delivers whole messages to on_message. Bytes to send go out
 * through the `send` callback, already framed.
 *
 * Memory: a session holds only small fixed state (232 bytes on LP64) while idle.
 * A message is delivered straight from the caller's buffer when it arrives
 * as one unfragmented frame that is entirely in that buffer (the common case:
 * zero copy). Otherwise payload bytes are streamed into `msg` (malloc'd,
 * bounded by max_message, freed when the message completes). Text payloads are
 * UTF-8 validated incrementally as bytes arrive, so an invalid byte fails the
 * connection at once (1007), without waiting for the end of the frame or message.
 *
 * Thread: owned by the connection's worker thread. Not thread-safe.
 */
#ifndef DG_WS_H
#define DG_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    DG_WS_OP_CONT   = 0x0,
    DG_WS_OP_TEXT   = 0x1,
    DG_WS_OP_BINARY = 0x2,
    DG_WS_OP_CLOSE  = 0x8,
    DG_WS_OP_PING   = 0x9,
    DG_WS_OP_PONG   = 0xA,
};

/* Close codes used by dronegate (RFC 6455 section 7.4 + contract). */
enum {
    DG_WS_CLOSE_NORMAL      = 1000,
    DG_WS_CLOSE_GOING_AWAY  = 1001,
    DG_WS_CLOSE_PROTOCOL    = 1002,
    DG_WS_CLOSE_UNSUPPORTED = 1003,
    DG_WS_CLOSE_NO_STATUS   = 1005, /* never on the wire: peer's close had no code */
    DG_WS_CLOSE_ABNORMAL    = 1006, /* never on the wire: send failed, link is dead */
    DG_WS_CLOSE_INVALID     = 1007,
    DG_WS_CLOSE_POLICY      = 1008,
    DG_WS_CLOSE_TOO_BIG     = 1009,
    DG_WS_CLOSE_INTERNAL    = 1011,
    DG_WS_CLOSE_REPLACED    = 4409,
};

/* ---- frame level (pure functions) ---- */

typedef struct dg_ws_frame {
    uint8_t  fin;        /* 1 when FIN bit set */
    uint8_t  rsv;        /* RSV1-3 bits (>> 4), must be 0 without extensions */
    uint8_t  opcode;
    uint8_t  masked;
    uint8_t  mask[4];
    uint8_t  hdr_len;    /* 2..14 */
    uint64_t len;        /* payload length */
} dg_ws_frame_t;

#define DG_WS_INCOMPLETE 0  /* need more bytes */

/* Parse a frame header at p[0..n). Returns the header length (2..14) and
 * fills *f, DG_WS_INCOMPLETE when more bytes are needed, or -1 for a header
 * that is malformed at this level (non-minimal length encoding is accepted as
 * RFC 6455 allows; a 64-bit length with the top bit set is an error). */
int dg_ws_parse_header(const uint8_t *p, size_t n, dg_ws_frame_t *f);

/* XOR-unmask p[0..n) in place; `offset` is the payload offset of p[0]
 * (so a payload can be unmasked in chunks). */
void dg_ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* Write an unmasked server frame header (FIN set) for opcode/len into out
 * (>= 10 bytes). Returns the header length. */
size_t dg_ws_write_header(uint8_t *out, int opcode, uint64_t len);

/* Incremental UTF-8 validation: dg_utf8_update() in core/utf8.h. */
#include "../core/utf8.h"

/* Valid close codes a peer may send (1000-1003, 1007-1011, 3000-4999). */
bool dg_ws_close_code_valid(uint16_t code);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA1(key + GUID)).
 * out must hold 29 bytes (28 chars + NUL). 0 or -1. */
int dg_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* ---- session (protocol state machine) ---- */

typedef struct dg_ws_callbacks {
    /* A complete message (TEXT already UTF-8 validated). `data` may be
     * modified by the callee; valid only during the call. Return 0, or a
     * close code (>= 1000) to fail the connection with that code. */
    int  (*on_message)(void *ud, int opcode, uint8_t *data, size_t len);
    /* Raw bytes to write to the peer (already framed). Return 0 or -1 (the
     * session then stops). */
    int  (*send)(void *ud, const void *data, size_t len);
    /* The peer sent a close frame (code 1005 when it had no payload). The
     * session has already answered it. May be NULL. */
    void (*on_close)(void *ud, uint16_t code, const char *reason, size_t len);
    /* A pong arrived (e.g. answer to our keep-alive ping). May be NULL. */
    void (*on_pong)(void *ud);
} dg_ws_callbacks_t;

typedef struct dg_ws_session {
    uint64_t max_message;      /* limit for a whole (reassembled) message */
    /* current frame */
    uint8_t  hdr[14];
    uint8_t  hdr_have;         /* header bytes buffered (frame split across reads) */
    uint8_t  in_frame;         /* header parsed, payload in progress */
    uint8_t  msg_opcode;       /* TEXT/BINARY while a fragmented message is open, else 0 */
    uint8_t  closed;           /* 1 after a close frame was sent (we fail/answer) */
    uint8_t  ctl_len;
    dg_ws_frame_t frame;
    uint64_t frame_done;       /* payload bytes of `frame` consumed so far */
    uint32_t utf8;             /* UTF-8 DFA state of the open text message */
    uint8_t  ctl[125];         /* control frame payload being assembled */
    uint8_t *msg;              /* reassembly buffer (NULL when none) */
    size_t   msg_len, msg_cap;
    uint16_t close_code;       /* code we closed with (0 = none yet) */
    uint16_t result;           /* what dg_ws_feed returns once over (0 = open) */
} dg_ws_session_t;

/* Limit used when dg_ws_session_init is given max_message 0 (contract: 1 MiB). */
#define DG_WS_MAX_MESSAGE_DEFAULT (1u << 20)

void dg_ws_session_init(dg_ws_session_t *s, uint64_t max_message);
void dg_ws_session_free(dg_ws_session_t *s);  /* frees msg; state reset */

/* Feed received bytes (p is writable: payloads are unmasked in place).
 * Returns 0 while the connection stays open; a positive close code when the
 * session has failed the connection or completed the close handshake (a
 * close frame has been sent through `send`; the caller should flush output
 * and close the socket). Never reads past n. */
int dg_ws_feed(dg_ws_session_t *s, uint8_t *p, size_t n,
               const dg_ws_callbacks_t *cb, void *ud);

/* Send a close frame with code + reason (reason truncated to fit 125 bytes)
 * unless one was sent already. Returns what `send` returned (0 if skipped). */
int dg_ws_close(dg_ws_session_t *s, uint16_t code, const char *reason,
                const dg_ws_callbacks_t *cb, void *ud);

/* Frame and send one data/control message (server frames are unmasked).
 * Returns what `send` returned. Two send calls: header then payload. */
int dg_ws_send(int opcode, const void *data, size_t len,
               const dg_ws_callbacks_t *cb, void *ud);

#endif
