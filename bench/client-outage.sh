#!/usr/bin/env bash
# client-outage.sh [OUTAGE_S] [RATE] [STORE]
#
# libdronegate figure, the way a drone runs it: one drone (examples/drone.c)
# with the library's DEFAULT limits and backoff (client max 8,000 samples/s,
# backoff up to 10 s; gateway --max-msg-rate default 10,000/s) sends RATE
# samples per second (default 1667) while no gateway runs for OUTAGE_S seconds
# (default 600: the 10-minute outage; 1,000,000 samples at the default rate),
# then the gateway starts and we time until every sample is acked (the drone
# stops sending at the end of the outage, then flushes and exits).
#   bench/client-outage.sh            # 10 minutes, ~12.5 minutes in all
#   bench/client-outage.sh 60 1667    # a 1-minute outage
set -eu
OUTAGE=${1:-600}; RATE=${2:-1667}; STORE=${3:-sqlite:/tmp/dg-outage-$$.db}
N=$((OUTAGE * RATE))
B=$(cd "$(dirname "$0")/.." && pwd)/build
. "$(dirname "$0")/client-common.sh"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
OUT=$(mktemp -d)
/usr/bin/time -f "drone peak RSS %M KB" -o "$OUT/time" "$B/examples/drone" --url "ws://127.0.0.1:$PORT" \
  --id outage-1 --count "$N" --rate "$RATE" --queue-max $((N + 1)) \
  --flush-ms 900000 --quiet > "$OUT/stats" 2> "$OUT/err" &
DP=$!
sleep "$OUTAGE"   # the outage (a benchmark, not a test: the clock is the point)
rss=$(awk '/VmRSS/{print $2}' /proc/$(pgrep -P $DP drone || echo $DP)/status 2>/dev/null || echo 0)
echo "outage of $OUTAGE s at $RATE samples/s: $N samples generated; drone RSS ${rss} KB"
drain_now
