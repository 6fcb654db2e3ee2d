#!/usr/bin/env bash
# check-image.sh - start the dronegate image as Kubernetes would run it and
# check the container contract of deploy/Containerfile (`make image-check`).
#
# 1. podman run: read-only root (no tmpfs either), every capability dropped,
#    no-new-privileges, a fresh volume on /var/lib/dronegate, host network
#    with DRONEGATE_LISTEN on a free loopback port;
# 2. /healthz answers 200 from outside; the gateway is PID 1 and runs as
#    uid 10001; `podman healthcheck run` (the image's HEALTHCHECK) is healthy;
# 3. one drone (python3-websockets) sends a message and gets its ack: the
#    SQLite store and its spool are writable in the volume;
# 4. with a second drone connected, podman stop (SIGTERM to PID 1): the drone
#    is closed with 1001, the log says "SIGTERM received: draining" and
#    "stopped cleanly", the exit code is 0, well before the stop timeout (no
#    SIGKILL).
# The container gets the settings of deploy/k8s/configmap.yaml (its
# DRONEGATE_* lines as an env file: web root, workers, drain timeout, spool
# dir in the volume...), except DRONEGATE_LISTEN (a free loopback port here);
# the store is SQLite in the volume (no PostgreSQL here).
# Exit 0 when all that holds. Needs root and podman. Not in `make test`.
#
# Env: IMAGE (default localhost/dronegate:latest), CONTAINER_FLAGS (global
# podman flags, e.g. --runtime runc), IMAGE_ULIMITS (e.g. --ulimit
# nofile=16384:16384), KEEP=1 keeps the container and volume.
set -euo pipefail
IMAGE=${IMAGE:-localhost/dronegate:latest}
read -r -a gflags <<< "${CONTAINER_FLAGS:-}"
read -r -a ulimits <<< "${IMAGE_ULIMITS:-}"
pm() { podman "${gflags[@]}" "$@"; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
name=dronegate-check-$$
ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)
say() { local t=$(( $(ms) - t0 )); printf 'check-image [%3d.%01ds]: %s\n' $((t / 1000)) $((t % 1000 / 100)) "$*"; }
fail() { say "FAIL: $*"; pm logs "$name" 2>&1 | tail -20 | sed 's/^/  | /'; exit 1; }
cleanup() {
    [ "${KEEP:-0}" = 1 ] && { say "kept container $name and volume $name"; return; }
    pm rm -f "$name" >/dev/null 2>&1 || true
    pm volume rm -f "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT

pm volume create "$name" >/dev/null
repo=$(cd "$(dirname "$0")/.." && pwd)
envfile=$(mktemp)
trap 'cleanup; rm -f "$envfile" "$envfile.drone"' EXIT
sed -n 's/^  \(DRONEGATE_[A-Z0-9_]*\): "\(.*\)"$/\1=\2/p' "$repo/deploy/k8s/configmap.yaml" > "$envfile"
grep -q DRONEGATE_SPOOL_DIR "$envfile" || fail "could not read deploy/k8s/configmap.yaml"
say "podman run $IMAGE (read-only, cap-drop ALL, listen 127.0.0.1:$port)"
pm run -d --name "$name" --read-only --read-only-tmpfs=false --cap-drop ALL \
    --security-opt no-new-privileges "${ulimits[@]}" --network host \
    --env-file "$envfile" -e DRONEGATE_STORE=sqlite:/var/lib/dronegate/dronegate.db \
    -e DRONEGATE_LISTEN="127.0.0.1:$port" -v "$name:/var/lib/dronegate" \
    "$IMAGE" >/dev/null

deadline=$(( $(date +%s) + 30 ))
until curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$port/healthz" 2>/dev/null; do
    [ "$(pm inspect -f '{{.State.Running}}' "$name")" = true ] || fail "the container exited"
    [ "$(date +%s)" -lt "$deadline" ] || fail "/healthz did not answer within 30 s"
    sleep 0.2
done
say "/healthz 200"

pid1=$(pm exec "$name" cat /proc/1/cmdline | tr '\0' ' ')
case "$pid1" in /usr/bin/dronegate*) say "PID 1: $pid1";; *) fail "PID 1 is '$pid1', not the gateway";; esac
uid=$(pm exec "$name" sh -c 'awk "/^Uid:/ {print \$2}" /proc/1/status')
[ "$uid" = 10001 ] || fail "the gateway runs as uid $uid"
say "uid $uid"
pm exec "$name" sh -c 'touch /usr/bin/x 2>/dev/null' && fail "the root filesystem is writable"
say "root filesystem read-only"

deadline=$(( $(date +%s) + 30 ))
until pm healthcheck run "$name" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "podman healthcheck run: not healthy within 30 s ($(pm healthcheck run "$name" 2>&1))"
    sleep 0.5
done
say "HEALTHCHECK healthy ($(pm inspect -f '{{.Config.Healthcheck.Test}}' "$name"))"

/usr/bin/python3 - "$port" <<'PY' || fail "no ack for a drone's message"
import asyncio, json, sys, websockets
async def main(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/check-1", subprotocols=["dronegate.json.v1"]) as ws:
        json.loads(await asyncio.wait_for(ws.recv(), 10))          # session
        await ws.send(json.dumps({"seq": 1, "latitude": 47.4, "longitude": 8.5, "altitude": 500}))
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if m.get("type") == "ack" and m.get("seq") == 1:
                return
            assert m.get("type") != "error", m
asyncio.run(main(int(sys.argv[1])))
PY
say "a drone's message stored and acked (SQLite in the volume)"
pm exec "$name" ls -la /var/lib/dronegate | sed 's/^/  | /'

# a drone that stays connected through the stop: it must see close 1001
/usr/bin/python3 - "$port" "$envfile.drone" <<'PY' &
import asyncio, json, sys, websockets
async def main(port, out):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/check-2", subprotocols=["dronegate.json.v1"]) as ws:
        await asyncio.wait_for(ws.recv(), 10)
        open(out, "w").write("connected\n")
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 60)
        except websockets.ConnectionClosed as e:
            open(out, "a").write(f"close {e.code}\n")
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
PY
drone=$!
deadline=$(( $(date +%s) + 10 ))
until grep -q connected "$envfile.drone" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the second drone did not connect"
    sleep 0.1
done
say "podman stop (SIGTERM to PID 1) with a drone connected"
ts=$(ms)
pm stop -t 30 "$name" >/dev/null
took=$(( $(ms) - ts ))
rc=$(pm inspect -f '{{.State.ExitCode}}' "$name")
logs=$(pm logs "$name" 2>&1)
grep -q "SIGTERM received: draining" <<< "$logs" || fail "no 'SIGTERM received: draining' in the log"
grep -q "stopped cleanly" <<< "$logs" || fail "no 'stopped cleanly' in the log"
[ "$rc" = 0 ] || fail "exit code $rc after SIGTERM"
wait "$drone" || true
grep -q "close 1001" "$envfile.drone" || fail "the connected drone saw '$(tail -1 "$envfile.drone")', not close 1001"
say "the connected drone was closed with 1001"
say "drained and exited 0, podman stop took ${took} ms"
say "OK"
