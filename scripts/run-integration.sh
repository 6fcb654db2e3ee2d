#!/usr/bin/env bash
# run-integration.sh - the integration suite twice: against the plain build and
# against the ASan+UBSan build (tests marked plain_only are deselected there).
#
#   scripts/run-integration.sh            both passes at the same time (make test)
#   INTEGRATION_SERIAL=1 scripts/...      one after the other
#   scripts/run-integration.sh -k grpc    extra arguments go to both pytest runs
#
# Why at the same time: most of a pass is waiting (servers starting, PostgreSQL
# initdb, drones flying for a set number of messages), so two passes on two
# cores take little more than the longer one. The tests synchronise on events,
# never on the clock, so the extra load must not change their outcome (if it
# does, that test has a timing bug: fix the test). Every test uses free ports
# and its own temporary folders; the npm tools some tests use are installed
# here first, once, so that the two passes never run `npm ci` at once.
#
# Each pass writes its own log (kept under $INTEGRATION_LOGDIR, default a new
# /tmp/dg-integration.* folder); the summary of each is printed, and the whole
# log of a pass that failed. Exit status 0 only when both passes passed.
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
for inst in tests/*/install.sh; do
    [ -x "$inst" ] || continue
    if ! out=$("$inst" 2>&1); then
        echo "$inst failed:"; echo "$out"; exit 1
    fi
done
logdir=${INTEGRATION_LOGDIR:-$(mktemp -d /tmp/dg-integration.XXXXXX)}
mkdir -p "$logdir"
run_plain() {
    DRONEGATE_BIN=$PWD/$B/dronegate DRONEGATE_SIM=$PWD/$B/dronegate-sim \
        /usr/bin/python3 -m pytest -q tests/integration "$@" >"$logdir/plain.log" 2>&1
}
run_asan() {
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 DRONEGATE_ASAN=1 \
    DRONEGATE_BIN=$PWD/$B/dronegate-asan DRONEGATE_SIM=$PWD/$B/dronegate-sim \
        /usr/bin/python3 -m pytest -q -m "not plain_only" tests/integration "$@" >"$logdir/asan.log" 2>&1
}
start=$(date +%s)
if [ -n "${INTEGRATION_SERIAL:-}" ]; then
    run_plain "$@"; rp=$?
    run_asan "$@"; ra=$?
else
    run_plain "$@" & pp=$!
    run_asan "$@" & pa=$!
    wait $pp; rp=$?
    wait $pa; ra=$?
fi
end=$(date +%s)
report() {  # name status log
    if [ "$2" -eq 0 ]; then
        echo "== integration ($1): passed"; tail -n 12 "$3"
    else
        echo "== integration ($1): FAILED (exit $2), whole log:"; cat "$3"
    fi
}
report plain $rp "$logdir/plain.log"
report "ASan+UBSan" $ra "$logdir/asan.log"
echo "== integration: both passes in $((end - start)) s (logs in $logdir)"
[ $rp -eq 0 ] && [ $ra -eq 0 ]
