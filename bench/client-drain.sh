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
t0=$(date +%s.%N)
"$B/dronegate" --listen "127.0.0.1:$PORT" --store "$STORE" --workers 2 --max-msg-rate "$GRATE" 2> "$OUT/gw" &
GP=$!
wait $DP || true
t1=$(date +%s.%N)
kill $GP; wait $GP || true
cat "$OUT/stats" "$OUT/time"
python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); print(f'drain: {int(sys.argv[3])} samples in {t:.1f} s from gateway start to the last ack ({int(sys.argv[3])/t:.0f} samples/s)')" "$t0" "$t1" "$N"
case "$STORE" in sqlite:*) rm -rf "${STORE#sqlite:}"*;; esac
rm -rf "$OUT"
