#!/usr/bin/env bash
# cpu_budget.sh - where the machine's CPU goes under a fixed-rate fleet, and
# how much is left for the store: the same load against dronegate on null:
# (network path, decoding, acks; no store) and on SQLite (the default).
#
#   bench/cpu_budget.sh                          # 200 drones x 831 msgs/s, window 256
#   DRONES=200 RATE=350 WINDOW=256 DUR=5 STORES="null: sqlite" bench/cpu_budget.sh
#   DRONES=10000 RATE=5 SIMFLAGS="--tick 10 --threads 2 --ramp 5000" bench/cpu_budget.sh
#   GWFLAGS="--commit-interval 5" STORES=sqlite ...   # gateway flags
#   STORES="minimal null: sqlite" ...      # minimal: bench/ws_minimal (frames
#                                          # and acks only; the network path's floor)
#
# For each store: a fresh gateway with default flags (--max-msg-rate 0 so a
# drone may exceed the default per-drone limit), one simulator run, and
#   server_cpu_s  utime+stime of the gateway during the run (/proc/PID/stat)
#   sim_cpu_s     utime+stime of the simulator (getrusage of the child)
#   idle_cpu_s    nproc * wall - server - sim (what nobody used)
#   left_us_per_msg  idle_cpu_s / messages acked: on the null: line, the
#                 CPU per message that is left for a store's writer
# plus acked msgs/s, ack p50/p99. Compare left_us_per_msg with the store's
# own cost per row (bench_store, bench_sqlite_raw): a store that needs more
# than is left cannot keep the ack latency low at this rate on this machine,
# whatever the gateway does. Loopback only; the simulator shares the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
DUR=${DUR:-5}
DRONES=${DRONES:-200}
RATE=${RATE:-831}
WINDOW=${WINDOW:-256}
STORES=${STORES:-"null: sqlite"}
SIMFLAGS=${SIMFLAGS:-}
GWFLAGS=${GWFLAGS:-}
make -s $B/dronegate $B/dronegate-sim $B/bench/ws_minimal >/dev/null
TMP=$(mktemp -d /tmp/dgcpu.XXXXXX)
GP=
cleanup() { [ -n "$GP" ] && kill -TERM "$GP" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $DRONES drones x $RATE msgs/s, window $WINDOW, ${DUR} s, $(date -u +%FT%TZ)"
printf '| %-7s | %10s | %8s | %8s | %10s | %7s | %8s | %15s |\n' store "acked/s" p50 p99 server_cpu sim_cpu idle_cpu left_us_per_msg
printf '|%s|\n' "---------|------------|----------|----------|------------|---------|----------|-----------------"
n=0
for st in $STORES; do
  n=$((n + 1))
  port=$(free_port)
  case $st in sqlite) store="sqlite:$TMP/$n/dg.db"; mkdir -p "$TMP/$n" ;; *) store=$st ;; esac
  if [ "$st" = minimal ]; then
    $B/bench/ws_minimal --listen 127.0.0.1:$port --threads 2 2>"$TMP/gw$n.log" &
  else
    $B/dronegate --listen 127.0.0.1:$port --store "$store" --max-msg-rate 0 $GWFLAGS 2>"$TMP/gw$n.log" &
  fi
  GP=$!
  for _ in $(seq 100); do
    /usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' $port 2>/dev/null && break
    sleep 0.1
  done
  /usr/bin/python3 - "$GP" "$B/dronegate-sim" "$port" "$DRONES" "$DUR" "$WINDOW" "$RATE" "r$n-" "$st" "$SIMFLAGS" <<'EOF'
import json, os, resource, subprocess, sys, time
gp, sim, port, drones, dur, window, rate, prefix, st, extra = sys.argv[1:]
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
c0, t0 = cpu(gp), time.monotonic()
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
out = subprocess.run([sim, "--url", f"ws://127.0.0.1:{port}", "--prefix", prefix, "--drones", drones,
                      "--duration", dur, "--window", window, "--rate", rate, "--quiet", "--json"] + extra.split(),
                     check=True, capture_output=True, text=True).stdout
wall = time.monotonic() - t0
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
srv = cpu(gp) - c0
simc = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
r = json.loads(out.strip().splitlines()[-1])
idle = os.cpu_count() * wall - srv - simc
acked = max(1, r["acked"])
print(f'| {st:7} | {round(r["acked_per_s"]):10} | {r["ack_latency_ms"]["p50"]:6.1f}ms | {r["ack_latency_ms"]["p99"]:6.1f}ms '
      f'| {srv:9.2f}s | {simc:6.2f}s | {idle:7.2f}s | {idle * 1e6 / acked:15.2f} |')
EOF
  kill -TERM "$GP"; wait "$GP" 2>/dev/null || true; GP=
done
