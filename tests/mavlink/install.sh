#!/bin/sh
# tests/mavlink/install.sh - install the simulated MAVLink vehicle's libraries used by
# tests/integration/test_mavlink.py: npm node-mavlink + mavlink-mappings, pinned in
# package-lock.json (npm ci; skipped while node_modules matches the lock file).
# Installs Debian's nodejs/npm first when none is on PATH (scripts/deps-web.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../../scripts/npm-ci.sh" "$here"
