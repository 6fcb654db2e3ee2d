#!/usr/bin/env bash
# bench/run.sh - the gateway benchmarks of docs/benchmarks.md.
#
#   bench/run.sh [SCENARIO...]      (default: all)
#
# Scenarios: raw (SQLite's own batched insert speed), null1 (null store, one
# message per frame), nullbatch (null store, 100 per frame), sqlite (durable,
# 1000 drones as fast as acks allow), sqlitehalf (half that rate: latency),
# fleet10k (10,000 drones at 1 Hz), idle10k (server memory per idle
# connection), live (fan-out latency, 10 watchers). Each prints one JSON line; results also go to bench/results/.
# Loopback only; the simulator runs on the same 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build
DUR=${DUR:-15}
OUT=bench/results
mkdir -p "$OUT"
make -s $B/dronegate $B/dronegate-sim $B/bench/bench_sqlite_raw $B/bench/bench_live >/dev/null

free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

start_server() {   # start_server STORE [FLAGS...]; sets PORT PID TMP
  TMP=$(mktemp -d /tmp/dgbench.XXXXXX)
  PORT=$(free_port)
  local store=$1; shift
  $B/dronegate --listen 127.0.0.1:$PORT --store "${store//@TMP@/$TMP}" --max-msg-rate 0 "$@" 2>"$TMP/server.log" &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "server did not start:"; cat "$TMP/server.log"; exit 1
}
stop_server() { kill -TERM $PID; wait $PID || true; rm -rf "$TMP"; }
rss_kb() { awk '/VmRSS/ {print $2}' /proc/$1/status; }
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

sim() {   # sim NAME [SIM FLAGS...]: run the simulator, annotate its JSON report
  local name=$1; shift
  local rss0; rss0=$(rss_kb $PID)
  local rep; rep=$($B/dronegate-sim --url ws://127.0.0.1:$PORT --quiet --json "$@")
  local rss1; rss1=$(rss_kb $PID)
  echo "$rep" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
name, rss0, rss1, args = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out = {"scenario": name, "args": args, "acked_per_s": round(r["acked_per_s"]), "sent": r["sent"], "acked": r["acked"],
       "errors": r["errors"], "p50_ms": r["ack_latency_ms"]["p50"], "p99_ms": r["ack_latency_ms"]["p99"],
       "server_rss_mb_before": round(rss0 / 1024, 1), "server_rss_mb_after": round(rss1 / 1024, 1)}
print(json.dumps(out))' "$name" "$rss0" "$rss1" "$*" | tee -a "$OUT/results.jsonl"
}

run_raw() {
  for b in 100 1000 5000; do
    $B/bench/bench_sqlite_raw 1000000 $b /tmp/dgbench-raw.db | sed "s/^/raw batch=$b: /" | tee -a "$OUT/raw.txt"
  done
}
run_null1()     { start_server null:; sim null1 --drones 1000 --rate 0 --window 2000 --duration $DUR; stop_server; }
run_nullbatch() { start_server null:; sim nullbatch --drones 200 --rate 0 --batch 100 --window 20000 --duration $DUR; stop_server; }
run_sqlite()    { start_server "sqlite:@TMP@/dg.db"; sim sqlite --drones 1000 --rate 0 --window 2000 --duration $DUR; stop_server; }
run_sqlitehalf() {
  local rate=${HALF_RATE:?set HALF_RATE (msgs/s per drone) to half of the sqlite scenario / 1000}
  start_server "sqlite:@TMP@/dg.db"; sim sqlitehalf --drones 1000 --rate "$rate" --window 2000 --duration $DUR; stop_server
}
run_fleet10k()  { start_server "sqlite:@TMP@/dg.db"; sim fleet10k --drones 10000 --rate 1 --ramp 5000 --duration $((DUR + 10)); stop_server; }
run_idle10k() {
  start_server null:
  local rss0; rss0=$(rss_kb $PID)
  $B/dronegate-sim --url ws://127.0.0.1:$PORT --quiet --drones 10000 --rate 0.01 --ramp 5000 --duration 12 >/dev/null &
  local spid=$!
  for _ in $(seq 120); do
    [ "$(metric 'dronegate_connections{transport="websocket"}')" = "10000" ] && break; sleep 0.25
  done
  sleep 1
  local conns; conns=$(metric 'dronegate_connections{transport="websocket"}')
  local rss1; rss1=$(rss_kb $PID)
  echo "{\"scenario\":\"idle10k\",\"connections\":$conns,\"rss_kb_before\":$rss0,\"rss_kb_after\":$rss1,\"bytes_per_conn\":$(( (rss1 - rss0) * 1024 / (conns > 0 ? conns : 1) ))}" | tee -a "$OUT/results.jsonl"
  wait $spid || true
  stop_server
}

run_live() {   # 10 watchers, 1000 drones at 10 Hz: fan-out latency (server receive -> watcher receive)
  make -s $B/bench/bench_live >/dev/null
  start_server "sqlite:@TMP@/dg.db"
  $B/dronegate-sim --url ws://127.0.0.1:$PORT --quiet --drones 1000 --rate 10 --duration $((DUR + 5)) >/dev/null &
  local spid=$!
  sleep 3
  $B/bench/bench_live $PORT 10 $DUR | sed 's/^{/{"scenario":"live",/' | tee -a "$OUT/results.jsonl"
  wait $spid || true
  stop_server
}

scen=("$@")
[ ${#scen[@]} -eq 0 ] && scen=(raw null1 nullbatch sqlite fleet10k idle10k live)
for s in "${scen[@]}"; do "run_$s"; done
