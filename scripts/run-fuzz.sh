#!/usr/bin/env bash
# run-fuzz.sh SECONDS BIN... - run each libFuzzer target briefly on its corpus.
set -u
secs=$1; shift
rc=0
for f in "$@"; do
  name=$(basename "$f")
  corpus=fuzz/corpus/${name#fuzz_}
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
  dict=fuzz/${name#fuzz_}.dict; dopt=(); [ -f "$dict" ] && dopt=(-dict="$dict")
  echo "fuzz: $name for ${secs}s"
  if ! "$f" -max_total_time="$secs" -print_final_stats=0 "${dopt[@]}" "$work" >"$work.log" 2>&1; then
    tail -n 40 "$work.log"; echo "fuzz: $name FAILED"; rc=1
  else
    grep -E 'Done [0-9]+ runs' "$work.log" | tail -n1
  fi
  rm -rf "$work" "$work.log"
done
exit $rc
