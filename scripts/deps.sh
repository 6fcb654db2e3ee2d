#!/usr/bin/env bash
# deps.sh [PKG...] - install Debian 12 packages, only those missing.
# Without arguments: what dronegate needs to build and test.
set -euo pipefail
PKGS=(build-essential clang libclang-rt-14-dev pkg-config
      libev-dev libsqlite3-dev sqlite3 libssl-dev libhttp-parser-dev libjsmn-dev libpq-dev libcurl4-openssl-dev
      python3 python3-websockets python3-pytest python3-gpxpy gdal-bin curl)
# Each component may list more packages in scripts/deps.d/<name>.list (one per line).
for f in "$(dirname "$0")"/deps.d/*.list; do
  [ -f "$f" ] && while read -r p; do case "$p" in ''|'#'*) ;; *) PKGS+=("$p");; esac; done < "$f"
done
[ $# -gt 0 ] && PKGS=("$@")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
