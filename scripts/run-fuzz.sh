#!/usr/bin/env bash
# run-fuzz.sh SECONDS BIN... - run each libFuzzer target briefly on its corpus.
#
# The corpus is fuzz/corpus/<target>/ in the repo, given to libFuzzer as its
# first directory, so what one run finds the next builds on. To keep it
# small: inputs are capped at FUZZ_MAX_LEN bytes (default 4096) and after the
# run the corpus is merged (libFuzzer -merge=1): hash-named units that add no
# coverage are removed; hand-written seeds (any other name) are always kept.
#
# A target FAILS when libFuzzer exits non-zero (crash, leak, timeout, a failed
# invariant) or when its log holds any sanitizer report, even one that did not
# stop the run (UBSan "runtime error:", AddressSanitizer, LeakSanitizer).
# The log is kept at build/fuzz/<target>.log (always), crash inputs at
# build/fuzz/<target>-crash-*. Exit status: 0 when every target passed.
#
# Targets run FUZZ_JOBS at a time (default: the number of CPUs; libFuzzer
# uses one); each one's report is printed in order when all are done.
set -u
secs=$1; shift
maxlen=${FUZZ_MAX_LEN:-4096}
jobs=${FUZZ_JOBS:-$(nproc)}
logdir=build/fuzz
mkdir -p "$logdir"

one() {
  local f=$1 rc=0
  local name t corpus dict log st merged u b
  name=$(basename "$f")
  t=${name#fuzz_}
  corpus=fuzz/corpus/$t
  mkdir -p "$corpus"
  dict=fuzz/$t.dict
  [ -f "$dict" ] || dict=fuzz/telemetry.dict      # fuzz_store reads telemetry JSON
  dopt=(); [ -f "$dict" ] && dopt=(-dict="$dict")
  log=$logdir/$name.log
  echo "fuzz: $name for ${secs}s on $corpus ($(ls "$corpus" | wc -l) units)"
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$f" -max_total_time="$secs" -max_len="$maxlen" -print_final_stats=0 \
    -artifact_prefix="$logdir/$name-" "${dopt[@]}" "$corpus" >"$log" 2>&1
  st=$?
  if [ $st -ne 0 ] || grep -qE 'runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|ERROR: libFuzzer' "$log"; then
    grep -nE 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|invariant failed' "$log" | head -n 5
    tail -n 40 "$log"
    echo "fuzz: $name FAILED (exit $st); log kept at $log, crash inputs at $logdir/$name-*"
    return 1
  fi
  grep -E 'Done [0-9]+ runs' "$log" | tail -n1
  # keep the corpus minimal: merge into a fresh directory, drop the
  # hash-named units the merge did not keep
  merged=$(mktemp -d)
  if "$f" -merge=1 -max_len="$maxlen" "$merged" "$corpus" >"$log.merge" 2>&1; then
    for u in "$corpus"/*; do
      b=$(basename "$u")
      [[ $b =~ ^[0-9a-f]{40}$ ]] || continue
      [ -e "$merged/$b" ] || rm -f "$u"
    done
    echo "fuzz: $name corpus now $(ls "$corpus" | wc -l) units"
    rm -f "$log.merge"
  else
    echo "fuzz: $name merge failed (corpus left as is), see $log.merge"
    rc=1
  fi
  rm -rf "$merged"
  return $rc
}

rc=0
pids=() outs=()
for f in "$@"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  out=$logdir/$(basename "$f").report
  one "$f" >"$out" 2>&1 &
  pids+=($!) outs+=("$out")
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || rc=1
  cat "${outs[$i]}"
  rm -f "${outs[$i]}"
done
exit $rc
