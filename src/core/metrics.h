/* metrics.h - the gateway's Prometheus metrics (names are part of the
 * contract). Plain atomic counters updated with relaxed ordering from any
 * thread; rendered in text exposition format for GET /metrics.
 *
 * One process-wide instance (dg_metrics): metrics are the one piece of state
 * every layer writes to, and a registry passed everywhere would add nothing
 * but parameters. Label sets are fixed enums, so nothing allocates.
 */
#ifndef DG_METRICS_H
#define DG_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include "buf.h"

typedef _Atomic uint64_t dg_counter_t;
typedef _Atomic int64_t  dg_gauge_t;

#define DG_HIST_BUCKETS 14
typedef struct dg_hist {
    dg_counter_t bucket[DG_HIST_BUCKETS + 1]; /* last = +Inf */
    dg_counter_t count;
    dg_counter_t sum_ns;
} dg_hist_t;

enum dg_transport { DG_TR_WEBSOCKET, DG_TR_HTTP, DG_TR_LIVE, DG_TR_GRPC, DG_TR__N };
enum dg_reject    { DG_REJ_INVALID_JSON, DG_REJ_INVALID_FIELD, DG_REJ_RATE_LIMIT, DG_REJ_TOO_BIG,
                    DG_REJ_BINARY, DG_REJ_SEQ_REUSED, DG_REJ_INVALID_PROTOBUF, DG_REJ__N };
enum dg_connrej   { DG_CREJ_MAX_CONN, DG_CREJ_HANDSHAKE_TIMEOUT, DG_CREJ_AUTH, DG_CREJ_BAD_ID,
                    DG_CREJ_BAD_REQUEST, DG_CREJ__N };
enum dg_close     { DG_CL_1000, DG_CL_1001, DG_CL_1002, DG_CL_1003, DG_CL_1007, DG_CL_1008,
                    DG_CL_1009, DG_CL_1011, DG_CL_4409, DG_CL_OTHER, DG_CL__N };
/* MAVLink packets (UDP and the mavlink2 WebSocket subprotocol), by outcome */
enum dg_mavpkt    { DG_MAVP_OK, DG_MAVP_BAD_CRC, DG_MAVP_UNKNOWN, DG_MAVP_TRUNCATED, DG_MAVP_BAD_INCOMPAT,
                    DG_MAVP_SIGNED, DG_MAVP_GARBAGE, DG_MAVP_NO_VEHICLE, DG_MAVP_VEHICLES_FULL,
                    DG_MAVP_PAUSED, DG_MAVP_UNSIGNED, DG_MAVP_BAD_SIGNATURE, DG_MAVP_REPLAYED, DG_MAVP__N };
enum dg_cmdstat   { DG_CMD_PENDING, DG_CMD_SENT, DG_CMD_ACCEPTED, DG_CMD_REJECTED, DG_CMD_DONE,
                    DG_CMD_EXPIRED, DG_CMD__N };

typedef struct dg_metrics_t {
    dg_gauge_t   connections[DG_TR__N];
    dg_counter_t received_json;            /* transport=websocket, format=json */
    dg_counter_t received_ws_pb;           /* transport=websocket, format=protobuf */
    dg_counter_t received_grpc_pb;         /* transport=grpc, format=protobuf */
    dg_counter_t received_udp_mav;         /* transport=udp, format=mavlink: rows made of MAVLink packets */
    dg_counter_t received_ws_mav;          /* transport=websocket, format=mavlink */
    dg_counter_t mav_packets[DG_MAVP__N];  /* dronegate_mavlink_packets_total{result} */
    dg_gauge_t   mav_vehicles;             /* MAVLink/UDP vehicles online */
    dg_counter_t mav_forwarded[2];         /* datagrams relayed: [0] to ground stations, [1] to vehicles */
    dg_counter_t rejected[DG_REJ__N];
    dg_counter_t stored;                   /* label store = backend scheme */
    dg_counter_t store_errors;
    dg_counter_t conn_rejected[DG_CREJ__N];
    dg_counter_t ws_closes[DG_CL__N];
    dg_counter_t acks_sent;
    dg_counter_t commands[DG_CMD__N];
    dg_counter_t http_requests;
    dg_counter_t pipeline_paused;
    dg_counter_t live_skipped;             /* live events conflated away for slow watchers */
    dg_counter_t live_events;              /* live events published */          /* times a worker paused reads (store backpressure) */
    dg_counter_t queue_published;          /* records the broker confirmed (--queue) */
    dg_gauge_t   queue_depth;              /* records received, not yet durable */
    dg_gauge_t   backlog_records;          /* records held by the writer (memory + spool) */
    dg_gauge_t   spool_bytes;              /* bytes in the on-disk spool */
    dg_hist_t    store_batch;              /* seconds per store transaction */
    dg_hist_t    ingest_latency;           /* receive -> durable, seconds */
    const char  *store_name;
} dg_metrics_s;

extern dg_metrics_s dg_metrics;

static inline void dg_inc(dg_counter_t *c, uint64_t n) { atomic_fetch_add_explicit(c, n, memory_order_relaxed); }
static inline void dg_gauge_add(dg_gauge_t *g, int64_t n) { atomic_fetch_add_explicit(g, n, memory_order_relaxed); }

/* Record one observation of `ns` nanoseconds. */
void dg_hist_observe(dg_hist_t *h, uint64_t ns);

/* A thread's own, non-atomic tally of observations, added to a shared
 * histogram at once: one locked add per bucket per batch instead of three
 * per observation (the writer observes every record it commits; per record,
 * those shared cache lines cost as much as the rest of the null store). */
typedef struct dg_hist_acc {
    uint64_t bucket[DG_HIST_BUCKETS + 1];
    uint64_t count, sum_ns;
} dg_hist_acc_t;
void dg_hist_acc_observe(dg_hist_acc_t *a, uint64_t ns);
/* Add a's tally to h and clear a. */
void dg_hist_acc_flush(dg_hist_t *h, dg_hist_acc_t *a);
/* Map a close code to its counter. */
void dg_metrics_close(uint16_t code);
/* Render everything in Prometheus text format. 0 or -ENOMEM. */
int  dg_metrics_render(dg_buf_t *out);

#endif
