#!/usr/bin/env bash
# bench_grpc.sh - issue 10 section 6: gRPC and dronegate.pb.v1 over WebSocket
# against JSON over WebSocket, on the null store and on SQLite, and against
# the network-path limit of each (bench/grpc_minimal.c: nghttp2, frames and
# acks only; bench/ws_minimal.c for WebSocket). Drones keep a bounded window
# of unacked messages (--rate 0), as in bench_window.sh. Then the memory of
# idle gRPC calls (and idle WebSocket connections, for comparison).
#
#   bench/bench_grpc.sh                               # table on stdout
#   DUR=3 DRONES=200 WINDOWS="8 256" bench/bench_grpc.sh
#   CONFIGS="grpc-minimal grpc-null" IDLE=0 bench/bench_grpc.sh
#   IDLE=2000 bench/bench_grpc.sh                     # idle streams for the RSS figure
#
# Configs: grpc-minimal, ws-minimal (references), {grpc,wspb,wsjson}-{null,sqlite}
# (dronegate --ack-interval 0 --commit-interval 0, its fastest ack setting;
# one dronegate per store serves the three transports). For one window the
# configs run one after the other (interleaved), so a noisy neighbour hits
# them alike. Loopback only; the simulator shares the 2 cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
DUR=${DUR:-3}
DRONES=${DRONES:-200}
WINDOWS=${WINDOWS:-"8 256"}
IDLE=${IDLE:-2000}
CONFIGS=${CONFIGS:-"grpc-minimal grpc-null wspb-null wsjson-null ws-minimal grpc-sqlite wspb-sqlite wsjson-sqlite"}
make -s $B/dronegate $B/dronegate-sim $B/bench/ws_minimal $B/bench/grpc_minimal >/dev/null

free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
TMP=$(mktemp -d /tmp/dggrpc.XXXXXX)
declare -A WS GRPC SPID
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "logs kept in $TMP" >&2 || rm -rf "$TMP"; }
trap cleanup EXIT

dronegate() {   # dronegate NAME STORE: a gateway with both listeners
  local n=$1 ws gp; ws=$(free_port); gp=$(free_port)
  mkdir -p "$TMP/$n"
  $B/dronegate --listen 127.0.0.1:$ws --grpc-listen 127.0.0.1:$gp --store "$2" --max-msg-rate 0 \
    --ack-interval 0 --commit-interval 0 2>"$TMP/$n.log" &
  PIDS+=($!); SPID[$n]=$!; WS[$n]=$ws; GRPC[$n]=$gp
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ws/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "$n did not start:" >&2; cat "$TMP/$n.log" >&2; exit 1
}
needs() { [[ " $CONFIGS " == *" $1"* ]]; }
if needs grpc-minimal; then p=$(free_port); $B/bench/grpc_minimal --listen 127.0.0.1:$p --threads 2 & PIDS+=($!); GRPC[minimal]=$p; fi
if needs ws-minimal; then p=$(free_port); $B/bench/ws_minimal --listen 127.0.0.1:$p --threads 2 & PIDS+=($!); WS[minimal]=$p; fi
if [[ " $CONFIGS " == *"-null"* ]]; then dronegate null null:; fi
if [[ " $CONFIGS " == *"-sqlite"* ]]; then dronegate sqlite "sqlite:$TMP/sqlite/dg.db"; fi
sleep 0.3

RUN=0
sim() {   # sim CONFIG RUN ARGS... -> "acked_per_s p99_ms unacked"
  # fresh drone ids every run (RUN, counted by the caller: this runs in a
  # subshell): a drone starting its seq at 1 again with other samples would
  # be told seq_reused on SQLite, not acked
  local c=$1 srv=${1#*-} tr=${1%%-*} url
  [ "$c" = grpc-minimal ] && { srv=minimal; tr=grpc; }
  [ "$c" = ws-minimal ] && { srv=minimal; tr=wsjson; }
  case $tr in
    grpc)   url="grpc://127.0.0.1:${GRPC[$srv]}"; tr=grpc ;;
    wspb)   url="ws://127.0.0.1:${WS[$srv]}"; tr=ws-pb ;;
    wsjson) url="ws://127.0.0.1:${WS[$srv]}"; tr=ws-json ;;
  esac
  $B/dronegate-sim --transport "$tr" --url "$url" --prefix "g$2-" --drones "$DRONES" --duration "$DUR" \
    --quiet --json --rate 0 "${@:3}" |
    /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["acked_per_s"]), r["ack_latency_ms"]["p99"], r["sent"] - r["acked"])'
}

echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $DRONES drones, ${DUR} s runs, --rate 0, $(date -u +%FT%TZ)"
printf '| %-14s | %6s | %12s | %9s | %7s |\n' config window "acked msgs/s" "ack p99" unacked
printf '|%s|\n' "----------------|--------|--------------|-----------|---------"
for w in $WINDOWS; do
  for c in $CONFIGS; do
    RUN=$((RUN + 1))
    read -r sat p99 un < <(sim "$c" $RUN --window "$w")
    printf '| %-14s | %6s | %12s | %9s | %7s |\n' "$c" "$w" "$sat" "${p99} ms" "$un"
  done
done

[ "$IDLE" = 0 ] && exit 0
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
conns() { curl -s "http://127.0.0.1:${WS[$2]}/metrics" | awk -v t="$1" '$1 == "dronegate_connections{transport=\""t"\"}" {print $2}'; }
idle() {   # idle TRANSPORT LABEL: RSS per idle connection of a fresh dronegate on null:
  local before after n=0 sp g=idle-$1 url
  dronegate "$g" null:
  url="ws://127.0.0.1:${WS[$g]}"; [ "$1" = grpc ] && url="grpc://127.0.0.1:${GRPC[$g]}"
  before=$(rss "${SPID[$g]}")
  $B/dronegate-sim --transport "$1" --url "$url" --prefix "idle$1-" --drones "$IDLE" --rate 0.0001 \
    --duration $((IDLE / 1000 + 8)) --ramp 5000 --quiet --json >/dev/null & sp=$!
  for _ in $(seq 200); do n=$(conns "$2" "$g"); [ "${n:-0}" -ge "$IDLE" ] && break; sleep 0.1; done
  after=$(rss "${SPID[$g]}")
  kill -INT $sp 2>/dev/null || true; wait $sp 2>/dev/null || true
  kill -TERM "${SPID[$g]}" 2>/dev/null || true
  printf '| %-9s | %6s | %10s KiB | %10s KiB | %6s bytes |\n' "$2" "$n" "$before" "$after" $(( (after - before) * 1024 / (n > 0 ? n : 1) ))
}
echo
echo "# memory of idle connections: dronegate on null:, VmRSS before and with N idle drones"
printf '| %-9s | %6s | %14s | %14s | %12s |\n' transport N "RSS before" "RSS with N" "per conn"
printf '|%s|\n' "-----------|--------|----------------|----------------|-------------"
idle grpc grpc
idle ws-json websocket
