#!/bin/sh
# tests/browser/run.sh - install what the browser tests need, then run them.
#
#   tests/browser/run.sh            (from anywhere; `make test` calls it)
#
# Installs Debian's chromium when /usr/bin/chromium is missing, playwright-core
# (pinned in tests/browser/package-lock.json; it drives the system chromium and
# downloads no browser), builds the dashboard's vendor/ files (web/build.sh),
# builds the gateway and simulator when they are missing, and runs
# `node --test tests/browser/`.
#
# Env: DRONEGATE_BIN, DRONEGATE_SIM (default build/dronegate, build/dronegate-sim),
#      CHROMIUM (default /usr/bin/chromium), DG_SCREENSHOT (default docs/dashboard.png),
#      DG_KEEP_TMP=1 keeps the gateway/simulator logs and the browser profile.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "run.sh: installing chromium (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "run.sh: installing nodejs and npm (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
fi

# playwright-core: skip npm while node_modules matches the lock file.
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: we use the system chromium, never a download.
stamp="$here/node_modules/.dronegate-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$here/package-lock.json" "$stamp"; then
    (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    cp "$here/package-lock.json" "$stamp"
fi

"$root/web/build.sh"

if [ -z "${DRONEGATE_BIN:-}" ] || [ -z "${DRONEGATE_SIM:-}" ]; then
    [ -x build/dronegate ] && [ -x build/dronegate-sim ] || make build/dronegate build/dronegate-sim
fi

exec node --test "$here/"
