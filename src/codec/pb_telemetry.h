/* pb_telemetry.h - the protobuf messages of dronegate.v1 (proto/dronegate/v1/
 * telemetry.proto): DroneMessage in, ServerMessage out. Used by the gRPC
 * stream and by the dronegate.pb.v1 WebSocket subprotocol.
 *
 * Decoding lands in the same place as JSON: the same dg_decode_sink_t, the
 * same dg_record_t, the same dg_record_validate(); so one DroneMessage gives
 * exactly one callback: on_record, on_error or on_command_ack.
 *
 * Thread: stateless; any thread.
 */
#ifndef DG_PB_TELEMETRY_H
#define DG_PB_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"
#include "json_telemetry.h"

/* Decode one serialized DroneMessage. now_ms is used when timestamp_ms is 0
 * (absent in proto3); recv_us is copied into the record.
 * Returns 1 when a record was passed to on_record, 0 for a command ack or a
 * rejected message, -1 when the bytes are not a DroneMessage (on_error with
 * code "invalid_protobuf"). */
int dg_pb_decode(const uint8_t *p, size_t n, int64_t now_ms, int64_t recv_us, const dg_decode_sink_t *sink);

/* Serialize one ServerMessage into out (replacing its contents). 0 or -1. */
int dg_pb_ack(dg_buf_t *out, uint64_t seq);
int dg_pb_error(dg_buf_t *out, bool has_seq, uint64_t seq, const char *code, const char *field, const char *message);
int dg_pb_command(dg_buf_t *out, const char *id, const char *name, const char *args_json);
/* known: 1 = last_seq is set, 0 = nothing stored (last_seq absent). */
int dg_pb_session(dg_buf_t *out, int known, uint64_t last_seq);

#endif
