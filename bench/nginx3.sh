#!/usr/bin/env bash
# nginx3.sh - three gateways behind nginx against one gateway without it:
# aggregate acked msgs/s and ack p99 (null: and PostgreSQL stores), and the
# time a kill -9'd gateway's drones need to be back and acked through nginx
# (issue 12 §6). See bench/nginx3.py for what is measured; figures in
# docs/benchmarks.md ("Several gateways behind nginx").
#
#   bench/nginx3.sh                                  # ~3 minutes
#   bench/nginx3.sh --duration 5 --stores null       # a quick look
#   bench/nginx3.sh --drones 300 --rate 10 --json /tmp/nginx3.json
#
# Needs: make build/dronegate build/dronegate-sim; nginx, openssl, gettext-base
# (scripts/deps.d/nginx.list), PostgreSQL 15 (scripts/deps-stores.sh).
# dronegate-sim speaks ws:// only: it uses nginx's plain listener (the same
# server block as wss://, without TLS). Everything runs on this machine, the
# simulator included: other load on the cores skews every figure.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/dronegate build/dronegate-sim >/dev/null
exec /usr/bin/python3 bench/nginx3.py "$@"
