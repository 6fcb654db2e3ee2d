#!/usr/bin/env bash
# run.sh [--demo [N]] [-- GATEWAY FLAGS...] - what `make run` / `make demo` do
# after the build: fill web/vendor/, start build/dronegate with the dashboard,
# wait until it answers /healthz, then print the dashboard URL and the one
# command that starts simulated drones (the last lines of the start-up log).
# With --demo, N simulated drones (default 36) fly at once: dronegate-sim
# --airborne starts them at cruise altitude along their missions, so the map
# moves from the first second.
#
# The gateway stays in the foreground of this script: Ctrl-C (SIGINT) or
# SIGTERM is passed on, so it drains as usual; the exit status is its own.
# Env: DRONEGATE_LISTEN etc. work as for the gateway; the port is taken from
# --listen (flag or env), default 8080. DG_GATEWAY, DG_SIM: other binaries
# (tests), default build/dronegate and build/dronegate-sim.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
demo=0; ndrones=36
if [ "${1:-}" = "--demo" ]; then
  demo=1; shift
  case "${1:-}" in ''|--*) ;; *) ndrones=$1; shift ;; esac
fi
[ "${1:-}" = "--" ] && shift

web_note=""
if ! web/build.sh; then
  web_note="the map library could not be installed (web/build.sh failed above): the page says so; the API works"
fi
mkdir -p data

listen=${DRONEGATE_LISTEN:-0.0.0.0:8080}
prev=""
for a in "$@"; do
  case "$a" in --listen=*) listen=${a#--listen=} ;; esac
  [ "$prev" = "--listen" ] && listen=$a
  prev=$a
done
port=${listen##*:}
host=${listen%:*}
case "$host" in ''|0.0.0.0|'[::]') host=localhost ;; esac

gwbin=${DG_GATEWAY:-./build/dronegate}
simbin=${DG_SIM:-./build/dronegate-sim}
"$gwbin" --web-root ./web "$@" &
gw=$!
sim=""
stop() { [ -n "$sim" ] && kill -TERM "$sim" 2>/dev/null; kill -"$1" "$gw" 2>/dev/null; }
trap 'stop INT' INT
trap 'stop TERM' TERM

# Wait until the gateway answers (or exits).
up=0
for _ in $(seq 1 300); do
  kill -0 "$gw" 2>/dev/null || break
  if curl -fs -o /dev/null "http://$host:$port/healthz" 2>/dev/null; then up=1; break; fi
  sleep 0.1
done
if [ "$up" = 1 ]; then
  simcmd="./build/dronegate-sim --url ws://$host:$port --drones 36 --duration 0"
  if [ "$demo" = 1 ]; then
    "$simbin" --url "ws://$host:$port" --drones "$ndrones" --duration 0 --airborne --quiet &
    sim=$!
    echo "demo: $ndrones simulated drones are flying (build/dronegate-sim, stopped with the gateway)"
  fi
  [ -n "$web_note" ] && echo "note: $web_note"
  echo "dashboard: http://$host:$port/"
  [ "$demo" = 1 ] || echo "simulated drones: $simcmd   (or: make demo)"
fi
while :; do
  wait "$gw"; rc=$?
  kill -0 "$gw" 2>/dev/null || break
done
[ -n "$sim" ] && { kill -TERM "$sim" 2>/dev/null; wait "$sim" 2>/dev/null; }
exit "$rc"
