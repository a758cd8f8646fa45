#!/usr/bin/env bash
# deploy/package.sh: build the Debian packages dotproxy and dotproxy-bench in one command and print
# the paths of the .deb files (the last lines of the output, one path each).
#
#   deploy/package.sh [OUTDIR]      OUTDIR default build-deb (relative to the repository root)
#
# It installs what is missing, and only that: dpkg-dev first (deploy/install-deps.sh --only), then
# the Build-Depends of debian/control (apt-get build-dep) when dpkg-checkbuilddeps reports any
# missing.
# The working tree (tracked and untracked files, minus .gitignore'd ones) is copied to
# OUTDIR/src, and `dpkg-buildpackage -us -uc -b` runs there, so the .deb files land in OUTDIR and
# nothing is written outside it. Uses sudo only when not root. Only Debian's archive is needed.
set -euo pipefail

cd "$(dirname "$0")/.." || exit 1
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"  # Debian's tools (see deploy/test.sh)
root=$(pwd)

case "${1:-}" in
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  -*) echo "package.sh: unknown option: $1" >&2; exit 2 ;;
esac
outdir=${1:-build-deb}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
stage=$outdir/src

log() { printf '== package.sh: %s\n' "$*"; }

# dpkg-dev provides dpkg-buildpackage and dpkg-checkbuilddeps; build-essential is implied by every
# Debian build.
deploy/install-deps.sh --only dpkg-dev build-essential

# Copy the working tree. In a git checkout: the files git would commit (tracked or untracked, not
# ignored, still present); otherwise everything but build directories.
log "copying the source tree to $stage"
rm -rf "$stage"
mkdir -p "$stage"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$root" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
    tar -C "$root" --null -T - -cf - | tar -C "$stage" -xf -
else
  tar -C "$root" --exclude='./build*' -cf - . | tar -C "$stage" -xf -
fi

if ! (cd "$stage" && dpkg-checkbuilddeps) 2>/dev/null; then
  log "installing the Build-Depends of debian/control"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "package.sh: not root and no sudo; as root run: apt-get build-dep $stage" >&2
      exit 1
    }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get build-dep -y --no-install-recommends "$stage"
fi

version=$(cd "$stage" && dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -q DEB_HOST_ARCH)
rm -f "$outdir"/*.deb "$outdir"/*.changes "$outdir"/*.buildinfo
log "dpkg-buildpackage -us -uc -b (dotproxy $version, $arch)"
start=$SECONDS
(cd "$stage" && dpkg-buildpackage -us -uc -b -j"$(nproc)")
log "built in $((SECONDS - start)) s"

debs=()
for pkg in dotproxy dotproxy-bench; do
  deb=$outdir/${pkg}_${version}_${arch}.deb
  if [[ ! -f $deb ]]; then
    echo "package.sh: expected $deb, not found" >&2
    exit 1
  fi
  debs+=("$deb")
done
log "packages (install: apt-get install ${debs[*]})"
printf '%s\n' "${debs[@]}"
