/* amqp_plain.c - the limit for bench_queue_amqp.sh: a plain rabbitmq-c
 * publisher with publisher confirms on the same broker, no gateway. One
 * connection, one channel in confirm mode, persistent messages of the same
 * body the gateway publishes (dg_queue_encode_json of a sample record), at
 * most WINDOW unconfirmed, for SECONDS. Prints one JSON line:
 *   {"type":..., "window":W, "acked":N, "seconds":S, "acked_per_s":R}
 *
 *   build/bench/amqp_plain HOST PORT QUEUE quorum|stream|classic SECONDS WINDOW
 */
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/timefmt.h"
#include "../src/queue/queue.h"

static void die_reply(amqp_rpc_reply_t r, const char *what)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
    fprintf(stderr, "amqp_plain: %s failed (reply type %d, %s)\n", what, r.reply_type,
            r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error) : "broker");
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: amqp_plain HOST PORT QUEUE quorum|stream|classic SECONDS WINDOW\n");
        return 2;
    }
    const char *host = argv[1], *queue = argv[3], *type = argv[4];
    int port = atoi(argv[2]);
    double secs = atof(argv[5]);
    uint64_t window = strtoull(argv[6], NULL, 10);

    amqp_connection_state_t st = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(st);
    if (amqp_socket_open(s, host, port) != AMQP_STATUS_OK) { fprintf(stderr, "amqp_plain: connect failed\n"); return 1; }
    die_reply(amqp_login(st, "/", 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
    amqp_channel_open(st, 1);
    die_reply(amqp_get_rpc_reply(st), "channel.open");
    amqp_table_entry_t e = { amqp_cstring_bytes("x-queue-type"),
                             { AMQP_FIELD_KIND_UTF8, { .bytes = amqp_cstring_bytes(type) } } };
    amqp_table_t args = { 1, &e };
    amqp_queue_declare(st, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
    die_reply(amqp_get_rpc_reply(st), "queue.declare");
    amqp_confirm_select(st, 1);
    die_reply(amqp_get_rpc_reply(st), "confirm.select");

    dg_record_t r;
    dg_record_init(&r);
    strcpy(r.drone_id, "sim-0000");
    r.drone_id_len = 8;
    r.flags = DG_REC_HAS_SEQ | DG_REC_HAS_TS | DG_REC_HAS_SPEED | DG_REC_HAS_BATTERY | DG_REC_HAS_STATUS;
    r.ts_ms = 1795000000000LL;
    r.recv_us = 1795000000100000LL;
    r.lat = 47.3977421; r.lon = 8.5455941; r.alt = 488.25; r.speed = 12.5; r.battery = 76.5;
    strcpy(r.status, "airborne");
    r.status_len = 8;

    dg_buf_t body = {0};
    uint64_t published = 0, acked = 0;
    int64_t t0 = dg_mono_ms(), end = t0 + (int64_t)(secs * 1000);
    while (dg_mono_ms() < end) {
        while (published - acked < window) {
            r.seq = ++published;
            body.len = 0;
            dg_queue_encode_json(&r, &body);
            char mid[64];
            snprintf(mid, sizeof mid, "sim-0000:%" PRIu64, r.seq);
            amqp_basic_properties_t p;
            p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
            p.content_type = amqp_cstring_bytes("application/json");
            p.delivery_mode = 2;
            p.message_id = amqp_cstring_bytes(mid);
            if (amqp_basic_publish(st, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &p,
                                   (amqp_bytes_t){ body.len, body.data }) != AMQP_STATUS_OK) {
                fprintf(stderr, "amqp_plain: publish failed\n");
                return 1;
            }
        }
        amqp_frame_t f;
        struct timeval tv = { 1, 0 };
        int rc = amqp_simple_wait_frame_noblock(st, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT) continue;
        if (rc != AMQP_STATUS_OK) { fprintf(stderr, "amqp_plain: %s\n", amqp_error_string2(rc)); return 1; }
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->multiple || a->delivery_tag == acked + 1) acked = a->delivery_tag > acked ? a->delivery_tag : acked;
        } else if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            fprintf(stderr, "amqp_plain: nack\n");
            return 1;
        }
        amqp_maybe_release_buffers(st);
    }
    double dt = (double)(dg_mono_ms() - t0) / 1000.0;
    printf("{\"type\":\"%s\",\"window\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"seconds\":%.3f,\"acked_per_s\":%.0f}\n",
           type, window, acked, dt, (double)acked / dt);
    amqp_connection_close(st, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(st);
    dg_buf_free(&body);
    return 0;
}
