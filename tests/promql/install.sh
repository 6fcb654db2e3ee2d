#!/bin/sh
# tests/promql/install.sh - install the PromQL parser used by
# tests/integration/test_prometheus.py: @prometheus-io/lezer-promql, pinned in
# package-lock.json (npm ci; skipped while node_modules matches the lock file).
# Installs Debian's nodejs/npm first when none is on PATH (scripts/deps-web.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../../scripts/npm-ci.sh" "$here"
