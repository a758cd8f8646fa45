#!/usr/bin/env bash
# Runs `systemd-analyze verify` on deploy/dotproxy.service without installing anything.
#
#   verify_unit.sh UNIT_FILE DOTPROXY_BINARY
#
# verify insists that every Exec*= binary exists, and the unit names the installed path
# (/usr/local/bin/dotproxy). So the unit is copied to a temporary directory with that path
# rewritten to DOTPROXY_BINARY (the build tree's binary); nothing else is changed. Exit 77 (meson:
# skipped) when systemd-analyze is missing.
set -euo pipefail

unit=$1
binary=$2
installed=/usr/local/bin/dotproxy

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "verify_unit: systemd-analyze not found; skipped"
  exit 77
fi
[[ -x $binary ]] || { echo "verify_unit: $binary is not executable" >&2; exit 1; }
grep -q "^ExecStart=$installed " "$unit" || {
  echo "verify_unit: $unit no longer starts $installed; update this test" >&2
  exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|$installed|$binary|g" "$unit" > "$tmp/dotproxy.service"

# Any output is a finding (verify also prints warnings that do not change its exit status).
output=$(systemd-analyze verify --man=no "$tmp/dotproxy.service" 2>&1) && status=0 || status=$?
if [[ $status -ne 0 || -n $output ]]; then
  echo "verify_unit: systemd-analyze verify failed (status $status):" >&2
  echo "$output" >&2
  exit 1
fi
echo "verify_unit: $unit verified (ExecStart rewritten to $binary)"
