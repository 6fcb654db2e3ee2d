#!/usr/bin/env bash
# fresh-root-check.sh - the newcomer's path on a clean Debian 12, end to end.
#
#   sudo scripts/fresh-root-check.sh          (takes minutes: see the timings it prints)
#
# 1. debootstrap a minimal Debian 12 (bookworm, --variant=minbase) from the
#    Debian mirror into a fresh directory;
# 2. install only `make` there (what the README asks a newcomer to have),
#    copy this repository in (tracked and new files; no build/, no vendor/);
# 3. in a chroot: `make run ARGS="--listen 127.0.0.1:PORT"` - which installs
#    the build packages and Debian's nodejs+npm, runs npm ci, builds and
#    starts the gateway - and wait for its "dashboard:" line;
# 4. from outside (same network): GET / and every asset the page loads
#    (scripts and stylesheets of index.html, the worker, the world outline,
#    /api/v1/config) must answer 200; the log must end with the dashboard
#    URL and the simulator command.
# Exit 0 when all that holds. Not part of `make test` (slow, needs root and
# the network to deb.debian.org and registry.npmjs.org).
#
# TLS: where this host's network intercepts TLS (a proxy with its own CA in
# /usr/local/share/ca-certificates, as on the machine this was written on),
# npm in the root could not reach registry.npmjs.org; those CA certificates
# (public certificates, no keys) are copied into the root and
# NODE_EXTRA_CA_CERTS is set for `make run`, as on the host. On a normal
# network there are none and nothing is copied.
#
# Env: MIRROR (default http://deb.debian.org/debian), FRESH_ROOT (directory,
# default a new /var/tmp/dronegate-fresh.XXXX), KEEP=1 keeps it afterwards,
# PORT (default a free one), RUN_TIMEOUT seconds for `make run` (default 1800).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
RUN_TIMEOUT=${RUN_TIMEOUT:-1800}
[ "$(id -u)" = 0 ] || { echo "fresh-root-check: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
command -v debootstrap >/dev/null || "$repo/scripts/deps.sh" debootstrap
command -v curl >/dev/null || "$repo/scripts/deps.sh" curl
root=${FRESH_ROOT:-$(mktemp -d /var/tmp/dronegate-fresh.XXXX)}
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
t0=$(date +%s)
say() { echo "fresh-root-check [$(( $(date +%s) - t0 ))s]: $*"; }

runpid=""
cleanup() {
    set +e
    if [ -n "$runpid" ] && kill -0 "$runpid" 2>/dev/null; then
        kill -TERM -- "-$runpid"; for _ in $(seq 100); do kill -0 "$runpid" 2>/dev/null || break; sleep 0.1; done
    fi
    for m in dev/pts dev proc sys; do mountpoint -q "$root/$m" && umount -l "$root/$m"; done
    [ -f "$root/src/dronegate/make-run.log" ] && cp "$root/src/dronegate/make-run.log" "$root.make-run.log" \
        && say "the make run log: $root.make-run.log"
    if [ "${KEEP:-0}" = 1 ]; then say "kept $root"; else rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT

say "debootstrap bookworm (minbase) into $root from $MIRROR"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" > "$root.debootstrap.log" 2>&1 \
    || { tail -20 "$root.debootstrap.log"; exit 1; }
say "debootstrap done"
cat > "$root/etc/apt/sources.list" <<SRC
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"; mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"; mount --bind /dev/pts "$root/dev/pts"

in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make >/dev/null'
say "make installed; copying the repository"
mkdir -p "$root/src/dronegate"
(cd "$repo" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$root/src/dronegate"
# git metadata is not copied: the version falls back to the Makefile's BASE_VERSION.
for t in npm node cc curl; do
    in_root sh -c "command -v $t" >/dev/null && { echo "fresh root is not fresh: $t is already there" >&2; exit 1; }
done

extra_env=""
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    extra_env="NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"
    say "copied this host's local CA certificates into the root: $(cd /usr/local/share/ca-certificates && echo *.crt)"
fi

log="$root/src/dronegate/make-run.log"
say "make run (installs packages, npm ci, builds, starts the gateway on 127.0.0.1:$PORT)"
t_run=$(date +%s)
setsid chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 $extra_env \
    sh -c "cd /src/dronegate && exec make run ARGS='--listen 127.0.0.1:$PORT'" > "$log" 2>&1 < /dev/null &
runpid=$!
deadline=$(( $(date +%s) + RUN_TIMEOUT ))
until grep -q '^dashboard: ' "$log"; do
    kill -0 "$runpid" 2>/dev/null || { tail -40 "$log"; say "FAIL: make run exited before the dashboard line"; exit 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { tail -40 "$log"; say "FAIL: no dashboard line within ${RUN_TIMEOUT}s"; exit 1; }
    sleep 1
done
say "make run is up after $(( $(date +%s) - t_run ))s"
tail -3 "$log"

fail=0
base="http://127.0.0.1:$PORT"
tail -2 "$log" | grep -q "^dashboard: http://127.0.0.1:$PORT/" || { say "FAIL: the log does not end with the dashboard URL"; fail=1; }
tail -1 "$log" | grep -q "^simulated drones: .*dronegate-sim" || { say "FAIL: no simulator command at the end of the log"; fail=1; }
assets=$(curl -fsS "$base/" | grep -oE '(src|href)="[^"]+"' | sed -E 's/^(src|href)="//; s/"$//' | grep -v '^data:' || true)
for u in / $assets live-worker.js vendor/world-atlas/countries-50m.json api/v1/config; do
    u=${u#/}
    code=$(curl -s -o /dev/null -w '%{http_code}' "$base/$u")
    echo "  $code /$u"
    [ "$code" = 200 ] || fail=1
done
[ -n "$assets" ] || { say "FAIL: no assets found in index.html"; fail=1; }
total=$(( $(date +%s) - t0 ))
if [ "$fail" = 0 ]; then say "PASS: fresh Debian 12 root, make run, / and every asset answer 200 (total ${total}s)"
else
    grep -n -i -B2 -A12 'npm ERR\|web/build.sh' "$log" | head -60
    say "FAIL (total ${total}s)"; exit 1
fi
