#!/bin/sh
# tests/deploy/run.sh - install what the deploy checks need, then run one.
#
#   tests/deploy/run.sh validate-k8s.mjs --dir deploy/k8s --help-text FILE [--metrics FILE]
#
# Installs Debian's nodejs and npm when node/npm are missing (as
# tests/browser/run.sh does), then kubernetes-models and yaml pinned in
# tests/deploy/package-lock.json (npm ci, skipped while node_modules matches
# the lock file), then runs `node tests/deploy/SCRIPT ARGS...`.
# tests/integration/test_k8s_manifests.py calls it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "run.sh: installing nodejs and npm (Debian packages)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
fi

stamp="$here/node_modules/.dronegate-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$here/package-lock.json" "$stamp"; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >&2
    cp "$here/package-lock.json" "$stamp"
fi

script=$1
shift
exec node "$here/$script" "$@"
