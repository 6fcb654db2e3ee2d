#!/usr/bin/env bash
# mutants.sh [ID...] - one-line mutants of the lines that carry dronegate's
# promises, each run against the tests that must catch it.
#
#   make mutants                 every mutant (not part of `make test`)
#   scripts/mutants.sh ack-durable auth-len      only these
#   MUTANTS_LIST=1 scripts/mutants.sh            print the table and exit
#
# How: the tree (sources, tests AND build/, with timestamps: cp -a) is copied
# to a scratch directory once, so a mutant rebuilds one object and relinks.
# Each mutant names a file, an exact text PATTERN that must occur exactly once
# in it (never a line number: the files keep changing), the replacement, and
# its killers:
#   unit:NAME             build/tests/NAME (tests/unit/NAME.c) must fail
#   py:FILE[::TEST] [-k EXPR]  pytest on tests/integration/FILE must fail
# First every killer runs on the unmutated copy (it must pass: a red
# baseline kills everything and proves nothing). Then per mutant: apply,
# build, run the killers until one fails (killed), restore.
#
# Outcomes: killed | SURVIVED (every killer passed) | STALE (the pattern no
# longer occurs exactly once: fix the table) | NOBUILD (the mutant does not
# compile: fix the table). Exit status 0 only when every mutant was killed.
# docs/tests-notes.md lists the mutants and what kills each.
#
# Environment: MUTANTS_TIMEOUT (s per killer, default 180: a killer that
# times out kills its mutant — a stall is what the depth-prescan mutant causes), MUTANTS_KEEP=1
# keeps the scratch copy, MUTANTS_JOBS (make -j, default 2).
set -u
cd "$(dirname "$0")/.."
exec /usr/bin/python3 - "$@" <<'PY'
import os, shutil, subprocess, sys, tempfile, time

# (id, file, pattern, replacement, [killers], what it breaks)
M = [
    ("ack-durable", "src/core/ingest.c",
     "if (b->status != 0) return;", "if (0) return;",
     ["py:test_outage.py::test_outage_spools_then_drains_exactly_once"],
     "ack after commit: spooled (not durable) batches acked"),
    ("ack-latency", "src/pipeline/writer.c",
     "int64_t wait_ms = w->commit_interval_ms - (now - w->last_commit_ms);",
     "int64_t wait_ms = 20 * w->commit_interval_ms - (now - w->last_commit_ms);",
     ["py:test_promises.py::test_ack_latency_bounded_by_measured_baseline"],
     "a quiet drone's ack waits 20 group-commit intervals"),
    ("metric-queue", "src/net/worker.c",
     "w->depth_pending++;", "w->depth_pending += 0;",
     ["py:test_promises.py::test_queue_depth_and_acks_sent_follow_the_load"],
     "dronegate_queue_depth does not count received records"),
    ("metric-acks", "src/core/ingest.c",
     "            acks++;", "            acks += 2;",
     ["py:test_promises.py::test_queue_depth_and_acks_sent_follow_the_load"],
     "dronegate_acks_sent_total miscounts"),
    ("metric-paused", "src/net/worker.c",
     "dg_inc(&dg_metrics.pipeline_paused, 1);", "(void)0;",
     ["py:test_promises.py::test_pipeline_paused_counts_a_full_pool"],
     "dronegate_pipeline_paused_total never moves"),
    ("close-fin-early", "src/net/worker.c",
     "if (!c->ops->on_linger || c->ops->on_linger(c, NULL, 0)) {", "if (1) {",
     ["py:test_lifecycle.py::test_server_close_waits_for_the_drone_close_frame"],
     "FIN right after our close frame (peers still sending fail with 1006)"),
    ("pg-split", "src/store/postgres.c",
     "if (np <= 1) return write_part(s, w0, recs, n, NULL, 0, err, errlen);",
     "if (1) return write_part(s, w0, recs, n, NULL, 0, err, errlen);",
     ["py:test_store_postgres_writers.py::test_parallel_writers_split_batches_and_survive_a_killed_connection"],
     "writers=N never splits a batch (one connection writes everything)"),
    ("grpc-reused-settles", "src/grpc/grpc.c",
     "return d->has_rej && d->rej_max >= d->max_in && !ack_owed;",
     "return false;",
     ["py:test_grpc.py::test_half_close_after_a_rejected_reused_seq_ends_ok"],
     "a call whose last seq is a rejected reused one waits for the idle timeout"),
    ("client-dns-thread", "libclient/client.c",
     "if ((c->lookup = lookup_start(c))) return;",
     "(void)0;",
     ["unit:test_client_conn"],
     "a host name is resolved inside dg_client_process (blocks the application's loop)"),
    ("read-fold-order", "src/core/ingest.c",
     "!((rec->flags & DG_REC_HAS_SEQ) && (rx_last.flags & DG_REC_HAS_SEQ))))",
     "0))",
     ["py:test_fleet.py::test_latest_state_of_one_read_is_the_one_of_its_messages_in_order"],
     "one read's records folded for the registry without the seq rule's order (a record without seq lost)"),
    ("latest-pg-seq", "src/store/postgres.c",
     '"        (SELECT max(seq) FROM telemetry_seq WHERE drone_id = ids.id AND seq >= 0))))"',
     '"        (SELECT min(seq) FROM telemetry_seq WHERE drone_id = ids.id AND seq >= 0))))"',
     ["py:test_store_seq.py -k latest_follows and postgresql"],
     "PostgreSQL latest() (state restored at start) is not the highest seq"),
    ("latest-influx-seq", "src/store/influxdb.c",
     '"SELECT max(seq) AS seq, " LATEST_FIELDS ", received_at FROM telemetry WHERE seq >= 0 GROUP BY drone_id",',
     '"SELECT min(seq) AS seq, " LATEST_FIELDS ", received_at FROM telemetry WHERE seq >= 0 GROUP BY drone_id",',
     ["py:test_store_seq.py -k latest_follows and influxdb"],
     "InfluxDB latest() (state restored at start) is not the highest seq"),
    ("metric-reused", "src/pipeline/writer.c",
     "else reused++;   /* not stored", "else stored++;   /* not stored",
     ["py:test_store_seq.py::test_gateway_reports_seq_reused_and_acks_the_rest -k sqlite"],
     "reused seqs counted as stored, not as rejected"),
    ("dedup", "src/store/sqlite.c",
     '" ON CONFLICT(drone_id, seq) DO NOTHING";', '"";',
     ["py:test_telemetry.py::test_redelivery_is_stored_once"],
     "redelivery of a stored (drone_id, seq) fails the batch"),
    ("auth-len", "src/core/auth.c",
     "if (!token || token_len != DG_TOKEN_LEN) return false;", "if (!token || token_len < DG_TOKEN_LEN) return false;",
     ["unit:test_auth", "py:test_promises.py::test_drone_token_edges_401"],
     "a valid drone token with characters appended accepted"),
    ("auth-cmp", "src/core/auth.c",
     "return CRYPTO_memcmp(want, token, DG_TOKEN_LEN) == 0;", "return CRYPTO_memcmp(want, token, DG_TOKEN_LEN - 1) == 0;",
     ["unit:test_auth"],
     "the last token character not compared"),
    ("operator-empty", "src/core/auth.c",
     "if (!given || !want || want_len == 0) return false;", "if (!given || !want) return false;",
     ["py:test_promises.py::test_operator_token_edges_401"],
     "an empty operator token matches an unset read token"),
    ("operator-prefix", "src/core/auth.c",
     "SHA256((const unsigned char *)given, given_len, dg);",
     "SHA256((const unsigned char *)given, want_len <= given_len ? want_len : given_len, dg); given_len = want_len <= given_len ? want_len : given_len;",
     ["py:test_promises.py::test_operator_token_edges_401"],
     "an operator token with characters appended accepted"),
    ("query-bound", "src/core/strutil.c",
     "if (o + 1 >= cap) return -1;", "if (o >= cap) return -1;",
     ["unit:test_http"],
     "query value that fills the buffer: NUL written past it"),
    ("msg-size", "src/ws/session.c",
     "if (s->frame.len > s->max_message - s->msg_len) return DG_WS_CLOSE_TOO_BIG;",
     "if (s->frame.len > s->max_message + 1 - s->msg_len) return DG_WS_CLOSE_TOO_BIG;",
     ["py:test_promises.py::test_default_message_limit_1mib"],
     "a message one byte over the limit accepted"),
    ("msg-default", "src/core/config.c",
     "c->max_message = 1048576;", "c->max_message = 2097152;",
     ["unit:test_config", "py:test_promises.py::test_default_message_limit_1mib"],
     "default message limit not 1 MiB"),
    ("rate-limit", "src/core/ingest.c",
     "if (D(c)->tokens < 1.0) return false;", "if (D(c)->tokens < -1e12) return false;",
     ["py:test_promises.py::test_default_rate_limit_10000"],
     "the per-drone rate limit never trips"),
    ("rate-default", "src/core/config.c",
     "c->max_msg_rate = 10000;", "c->max_msg_rate = 100000;",
     ["unit:test_config", "py:test_promises.py::test_default_rate_limit_10000"],
     "default rate limit not 10,000 msgs/s"),
    ("utf8", "src/core/utf8.c",
     "16,32,16,16,16,16,16,16,16,32,16,16,16,16,16,16, /* s5 after ed",
     "16,32,16,16,16,16,16,32,16,32,16,16,16,16,16,16, /* s5 after ed",
     ["unit:test_ws"],
     "UTF-16 surrogates (ED A0..BF ..) accepted as UTF-8"),
    ("close-code", "src/ws/frame.c",
     "(code >= 3000 && code <= 4999);", "(code >= 3000 && code <= 5000);",
     ["unit:test_ws"],
     "close code 5000 accepted"),
    ("drain-wait", "src/net/worker.c",
     "if (w->inflight > 0 && !expired) return;", "if (0 && w->inflight > 0 && !expired) return;",
     ["py:test_lifecycle.py::test_drain_refuses_new_connections_and_readyz"],
     "the drain closes drones before what they sent is durable"),
    ("drain-listener", "src/net/worker.c",
     "    listeners_stop(w, true);", "    listeners_stop(w, false);",
     ["py:test_lifecycle.py::test_drain_refuses_new_connections_and_readyz"],
     "the listener stays open during the drain"),
    ("drain-upgrade", "src/http/http.c",
     "if (c->w->draining) { dg_http_error(c, 503, \"server is shutting down\"); return; }\n        upgrade(",
     "upgrade(",
     ["py:test_lifecycle.py::test_drain_refuses_new_connections_and_readyz"],
     "a drone upgrade accepted during the drain"),
    ("drain-readyz", "src/http/api.c",
     "if (atomic_load(&srv->draining)) { dg_http_respond(c, 503,", "if (0) { dg_http_respond(c, 503,",
     ["py:test_lifecycle.py::test_drain_refuses_new_connections_and_readyz"],
     "/readyz does not say draining"),
    ("spool-replay", "src/pipeline/writer.c",
     "if (w->ops->write_batch(w->store, w->replay, (size_t)n, err, sizeof err) < 0) {", "if (0) {",
     ["py:test_promises.py::test_spool_replayed_at_start_after_crash"],
     "a spool left by a crash is not replayed at start"),
    ("origin", "src/http/http.c",
     "if (o[0] && has_token(cfg->allowed_origins, o)) return true;", "return true;",
     ["py:test_promises.py::test_allowed_origins"],
     "any browser Origin allowed"),
    ("origin-list", "src/http/http.c",
     "if (o[0] && has_token(cfg->allowed_origins, o)) return true;", "",
     ["py:test_promises.py::test_allowed_origins"],
     "--allowed-origins ignored"),
    ("fsync", "src/store/sqlite.c",
     'cfg && cfg->fsync ? "PRAGMA synchronous = FULL"', 'cfg && 0 ? "PRAGMA synchronous = FULL"',
     ["py:test_promises.py::test_fsync_option_fsyncs_every_commit"],
     "--fsync does not fsync"),
    ("limit-max", "src/http/api.c",
     "#define DG_MAX_LIMIT     100000", "#define DG_MAX_LIMIT     1000000",
     ["py:test_promises.py::test_history_limit_over_100000"],
     "limit over 100,000 accepted"),
    ("pending-cmd", "src/core/ingest.c",
     "for (size_t i = 0; i < np; i++) dg_ingest_send_command(c, &pend[i]);", "(void)0;",
     ["py:test_promises.py::test_pending_command_delivered_on_reconnect"],
     "pending commands not delivered when the drone connects"),
    ("maxconn-default", "src/core/main.c",
     "(long)rl.rlim_cur - 128 : 1024;", "(long)rl.rlim_cur - 64 : 1024;",
     ["py:test_promises.py::test_default_max_connections_is_nofile_less_128"],
     "default max connections not the open-file limit less 128"),
    ("out-max", "src/net/worker.c",
     "#define DG_OUT_MAX   (8 * 1024 * 1024)", "#define DG_OUT_MAX   (64 * 1024 * 1024)",
     ["py:test_promises.py::test_unread_output_over_8mib_dropped"],
     "unread output not dropped at 8 MiB"),
    # ---- this round (issues 8 and 15): the fixes that keep an ack honest
    ("seq-reused", "src/core/ingest.c",
     "if (r->flags & DG_REC_REJECTED_REUSED) {", "if (0) {",
     ["py:test_store_seq.py::test_gateway_reports_seq_reused_and_acks_the_rest -k sqlite"],
     "a reused seq (not stored) is acked"),
    ("ts-range", "src/codec/validate.c",
     "if (r->ts_ms < DG__TS_MIN || r->ts_ms > DG__TS_MAX)", "if (r->ts_ms < DG__TS_MIN)",
     ["unit:test_codec"],
     "timestamps after 2262-04-11 accepted (a store cannot hold them)"),
    ("depth-prescan", "src/codec/json_telemetry.c",
     "if (depth > limit) { ps->deep_at = i; goto out; }", "(void)limit;",
     ["unit:test_codec"],
     "deep nesting reaches jsmn (quadratic: a worker stalls)"),
    ("session-last-seq", "src/core/ingest.c",
     "    if (gr) dg_registry_raise_last_seq(w->srv->registry, gr->drone_id, gr->drone_id_len, gmax);\n}",
     "    (void)gmax;\n}",
     ["py:test_net_hardening.py::test_session_message_first_last_seq_null_then_stored"],
     "the session message's last_seq lags what is stored"),
    ("cmd-expire-start", "src/core/main.c",
     "if (c->created_ms < rs->since_ms) {", "if (0) {",
     ["py:test_command_restart.py::test_overdue_command_is_not_taken_back"],
     "a command that timed out while the gateway was down is taken back (expiry from restart)"),
    ("mav-crc", "src/mavlink/mavlink.c",
     "if (crc != wire) return DG_MAV_BAD_CRC;", "(void)wire;",
     ["unit:test_mavlink"],
     "MAVLink frames with a bad CRC accepted"),
    ("mav-incompat", "src/mavlink/mavlink.c",
     "if (f->incompat & ~DG_MAV_IFLAG_SIGNED) return DG_MAV_BAD_INCOMPAT;", "",
     ["unit:test_mavlink"],
     "MAVLink frames with unknown incompat flags accepted"),
    ("queue-drone-id", "src/queue/record_json.c",
     "if (!dg_drone_id_valid(ids, idn)) {", "if (0) {",
     ["unit:test_queue_record"],
     "a queue message with an invalid drone id reaches the store"),
    ("fleet-notify-other", "src/fleet/fleet.c",
     "if (strcmp(inst, f->instance)) return;   /* another gateway's drone */", "if (0) return;",
     ["py:test_fleet_commands.py::test_command_posted_to_one_gateway_reaches_drone_on_another"],
     "a gateway takes commands announced for another gateway's drones"),
    ("fleet-offline-any", "src/fleet/fleet.c",
     "if (!inst[0] || !strcmp(inst, f->instance)) {", "if (1) {",
     ["py:test_fleet_commands.py::test_command_posted_to_one_gateway_reaches_drone_on_another"],
     "a command for a drone held by another gateway is refused as offline"),
    ("fleet-moved-ignored", "src/fleet/fleet.c",
     "if (strcmp(inst, f->instance)) return;   /* another gateway let it go */", "return;",
     ["py:test_fleet_commands.py::test_drone_that_moves_to_another_gateway_is_closed_4409_on_the_old_one"],
     "a drone that moved to another gateway keeps its old connection (no 4409 across the fleet)"),
    ("fleet-moved-wrong", "src/fleet/fleet.c",
     "if (strcmp(inst, f->instance)) return;   /* another gateway let it go */",
     "if (!strcmp(inst, f->instance)) return;",
     ["py:test_fleet_commands.py::test_drone_that_moves_to_another_gateway_is_closed_4409_on_the_old_one"],
     "the gateway that did not hold the drone acts on its move"),
    ("fleet-view-skip", "src/fleet/fleet.c",
     "if (ok && f->xmin[0]) {", "if (0) {",
     ["py:test_fleet_view.py::test_drone_on_one_gateway_is_listed_stated_and_streamed_by_another"],
     "other gateways' drone states never read (no fleet-wide state or live telemetry)"),
    ("fleet-presence-own", "src/fleet/fleet.c",
     "if (!strcmp(inst, f->instance)) return;   /* our own */", "return;",
     ["py:test_fleet_view.py::test_drone_on_one_gateway_is_listed_stated_and_streamed_by_another"],
     "presence notifications of other gateways ignored (their drones never online here)"),
    ("fleet-reset-ignored", "src/fleet/fleet.c",
     "if (k == 2) emit(f, FE_RESET, in);", "if (k == 2) {}",
     ["py:test_fleet_view.py::test_gateway_that_stops_takes_its_drones_offline_everywhere"],
     "a gateway that stops leaves its drones online on the others"),
    ("registry-remote-online", "src/core/registry.c",
     "o->online = d->online || d->remote;", "o->online = d->online;",
     ["unit:test_registry"],
     "a drone held by another gateway shows offline"),
    ("grpc-half-close", "src/grpc/grpc.c",
     "if (!settled(c)) return;", "",
     ["py:test_grpc.py::test_stream_session_acks_errors_then_ok_after_half_close"],
     "a gRPC call that the client half-closed ends OK before everything it sent is acked"),
    ("grpc-auth", "src/grpc/grpc.c",
     "if (!ok) {\n            reject(c, ST_UNAUTHENTICATED", "if (0) {\n            reject(c, ST_UNAUTHENTICATED",
     ["py:test_grpc.py::test_call_errors_are_grpc_status_codes"],
     "gRPC calls with a wrong token are accepted"),
    ("grpc-empty-msg", "src/grpc/grpc.c",
     "return n - 5 >= len ? (long)len : DG_GRPC_MORE;", "return n - 5 >= len && len ? (long)len : DG_GRPC_MORE;",
     ["unit:test_grpc", "py:test_grpc.py::test_stream_session_acks_errors_then_ok_after_half_close"],
     "an empty gRPC message stalls the call (taken as incomplete)"),
    ("latest-of-sqlite", "src/store/sqlite.c",
     "\"  COALESCE((SELECT rowid FROM telemetry WHERE drone_id = ?1 AND seq < 0 ORDER BY seq DESC LIMIT 1),\"",
     "\"  COALESCE(\"",
     ["py:test_store_seq.py::test_latest_follows_the_highest_seq_not_the_newest_timestamp"],
     "the one-drone latest read ignores seqs >= 2^63 (uint64 order)"),
    ("api-evicted-404", "src/http/api.c",
     "if (!c->w->srv->store_ops->latest_of) { dg_http_error(c, 404, \"unknown drone\"); return; }",
     "{ dg_http_error(c, 404, \"unknown drone\"); return; }",
     ["py:test_fleet.py::test_many_drones_then_offline_bound_keeps_online_ones"],
     "a drone evicted from memory answers 404 although the store has it"),
    # --- mavlink (issue 11) ---
    ("mav-signature", "src/mavlink/endpoint.c",
     "if (!ep->has_key[f->sysid] || !dg_mav_sig_ok(f, ep->keys[f->sysid])) {", "if (!ep->has_key[f->sysid]) {",
     ["py:test_mavlink.py::test_signing_required_per_vehicle_keys"],
     "MAVLink packets signed with the wrong key accepted"),
    ("mav-replay", "src/mavlink/endpoint.c",
     "if (f->sig_ts <= v->streams[i].ts) goto replayed;", "(void)0;",
     ["py:test_mavlink.py::test_signing_required_per_vehicle_keys"],
     "a replayed signed MAVLink packet stored again"),
    ("mav-offline", "src/mavlink/endpoint.c",
     "if (now - v->last_hb_ms >= ep->offline_ms) {", "if (0) {",
     ["py:test_mavlink.py::test_vehicle_rows_live_gcs_heartbeat_offline"],
     "a MAVLink vehicle that stopped sending heartbeats stays online"),
    ("mav-forward-stranger", "src/mavlink/endpoint.c",
     "if (!known) return;", "(void)known;",
     ["py:test_mavlink.py::test_forward_to_ground_station_and_back"],
     "anyone can inject packets to the vehicles through the --mavlink-forward socket"),
    ("mav-confirmation", "src/mavlink/endpoint.c",
     "k->out.payload[32] = k->tries;", "k->out.payload[32] = 0;",
     ["py:test_mavlink.py::test_commands_retransmitted_until_command_ack"],
     "COMMAND_LONG retransmissions without the confirmation counter"),
    # --- grpc (issue 10: flow control, keepalive) ---
    ("grpc-window-paused", "src/grpc/grpc.c",
     "    .store_fed = true,\n    .family = &dg_ingest_family,", "    .store_fed = false,\n    .family = &dg_ingest_family,",
     ["py:test_grpc_flow.py::test_window_stops_while_the_pipeline_is_paused"],
     "a paused pipeline does not stop reading the h2 connection: the peer's window keeps opening"),
    ("grpc-keepalive", "src/grpc/grpc.c",
     "        nghttp2_submit_ping(g->ng, NGHTTP2_FLAG_NONE, NULL);", "",
     ["py:test_grpc_flow.py::test_keepalive_pings_then_idle_timeout"],
     "a silent gRPC call is never pinged"),
    ("client-grpc-end", "libclient/grpc.c",
     "\"no grpc-status\"); }\n        h->ended = 1;", "\"no grpc-status\"); }\n        (void)0;",
     ["py:test_client_grpc.py::test_grpc_token_auth"],
     "libdronegate over grpc:// does not see a refused call end (trailers-only UNAUTHENTICATED)"),
    # --- queue core + Kafka ---
    ("kafka-ack-delivery", "src/queue/kafka.c",
     "while (p->head && p->head->ok == p->head->b->n && p->head->outstanding == 0) {",
     "while (p->head && p->head->produced == p->head->b->n && p->head->outstanding == 0) {",
     ["py:test_queue_kafka.py::test_brokers_down_nothing_acked_readyz_503_then_recovery"],
     "a batch whose delivery failed is acked (and never produced again)"),
    ("sink-commit-after-store", "src/queue/sinkcmd.c",
     "submit_batch(s, b);",
     "s->qops->commit(s->qc, msgs[n - 1].token); submit_batch(s, b);",
     ["py:test_queue_kafka.py::test_sink_store_outage_commits_nothing_kill9_restart_exactly_once"],
     "the sink commits the offset before the store commit: a crash loses the batch"),
    # --- amqp (issue 9, RabbitMQ) ---
    ("amqp-ack-confirm", "src/queue/amqp.c",
     "while (p->infl_n && infl_at(p, 0)->last <= p->acked) {", "while (p->infl_n) {",
     ["py:test_queue_amqp.py::test_broker_nack_acks_nothing"],
     "AMQP publisher hands batches back (acked) before the broker confirmed them"),
    ("amqp-consume-ack", "src/queue/amqp.c",
     "0 /* manual acks */", "1 /* auto acks: gone from the broker at delivery */",
     ["py:test_queue_amqp.py::test_sink_exactly_once_store_outage_then_kill9"],
     "AMQP consumer: deliveries acked before the sink's store commit (lost at a kill -9)"),
    ("amqp-blocked", "src/queue/amqp.c",
     "p->blocked = true;", "p->blocked = true; return 0;",
     ["py:test_queue_amqp.py::test_broker_memory_alarm_blocks_then_recovers"],
     "AMQP publisher: a broker that blocks publishers (resource alarm) leaves /readyz 200"),
    # --- fastjson (issue 8 section 2: the JSON decoder's single-pass fast path) ---
    ("fast-validate", "src/codec/json_fast.c",
     "if (dg_record_validate(r, NULL, NULL, 0)) FAIL(p);", "(void)0;",
     ["unit:test_json_fast"],
     "the fast path reports records the full decoder rejects (latitude 91, heading 360, ...)"),
    ("fast-dup-key", "src/codec/json_fast.c",
     "if (seen & BIT(f)) FAIL(p);", "(void)0;",
     ["unit:test_json_fast"],
     "duplicate keys taken by the fast path (a later null leaves the earlier value's flag: not the full decoder's last-wins)"),
    # --- sim on libdronegate (issue 13 §4) ---
    ("sim-lib-events", "tools/sim/drive.c",
     "                .events = EPOLLRDHUP | (want & POLLIN ? EPOLLIN : 0) | (want & POLLOUT ? EPOLLOUT : 0),",
     "                .events = EPOLLRDHUP | (want & POLLIN ? EPOLLIN : 0),",
     ["py:test_sim.py::test_sim_20_drones_all_acked", "py:test_sim_library.py"],
     "the sim registers a new client socket without the events the library asked for (POLLOUT: connect)"),
    ("sim-lib-ack-seq", "tools/sim/drive.c",
     "d->ring[(s + 1) & (d->ring_cap - 1)].lseq <= lseq) s++;", "d->ring[(s + 1) & (d->ring_cap - 1)].lseq < lseq) s++;",
     ["py:test_sim.py::test_sim_20_drones_all_acked"],
     "the sim maps the library's cumulative ack one sample short: acked < sent, latency of the last lost"),
    # --- client ws-pb ---
    ("wspb-proto-check", "libclient/client.c",
     "int up = 0, conn = 0, acc = 0, proto = !c->pb, ext = 0;", "int up = 0, conn = 0, acc = 0, proto = 1, ext = 0;",
     ["unit:test_client_conn"],
     "a DG_FORMAT_PROTOBUF client accepts an upgrade that selects no subprotocol (the gateway would talk JSON)"),
    ("wspb-binary-decode", "libclient/client.c",
     "if (c->pb ? dgc_parse_server_pb(p, n, on_msg, c) < 0 :", "if (0 ? dgc_parse_server_pb(p, n, on_msg, c) < 0 :",
     ["unit:test_client_conn", "py:test_client_pb.py"],
     "binary frames on dronegate.pb.v1 parsed as JSON: no session, ack or command ever understood"),
    # --- numbers (stop 22) ---
    ("num-swar-check", "src/codec/number.c",
     "        if (!eight_digits(x)) break;", "        (void)eight_digits;",
     ["unit:test_codec"],
     "8 bytes taken as digits without checking them: '-', 'x' or '.' inside an integer read as a digit"),
    ("scan-int-max", "src/codec/number.c",
     "    if (v > max) return NULL;", "    (void)max;",
     ["unit:test_codec", "unit:test_json_fast"],
     "an integer of <= 19 digits over the type's range (int64 seq/timestamp overflow) accepted, wrapped (dg_parse_* and json_fast's one-pass integers)"),
    # --- SQLite WAL write coalescing (stop 22) ---
    ("walbuf-commit-flush", "src/store/sqlite_walbuf.c",
     "    if (was_commit_hdr) return wb_flush(f);", "    if (0) return wb_flush(f);",
     ["unit:test_walbuf"],
     "the commit frame stays buffered: a write error surfaces only while the commit is published (abort) instead of failing the COMMIT"),
    ("walbuf-publish-net", "src/store/sqlite_walbuf.c",
     "    wb_file_t *f = wb_pending;", "    wb_file_t *f = NULL;",
     ["unit:test_walbuf"],
     "a commit published while a rewritten frame header is still buffered: lost by a crash after COMMIT returned"),
    ("sim-frame-latency", "tools/sim/drive.c",
     "            s->frame_us = w->cfg->rate > 0 ? d->ring[(d->tx_seq + k - i) & (d->ring_cap - 1)].due_us",
     "            s->frame_us = w->cfg->rate > 0 ? s->due_us",
     ["py:test_sim.py::test_sim_with_auth_and_batches"],
     "bench_window's 'frame p99' counts from each sample's own due time: the client's batching wait is not taken out"),
    # --- SQLite insertion order (stop 23) ---
    ("sqlite-insert-grouped", "src/store/sqlite.c",
     "    const struct ins_ord *ord = ins_order(s, recs, n) == 0 ? s->ord : NULL;",
     "    const struct ins_ord *ord = NULL; (void)ins_order;",
     ["unit:test_store"],
     "a transaction's rows inserted in arrival order (drones interleaved): every insert on another leaf of both indexes (~10-17 % more writer CPU per row)"),
    # --- the writer's WAL restart (stop 24) ---
    ("sqlite-restart-defer", "src/store/sqlite.c",
     "        if (frames - s->restart_due < s->ck_step) {",
     "        if (0) {",
     ["unit:test_store"],
     "at the WAL limit the writer waits for a checkpointer pass in progress (20-280 ms of stalled acks) instead of committing on"),
    ("sqlite-kick-near-limit", "src/store/sqlite.c",
     "    } else if (frames >= s->ck_max - s->ck_step && frames < s->ck_max ? frames > s->wal_kicked",
     "    } else if (frames >= s->ck_max - s->ck_step && frames < s->ck_max ? frames - s->wal_kicked >= s->ck_step",
     ["unit:test_store"],
     "the checkpointer woken once per step also near the limit: the writer's RESTART copies up to a step (p99 at 10k msgs/s 13-18 ms instead of 6)"),
    # --- decoding stops once closing (issue 8 §1.1; stop 25) ---
    ("decode-stop-closing", "src/core/ingest.c",
     "    return f->fail || f->c->dead || f->c->closing;", "    return f->fail;",
     ["unit:test_ingest"],
     "a connection closed by its own error reply is decoded to the end of its frame (the use-after-free's trigger, bounded work lost)"),
    # --- command lookups at fleet scale (stop 25) ---
    ("cmd-ids-grow", "src/core/commands.c",
     "    t->ids.n++;\n    ids_grow(&t->ids);", "    t->ids.n++;\n    (void)ids_grow;",
     ["unit:test_commands"],
     "the by-id index never grows: with 100,000 open commands a lookup walks ~100 nodes under the one lock"),
    # --- live stream conflation (stop 25: its unit test) ---
    ("live-conflate-pending", "src/core/live.c",
     "(lw->ndirty || c->out.len >= DG_LIVE_HIGH)", "(c->out.len >= DG_LIVE_HIGH)",
     ["unit:test_live"],
     "a slow watcher's new telemetry sent at once while older states are pending: a drone's live state goes backwards"),
    ("live-remap", "src/core/live.c",
     "lw->dirty[k] = remap[lw->dirty[k]];", "(void)0;",
     ["unit:test_live"],
     "pending states lost or repeated when the conflation table grows (more than 32 drones pending)"),
    ("live-undirty", "src/core/live.c",
     "            e->dirty = 0;\n            dg_conn_send(c, e->frame.data, e->frame.len);",
     "            dg_conn_send(c, e->frame.data, e->frame.len);",
     ["unit:test_live"],
     "a drone whose state was sent once is never pending again: the next slow phase drops its telemetry"),
]

args = sys.argv[1:]
if os.environ.get("MUTANTS_LIST"):
    for m in M:
        print(f"{m[0]:16} {m[1]:22} {m[5]}\n{'':16} killers: {' '.join(m[4])}")
    sys.exit(0)
sel = [m for m in M if not args or m[0] in args]
unknown = set(args) - {m[0] for m in M}
if unknown:
    sys.exit(f"mutants: unknown id(s) {sorted(unknown)}")

repo = os.getcwd()
jobs = os.environ.get("MUTANTS_JOBS", "2")
tmo = float(os.environ.get("MUTANTS_TIMEOUT", "180"))

def sh(cmd, cwd, env=None, timeout=None, log=None):
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        return "timeout", (e.stdout or "") if isinstance(e.stdout, str) else ""

def targets(killers):
    t = set()
    for k in killers:
        if k.startswith("unit:"):
            t.add(f"build/tests/{k[5:]}")
        else:
            t.update(("build/dronegate", "build/dronegate-sim", "build/bench/store_probe",   # store_probe: test_store_seq
                      "build/examples/drone"))                                            # the library's tests
            if os.path.exists("tests/amqp/drive.c"):
                t.add("build/amqp-drive")   # test_queue_amqp.py drives the AMQP ops directly
    return sorted(t)

def run_killer(k, root):
    """0 when the killer's tests pass, else a short reason."""
    if k.startswith("unit:"):
        rc, out = sh([f"build/tests/{k[5:]}"], root, timeout=tmo)
        return 0 if rc == 0 else f"{k} exit {rc}: " + " | ".join(l for l in out.splitlines() if "FAIL" in l)[:300]
    spec = k[3:].split(" ", 1)
    sel_ = ["tests/integration/" + spec[0]] + (spec[1].split(" ", 1) if len(spec) > 1 else [])
    env = {x: v for x, v in os.environ.items() if not x.startswith("DRONEGATE_")}
    env.update(DRONEGATE_BIN=f"{root}/build/dronegate", DRONEGATE_SIM=f"{root}/build/dronegate-sim")
    rc, out = sh(["/usr/bin/python3", "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *sel_],
                 root, env=env, timeout=tmo)
    if rc == 0:
        return 0
    if rc == 5:
        return f"NOTEST: {k} selects no test"
    why = [l for l in out.splitlines() if l.startswith("E ") or l.startswith("FAILED")][:2]
    return f"{k} rc {rc}: " + " | ".join(w.strip()[:200] for w in why)

# the tree as it is, built
need = sorted({t for m in sel for t in targets(m[4])})
rc, out = sh(["make", f"-j{jobs}", *need], repo)
if rc != 0:
    print(out[-3000:])
    sys.exit("mutants: the unmutated tree does not build")
scratch = tempfile.mkdtemp(prefix="dg-mutants-")
root = os.path.join(scratch, "tree")
print(f"mutants: copying the tree to {root}", flush=True)
subprocess.run(["cp", "-a", repo, root], check=True)
shutil.rmtree(os.path.join(root, ".git"), ignore_errors=True)

if not os.environ.get("MUTANTS_NO_BASELINE"):
    bad = []
    for k in sorted({k for m in sel for k in m[4]}):
        r = run_killer(k, root)
        print(f"baseline {'ok  ' if r == 0 else 'FAIL'} {k}", flush=True)
        if r != 0:
            bad.append(r)
    if bad:
        print("mutants: killers fail on the unmutated tree (a red baseline proves nothing):\n  " + "\n  ".join(bad))
        sys.exit(2)

res = []
for (mid, f, pat, rep, killers, what) in sel:
    t0 = time.monotonic()
    path = os.path.join(root, f)
    try:
        orig = open(path).read()
    except FileNotFoundError:
        res.append((mid, "STALE", f"{f} is gone")); print(f"{mid:16} STALE ({f} is gone)", flush=True); continue
    n = orig.count(pat)
    if n != 1:
        res.append((mid, "STALE", f"pattern occurs {n} times in {f}"))
        print(f"{mid:16} STALE (pattern occurs {n} times in {f})", flush=True)
        continue
    open(path, "w").write(orig.replace(pat, rep))
    try:
        rc, out = sh(["make", f"-j{jobs}", *targets(killers)], root)
        if rc != 0:
            err = [l for l in out.splitlines() if "error" in l][:2]
            res.append((mid, "NOBUILD", " | ".join(err)))
            print(f"{mid:16} NOBUILD {' | '.join(err)}", flush=True)
            continue
        outcome, why = "SURVIVED", "every killer passed"
        for k in killers:
            r = run_killer(k, root)
            if r != 0:
                outcome, why = ("STALE", r) if r.startswith("NOTEST") else ("killed", r)
                break
        res.append((mid, outcome, why))
        print(f"{mid:16} {outcome:8} {time.monotonic() - t0:5.0f}s  {why[:160]}", flush=True)
    finally:
        open(path, "w").write(orig)

if not os.environ.get("MUTANTS_KEEP"):
    shutil.rmtree(scratch, ignore_errors=True)
bad = [r for r in res if r[1] != "killed"]
print(f"\nmutants: {len(res) - len(bad)} killed, {len(bad)} not killed of {len(res)}")
for r in bad:
    print(f"  {r[1]:8} {r[0]}: {r[2]}")
sys.exit(1 if bad else 0)
PY
