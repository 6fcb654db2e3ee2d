#!/usr/bin/env bash
# make-base-image.sh - the local Debian 12 (bookworm) base image for
# deploy/Containerfile, made with debootstrap: no container registry is
# needed (none is reachable where this was written).
#
#   sudo deploy/make-base-image.sh        (a few minutes; `make image` runs it when the image is missing)
#
# 1. debootstrap --variant=minbase bookworm into a temp directory from the
#    Debian mirror (MIRROR);
# 2. make it "slim" the way Debian's official bookworm-slim image is: dpkg
#    excludes documentation, man pages and locales (now and for every later
#    apt-get install), no recommends, empty apt lists and caches, sources for
#    bookworm, bookworm-updates and bookworm-security;
# 3. import the tree as IMAGE with `podman import` (buildah and podman share
#    the local image store).
#
# Env: IMAGE (default localhost/dronegate-base:bookworm-slim),
#      MIRROR (default http://deb.debian.org/debian), KEEP=1 keeps the tree.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:-localhost/dronegate-base:bookworm-slim}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" = 0 ] || { echo "make-base-image: needs root (debootstrap makes device nodes and chowns)" >&2; exit 2; }
command -v debootstrap >/dev/null || "$repo/scripts/deps.sh" debootstrap
command -v podman >/dev/null || "$repo/scripts/deps.sh" podman

root=$(mktemp -d /var/tmp/dronegate-base.XXXX)
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "make-base-image: kept $root"; else rm -rf --one-file-system "$root"; fi; }
trap cleanup EXIT

echo "make-base-image: debootstrap bookworm (minbase) from $MIRROR into $root"
debootstrap --variant=minbase --components=main bookworm "$root" "$MIRROR" > "$root.log" 2>&1 \
    || { tail -20 "$root.log"; exit 1; }
rm -f "$root.log"

cat > "$root/etc/apt/sources.list" <<SRC
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
# slim: what dpkg leaves out from now on (the same list as Debian's -slim images)
cat > "$root/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
cat > "$root/etc/apt/apt.conf.d/90slim" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
CFG
# and what is already there
find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/groff/* "$root"/usr/share/lintian/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
find "$root/var/log" -type f -delete
# the runtime provides these
: > "$root/etc/resolv.conf"
: > "$root/etc/hostname"
rm -f "$root/etc/machine-id" && : > "$root/etc/machine-id"

echo "make-base-image: importing as $IMAGE"
tar --numeric-owner --xattrs -C "$root" -c . \
    | podman import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
        --message "debootstrap --variant=minbase bookworm $MIRROR (deploy/make-base-image.sh)" - "$IMAGE"
podman image inspect "$IMAGE" --format 'make-base-image: {{.Id}} {{.Size}} bytes'
