#!/usr/bin/env bash
# deploy/install-deps.sh: install the Debian 12 packages that dotproxy's build, tests, benchmarks
# and demo need. Idempotent: when every package is already installed it does nothing (no apt-get,
# no network), so README commands and .ci/run can call it every time.
#
#   deploy/install-deps.sh            install what is missing (apt-get update first)
#   deploy/install-deps.sh --check    only report what is missing; exit 1 if anything is
#   deploy/install-deps.sh --list     print the package list
#   deploy/install-deps.sh --only PKG...  the same for just these packages (deploy/package.sh,
#                                     deploy/fleet/check.sh and deploy/fleet/image/build.sh use it)
#   --fuzz (with any of the above)    also clang-14 and libFuzzer, for tests/fuzz/run.sh
#
# Uses sudo only when not root. Only Debian's archive is needed.
set -euo pipefail

PACKAGES=(
  # toolchain and build
  build-essential g++ meson ninja-build pkg-config
  # libraries (meson.build finds each one once)
  liburing-dev libssl-dev libyaml-dev libabsl-dev libsystemd-dev
  # Prometheus exposition (pull module: GET /metrics), found once in meson.build
  prometheus-cpp-dev
  # unit tests and micro benchmarks (subprojects/*.wrap are fallbacks only, never fetched here)
  libgtest-dev libgmock-dev libbenchmark-dev
  # test PKI (tests/testing/gen_certs.sh) and the system trust store
  openssl ca-certificates
  # integration tests, the fake DoT upstream, demo checks (Debian's /usr/bin/python3)
  python3 python3-dnspython bind9-dnsutils knot-dnsutils
  # ss, ip, ps, kill used by tests and scripts
  iproute2 procps
)

# Only the fuzz targets need these (tests/fuzz/meson.build insists on clang).
FUZZ_PACKAGES=(clang-14 libfuzzer-14-dev)

mode=install
while (($#)); do
  case "$1" in
    --fuzz) PACKAGES+=("${FUZZ_PACKAGES[@]}") ;;
    --list) mode=list ;;
    --check) mode=check ;;
    --only) shift; PACKAGES=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
if [[ $mode == list ]]; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  # "install ok installed" is the only state in which the package is really there.
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi
echo "install-deps: missing: ${missing[*]}"
[[ $mode == check ]] && exit 1

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "install-deps: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${#missing[@]} package(s)"
