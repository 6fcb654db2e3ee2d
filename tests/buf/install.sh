#!/bin/sh
# tests/buf/install.sh - install buf (npm @bufbuild/buf, pinned in
# package-lock.json; npm ci, skipped while node_modules matches the lock file)
# for tests/integration/test_grpc.py. Installs Debian's nodejs/npm first when
# none is on PATH (scripts/deps-web.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../../scripts/npm-ci.sh" "$here"
