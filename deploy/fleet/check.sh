#!/usr/bin/env bash
# deploy/fleet/check.sh [DOTPROXY_BIN]: offline validation of deploy/fleet (validate.py says what
# is checked). Installs what is missing from Debian first (deploy/install-deps.sh --only):
# python3-yaml, python3-seccomp, python3-dnspython, openssl, and kubernetes-client when there is
# no kubectl. With DOTPROXY_BIN (e.g. build-test/src/dotproxy) dotproxy also checks config.yaml
# and runs under the seccomp profile. Ends with "N passed, N failed, N skipped".
set -uo pipefail

bin=${1:+$(realpath "$1")}
cd "$(dirname "$0")/../.." || exit 1
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

need=(python3 python3-yaml python3-seccomp python3-dnspython openssl)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
deploy/install-deps.sh --only "${need[@]}" >/dev/null ||
  echo "fleet/check.sh: could not install ${need[*]}; the checks that need them fail or skip"

args=()
[[ -n $bin ]] && args+=(--dotproxy "$bin")
exec /usr/bin/python3 deploy/fleet/validate.py "${args[@]}"
