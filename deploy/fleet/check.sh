#!/usr/bin/env bash
# deploy/fleet/check.sh [DOTPROXY_BIN]: offline validation of deploy/fleet (validate.py says what
# is checked). Installs what is missing from Debian first, as deploy/install-deps.sh does:
# python3-yaml, python3-seccomp, python3-dnspython, openssl, and kubernetes-client when there is
# no kubectl. With DOTPROXY_BIN (e.g. build-test/src/dotproxy) dotproxy also checks config.yaml
# and runs under the seccomp profile. Ends with "N passed, N failed, N skipped".
set -uo pipefail

bin=${1:+$(realpath "$1")}
cd "$(dirname "$0")/../.." || exit 1
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

need=(python3 python3-yaml python3-seccomp python3-dnspython openssl)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
missing=()
for pkg in "${need[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] ||
    missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "fleet/check.sh: installing ${missing[*]}"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  { "${sudo[@]}" apt-get update &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "${missing[@]}"; } >/dev/null ||
    echo "fleet/check.sh: could not install ${missing[*]}; the checks that need them fail or skip"
fi

args=()
[[ -n $bin ]] && args+=(--dotproxy "$bin")
exec /usr/bin/python3 deploy/fleet/validate.py "${args[@]}"
