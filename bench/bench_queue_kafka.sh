#!/usr/bin/env bash
# bench_queue_kafka.sh - a short functional figure for --queue kafka:// and
# dronegate sink. NOT a Kafka benchmark: the broker is librdkafka's
# in-process mock cluster (build/kafka-mockcluster, 3 brokers, no disk, no
# replication work), which is a test tool, not a Kafka. What it shows is the
# cost of dronegate's own publish path (encode, produce, delivery reports,
# acks after delivery) and of the sink (consume, decode, store, commit).
#
#   bench/bench_queue_kafka.sh            # 50 drones, 4 s, SQLite
#   DRONES=100 DUR=5 bench/bench_queue_kafka.sh
#   PG_URI=postgresql://... bench/bench_queue_kafka.sh   # + the sink into PostgreSQL
#
# The mock keeps only about 5 MB per partition (older message sets are
# evicted), so the sink reads what is left (~15 MB, about 48,000 messages),
# not everything the gateway published.
#
# Prints one `name value unit` line per figure:
#   gw_sqlite_acked        acked msgs/s, the gateway storing in SQLite (reference)
#   gw_kafka_acked         acked msgs/s, the gateway publishing to the mock
#   sink_sqlite_rows       rows/s the sink stores into SQLite (first row to last;
#                          the mock's 3 s initial group rebalance is not counted)
#   sink_sqlite_b16k_rows  the same with --batch-records 16384
#   sink_pg_rows           the same into PostgreSQL (with PG_URI: an empty database)
# Compare the sink with bench/bench_sqlite_raw (SQLite's own batched insert)
# and bench/bench_pg_write (PostgreSQL's write paths).
# Needs: make all (build/dronegate, dronegate-sim, kafka-mockcluster), curl.
set -euo pipefail
cd "$(dirname "$0")/.."
DRONES=${DRONES:-50}
DUR=${DUR:-4}
BIN=build/dronegate
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    exec 3>&- 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 500); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.02; done; echo "no /healthz on $1" >&2; exit 1; }
metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m"({|$)" { s += $2 } END { printf "%d\n", s }'; }
acked_per_s() { /usr/bin/python3 -c 'import json,sys; print(round(json.load(sys.stdin)["acked_per_s"]))'; }

mkfifo "$tmp/mc.in"
build/kafka-mockcluster dronegate.telemetry 3 <"$tmp/mc.in" >"$tmp/mc.out" 2>/dev/null &
pids+=($!)
exec 3>"$tmp/mc.in"
for _ in $(seq 1 200); do [ -s "$tmp/mc.out" ] && break; sleep 0.02; done
BS=$(head -1 "$tmp/mc.out")
QUEUE="kafka://$BS/dronegate.telemetry"

gateway() {   # name args...
    local name=$1; shift
    local port; port=$(free_port)
    $BIN --listen "127.0.0.1:$port" --log-level warn "$@" 2>"$tmp/$name.log" &
    pids+=($!)
    GW_PID=$!
    wait_http "$port"
    GW_PORT=$port
}
sim() { build/dronegate-sim --url "ws://127.0.0.1:$GW_PORT" --drones "$DRONES" --rate 0 --window 1000 \
            --duration "$DUR" --drain 5 --quiet --json; }

gateway gw_sqlite --store "sqlite:$tmp/direct.db"
echo "gw_sqlite_acked $(sim | acked_per_s) msgs/s"
kill "$GW_PID"; wait "$GW_PID" || true

gateway gw_kafka --store "sqlite:$tmp/gw.db" --queue "$QUEUE"
echo "gw_kafka_acked $(sim | acked_per_s) msgs/s"
N=$(metric "$GW_PORT" dronegate_queue_published_total)
kill "$GW_PID"; wait "$GW_PID" || true
echo "published $N msgs"

sink() {   # name store [flags]
    local name=$1 store=$2; shift 2
    local port; port=$(free_port)
    $BIN sink --listen "127.0.0.1:$port" --store "$store" --queue "$QUEUE" --group "bench-$name" --log-level warn "$@" 2>"$tmp/sink-$name.log" &
    local pid=$!
    pids+=($pid)
    wait_http "$port"
    /usr/bin/python3 - "$port" "$R" "$name" <<'PY'
import sys, time, urllib.request
port, n, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def stored():
    t = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(l.split()[-1]) for l in t.splitlines() if l.startswith("dronegate_messages_stored_total"))
deadline = time.monotonic() + 120
s = stored()
while s == 0 and time.monotonic() < deadline:
    time.sleep(0.002); s = stored()
t0, s0 = time.monotonic(), s
while s < n and time.monotonic() < deadline:
    time.sleep(0.002); s = stored()
dt = time.monotonic() - t0
print(f"sink_{name}_rows {round((s - s0) / dt) if dt > 0 else 0} rows/s ({int(s)} of {n} rows stored, {dt:.2f} s from the first)")
PY
    kill "$pid"; wait "$pid" || true
}
# what the mock kept (see above): read once with kcat
R=$(timeout 60 kcat -b "$BS" -C -t dronegate.telemetry -o beginning -e -q | wc -l)
echo "retained $R msgs"
sink sqlite "sqlite:$tmp/sink.db"
sink sqlite_b16k "sqlite:$tmp/sink2.db" --batch-records 16384
if [ -n "${PG_URI:-}" ]; then sink pg "$PG_URI"; fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
