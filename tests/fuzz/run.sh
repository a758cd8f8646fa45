#!/usr/bin/env bash
# tests/fuzz/run.sh [BUILD_DIR [SECONDS]]: builds dotproxy and the libFuzzer targets with clang-14,
# ASan and UBSan, then runs each target for SECONDS (default 60) as the meson test suite "fuzz".
#
#   BUILD_DIR          default build-fuzz; configured on the first run with
#                      CC=clang-14 CXX=clang++-14 meson setup BUILD_DIR -Dfuzzers=true
#                        -Db_sanitize=address,undefined -Db_lundef=false -Dtests=false
#                        -Dbenchmarks=false
#                      and reused afterwards
#   SECONDS            per target; 0 only replays the committed seeds and earlier finds
#   env FUZZ_JOBS      targets run at once (default 1, so executions are comparable)
#
# Prints one line per target ("fuzz_query: N executions in S s, ...") and ends, like
# deploy/test.sh, with "N passed, N failed, N skipped" counted from meson's testlog.json. Exits
# non-zero if the build fails or any target crashes; a crashing input is saved in
# BUILD_DIR/tests/fuzz/<target>/crash-* (tests/fuzz/README.md says how to turn it into a
# regression test).
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"  # Debian's python3 and meson (see deploy/test.sh)

builddir=${1:-build-fuzz}
secs=${2:-60}
jobs=${FUZZ_JOBS:-1}
setup_args=(-Dfuzzers=true '-Db_sanitize=address,undefined' -Db_lundef=false -Dtests=false
            -Dbenchmarks=false)

log() { printf '== fuzz/run.sh: %s\n' "$*"; }
fail() {
  log "$1 failed in $builddir"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
}

if ! [[ $secs =~ ^[0-9]+$ && $jobs =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [BUILD_DIR [SECONDS]]  (env FUZZ_JOBS >= 1)" >&2
  exit 2
fi

# A stale log from an earlier run must never be counted for this one (.ci/run reads it too).
rm -f "$builddir/meson-logs/testlog.json"

deploy/install-deps.sh --fuzz || fail "installing packages"

if [[ -f $builddir/build.ninja && -f $builddir/meson-private/coredata.dat ]]; then
  log "reusing $builddir"
else
  wipe=()
  [[ -f $builddir/meson-private/coredata.dat ]] && wipe=(--wipe)  # half configured
  log "meson setup ${wipe[*]} $builddir ${setup_args[*]}"
  CC=clang-14 CXX=clang++-14 meson setup "${wipe[@]}" "$builddir" "${setup_args[@]}" ||
    fail "meson setup"
fi

# The whole project, so that a warning under clang (-Werror) fails here too.
log "building $builddir"
ninja -C "$builddir" || fail "the build"

log "running the fuzz targets for $secs s each, $jobs at a time"
FUZZ_SECONDS=$secs meson test -C "$builddir" --suite fuzz --num-processes "$jobs" \
  --print-errorlogs --no-rebuild
rc=$?

read -r passed failed skipped < <(deploy/test-counts.py "$builddir")
passed=${passed:-0} failed=${failed:-0} skipped=${skipped:-0}
if ((rc != 0 && failed == 0)); then
  failed=1  # meson failed without a failing test
fi
if ((passed + failed == 0)); then
  log "no fuzz target ran (was $builddir configured with clang and -Dfuzzers=true?)"
  failed=1
fi
cat "$builddir"/tests/fuzz/*/summary 2>/dev/null
echo "$passed passed, $failed failed, $skipped skipped"
((rc == 0 && failed == 0))
