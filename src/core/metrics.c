/* metrics.c - see metrics.h. */
#include "metrics.h"
#include "version.h"
#include "log.h"

#include <inttypes.h>

dg_metrics_s dg_metrics = { .store_name = "none" };

/* Bucket upper bounds in nanoseconds: 0.5 ms .. 10 s. */
static const uint64_t bounds_ns[DG_HIST_BUCKETS] = {
    500000ull, 1000000ull, 2500000ull, 5000000ull, 10000000ull, 25000000ull, 50000000ull,
    100000000ull, 250000000ull, 500000000ull, 1000000000ull, 2500000000ull, 5000000000ull,
    10000000000ull,
};

static int bucket_of(uint64_t ns)
{
    int i = 0;
    while (i < DG_HIST_BUCKETS && ns > bounds_ns[i]) i++;
    return i;
}

void dg_hist_observe(dg_hist_t *h, uint64_t ns)
{
    dg_inc(&h->bucket[bucket_of(ns)], 1);
    dg_inc(&h->count, 1);
    dg_inc(&h->sum_ns, ns);
}

void dg_hist_acc_observe(dg_hist_acc_t *a, uint64_t ns)
{
    a->bucket[bucket_of(ns)]++;
    a->count++;
    a->sum_ns += ns;
}

void dg_hist_acc_flush(dg_hist_t *h, dg_hist_acc_t *a)
{
    if (!a->count) return;
    for (int i = 0; i <= DG_HIST_BUCKETS; i++)
        if (a->bucket[i]) dg_inc(&h->bucket[i], a->bucket[i]);
    dg_inc(&h->count, a->count);
    dg_inc(&h->sum_ns, a->sum_ns);
    *a = (dg_hist_acc_t){ 0 };
}

void dg_metrics_close(uint16_t code)
{
    int i;
    switch (code) {
    case 1000: i = DG_CL_1000; break;
    case 1001: i = DG_CL_1001; break;
    case 1002: i = DG_CL_1002; break;
    case 1003: i = DG_CL_1003; break;
    case 1007: i = DG_CL_1007; break;
    case 1008: i = DG_CL_1008; break;
    case 1009: i = DG_CL_1009; break;
    case 1011: i = DG_CL_1011; break;
    case 4409: i = DG_CL_4409; break;
    default:   i = DG_CL_OTHER; break;
    }
    dg_inc(&dg_metrics.ws_closes[i], 1);
}

static uint64_t ld(dg_counter_t *c) { return atomic_load_explicit(c, memory_order_relaxed); }
static int64_t  ldg(dg_gauge_t *g) { return atomic_load_explicit(g, memory_order_relaxed); }

static int hist(dg_buf_t *o, const char *name, const char *help, dg_hist_t *h)
{
    int rc = dg_buf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i <= DG_HIST_BUCKETS; i++) {
        cum += ld(&h->bucket[i]);
        if (i < DG_HIST_BUCKETS)
            rc |= dg_buf_printf(o, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, (double)bounds_ns[i] / 1e9, cum);
        else
            rc |= dg_buf_printf(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
    }
    rc |= dg_buf_printf(o, "%s_sum %.9f\n%s_count %" PRIu64 "\n", name, (double)ld(&h->sum_ns) / 1e9,
                        name, cum);
    return rc;
}

int dg_metrics_render(dg_buf_t *o)
{
    dg_metrics_s *m = &dg_metrics;
    static const char *tr[DG_TR__N] = { "websocket", "http", "live", "grpc" };
    static const char *rej[DG_REJ__N] = { "invalid_json", "invalid_field", "rate_limit", "too_big", "binary_frame", "seq_reused", "invalid_protobuf" };
    static const char *crej[DG_CREJ__N] = { "max_connections", "handshake_timeout", "auth", "bad_drone_id", "bad_request" };
    static const char *cl[DG_CL__N] = { "1000", "1001", "1002", "1003", "1007", "1008", "1009", "1011", "4409", "other" };
    static const char *cmd[DG_CMD__N] = { "pending", "sent", "accepted", "rejected", "done", "expired" };
    int rc = 0;

    rc |= dg_buf_puts(o, "# HELP dronegate_connections Open connections by transport.\n# TYPE dronegate_connections gauge\n");
    for (int i = 0; i < DG_TR__N; i++)
        rc |= dg_buf_printf(o, "dronegate_connections{transport=\"%s\"} %" PRId64 "\n", tr[i], ldg(&m->connections[i]));
    rc |= dg_buf_puts(o, "# HELP dronegate_messages_received_total Telemetry messages received.\n# TYPE dronegate_messages_received_total counter\n");
    rc |= dg_buf_printf(o, "dronegate_messages_received_total{transport=\"websocket\",format=\"json\"} %" PRIu64 "\n", ld(&m->received_json));
    rc |= dg_buf_printf(o, "dronegate_messages_received_total{transport=\"websocket\",format=\"protobuf\"} %" PRIu64 "\n", ld(&m->received_ws_pb));
    rc |= dg_buf_printf(o, "dronegate_messages_received_total{transport=\"grpc\",format=\"protobuf\"} %" PRIu64 "\n", ld(&m->received_grpc_pb));
    rc |= dg_buf_printf(o, "dronegate_messages_received_total{transport=\"udp\",format=\"mavlink\"} %" PRIu64 "\n", ld(&m->received_udp_mav));
    rc |= dg_buf_printf(o, "dronegate_messages_received_total{transport=\"websocket\",format=\"mavlink\"} %" PRIu64 "\n", ld(&m->received_ws_mav));
    static const char *mavp[DG_MAVP__N] = { "ok", "bad_crc", "unknown_message", "truncated", "bad_incompat_flags",
                                            "signed", "garbage", "no_vehicle", "vehicles_full", "pipeline_paused",
                                            "unsigned", "bad_signature", "replayed" };
    rc |= dg_buf_puts(o, "# HELP dronegate_mavlink_packets_total MAVLink packets (and garbage runs) received, by outcome.\n# TYPE dronegate_mavlink_packets_total counter\n");
    for (int i = 0; i < DG_MAVP__N; i++)
        rc |= dg_buf_printf(o, "dronegate_mavlink_packets_total{result=\"%s\"} %" PRIu64 "\n", mavp[i], ld(&m->mav_packets[i]));
    rc |= dg_buf_puts(o, "# HELP dronegate_mavlink_vehicles MAVLink/UDP vehicles online (heartbeat within the timeout).\n# TYPE dronegate_mavlink_vehicles gauge\n");
    rc |= dg_buf_printf(o, "dronegate_mavlink_vehicles %" PRId64 "\n", ldg(&m->mav_vehicles));
    rc |= dg_buf_puts(o, "# HELP dronegate_mavlink_forwarded_total MAVLink datagrams relayed by --mavlink-forward.\n# TYPE dronegate_mavlink_forwarded_total counter\n");
    rc |= dg_buf_printf(o, "dronegate_mavlink_forwarded_total{direction=\"to_gcs\"} %" PRIu64 "\n", ld(&m->mav_forwarded[0]));
    rc |= dg_buf_printf(o, "dronegate_mavlink_forwarded_total{direction=\"to_vehicle\"} %" PRIu64 "\n", ld(&m->mav_forwarded[1]));
    rc |= dg_buf_puts(o, "# HELP dronegate_messages_rejected_total Messages rejected, by reason.\n# TYPE dronegate_messages_rejected_total counter\n");
    for (int i = 0; i < DG_REJ__N; i++)
        rc |= dg_buf_printf(o, "dronegate_messages_rejected_total{reason=\"%s\"} %" PRIu64 "\n", rej[i], ld(&m->rejected[i]));
    rc |= dg_buf_puts(o, "# HELP dronegate_messages_stored_total Messages durably stored (acknowledged).\n# TYPE dronegate_messages_stored_total counter\n");
    rc |= dg_buf_printf(o, "dronegate_messages_stored_total{store=\"%s\"} %" PRIu64 "\n", m->store_name, ld(&m->stored));
    rc |= dg_buf_puts(o, "# HELP dronegate_store_errors_total Failed store transactions (retried).\n# TYPE dronegate_store_errors_total counter\n");
    rc |= dg_buf_printf(o, "dronegate_store_errors_total %" PRIu64 "\n", ld(&m->store_errors));
    rc |= hist(o, "dronegate_store_batch_seconds", "Duration of one store transaction.", &m->store_batch);
    rc |= hist(o, "dronegate_ingest_latency_seconds", "Receive to durable, per message.", &m->ingest_latency);
    rc |= dg_buf_puts(o, "# HELP dronegate_queue_published_total Records the message broker confirmed (--queue).\n# TYPE dronegate_queue_published_total counter\n");
    rc |= dg_buf_printf(o, "dronegate_queue_published_total %" PRIu64 "\n", ld(&m->queue_published));
    rc |= dg_buf_puts(o, "# HELP dronegate_queue_depth Messages received and not yet durable.\n# TYPE dronegate_queue_depth gauge\n");
    rc |= dg_buf_printf(o, "dronegate_queue_depth %" PRId64 "\n", ldg(&m->queue_depth));
    rc |= dg_buf_puts(o, "# HELP dronegate_backlog_records Records waiting for the store (memory and spool) while it fails or lags.\n# TYPE dronegate_backlog_records gauge\n");
    rc |= dg_buf_printf(o, "dronegate_backlog_records %" PRId64 "\n", ldg(&m->backlog_records));
    rc |= dg_buf_puts(o, "# HELP dronegate_spool_bytes Bytes in the on-disk spool.\n# TYPE dronegate_spool_bytes gauge\n");
    rc |= dg_buf_printf(o, "dronegate_spool_bytes %" PRId64 "\n", ldg(&m->spool_bytes));
    rc |= dg_buf_puts(o, "# HELP dronegate_commands_total Commands by status transition.\n# TYPE dronegate_commands_total counter\n");
    for (int i = 0; i < DG_CMD__N; i++)
        rc |= dg_buf_printf(o, "dronegate_commands_total{status=\"%s\"} %" PRIu64 "\n", cmd[i], ld(&m->commands[i]));
    rc |= dg_buf_puts(o, "# HELP dronegate_ws_closes_total WebSocket connections closed, by close code.\n# TYPE dronegate_ws_closes_total counter\n");
    for (int i = 0; i < DG_CL__N; i++)
        rc |= dg_buf_printf(o, "dronegate_ws_closes_total{code=\"%s\"} %" PRIu64 "\n", cl[i], ld(&m->ws_closes[i]));
    rc |= dg_buf_puts(o, "# HELP dronegate_connections_rejected_total Connections refused before or at the upgrade.\n# TYPE dronegate_connections_rejected_total counter\n");
    for (int i = 0; i < DG_CREJ__N; i++)
        rc |= dg_buf_printf(o, "dronegate_connections_rejected_total{reason=\"%s\"} %" PRIu64 "\n", crej[i], ld(&m->conn_rejected[i]));
    rc |= dg_buf_puts(o, "# HELP dronegate_acks_sent_total Ack messages sent to drones.\n# TYPE dronegate_acks_sent_total counter\n");
    rc |= dg_buf_printf(o, "dronegate_acks_sent_total %" PRIu64 "\n", ld(&m->acks_sent));
    rc |= dg_buf_puts(o, "# HELP dronegate_http_requests_total HTTP requests served.\n# TYPE dronegate_http_requests_total counter\n");
    rc |= dg_buf_printf(o, "dronegate_http_requests_total %" PRIu64 "\n", ld(&m->http_requests));
    rc |= dg_buf_puts(o, "# HELP dronegate_pipeline_paused_total Times a worker paused reading because the store fell behind.\n# TYPE dronegate_pipeline_paused_total counter\n");
    rc |= dg_buf_printf(o, "dronegate_pipeline_paused_total %" PRIu64 "\n", ld(&m->pipeline_paused));
    rc |= dg_buf_puts(o, "# HELP dronegate_live_skipped_total Live telemetry events replaced by a newer one for a slow watcher (conflation).\n# TYPE dronegate_live_skipped_total counter\n");
    rc |= dg_buf_printf(o, "dronegate_live_skipped_total %" PRIu64 "\n", ld(&m->live_skipped));
    rc |= dg_buf_puts(o, "# HELP dronegate_build_info The running build (always 1).\n# TYPE dronegate_build_info gauge\n");
    if (dg_instance[0])   /* --instance: which gateway of a fleet this is */
        rc |= dg_buf_printf(o, "dronegate_build_info{version=\"%s\",commit=\"%s\",instance=\"%s\"} 1\n", DG_VERSION, DG_COMMIT, dg_instance);
    else
        rc |= dg_buf_printf(o, "dronegate_build_info{version=\"%s\",commit=\"%s\"} 1\n", DG_VERSION, DG_COMMIT);
    return rc ? -12 : 0;
}
