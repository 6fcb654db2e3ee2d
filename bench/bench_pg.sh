#!/usr/bin/env bash
# bench_pg.sh - dronegate into PostgreSQL and InfluxDB against each
# database's raw bulk path (psql \copy; curl line protocol), and the p99 ack
# latency at half the measured rate. See bench/bench_stores.py for what is
# measured and docs/benchmarks-stores.md for figures.
#
#   bench/bench_pg.sh                     # both stores, 1000 drones, 20 s runs
#   bench/bench_pg.sh --only pg --micro   # + the backend's write paths side by side
#   bench/bench_pg.sh --json out.json     # every figure as JSON too
#   bench/bench_pg.sh --latency 40,100,136 --duration 15   # ack latency at fixed rates only
#   bench/bench_pg.sh --only influx --latency 30,60 --gw-args "--workers 1"
#
# Needs: make build/dronegate build/dronegate-sim (and build/bench/bench_pg_write
# for --micro), scripts/deps-stores.sh. Starts its own throw-away servers on
# free loopback ports; takes ~3 minutes. Runs on the machine as it is: other
# load on the 2 cores skews every figure (the load average is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/bench_stores.py "$@"
