#!/usr/bin/env bash
# bench_window.sh - acks must never cap a drone (issue 8 section 2): drones
# that keep a bounded window of unacked messages, against the network-path
# reference (bench/ws_minimal.c: frames and acks, nothing else), dronegate
# on null: and dronegate on SQLite, each server config side by side.
#
#   bench/bench_window.sh                       # every case, table on stdout
#   DUR=3 DRONES=200 WINDOWS="1 8 32 256" BATCHES="1 100" bench/bench_window.sh
#   CONFIGS="sqlite-old sqlite-new" bench/bench_window.sh   # a subset
#
# Configs (servers are started once, at the start, and stay up: idle ones
# cost nothing):
#   minimal     build/bench/ws_minimal (2 threads, like dronegate's 2 workers)
#   null-def    dronegate --store null: with the binary's default flags
#   null-old    ... --ack-interval 50 --commit-interval 20 (the old defaults)
#   null-new    ... --ack-interval 0 --commit-interval 0
#   null-ack0   ... --ack-interval 0 --commit-interval 20 (acks only)
#   sqlite-def, sqlite-old, sqlite-new, sqlite-ack0: the same on SQLite (durable)
# Cases: every (frame batch K, window W >= K; a smaller W is raised to K): a saturation run (--rate 0: acked
# msgs/s and ack p99) then a half-rate run (each drone at half its
# saturation rate: ack p99). For one case the configs run one after the
# other (interleaved A/B), so a noisy neighbour hits them alike; repeat the
# script for ranges. At half rate with K > 1 the simulator waits for K due
# messages per frame, so "half p99" includes up to K / rate of the client's
# own batching (reported as is); "frame p99" is the same acks' latency from
# when each frame was complete (the due time of its last sample), i.e. the
# gateway's share (the sim's ack_latency_from_frame_ms; equal for K = 1).
#
# Needs: make build/dronegate build/dronegate-sim build/bench/ws_minimal.
# Loopback only; the simulator shares the machine's cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
DUR=${DUR:-3}
DRONES=${DRONES:-200}
WINDOWS=${WINDOWS:-"1 8 32 256"}
BATCHES=${BATCHES:-"1 100"}
CONFIGS=${CONFIGS:-"minimal null-old null-new sqlite-old sqlite-new"}
make -s $B/dronegate $B/dronegate-sim $B/bench/ws_minimal >/dev/null

free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
TMP=$(mktemp -d /tmp/dgwin.XXXXXX)
declare -A PORT
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

start() {   # start CONFIG
  local c=$1 port; port=$(free_port)
  local store flags=()
  case $c in
    minimal) $B/bench/ws_minimal --listen 127.0.0.1:$port --threads 2 2>"$TMP/$c.log" & PIDS+=($!); PORT[$c]=$port
             sleep 0.3; return ;;
    null-*)   store=null: ;;
    sqlite-*) store="sqlite:$TMP/$c/dg.db" ;;
    *) echo "unknown config $c" >&2; exit 2 ;;
  esac
  case $c in
    *-old) flags=(--ack-interval 50 --commit-interval 20) ;;
    *-new) flags=(--ack-interval 0 --commit-interval 0) ;;
    *-ack0) flags=(--ack-interval 0 --commit-interval 20) ;;
  esac
  $B/dronegate --listen 127.0.0.1:$port --store "$store" --max-msg-rate 0 "${flags[@]}" 2>"$TMP/$c.log" &
  PIDS+=($!)
  PORT[$c]=$port
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "$c did not start:" >&2; cat "$TMP/$c.log" >&2; exit 1
}

RUN=0
sim() {   # sim CONFIG RUN ARGS... -> "acked_per_s p99_ms unacked frame_p99_ms"
  # fresh drone ids every run (RUN): a drone that starts its seq at 1 again
  # with other samples would be told seq_reused (contract), not acked
  $B/dronegate-sim --url "ws://127.0.0.1:${PORT[$1]}" --prefix "w$2-" --drones "$DRONES" --duration "$DUR" \
    --quiet --json "${@:3}" |
    /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["acked_per_s"]), r["ack_latency_ms"]["p99"], r["sent"] - r["acked"], r["ack_latency_from_frame_ms"]["p99"])'
}

for c in $CONFIGS; do start "$c"; done
echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $DRONES drones, ${DUR} s runs, $(date -u +%FT%TZ)"
printf '| %-10s | %5s | %6s | %12s | %9s | %12s | %9s | %11s |\n' config batch window "sat msgs/s" "sat p99" "half msgs/s" "half p99" "frame p99"
printf '|%s|\n' "------------|-------|--------|--------------|-----------|--------------|-----------|-------------"
for k in $BATCHES; do
  for w0 in $WINDOWS; do
    w=$(( w0 < k ? k : w0 ))
    [ "$w0" -lt "$k" ] && [ "$w" = "$k" ] && [[ " $WINDOWS " == *" $k "* ]] && continue   # raised onto a listed window
    for c in $CONFIGS; do
      RUN=$((RUN + 2))
      read -r sat p99 _ < <(sim "$c" $RUN --rate 0 --window "$w" --batch "$k")
      half=$(/usr/bin/python3 -c "print(max(0.01, $sat / 2 / $DRONES))")
      read -r hsat hp99 _ hfp99 < <(sim "$c" $((RUN + 1)) --rate "$half" --window "$w" --batch "$k")
      printf '| %-10s | %5s | %6s | %12s | %9s | %12s | %9s | %11s |\n' "$c" "$k" "$w" "$sat" "${p99} ms" "$hsat" "${hp99} ms" "${hfp99} ms"
    done
  done
done
