#!/usr/bin/env bash
# deps-web.sh - make sure `npm` is there for the dashboard (web/build.sh).
#
# An npm already on PATH is used as it is (e.g. nodejs from another source,
# which bundles npm and conflicts with Debian's npm package). Otherwise the
# Debian 12 packages nodejs and npm are installed (npm 9.2 on nodejs 18).
set -euo pipefail
if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
  exit 0
fi
exec "$(dirname "$0")/deps.sh" nodejs npm ca-certificates
