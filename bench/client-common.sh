# client-common.sh - sourced by bench/client-drain.sh and client-outage.sh.
# drain_now GATEWAY_ARGS...: start the gateway on $PORT/$STORE, wait for the
# drone ($DP) to flush and exit, print its stats and the drain time of $N
# samples, clean up ($OUT, a SQLite $STORE).
drain_now() {
  local t0 t1 gp
  t0=$(date +%s.%N)
  "$B/dronegate" --listen "127.0.0.1:$PORT" --store "$STORE" --workers 2 "$@" 2> "$OUT/gw" &
  gp=$!
  wait "$DP" || true
  t1=$(date +%s.%N)
  kill "$gp"; wait "$gp" || true
  cat "$OUT/stats" "$OUT/time"
  python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); print(f'drain: {int(sys.argv[3])} samples in {t:.1f} s from gateway start to the last ack ({int(sys.argv[3])/t:.0f} samples/s)')" "$t0" "$t1" "$N"
  case "$STORE" in sqlite:*) rm -rf "${STORE#sqlite:}"*;; esac
  rm -rf "$OUT"
}
