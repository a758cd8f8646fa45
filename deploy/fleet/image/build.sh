#!/usr/bin/env bash
# deploy/fleet/image/build.sh: the container image of the fleet (deploy/fleet/daemonset.yaml),
# made from Debian 12 packages and the dotproxy .deb only: no base image and no registry.
#
#   deploy/fleet/image/build.sh [--rootfs-only] DOTPROXY_DEB [OUTDIR]
#
#   1. mmdebstrap makes a Debian 12 root filesystem, OUTDIR/rootfs.tar: the Essential packages
#      (they give the init container its /bin/cp), ca-certificates, and DOTPROXY_DEB with its
#      dependencies. No apt, no documentation, no man pages.
#   2. podman import turns it into the image localhost/dotproxy:VERSION, with dotproxy as its
#      entry point, and podman save writes OUTDIR/dotproxy-image.tar for the nodes (README.md
#      here, "Image"). --rootfs-only stops after step 1.
#
# Packages come from this machine's apt sources (/etc/apt/sources.list and sources.list.d), or
# from the mirror in $MIRROR. Installs mmdebstrap and podman from Debian when missing. As root.
set -euo pipefail
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

rootfs_only=false
if [[ ${1:-} == --rootfs-only ]]; then
  rootfs_only=true
  shift
fi
if [[ $# -lt 1 || ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
deb=$(realpath "$1")
outdir=${2:-$(dirname "$deb")/image}
mkdir -p "$outdir"
outdir=$(realpath "$outdir")
log() { printf '== image/build.sh: %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "image/build.sh: run as root (mmdebstrap --mode=root, podman)" >&2
  exit 1
fi
[[ $(dpkg-deb -f "$deb" Package) == dotproxy ]] || {
  echo "image/build.sh: $deb is not the dotproxy package" >&2
  exit 1
}
version=$(dpkg-deb -f "$deb" Version)

need=(mmdebstrap)
$rootfs_only || need+=(podman)
"$(dirname "$0")/../../install-deps.sh" --only "${need[@]}"

# Mirrors: $MIRROR, or this machine's apt sources files (mmdebstrap copies a file's contents).
mirrors=()
if [[ -n ${MIRROR:-} ]]; then
  mirrors=("$MIRROR")
else
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
  do
    [[ -s $f ]] && mirrors+=("$f")
  done
fi

log "mmdebstrap: Debian 12 + $(basename "$deb") -> $outdir/rootfs.tar"
mmdebstrap \
  --mode=root \
  --variant=essential \
  --include=ca-certificates \
  --include="$deb" \
  --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='rm -f "$1"/etc/systemd/system/multi-user.target.wants/dotproxy.service' \
  --customize-hook='chroot "$1" /usr/sbin/dotproxy --check-config --config /etc/dotproxy/config.yaml' \
  bookworm "$outdir/rootfs.tar" "${mirrors[@]}"

if $rootfs_only; then
  log "root filesystem: $outdir/rootfs.tar"
  exit 0
fi

image=localhost/dotproxy:$version
log "podman import -> $image"
podman import \
  --change 'ENTRYPOINT ["/usr/sbin/dotproxy"]' \
  --change 'CMD ["--config", "/etc/dotproxy/config.yaml", "--verbosity", "info"]' \
  --change "LABEL org.opencontainers.image.title=dotproxy org.opencontainers.image.version=$version" \
  --message "dotproxy $version from $(basename "$deb") on Debian 12 (mmdebstrap)" \
  "$outdir/rootfs.tar" "$image"
# A smoke run. Some sandboxes cannot start containers at all (seen: crun refused to set
# RLIMIT_NOFILE); the image is still good then, since the mmdebstrap hook above ran dotproxy.
if ! podman run --rm --network=none "$image" --version; then
  log "warning: could not start a container here to run dotproxy --version; the image is made"
fi
rm -f "$outdir/dotproxy-image.tar"
podman save --format oci-archive -o "$outdir/dotproxy-image.tar" "$image"
log "image $image; archive for the nodes: $outdir/dotproxy-image.tar"
