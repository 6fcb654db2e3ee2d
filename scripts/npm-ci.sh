#!/bin/sh
# scripts/npm-ci.sh DIR - install the npm packages a test tool pins in
# DIR/package-lock.json (npm ci; skipped while DIR/node_modules matches the
# lock file). Installs Debian's nodejs/npm first when none is on PATH
# (scripts/deps-web.sh). Used by tests/buf, tests/promql, tests/mavlink.
set -eu
here=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps-web.sh"
stamp="$here/node_modules/.dronegate-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$here/package-lock.json" "$stamp"; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$here/package-lock.json" "$stamp"
fi
