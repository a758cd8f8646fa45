#!/bin/bash
# bench/ktls_cpu.sh: dotproxy's CPU per query with upstream.ktls on and off under the same load,
# on one machine, in alternation (off, on, off, on ...), at peak (closed loop) and at a fixed
# rate. Meant for Debian 12's kernel in tests/vm (which has tls.ko and aesni_intel loaded):
#
#   tests/vm/run.sh --command 'bench/ktls_cpu.sh'
#
# dotload and dotresponder come from BENCH_BUILD (build-bench, see bench/README.md), dotproxy from
# DOTPROXY_BIN (default build-test/src/dotproxy). CPU is dotproxy's utime+stime from /proc over
# each run, divided by the answers; under TCG only the on/off ratio within one run means anything.
# Knobs: DUR (s per run, 10), RATE (fixed-rate qps, 1000), REPS (2), TLS_VERSIONS ("1.3 1.2").
set -u
bench=${BENCH_BUILD:-build-bench}
proxy=${DOTPROXY_BIN:-build-test/src/dotproxy}
dur=${DUR:-10} rate=${RATE:-1000} reps=${REPS:-2} versions=${TLS_VERSIONS:-"1.3 1.2"}
tmp=$(mktemp -d)
responder_pid="" proxy_pid=""
cleanup() {
  [[ -n $proxy_pid ]] && kill "$proxy_pid" 2>/dev/null
  [[ -n $responder_pid ]] && kill "$responder_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
tests/testing/gen_certs.sh "$tmp/pki" >/dev/null || exit 1
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_one() {  # VERSION MODE LOAD
  local version=$1 mode=$2 load=$3
  cat >"$tmp/proxy.yaml" <<YAML
server: {workers: 1}
listener: {udp: {addr: "127.0.0.1:5300"}}
upstream:
  ktls: $mode
  servers:
    - {addr: "127.0.0.1:8853", server_name: dot.test, ca_file: "$tmp/pki/ca.pem", connection_pool_size: 2}
YAML
  "$proxy" --config "$tmp/proxy.yaml" --verbosity debug >"$tmp/proxy.log" 2>&1 &
  proxy_pid=$!
  # Warm up: connections open, sessions established.
  "$bench/bench/load/dotload" --server 127.0.0.1:5300 --count 500 --inflight 20 --duration 20s \
    --quiet >/dev/null 2>&1
  local before after args out
  before=$(cpu_ticks "$proxy_pid")
  if [[ $load == peak ]]; then args=(--inflight 64); else args=(--qps "$rate"); fi
  out=$("$bench/bench/load/dotload" --server 127.0.0.1:5300 --duration "${dur}s" --quiet "${args[@]}" | tail -1)
  after=$(cpu_ticks "$proxy_pid")
  kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null; proxy_pid=""
  local path failures
  path=$(grep -o 'ready ([^)]*)' "$tmp/proxy.log" | head -1)
  # A run whose connections kept failing measures handshakes, not records: say so.
  failures=$(grep -c 'connection [0-9]* failed' "$tmp/proxy.log")
  python3 - "$version" "$mode" "$load" "$((after - before))" "$ticks" "$out" "$path" "$failures" <<'PY'
import json, sys
version, mode, load, dticks, ticks, out, path, failures = sys.argv[1:]
r = json.loads(out)
cpu_s = int(dticks) / int(ticks)
answered = r["answered"]
per_q = cpu_s * 1e6 / answered if answered else float("nan")
print(f"ktls_cpu: tls {version} ktls {mode:3} {load:5} qps {r['qps']:8.0f} answered {answered:7d} "
      f"timeouts {r['timeouts']:5d} noerror {r['rcodes'].get('NOERROR', 0):7d} "
      f"conn failures {failures:>3} cpu {cpu_s:6.2f} s  {per_q:7.1f} us/query  [{path}]", flush=True)
PY
}

for version in $versions; do
  "$bench/bench/responder/dotresponder" --udp "" --tcp "" --dot 127.0.0.1:8853 \
    --cert "$tmp/pki/server.pem" --key "$tmp/pki/server.key" --tls "$version" >"$tmp/responder.log" 2>&1 &
  responder_pid=$!
  sleep 1
  for ((rep = 1; rep <= reps; ++rep)); do
    for load in peak rate; do
      for mode in off on; do
        run_one "$version" "$mode" "$load"
      done
    done
  done
  kill "$responder_pid"; wait "$responder_pid" 2>/dev/null; responder_pid=""
done
