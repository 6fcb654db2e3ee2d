#!/bin/sh
# web/build.sh - install the dashboard's npm dependencies (pinned in
# package-lock.json) and copy what the page loads into web/vendor/.
#
# Idempotent and quick when already done: npm is skipped while node_modules
# matches the lock file, and files are copied only when they changed.
# web/node_modules and web/vendor are build output (not in git).
set -eu
cd "$(dirname "$0")"

stamp=node_modules/.dronegate-lock
need_install=1
if [ -f package-lock.json ] && [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
    need_install=0
fi
if [ "$need_install" = 1 ]; then
    command -v npm >/dev/null 2>&1 || { echo "web/build.sh: npm is needed (apt-get install -y nodejs npm)" >&2; exit 1; }
    if [ -f package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    else
        npm install --no-audit --no-fund --loglevel=error
    fi
    cp package-lock.json "$stamp"
fi

# copy SRC DST: only when missing or different (keeps mtimes stable).
copy() {
    if [ ! -f "$2" ] || ! cmp -s "$1" "$2"; then
        mkdir -p "$(dirname "$2")"
        cp "$1" "$2.tmp.$$" && mv "$2.tmp.$$" "$2"
    fi
}

L=node_modules/leaflet/dist
copy $L/leaflet.js                      vendor/leaflet/leaflet.js
copy $L/leaflet.css                     vendor/leaflet/leaflet.css
for img in $L/images/*.png; do
    copy "$img" "vendor/leaflet/images/$(basename "$img")"
done
copy node_modules/topojson-client/dist/topojson-client.min.js vendor/topojson-client/topojson-client.min.js
copy node_modules/world-atlas/countries-50m.json vendor/world-atlas/countries-50m.json
copy node_modules/leaflet/LICENSE       vendor/leaflet/LICENSE
copy node_modules/topojson-client/LICENSE vendor/topojson-client/LICENSE
copy node_modules/world-atlas/LICENSE   vendor/world-atlas/LICENSE
echo "web/build.sh: vendor/ is up to date"
