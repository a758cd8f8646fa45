#!/usr/bin/env bash
# deploy/package-test.sh: build the Debian packages (deploy/package.sh), check them with lintian,
# install them on this machine with dpkg, check what they installed, then remove and purge them
# and check that nothing is left but what the conffile rules allow. For CI (.ci/run); it changes
# the machine's package set, so it runs only as root, and refuses to start when dotproxy or
# dotproxy-bench is already installed. The packages are purged on every exit.
#
#   deploy/package-test.sh [OUTDIR]     OUTDIR as for deploy/package.sh (default build-deb)
#
# Prints one line per check ("ok", "FAIL" or "skip") and ends with "N passed, N failed, N skipped".
# Exits non-zero if any check failed. systemd need not be running (it is not PID 1 in CI); the unit
# is checked with systemd-analyze verify when that exists.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
outdir=${1:-build-deb}
packages=(dotproxy dotproxy-bench)
unit=/lib/systemd/system/dotproxy.service
dropin=/lib/systemd/system/dotproxy.service.d/unconfigured.conf
conffile=/etc/dotproxy/config.yaml

passed=0 failed=0 skipped=0
installed_by_us=false
tmp=$(mktemp -d /tmp/package-test.XXXXXX)

ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
skip() { skipped=$((skipped + 1)); echo "skip $*"; }
# check NAME COMMAND...: one counted check; COMMAND's output is shown only when it fails.
check() {
  local name=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then
    ok "$name"
  else
    fail "$name"
    sed 's/^/       /' "$tmp/out" | tail -n 30
  fi
}

# dpkg with a wait for the lock (another apt or dpkg may be running on a shared machine).
dpkg_locked() {
  local i
  for ((i = 0; i < 60; i++)); do
    if dpkg "$@" 2>"$tmp/dpkg.err"; then
      return 0
    fi
    grep -q 'lock' "$tmp/dpkg.err" || { cat "$tmp/dpkg.err" >&2; return 1; }
    sleep 2
  done
  cat "$tmp/dpkg.err" >&2
  return 1
}

is_installed() {  # any state but "not installed" counts (config-files too)
  local status
  status=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) || return 1
  [[ -n $status && $status != not-installed ]]
}

# Files and links that the packages, their maintainer scripts or deb-systemd-helper could leave.
snapshot() {
  find /etc /lib /usr /var/lib -xdev \( -name '*dotproxy*' -o -name 'dotload*' \
    -o -name 'dotresponder*' \) -print 2>/dev/null | LC_ALL=C sort
}

finish() {
  local rc=$?
  trap - EXIT
  if $installed_by_us; then
    dpkg_locked --purge "${packages[@]}" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
  if ((rc != 0 && failed == 0)); then
    failed=$((failed + 1))
    echo "FAIL package-test.sh stopped early (exit $rc)"
  fi
  echo "$passed passed, $failed failed, $skipped skipped"
  ((failed == 0)) || exit 1
  exit 0
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $(id -u) -ne 0 ]]; then
  fail "package-test.sh must run as root (it installs and purges packages)"
  exit 1
fi
for pkg in "${packages[@]}"; do
  if is_installed "$pkg"; then
    fail "$pkg is already installed here; purge it first (dpkg --purge ${packages[*]})"
    exit 1
  fi
done

# ---- build and lintian ------------------------------------------------------------------------
start=$SECONDS
if deploy/package.sh "$outdir" >"$tmp/build.log" 2>&1; then
  mapfile -t debs < <(tail -n 2 "$tmp/build.log")
  ok "deploy/package.sh built ${debs[*]} in $((SECONDS - start)) s"
else
  fail "deploy/package.sh (last lines of its output follow)"
  tail -n 40 "$tmp/build.log" | sed 's/^/       /'
  exit 1
fi
version=$(dpkg-deb -f "${debs[0]}" Version)

# Every tag lintian emits, down to info and pedantic, must be fixed or overridden with a reason
# (debian/*.lintian-overrides); an override that no longer matches fails too (unused-override).
deploy/install-deps.sh --only lintian >"$tmp/apt.log" 2>&1 || cat "$tmp/apt.log"
check "lintian: no tags (errors to pedantic) on ${debs[*]##*/}" \
  lintian --info --pedantic --fail-on error,warning,info,pedantic "${debs[@]}"

# ---- install ----------------------------------------------------------------------------------
before=$(snapshot)
installed_by_us=true
if ! dpkg_locked --install "${debs[@]}" >"$tmp/install.log" 2>&1; then
  fail "dpkg --install ${debs[*]##*/}"
  sed 's/^/       /' "$tmp/install.log" | tail -n 30
  exit 1
fi
ok "dpkg --install ${debs[*]##*/}"

version_matches() {
  local out
  out=$(/usr/sbin/dotproxy --version) || return 1
  echo "$out"
  [[ $out == "dotproxy $version" ]]
}
check "/usr/sbin/dotproxy --version prints 'dotproxy $version'" version_matches
check "/usr/sbin/dotproxy --check-config --config $conffile" \
  /usr/sbin/dotproxy --check-config --config "$conffile"
check "$conffile is a conffile of dotproxy" \
  bash -c "dpkg-query -W -f='\${Conffiles}\n' dotproxy | grep -q '^ $conffile '"
check "$conffile is identical to /usr/share/dotproxy/config.yaml" \
  cmp "$conffile" /usr/share/dotproxy/config.yaml
check "man pages dotproxy(8), dotproxy.yaml(5), dotload(1), dotresponder(1) are installed" \
  test -s /usr/share/man/man8/dotproxy.8.gz -a -s /usr/share/man/man5/dotproxy.yaml.5.gz \
  -a -s /usr/share/man/man1/dotload.1.gz -a -s /usr/share/man/man1/dotresponder.1.gz
check "docs: README, changelog and config.example.yaml in /usr/share/doc/dotproxy" \
  test -s /usr/share/doc/dotproxy/README.md.gz -a -s /usr/share/doc/dotproxy/changelog.gz \
  -a -s /usr/share/doc/dotproxy/config.example.yaml
check "dotload and dotresponder run (--version)" \
  bash -c '/usr/bin/dotload --version && /usr/bin/dotresponder --version'

# ---- the systemd unit -------------------------------------------------------------------------
check "$unit runs /usr/sbin/dotproxy" grep -q '^ExecStart=/usr/sbin/dotproxy ' "$unit"
check "dotproxy.service is enabled (multi-user.target.wants)" \
  test -L /etc/systemd/system/multi-user.target.wants/dotproxy.service
# The drop-in's ExecCondition, run as systemd would run it: skip (exit 1) while the conffile is
# the packaged default, go (exit 0) once it was edited.
exec_condition() {
  local line
  line=$(sed -n 's/^ExecCondition=//p' "$dropin")
  [[ -n $line ]] || { echo "no ExecCondition= in $dropin"; return 1; }
  eval "$line"  # a /bin/sh -c '...' command line, as written in the unit
}
unconfigured_gate() {
  local rc=0
  exec_condition || rc=$?
  [[ $rc -eq 1 ]] || { echo "with the default config: exit $rc, want 1 (skip)"; return 1; }
  cp -p "$conffile" "$tmp/config.yaml.orig"
  echo "# edited by the admin" >>"$conffile"
  rc=0
  exec_condition || rc=$?
  cp -p "$tmp/config.yaml.orig" "$conffile"
  [[ $rc -eq 0 ]] || { echo "with an edited config: exit $rc, want 0 (start)"; return 1; }
}
check "the unit is skipped until $conffile is edited (ExecCondition in $dropin)" \
  unconfigured_gate
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify prints problems of this unit and of units it pulls in; only ours must be clean.
  analyze() {
    systemd-analyze verify "$unit" >"$tmp/verify.out" 2>&1
    local rc=$?
    cat "$tmp/verify.out"
    if grep -q 'dotproxy' "$tmp/verify.out"; then return 1; fi
    return $rc
  }
  check "systemd-analyze verify $unit" analyze
else
  skip "systemd-analyze verify: systemd-analyze is not installed here"
fi

# ---- remove, then purge -----------------------------------------------------------------------
if dpkg_locked --remove "${packages[@]}" >"$tmp/remove.log" 2>&1; then
  ok "dpkg --remove ${packages[*]}"
else
  fail "dpkg --remove ${packages[*]}"
  sed 's/^/       /' "$tmp/remove.log" | tail -n 20
fi
after_remove() {
  local leftover
  [[ -f $conffile ]] || { echo "$conffile is gone after remove (a conffile must stay)"; return 1; }
  leftover=$(ls -d /usr/sbin/dotproxy /usr/bin/dotload /usr/bin/dotresponder "$unit" \
    /usr/share/dotproxy 2>/dev/null)
  [[ -z $leftover ]] || { echo "left after remove: $leftover"; return 1; }
}
check "after remove: only $conffile (and dpkg's records of it) remain" after_remove

if dpkg_locked --purge "${packages[@]}" >"$tmp/purge.log" 2>&1; then
  installed_by_us=false
  ok "dpkg --purge ${packages[*]}"
else
  fail "dpkg --purge ${packages[*]}"
  sed 's/^/       /' "$tmp/purge.log" | tail -n 20
fi
after_purge() {
  local after pkg
  for pkg in "${packages[@]}"; do
    if is_installed "$pkg"; then echo "$pkg still known to dpkg"; return 1; fi
  done
  after=$(snapshot)
  if [[ $after != "$before" ]]; then
    echo "files that were not there before the install:"
    comm -13 <(echo "$before") <(echo "$after")
    return 1
  fi
}
check "after purge: nothing left (the same dotproxy* files as before the install)" after_purge
