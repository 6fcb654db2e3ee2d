#!/usr/bin/env bash
# deb-check.sh - build the Debian package from a clean copy of this tree and
# check it: `dpkg-buildpackage -b`, then lintian (fails on any error or
# warning), then the file list of the .deb.
#
#   scripts/deb-check.sh            (a minute or two; not part of `make test`)
#
# Installs debhelper, lintian and the build dependencies when missing. The
# dashboard's vendor/ files come from web/build.sh (npm) before the build.
# OUT (default: a new temp dir) receives the .deb, .changes and lintian output.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/deps.sh" debhelper lintian fakeroot dpkg-dev libev-dev libsqlite3-dev libssl-dev \
    libhttp-parser-dev libjsmn-dev libpq-dev libcurl4-openssl-dev
OUT=${OUT:-$(mktemp -d /tmp/dronegate-deb.XXXX)}
ver=$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Version)
src="$OUT/dronegate-$ver"
mkdir -p "$src"
(cd "$repo" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$src"
if [ -f "$repo/web/vendor/leaflet/leaflet.js" ]; then cp -a "$repo/web/vendor" "$src/web/"; else "$src/web/build.sh"; fi
rm -rf "$src/web/node_modules"
export COMMIT=${COMMIT:-$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
echo "deb-check: building in $src"
(cd "$src" && dpkg-buildpackage -b -us -uc) > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
deb=$(ls "$OUT"/dronegate_"$ver"_*.deb)
changes=$(ls "$OUT"/dronegate_"$ver"_*.changes)
echo "deb-check: built $deb"
rc=0
lintian --fail-on error,warning --info "$changes" > "$OUT/lintian.txt" 2>&1 || rc=$?
cat "$OUT/lintian.txt"
[ "$rc" = 0 ] || { echo "deb-check: FAIL: lintian (exit $rc)"; exit 1; }
dpkg -c "$deb" > "$OUT/contents.txt"
for f in ./usr/bin/dronegate ./usr/bin/dronegate-sim ./usr/share/man/man8/dronegate.8.gz \
         ./usr/share/man/man1/dronegate-sim.1.gz ./lib/systemd/system/dronegate.service \
         ./etc/default/dronegate ./usr/share/dronegate/web/index.html \
         ./usr/share/dronegate/web/vendor/leaflet/leaflet.js ./usr/share/doc/dronegate/copyright; do
    grep -q " $f\$" "$OUT/contents.txt" || { echo "deb-check: FAIL: $f is not in the package"; exit 1; }
done
echo "deb-check: PASS: $deb is lintian-clean (errors and warnings) and holds the expected files"
