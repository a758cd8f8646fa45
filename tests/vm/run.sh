#!/usr/bin/env bash
# tests/vm/run.sh: run dotproxy's unit and integration tests inside a QEMU VM on Debian 12's own
# kernel (6.1, linux-image-cloud-amd64), against the binaries of an existing build tree.
#
#   tests/vm/run.sh [--subset ci|ktls|unit|integration|all | --all | --tests "NAME..."]
#                   [--build-dir DIR] [--cache-dir DIR]
#
#   --subset NAME   ci (default): the unit tests and the integration files that fit CI's budget
#                   under TCG; unit: unit tests only; integration: integration tests only;
#                   all: every test meson knows (same as --all); ktls: integration_ktls and the
#                   ci integration files with upstream.ktls: on against TLS 1.2 fake upstreams
#                   (VM_KTLS=on VM_UPSTREAM_TLS=1.2)
#   --tests "..."   exactly these meson test names (e.g. "base integration_tcp")
#   --command CMD   no meson test: run the bash command CMD in the guest, in the source tree, with
#                   DOTPROXY_BIN and DOTPROXY_TEST_TIME_SCALE set; exit with its exit code. E.g.
#                   --command 'cd tests/integration && python3 -m unittest test_tcp.TcpTest -v'
#   --build-dir DIR the build tree whose binaries are tested (default build-test, the tree
#                   deploy/test.sh makes; relative to the repository root; configured and built
#                   here if it does not exist)
#   --cache-dir DIR kernel package, unpacked kernel and initramfs (default
#                   ${XDG_CACHE_HOME:-~/.cache}/dotproxy-vm); never inside the git tree
#
# env: ACCEL        auto (default: kvm only when /dev/kvm is usable and backed by kvm_intel or
#                   kvm_amd, else tcg), tcg or kvm
#      VM_SMP (2), VM_MEM (MiB, 2048), VM_TIMEOUT (seconds for the whole VM run; default 1500
#      for --subset ci, 5400 otherwise), VM_TIME_SCALE (DOTPROXY_TEST_TIME_SCALE in the guest;
#      default 10 under TCG, 2 under KVM), VM_TIMEOUT_MULT (meson --timeout-multiplier; default
#      the same as VM_TIME_SCALE), KERNEL_FLAVOUR (cloud, default, or generic), VM_KTLS (off,
#      auto or on: upstream.ktls of every integration test's proxy, DOTPROXY_TEST_KTLS inside),
#      VM_UPSTREAM_TLS (1.2 or 1.3: the fake upstreams' TLS version, DOTPROXY_TEST_UPSTREAM_TLS)
#
# How: the host's /usr and /etc are shared read-only over virtiofs (virtiofsd from QEMU 7.2), so
# the guest has the same python3, dnspython, openssl and meson as the host; the source and build
# trees are shared read-only at their host paths under a tmpfs overlay. The initramfs
# (busybox-static plus the kernel's virtio, virtiofs, overlay, tls and crypto modules) is cached.
# Inside, tests/vm/guest.sh runs `meson test --no-rebuild`; its results come back through a
# writable share, BUILD/vm-results/ (meson writes its logs to BUILD/vm-results/meson-logs/, so
# deploy/test-counts.py BUILD/vm-results counts them).
#
# Output: the guest's console, then one line per test, the kernel seen inside (uname -r) and
# whether tls is in tcp_available_ulp, boot and suite times, and last "N passed, N failed,
# N skipped". Exit 0 when every test passed, 1 on any failure, 77 (and no counts) when QEMU cannot
# run here (not installable, or it fails to start).
set -uo pipefail

# Everything is in main(), read whole before it runs, so that editing this file during a run (a
# whole-suite run takes half an hour under TCG) cannot derail the run.
main() {

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

subset=ci tests="" command="" build_dir=build-test vm_ktls=${VM_KTLS:-}
vm_upstream_tls=${VM_UPSTREAM_TLS:-}
cache_dir=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/dotproxy-vm
while (($#)); do
  case $1 in
    --subset) subset=${2:?--subset needs a name}; shift 2 ;;
    --subset=*) subset=${1#*=}; shift ;;
    --all) subset=all; shift ;;
    --tests) tests=${2:?--tests needs names}; subset=custom; shift 2 ;;
    --command) command=${2:?--command needs a command}; shift 2 ;;
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
    --build-dir=*) build_dir=${1#*=}; shift ;;
    --cache-dir) cache_dir=${2:?--cache-dir needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf 'vm: %s\n' "$*"; }
skip() {
  log "SKIP: $*"
  log "the VM tests were not run (counted as neither passed nor failed)"
  exit 77
}
fail() {
  log "FAILED: $*"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
}

# Test selections. The unit tests are meson's tests outside the integration suite.
unit_tests="base dns config core net upstream"
# The integration files that passed in every run under TCG, 150 to 350 s in all (tests/vm/README.md
# has the timings). Left out: integration_upstream (test_split_records failed once in three runs:
# SERVFAIL), integration_failures, integration_load and integration_balancing, which fail under TCG
# on the proxy's own timeouts (not stretched by the time scale) and take 20 min between them.
# integration_handoff (23 s under TCG) checks IORING_OP_MSG_RING wake-ups between
# SINGLE_ISSUER|DEFER_TASKRUN rings on 6.1.
ci_integration="integration_basic integration_tcp integration_truncation integration_tls
integration_lifecycle integration_listener integration_handoff"
case $subset in
  ci) tests="$unit_tests $ci_integration" ;;
  ktls) tests="integration_ktls $ci_integration"; vm_ktls=${VM_KTLS:-on}
        vm_upstream_tls=${VM_UPSTREAM_TLS:-1.2} ;;
  unit) tests=$unit_tests ;;
  integration) tests="--suite integration" ;;
  all) tests="" ;;
  custom) ;;
  *) echo "run.sh: unknown subset: $subset (ci, ktls, unit, integration, all)" >&2; exit 2 ;;
esac
read -r -a words <<<"$(tr '\n' ' ' <<<"$tests")"
tests="${words[*]}"  # one line, single spaces

# A result from an earlier run must never be counted for this one (.ci/run reads it), whatever
# fails below. BUILD is relative to the repository root, as in deploy/test.sh.
cd "$repo" || exit 1
rm -rf "$build_dir/vm-results"

# --- 1. Packages: QEMU (with virtiofsd), busybox-static, cpio, kmod (depmod). -----------------
apt_updated=0
apt_install() {
  local missing=() p status
  for p in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { log "not root and no sudo"; return 1; }
    sudo=(sudo)
  fi
  if ((apt_updated == 0)); then "${sudo[@]}" apt-get update -q >/dev/null; apt_updated=1; fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}
"$repo/deploy/install-deps.sh" >/dev/null ||
  fail "deploy/install-deps.sh could not install the build and test packages"
apt_install qemu-system-x86 busybox-static cpio kmod ||
  skip "QEMU could not be installed (apt-get install qemu-system-x86 busybox-static cpio kmod failed)"
qemu=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 is not installed"
virtiofsd=/usr/lib/qemu/virtiofsd
[[ -x $virtiofsd ]] || skip "$virtiofsd is missing (Debian's qemu-system-common 7.2 ships it)"
[[ -x /bin/busybox ]] || skip "busybox-static is missing"

# --- 2. The build tree under test. ------------------------------------------------------------
if [[ ! -f $build_dir/build.ninja ]]; then
  log "no build in $build_dir: meson setup $build_dir && ninja -C $build_dir"
  meson setup "$build_dir" >/dev/null || fail "meson setup $build_dir"
fi
ninja -C "$build_dir" >/dev/null || fail "ninja -C $build_dir"
build=$(cd "$build_dir" && pwd)
src=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["directories"]["source"])' \
        "$build/meson-info/meson-info.json") || fail "cannot read $build/meson-info/meson-info.json"
build_shared=""
case $build/ in "$src"/*) ;; *) build_shared=1 ;; esac
# The guest sees only /usr, /etc and these two trees: every test program must live there (a
# tree configured with a pyenv python3 first in PATH runs ~/.pyenv/shims/python3, say).
outside=$(meson introspect --tests "$build" | python3 -c '
import json, sys
ok = ("/usr/", sys.argv[1] + "/", sys.argv[2] + "/")
for t in json.load(sys.stdin):
    exe = t["cmd"][0]
    if not exe.startswith(ok):
        print(t["name"] + ": " + exe)' "$src" "$build") || fail "meson introspect --tests $build"
if [[ -n $outside ]]; then
  log "these tests run programs the guest cannot see (it shares only /usr, /etc, $src and $build):"
  printf '  %s\n' "$outside"
  fail "reconfigure $build_dir with Debian's tools first in PATH (PATH=/usr/bin:\$PATH meson setup --wipe $build_dir)"
fi

# --- 3. Kernel: Debian 12's package, downloaded and unpacked into the cache, never installed. --
mkdir -p "$cache_dir" || fail "cannot create $cache_dir"
cache_dir=$(cd "$cache_dir" && pwd)
case $cache_dir/ in "$repo"/*) fail "--cache-dir must be outside the git tree" ;; esac
kernel_pkg() {  # the ABI package a meta package depends on, e.g. linux-image-6.1.0-57-cloud-amd64
  apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'
}
case ${KERNEL_FLAVOUR:-cloud} in
  cloud) meta=linux-image-cloud-amd64 ;;
  generic) meta=linux-image-amd64 ;;
  *) fail "KERNEL_FLAVOUR must be cloud or generic" ;;
esac
pkg=$(kernel_pkg "$meta")
if [[ -z $pkg ]]; then
  apt-get update -q >/dev/null 2>&1
  pkg=$(kernel_pkg "$meta")
fi
# Offline fallback: the newest kernel package already in the cache.
if [[ -z $pkg ]]; then
  deb=$(find "$cache_dir" -maxdepth 1 -name 'linux-image-*_amd64.deb' -printf '%T@ %p\n' |
        sort -rn | head -n1 | cut -d' ' -f2-)
  [[ -n $deb ]] || skip "apt-cache does not know $meta and no kernel package is cached"
  pkg=$(basename "$deb"); pkg=${pkg%%_*}
fi
kver=${pkg#linux-image-}
deb=$(find "$cache_dir" -maxdepth 1 -name "${pkg}_*_amd64.deb" | head -n1)
if [[ -z $deb ]]; then
  log "downloading $pkg (apt-get download, into $cache_dir)"
  (cd "$cache_dir" && apt-get download "$pkg" >/dev/null 2>&1) ||
    skip "apt-get download $pkg failed (no access to Debian's archive?)"
  deb=$(find "$cache_dir" -maxdepth 1 -name "${pkg}_*_amd64.deb" | head -n1)
fi
kdir=$cache_dir/kernel-$kver
if [[ ! -d $kdir ]]; then
  rm -rf "$kdir.tmp"
  if ! { mkdir -p "$kdir.tmp" && dpkg-deb -x "$deb" "$kdir.tmp" && mv "$kdir.tmp" "$kdir"; }; then
    fail "unpacking $deb"
  fi
fi
mdir=lib/modules/$kver
[[ -f $kdir/$mdir/kernel/net/tls/tls.ko ]] ||
  log "warning: $pkg has no tls.ko (try KERNEL_FLAVOUR=generic)"
for m in fs/fuse/virtiofs.ko fs/overlayfs/overlay.ko drivers/virtio/virtio_pci.ko; do
  [[ -f $kdir/$mdir/kernel/$m ]] || fail "$pkg has no $m, which the harness needs"
done

# --- 4. Initramfs (cached; rebuilt when init.sh, busybox or the kernel changes). --------------
stamp=$( { cat "$here/init.sh"; dpkg-query -W -f='${Version}' busybox-static; echo "$kver"; } |
         sha256sum | cut -c1-16)
initrd=$cache_dir/initrd-$kver-$stamp.gz
if [[ ! -f $initrd ]]; then
  log "building the initramfs for $kver"
  root=$(mktemp -d "$cache_dir/initrd-root.XXXXXX")
  mkdir -p "$root"/{bin,sbin,proc,sys,dev,new,"$mdir"/kernel}
  cp /bin/busybox "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do
    [[ $a == busybox ]] || ln -sf busybox "$root/bin/$a"
  done
  ln -sf ../bin/busybox "$root/sbin/modprobe"  # the kernel's request_module() runs /sbin/modprobe
  for d in crypto arch/x86/crypto lib/crypto net/tls fs/fuse fs/overlayfs drivers/virtio \
           drivers/char/hw_random; do
    [[ -d $kdir/$mdir/kernel/$d ]] || continue
    mkdir -p "$root/$mdir/kernel/$(dirname "$d")"
    cp -r "$kdir/$mdir/kernel/$d" "$root/$mdir/kernel/$d"
  done
  cp "$kdir/$mdir"/modules.builtin* "$kdir/$mdir"/modules.order "$root/$mdir/" 2>/dev/null
  depmod -b "$root" "$kver" || fail "depmod"
  install -m 755 "$here/init.sh" "$root/init"
  if ! { (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp" &&
          mv "$initrd.tmp" "$initrd"; }; then
    fail "writing $initrd"
  fi
  rm -rf "$root"
  # older initramfs images of this cache are stale now
  find "$cache_dir" -maxdepth 1 -name 'initrd-*.gz' ! -name "$(basename "$initrd")" -delete
fi
vmlinuz=$kdir/boot/vmlinuz-$kver

# --- 5. Accelerator. ----------------------------------------------------------------------------
accel=${ACCEL:-auto}
if [[ $accel == auto ]]; then
  accel=tcg
  # Only a hardware KVM (VT-x/AMD-V): a paravirtual one (kvm_pvm) cannot run Debian's kernel.
  if [[ -r /dev/kvm && -w /dev/kvm ]] && [[ -d /sys/module/kvm_intel || -d /sys/module/kvm_amd ]]; then
    accel=kvm
  fi
fi
case $accel in
  tcg) cpu=${VM_CPU:-max}; accel_opt=tcg,thread=multi; scale_default=10 ;;
  kvm) cpu=${VM_CPU:-host}; accel_opt=kvm; scale_default=2 ;;
  *) fail "ACCEL must be auto, tcg or kvm" ;;
esac
time_scale=${VM_TIME_SCALE:-$scale_default}
timeout_mult=${VM_TIMEOUT_MULT:-$time_scale}
if [[ $subset == ci || $subset == ktls ]]; then vm_timeout=${VM_TIMEOUT:-1500}; else vm_timeout=${VM_TIMEOUT:-5400}; fi
mem=${VM_MEM:-2048} smp=${VM_SMP:-2}

# --- 6. Results share and virtiofs daemons. -----------------------------------------------------
res=$build/vm-results
rm -rf "$res"
mkdir -p "$res/meson-logs" || fail "cannot create $res"
cp "$here/guest.sh" "$res/guest.sh"
{
  printf 'VM_SRC=%q\n' "$src"
  printf 'VM_BUILD=%q\n' "$build"
  printf 'VM_BUILD_SHARED=%q\n' "$build_shared"
  printf 'VM_TIME_SCALE=%q\n' "$time_scale"
  printf 'VM_TIMEOUT_MULT=%q\n' "$timeout_mult"
  printf 'VM_TESTS=%q\n' "$tests"
  printf 'VM_COMMAND=%q\n' "$command"
  printf 'VM_KTLS=%q\n' "$vm_ktls"
  printf 'VM_UPSTREAM_TLS=%q\n' "$vm_upstream_tls"
} >"$res/run.env"

sock_dir=$(mktemp -d /tmp/dotproxy-vm.XXXXXX)
daemons=()
qemu_pid=""
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  [[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null
  local p
  for p in "${daemons[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${daemons[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$sock_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fs_args=()
share() {  # share TAG DIR
  "$virtiofsd" --socket-path="$sock_dir/$1.sock" -o source="$2" -o cache=always \
    -o sandbox=chroot -o log_level=err >"$sock_dir/$1.log" 2>&1 &
  daemons+=($!)
  fs_args+=(-chardev "socket,id=fs-$1,path=$sock_dir/$1.sock"
            -device "vhost-user-fs-pci,chardev=fs-$1,tag=$1")
}
share usr /usr
share etc /etc
share src "$src"
[[ -n $build_shared ]] && share build "$build"
share res "$res"
for _ in $(seq 50); do
  n=0
  for s in "$sock_dir"/*.sock; do [[ -S $s ]] && n=$((n + 1)); done
  ((n == ${#daemons[@]})) && break
  sleep 0.1
done
if ((n != ${#daemons[@]})); then
  cat "$sock_dir"/*.log >&2
  skip "virtiofsd did not start (it needs root, or CAP_SYS_ADMIN for its chroot sandbox)"
fi

# --- 7. Boot. -------------------------------------------------------------------------------
log "kernel $pkg ($(basename "$deb")), accel $accel (cpu $cpu), $smp vCPUs, $mem MiB"
if [[ -n $command ]]; then
  log "build $build (source $src); command: $command"
else
  log "build $build (source $src); tests: ${tests:-all}"
fi
log "DOTPROXY_TEST_TIME_SCALE=$time_scale, meson --timeout-multiplier $timeout_mult," \
    "VM timeout ${vm_timeout}s"
t0=$(date +%s.%N)
timeout -k 10 "$vm_timeout" "$qemu" -accel "$accel_opt" -cpu "$cpu" -smp "$smp" -m "$mem" \
  -object "memory-backend-memfd,id=mem,size=${mem}M,share=on" -machine pc,memory-backend=mem \
  -nographic -no-reboot -nic none -device virtio-rng-pci \
  -kernel "$vmlinuz" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 quiet loglevel=4" \
  "${fs_args[@]}" </dev/null >"$res/serial.log" 2>"$res/qemu.err" &
qemu_pid=$!  # timeout's: it passes INT and TERM on to QEMU
tail -n +1 -f --pid="$qemu_pid" "$res/serial.log" | sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g; s/\r$//' &
tail_pid=$!
wait "$qemu_pid"
qemu_rc=$?
qemu_pid=""
wait "$tail_pid"
t1=$(date +%s.%N)
wall=$(echo "$t1 $t0" | awk '{printf "%.1f", $1 - $2}')
echo "$wall" >"$res/wall-seconds"
echo "$accel" >"$res/accel"

# QEMU could not run at all: not even the firmware printed anything. Anything later (a kernel
# that does not boot, a guest that hangs) is a failure, reported below.
if ! grep -aq 'SeaBIOS\|vm-init:' "$res/serial.log" 2>/dev/null; then
  skip "QEMU did not start a guest (exit $qemu_rc): $(head -c 300 "$res/qemu.err")"
fi
if ((qemu_rc == 124 || qemu_rc == 137)); then
  log "the VM did not finish within VM_TIMEOUT=${vm_timeout}s"
fi
if [[ -n $command ]]; then
  python3 "$here/report.py" --command "$res"
else
  python3 "$here/report.py" "$res"
fi
}

main "$@"
exit
