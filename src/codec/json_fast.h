/* json_fast.h - single-pass fast path of the JSON telemetry decoder
 * (issue 8 section 2). Internal to codec/: dg_json_decode() tries it first
 * and runs the full decoder (json_telemetry.c) whenever it gives up.
 *
 * It handles the common shape only: one telemetry object, or an array of
 * telemetry objects, with scalar member values, strings without escapes, no
 * duplicate telemetry keys, every object valid. For such a frame it makes
 * the same sink calls and returns the same value as the full decoder; for any
 * other frame it returns DG_JSON_FAST_GIVE_UP having called nothing.
 */
#ifndef DG_JSON_FAST_H
#define DG_JSON_FAST_H

#include <stddef.h>
#include <stdint.h>

#include "../core/record.h"
#include "json_telemetry.h"

#define DG_JSON_FAST_GIVE_UP     (-2)
/* Records are parsed into a per-decoder array before any is reported (a
 * frame that fails late must not be half delivered); a frame with more
 * objects than this is left to the full decoder. 1024 x ~200 B per worker. */
#define DG_JSON_FAST_MAX_RECORDS 1024

typedef struct dg_json_fast {
    dg_record_t *rec;        /* parsed records of the current frame, grown geometrically, kept */
    size_t       cap;
} dg_json_fast_t;

/* json[0..len), whose first non-blank byte json[first] is '{' or '['.
 * Returns the number of records reported (>= 0) or DG_JSON_FAST_GIVE_UP
 * (nothing reported). max_tokens: the full decoder's token limit (a frame
 * with more JSON tokens is left to it, which refuses it). *work: bytes
 * looked at (deterministic cost, added to the decoder's work counter). */
int dg_json_fast_decode(dg_json_fast_t *f, const char *json, size_t len, size_t first,
                        size_t max_tokens, int64_t now_ms, int64_t recv_us,
                        const dg_decode_sink_t *sink, uint64_t *work);

void dg_json_fast_free(dg_json_fast_t *f);

#endif
