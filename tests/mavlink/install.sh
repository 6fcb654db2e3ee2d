#!/bin/sh
# tests/mavlink/install.sh - install the simulated MAVLink vehicle's libraries used by
# tests/integration/test_mavlink.py: npm node-mavlink + mavlink-mappings, pinned in
# package-lock.json (npm ci; skipped while node_modules matches the lock file).
# Installs Debian's nodejs/npm first when none is on PATH (scripts/deps-web.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
"$root/scripts/deps-web.sh"
stamp="$here/node_modules/.dronegate-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$here/package-lock.json" "$stamp"; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$here/package-lock.json" "$stamp"
fi
