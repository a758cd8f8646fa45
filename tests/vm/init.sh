#!/bin/sh
# /init of the VM harness's initramfs (tests/vm/run.sh builds it; busybox sh, no udev).
# Loads the kernel modules this kernel needs (virtio, virtiofs, overlay, kTLS and its crypto),
# mounts the host's /usr and /etc read-only over virtiofs, mounts the source and build trees at
# their host paths (read-only virtiofs under a tmpfs overlay, so the guest never writes to the
# host's trees), then runs the harness's guest.sh (copied into the results share by run.sh) in a
# chroot and powers off. Every step is echoed to the serial console as "vm-init: ...".
export PATH=/bin:/sbin
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "vm-init: [$(up)s] $*"; }
die() {
  say "FATAL: $*"
  [ -d /new/vm-results ] && echo "$*" >/new/vm-results/init-error 2>/dev/null
  sync
  poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say "start: $(uname -r)"

# Modules. modules.dep comes from depmod -b at build time; busybox modprobe resolves it.
for m in virtio_pci virtio_rng fuse virtiofs overlay tls aesni_intel ghash_clmulni_intel \
         gcm ccm chacha20poly1305; do
  modprobe "$m" 2>/dev/null || say "modprobe $m failed (may be built in or absent)"
done
ip link set lo up

# The new root: a tmpfs with the merged-/usr symlinks of Debian 12.
mkdir -p /new
mount -t tmpfs -o mode=0755 root /new || die "tmpfs for the new root"
cd /new || die "cd /new"
mkdir -p usr etc proc sys dev tmp run root var/tmp vm-results .lower .upper
ln -s usr/bin bin; ln -s usr/sbin sbin; ln -s usr/lib lib; ln -s usr/lib64 lib64
chmod 1777 tmp var/tmp

# Results share first: it carries run.env (paths and settings of this run) and guest.sh.
mount -t virtiofs res /new/vm-results || die "mount virtiofs tag res"
# Only the paths: the rest of run.env is for guest.sh (bash), and may hold bash-only quoting.
[ -f /new/vm-results/run.env ] || die "no run.env in the results share"
eval "$(grep -E '^VM_(SRC|BUILD|BUILD_SHARED)=' /new/vm-results/run.env)"
if [ -z "${VM_SRC:-}" ] || [ -z "${VM_BUILD:-}" ]; then die "run.env names no source or build tree"; fi
mount -t virtiofs -o ro usr /new/usr || die "mount virtiofs tag usr"
mount -t virtiofs -o ro etc /new/etc || die "mount virtiofs tag etc"

# overlay_tree TAG PATH: virtiofs TAG (read-only) at PATH inside the new root, writable through a
# tmpfs upper layer that vanishes with the VM.
overlay_tree() {
  lower=/new/.lower/$1 upper=/new/.upper/$1
  mkdir -p "$lower" "$upper" "/new$2"
  mount -t virtiofs -o ro "$1" "$lower" || die "mount virtiofs tag $1"
  mount -t tmpfs -o mode=0755 "up-$1" "$upper" || die "tmpfs for $1"
  mkdir -p "$upper/u" "$upper/w"
  mount -t overlay -o "lowerdir=$lower,upperdir=$upper/u,workdir=$upper/w" "ov-$1" "/new$2" ||
    die "overlay for $2"
}

mount -t proc proc /new/proc
mount -t sysfs sys /new/sys
mount -t devtmpfs dev /new/dev
mkdir -p /new/dev/pts /new/dev/shm
mount -t devpts devpts /new/dev/pts
mount -t tmpfs -o mode=1777 shm /new/dev/shm
mount -t tmpfs -o mode=1777 tmp /new/tmp
mount -t tmpfs -o mode=0755 run /new/run
# The trees last: one may live under /tmp (a CI clone, say) and must not be hidden by that tmpfs.
overlay_tree src "$VM_SRC"
[ -n "${VM_BUILD_SHARED:-}" ] && overlay_tree build "$VM_BUILD"

up >/new/vm-results/uptime-init
say "root ready; running guest.sh"
chroot /new /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8 \
  /bin/bash /vm-results/guest.sh
say "guest.sh exit $?"
sync
umount /new/vm-results 2>/dev/null
poweroff -f
