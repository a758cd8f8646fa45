#!/usr/bin/env bash
# tests/fuzz/fuzz_one.sh FUZZER SEED_DIR WORK_DIR: one libFuzzer run; meson runs it as a test of
# suite "fuzz" (tests/fuzz/meson.build). tests/fuzz/run.sh is the usual way in.
#
#   env FUZZ_SECONDS   how long to fuzz; unset or 0 only replays the corpora (so a plain
#                      `meson test` in a build with both tests and fuzzers stays quick)
#
# The committed seeds in SEED_DIR are read, never written: new inputs go to WORK_DIR/corpus and
# crashing inputs to WORK_DIR/crash-* (or leak-*, timeout-*, oom-*). libFuzzer's output goes to
# WORK_DIR/fuzz.log (its tail is printed on failure, its final stats otherwise) and a one-line
# result to WORK_DIR/summary. Exits non-zero on any crash, sanitizer report, broken invariant
# (CHECK), leak or hang.
set -uo pipefail

if (($# != 3)); then
  echo "usage: $0 FUZZER SEED_DIR WORK_DIR" >&2
  exit 2
fi
fuzzer=$(realpath "$1") seeds=$2 work=$3
name=$(basename "$fuzzer")
secs=${FUZZ_SECONDS:-0}
if ! [[ $secs =~ ^[0-9]+$ ]]; then
  echo "$name: FUZZ_SECONDS must be a whole number of seconds, got '$secs'" >&2
  exit 2
fi

mkdir -p "$work/corpus"
rm -f "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-* \
  "$work/summary"

# A UBSan report must stop the run so that libFuzzer saves the input (UBSan only warns by
# default); settings already in the environment come later and win.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

args=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/")
if ((secs > 0)); then
  args+=(-max_total_time="$secs")
else
  args+=(-runs=0)
fi
start=$SECONDS
# The outer deadline covers loading the corpora and a hang that libFuzzer's own -timeout misses.
timeout --kill-after=10 $((secs + 120)) "$fuzzer" "${args[@]}" "$work/corpus" "$seeds" \
  >"$work/fuzz.log" 2>&1
rc=$?
elapsed=$((SECONDS - start))
if ((rc != 0)); then
  echo "$name: the last 60 lines of $work/fuzz.log:"
  tail -n 60 "$work/fuzz.log"
else
  grep -E '^(INFO: seed corpus|#[0-9]+[[:space:]]+INITED|#[0-9]+[[:space:]]+DONE|Done |stat::)' \
    "$work/fuzz.log"
fi

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)
corpus=$(find "$work/corpus" -type f | wc -l)
artifacts=$(find "$work" -maxdepth 1 -type f \
  \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
status=ok
if ((rc == 124 || rc == 137)); then
  status="FAILED (no result after $((secs + 120)) s)"
elif ((rc != 0)); then
  status="FAILED (exit $rc)"
fi
summary="$name: ${execs:-?} executions in $elapsed s, $corpus inputs found so far, $status"
echo "$summary" | tee "$work/summary"
for artifact in $artifacts; do
  echo "$name: input saved as $artifact; reproduce with: $fuzzer $artifact" | tee -a "$work/summary"
done
# libFuzzer exits 77 after a crash by default (-error_exitcode), which meson reads as "skipped".
((rc == 0)) || exit 1
