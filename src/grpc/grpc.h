/* grpc.h - the gRPC uplink: service dronegate.v1.Telemetry, method Stream
 * (proto/dronegate/v1/telemetry.proto), over HTTP/2 cleartext (h2c, prior
 * knowledge: what nginx grpc_pass and Kubernetes Services speak) on
 * --grpc-listen, inside the worker event loops.
 *
 * HTTP/2 is nghttp2's (server session, fed from the worker's reads, its
 * output queued on the connection like any other bytes); the gRPC framing
 * (5-byte length prefix) and the protobuf messages are ours
 * (codec/pb_telemetry.c). Once the request headers are in, the stream is a
 * drone channel like a WebSocket one (core/ingest.c with the dg_grpc_io
 * transport): same validation, durable cumulative acks, commands, rate
 * limit, session message (ServerMessage.session first).
 *
 * One call per connection (SETTINGS_MAX_CONCURRENT_STREAMS 1): a drone is
 * one device with one channel. Status codes: UNAUTHENTICATED (token),
 * INVALID_ARGUMENT (drone-id metadata), UNIMPLEMENTED (another method,
 * compressed messages), RESOURCE_EXHAUSTED (message over --max-message,
 * rate limit, backlog full), UNAVAILABLE (shutdown drain after the acks,
 * idle timeout, store unavailable), ABORTED (a newer connection of the same
 * drone: 4409 on WebSocket). The client ending its side (half-close) ends
 * the call with OK once everything it sent is acked.
 */
#ifndef DG_GRPC_H
#define DG_GRPC_H

#include "../net/conn.h"

/* The listener's handler table for --grpc-listen connections. */
extern const dg_conn_ops_t dg_grpc_conn_ops;

/* The gRPC message framing: the length (>= 0) of the first complete
 * message in p[0..n) (its bytes at p + 5), DG_GRPC_MORE when more bytes
 * are needed, DG_GRPC_COMPRESSED when the flag byte is not 0 (compression
 * is not supported), DG_GRPC_TOO_BIG when it is longer than max (known
 * from the prefix alone). */
#define DG_GRPC_MORE       (-3)
#define DG_GRPC_COMPRESSED (-1)
#define DG_GRPC_TOO_BIG    (-2)
long dg_grpc_frame(const uint8_t *p, size_t n, size_t max);

/* Map a WebSocket close code (core/ingest.h) to a gRPC status code. */
int dg_grpc_status_of(uint16_t ws_code);

#endif
