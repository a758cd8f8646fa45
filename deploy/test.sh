#!/usr/bin/env bash
# deploy/test.sh: README command 2. Installs the Debian packages, builds dotproxy with its tests
# and runs the whole suite (unit tests and integration tests) with meson.
#
#   deploy/test.sh [BUILDDIR [MESON_SETUP_ARGS...]]
#
#   BUILDDIR           default build-test (relative to the repository root)
#   MESON_SETUP_ARGS   extra `meson setup` arguments, e.g. for the sanitizer build in .ci/run:
#                      deploy/test.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false
#   env TEST_ARGS      extra `meson test` arguments (e.g. "--timeout-multiplier 3")
#
# An existing BUILDDIR is reused (reconfigured when setup arguments are given). Exits non-zero if
# the build or any test fails. The last line is "N passed, N failed, N skipped", counted from
# meson's own BUILDDIR/meson-logs/testlog.json.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
# Debian's tools first: a pyenv/venv python3 earlier in PATH lacks python3-dnspython, and meson's
# find_program('python3') and the tests' "#!/usr/bin/env python3" would pick it up.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

builddir=${1:-build-test}
shift $(($# > 0 ? 1 : 0))
setup_args=("$@")

log() { printf '== test.sh: %s\n' "$*"; }

# fail STEP: report a failure before any test ran, counted as one failed test.
fail() {
  log "$1 failed in $builddir"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
}

# A stale log from an earlier run must never be counted for this one (.ci/run reads it too).
rm -f "$builddir/meson-logs/testlog.json"

deploy/install-deps.sh || fail "installing packages"

if [[ -f $builddir/build.ninja && -f $builddir/meson-private/coredata.dat ]]; then
  if ((${#setup_args[@]})); then
    log "reconfiguring $builddir: ${setup_args[*]}"
    meson setup --reconfigure "$builddir" "${setup_args[@]}" ||
      meson setup --wipe "$builddir" "${setup_args[@]}" || fail "meson setup"
  else
    log "reusing $builddir"
  fi
elif [[ -f $builddir/meson-private/coredata.dat ]]; then
  log "$builddir is half configured; setting it up again"
  meson setup --wipe "$builddir" "${setup_args[@]}" || fail "meson setup"
else
  log "meson setup $builddir ${setup_args[*]}"
  meson setup "$builddir" "${setup_args[@]}" || fail "meson setup"
fi

log "building $builddir"
ninja -C "$builddir" || fail "the build"

# Integration tests are marked is_parallel: false in tests/integration/meson.build, so meson runs
# them alone; unit tests run two at a time (CI machines have 2 cores).
log "meson test -C $builddir"
# shellcheck disable=SC2086  # TEST_ARGS is a list of words on purpose
meson test -C "$builddir" --print-errorlogs --num-processes 2 ${TEST_ARGS:-}
rc=$?

read -r passed failed skipped < <(deploy/test-counts.py "$builddir")
passed=${passed:-0} failed=${failed:-0} skipped=${skipped:-0}
if ((rc != 0 && failed == 0)); then
  failed=1  # meson failed without a failing test (no tests, a setup error): not a pass
fi
if ((passed + failed == 0)); then
  log "no test ran"
  failed=1
fi
log "$builddir: $passed passed, $failed failed, $skipped skipped (meson test exit $rc)"
echo "$passed passed, $failed failed, $skipped skipped"
((rc == 0 && failed == 0))
