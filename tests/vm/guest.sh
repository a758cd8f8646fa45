#!/bin/bash
# Runs inside the VM (tests/vm/init.sh starts it in a chroot whose /usr and /etc are the host's,
# read-only over virtiofs). run.sh copies it into the results share, with run.env beside it:
#   VM_SRC VM_BUILD        the source and build trees, at their host paths
#   VM_TIME_SCALE          DOTPROXY_TEST_TIME_SCALE for the integration tests
#   VM_TIMEOUT_MULT        meson test --timeout-multiplier
#   VM_TESTS               meson test selection (test names; empty: every test)
#   VM_KTLS                upstream.ktls for every integration test (DOTPROXY_TEST_KTLS); empty: theirs
#   VM_UPSTREAM_TLS        1.2 or 1.3: pin the fake upstreams (DOTPROXY_TEST_UPSTREAM_TLS); empty: 1.3
#   VM_COMMAND             instead of meson test: this bash command, run in the source tree with
#                          DOTPROXY_BIN set (run.sh --command), its exit code in command-exit-code
# Writes into /vm-results: guest-info, meson-logs/ (meson's testlog.json and testlog.txt),
# meson-test.out, suite-seconds, exit-code.
set -u
cd /vm-results || exit 1
# shellcheck source=/dev/null  # written by run.sh
. ./run.env

{
  echo "uname_r=$(uname -r)"
  echo "uname_a=$(uname -a)"
  echo "tcp_available_ulp=$(cat /proc/sys/net/ipv4/tcp_available_ulp)"
  echo "nproc=$(nproc)"
  echo "mem_total_kb=$(awk '/^MemTotal/{print $2}' /proc/meminfo)"
  echo "gcm_aes_driver=$(awk '/^name/{n=$3} /^driver/{if(n=="gcm(aes)"){print $3; exit}}' /proc/crypto)"
  echo "io_uring_disabled=$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo absent)"
  echo "ipv6_lo=$(ip -6 addr show dev lo 2>/dev/null | grep -c 'inet6 ::1')"
} >guest-info
cat guest-info

# meson writes its logs straight into the results share, so a VM that dies or times out halfway
# still leaves the results of the tests that finished (testlog.json grows one line per test).
mkdir -p /vm-results/meson-logs
rm -rf "$VM_BUILD/meson-logs"
ln -s /vm-results/meson-logs "$VM_BUILD/meson-logs"

export DOTPROXY_TEST_TIME_SCALE=$VM_TIME_SCALE
if [[ -n ${VM_KTLS:-} ]]; then
  export DOTPROXY_TEST_KTLS=$VM_KTLS  # upstream.ktls of every integration test's proxy
  echo "guest: upstream.ktls: $VM_KTLS"
fi
if [[ -n ${VM_UPSTREAM_TLS:-} ]]; then
  export DOTPROXY_TEST_UPSTREAM_TLS=$VM_UPSTREAM_TLS  # the fake upstreams' TLS version
  echo "guest: fake upstreams speak TLS $VM_UPSTREAM_TLS"
fi
export PYTHONDONTWRITEBYTECODE=1
export TMPDIR=/tmp

if [[ -n ${VM_COMMAND:-} ]]; then
  export DOTPROXY_BIN=$VM_BUILD/src/dotproxy
  echo "guest: running in $VM_SRC: $VM_COMMAND (DOTPROXY_TEST_TIME_SCALE=$VM_TIME_SCALE)"
  start=$(cut -d' ' -f1 /proc/uptime)
  (cd "$VM_SRC" && bash -c "$VM_COMMAND") 2>&1 | tee command.out
  rc=${PIPESTATUS[0]}
  end=$(cut -d' ' -f1 /proc/uptime)
  echo "$start $end" | awk '{printf "%.1f\n", $2 - $1}' >suite-seconds
  echo "$rc" >command-exit-code
  echo "guest: command exit $rc after $(cat suite-seconds) s"
  exit 0
fi

# shellcheck disable=SC2086  # VM_TESTS is a list of test names on purpose
set -- $VM_TESTS
echo "guest: meson test -C $VM_BUILD --no-rebuild --timeout-multiplier $VM_TIMEOUT_MULT $*" \
     "(DOTPROXY_TEST_TIME_SCALE=$VM_TIME_SCALE)"
start=$(cut -d' ' -f1 /proc/uptime)
meson test -C "$VM_BUILD" --no-rebuild --print-errorlogs --num-processes "$(nproc)" \
  --timeout-multiplier "$VM_TIMEOUT_MULT" "$@" 2>&1 | tee meson-test.out
rc=${PIPESTATUS[0]}
end=$(cut -d' ' -f1 /proc/uptime)
echo "$start $end" | awk '{printf "%.1f\n", $2 - $1}' >suite-seconds
echo "$rc" >exit-code
echo "guest: meson test exit $rc after $(cat suite-seconds) s"
