#!/usr/bin/env bash
# client-drain.sh [N] [CLIENT_MAX_RATE] [GATEWAY_MAX_MSG_RATE] [STORE]
#
# libdronegate figure: a drone (examples/drone.c) queues N samples (default
# 1,000,000) while no gateway runs (the outage), then the gateway starts and
# we time how long until every sample is acked (the drone exits after its
# flush). Prints the drone's stats, its peak RSS and the drain time.
# The outage's length does not matter beyond the reconnect delay, which the
# backoff caps (--backoff-max-ms, 200 ms here; the library's default is 10 s).
#   bench/client-drain.sh 1000000 0 0 sqlite:/tmp/drain.db   # no rate limits
#   bench/client-drain.sh 1000000 8000 10000                 # the defaults
set -eu
N=${1:-1000000}; CRATE=${2:-8000}; GRATE=${3:-10000}; STORE=${4:-sqlite:/tmp/dg-drain-$$.db}
B=$(cd "$(dirname "$0")/.." && pwd)/build
. "$(dirname "$0")/client-common.sh"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
OUT=$(mktemp -d)
/usr/bin/time -f "drone peak RSS %M KB" -o "$OUT/time" "$B/examples/drone" --url "ws://127.0.0.1:$PORT" \
  --id drain-1 --count "$N" --rate 0 --queue-max $((N + 1)) --max-rate "$CRATE" \
  --backoff-max-ms 200 --flush-ms 900000 --quiet > "$OUT/stats" 2> "$OUT/err" &
DP=$!
# wait until the drone has queued everything: its peak RSS stops growing
prev=-1
while :; do
  sleep 1
  rss=$(awk '/VmRSS/{print $2}' /proc/$(pgrep -P $DP drone || echo $DP)/status 2>/dev/null || echo 0)
  [ "$rss" = "$prev" ] && break
  prev=$rss
done
echo "queued $N samples during the outage; drone RSS ${rss} KB"
drain_now --max-msg-rate "$GRATE"
