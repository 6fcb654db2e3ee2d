#!/usr/bin/env bash
# bench_queue_amqp.sh - drones -> dronegate --queue amqp:// -> RabbitMQ, acked
# msgs/s (the drone's ack follows the broker's publisher confirm) against the
# limit: a plain rabbitmq-c publisher with confirms on the same broker
# (bench/amqp_plain.c, one connection, a window of unconfirmed messages).
#
#   bench/bench_queue_amqp.sh                          # quorum and stream
#   DUR=3 DRONES=50 WINDOW=100 TYPES="quorum" bench/bench_queue_amqp.sh
#
# Per queue type: plain publisher with windows PLAIN_WINDOWS; the gateway
# saturated (dronegate-sim --rate 0, DRONES drones, WINDOW unacked each:
# acked msgs/s, ack p50/p99), then at half that rate (ack p50/p99 from
# the due time). The broker is tests/integration/rabbit.py (a throw-away
# rabbitmq-server in a temp dir, free loopback ports), started once.
# Needs: rabbitmq-server, make build/dronegate build/dronegate-sim build/bench/amqp_plain.
# Loopback only; the simulator, the gateway and the broker share the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
DUR=${DUR:-4}
DRONES=${DRONES:-50}
WINDOW=${WINDOW:-100}
TYPES=${TYPES:-"quorum stream"}
PLAIN_WINDOWS=${PLAIN_WINDOWS:-"100 1000"}
make -s $B/dronegate $B/dronegate-sim $B/bench/amqp_plain >/dev/null

free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
TMP=$(mktemp -d /tmp/dgamqp.XXXXXX)
GW=
coproc RB { /usr/bin/python3 -u -c '
import sys; sys.path.insert(0, "tests/integration"); import rabbit
r = rabbit.Rabbit()
try:
    r.start(); print(r.port, flush=True); sys.stdin.read()
finally:
    r.close()'; }
RB_IN=${RB[1]}
RB_PID_=$RB_PID
cleanup() {
  [ -n "$GW" ] && kill -TERM "$GW" 2>/dev/null && wait "$GW" 2>/dev/null || true
  exec {RB_IN}>&- 2>/dev/null || true
  wait "$RB_PID_" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
read -r PORT <&"${RB[0]}"
echo "# rabbitmq-server on 127.0.0.1:$PORT; DUR=$DUR DRONES=$DRONES WINDOW=$WINDOW"
printf '%-8s %-34s %12s %10s %10s\n' type case "acked msg/s" "p50 ms" "p99 ms"

sim_row() {   # sim_row TYPE CASE JSON
  /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[3]); l=d["ack_latency_ms"]
print("%-8s %-34s %12.0f %10.1f %10.1f" % (sys.argv[1], sys.argv[2], d["acked_per_s"], l["p50"], l["p99"]))' "$1" "$2" "$3"
}

for t in $TYPES; do
  for w in $PLAIN_WINDOWS; do
    j=$($B/bench/amqp_plain 127.0.0.1 "$PORT" "plain.$t.$w" "$t" "$DUR" "$w")
    r=$(/usr/bin/python3 -c 'import json,sys; print("%.0f" % json.loads(sys.argv[1])["acked_per_s"])' "$j")
    printf '%-8s %-34s %12s %10s %10s\n' "$t" "plain rabbitmq-c, window $w" "$r" - -
  done
  gp=$(free_port)
  mkdir -p "$TMP/$t"
  $B/dronegate --listen 127.0.0.1:$gp --store "sqlite:$TMP/$t/dg.db" --workers 2 --log-level warn \
    --queue "amqp://guest:guest@127.0.0.1:$PORT/%2F?queue=gw.$t&type=$t" 2>"$TMP/$t/gw.log" &
  GW=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$gp/readyz" >/dev/null 2>&1 && break
    kill -0 "$GW" || { cat "$TMP/$t/gw.log"; exit 1; }
    sleep 0.1
  done
  j=$($B/dronegate-sim --url ws://127.0.0.1:$gp --drones "$DRONES" --rate 0 --window "$WINDOW" \
        --duration "$DUR" --json --quiet --prefix "sat-$t-")
  sim_row "$t" "gateway saturated ($DRONES x w$WINDOW)" "$j"
  half=$(/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(max(1, int(d["acked_per_s"] / 2 / int(sys.argv[2]))))' "$j" "$DRONES")
  j=$($B/dronegate-sim --url ws://127.0.0.1:$gp --drones "$DRONES" --rate "$half" --window "$WINDOW" \
        --duration "$DUR" --json --quiet --prefix "half-$t-")
  sim_row "$t" "gateway half rate ($DRONES x ${half} Hz)" "$j"
  kill -TERM "$GW"; wait "$GW" || true; GW=
done
