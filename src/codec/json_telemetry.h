/* json_telemetry.h - decode drone -> server JSON text frames (dronegate.json.v1).
 *
 * A frame holds one JSON object or an array of objects (a batch). Each object
 * is either telemetry (no "type", or "type":"telemetry") or a command
 * acknowledgement ("type":"command_ack"). Telemetry is validated per the
 * contract (see dg_record_validate in validate.h); every object is reported to
 * the sink, valid ones as records, invalid ones as errors naming seq and field.
 *
 * Zero allocation per frame once the decoder's token array has grown to fit:
 * the decoder is per worker thread and reused. Not thread-safe.
 */
#ifndef DG_JSON_TELEMETRY_H
#define DG_JSON_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/record.h"

typedef struct dg_decode_error {
    uint64_t    seq;        /* valid when has_seq */
    bool        has_seq;
    const char *code;       /* "invalid_json" or "invalid_field" (static strings) */
    const char *field;      /* offending field name (static string), NULL for invalid_json */
    char        message[160]; /* human-readable reason, NUL-terminated */
} dg_decode_error_t;

typedef struct dg_command_ack {
    const char *id;      size_t id_len;       /* unescaped, NOT NUL-terminated; valid during the callback */
    const char *status;  size_t status_len;   /* "accepted" | "rejected" | "done" (validated) */
    const char *message; size_t message_len;  /* may be empty */
} dg_command_ack_t;

typedef struct dg_decode_sink {
    /* A valid telemetry record. drone_id/origin are NOT set by the decoder
     * (the caller knows them). `rec` is valid only during the call. */
    void (*on_record)(void *ud, const dg_record_t *rec);
    /* One rejected message (or the whole frame, for invalid_json). */
    void (*on_error)(void *ud, const dg_decode_error_t *err);
    /* A command_ack from the drone. May be NULL (then ignored). */
    void (*on_command_ack)(void *ud, const dg_command_ack_t *ack);
    void *ud;
    /* Checked before each message of a batch; true stops decoding (e.g. the
     * connection is closing). May be NULL. */
    bool (*stop)(void *ud);
} dg_decode_sink_t;

typedef struct dg_json_decoder dg_json_decoder_t;

/* Create a decoder. max_tokens bounds the token array (memory); a frame with
 * more tokens is reported as invalid_json ("too many tokens"). */
dg_json_decoder_t *dg_json_decoder_new(size_t max_tokens);
void dg_json_decoder_free(dg_json_decoder_t *d);

/* Decode one text frame. now_ms is used when a message has no timestamp;
 * recv_us is copied into every record.
 * Returns the number of records passed to on_record (>= 0), or -1 when the
 * frame is not valid JSON / not an object or array of objects (on_error was
 * called once with code "invalid_json"). */
int dg_json_decode(dg_json_decoder_t *d, const char *json, size_t len,
                   int64_t now_ms, int64_t recv_us, const dg_decode_sink_t *sink);

/* Check that json[0..len) is one JSON object or array, strictly per RFC
 * 8259 (the checks of dg_json_decode's steps 0-2: depth, tokens, grammar,
 * strings with valid escapes, UTF-8 and paired surrogates, numbers). 0, or
 * -1 with a reason in why. */
int dg_json_validate(dg_json_decoder_t *d, const char *json, size_t len, char *why, size_t whylen);

/* Work units spent by the last dg_json_decode() on d: bytes looked at by the
 * pre-scan and by each tokenizer pass, plus a bound on the tokenizer's
 * parent-link steps (tokens x (nesting depth + 1)), plus tokens validated.
 * Deterministic (no clock): tests and benchmarks use it to check that the
 * cost stays linear in the frame size. */
uint64_t dg_json_decoder_work(const dg_json_decoder_t *d);

/* The single-pass fast path (json_fast.c, on by default) is tried first for
 * every frame and gives up, before reporting anything, on whatever it does
 * not handle exactly like the full decoder. Off: the full decoder only
 * (differential fuzzing, tests, before/after benchmarks). */
void dg_json_decoder_set_fast(dg_json_decoder_t *d, bool on);

#endif
