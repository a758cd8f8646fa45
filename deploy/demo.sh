#!/usr/bin/env bash
# deploy/demo.sh: README command 1. Installs the Debian packages, builds dotproxy, and runs it on
# loopback in front of a local demo DNS-over-TLS upstream (tests/testing/fake_dot_upstream.py) with
# a throwaway test CA, so `dig @127.0.0.1 -p 5353 example.com` answers with no internet.
#
#   deploy/demo.sh [start]     (re)start both in the background and wait until dig gets an answer
#   deploy/demo.sh stop        stop the processes this script started (by their recorded PIDs)
#   deploy/demo.sh status      show whether they run and ask the proxy once
#   deploy/demo.sh foreground  like start, but the proxy runs in this terminal (Ctrl-C stops both)
#
# Environment: PORT (proxy port on 127.0.0.1, default 5353), UPSTREAM_PORT (default 8853),
# BUILD_DIR (default build, relative to the repository root). State, logs and PID files live in
# $BUILD_DIR/demo/.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
# Debian's tools first: a pyenv/venv python3 earlier in PATH lacks python3-dnspython.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

PORT_FROM_ENV=${PORT:-}
PORT=${PORT:-5353}
UPSTREAM_PORT=${UPSTREAM_PORT:-8853}
BUILD_DIR=${BUILD_DIR:-build}
[[ $BUILD_DIR == /* ]] || BUILD_DIR=$root/$BUILD_DIR
demo=$BUILD_DIR/demo
proxy_bin=$BUILD_DIR/src/dotproxy
upstream_py=$root/tests/testing/fake_dot_upstream.py

say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

# pid_of NAME: the recorded PID of NAME (proxy|upstream) if that process still runs the program we
# started (a PID file can outlive its process and the PID be reused); nothing otherwise.
pid_of() {
  local name=$1 pid program
  [[ -f $demo/$name.pid ]] || return 0
  pid=$(<"$demo/$name.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  case $name in
    proxy) program=$proxy_bin ;;
    upstream) program=$upstream_py ;;
  esac
  if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$program"; then
    echo "$pid"
  fi
}

stop_one() {
  local name=$1 pid i
  pid=$(pid_of "$name")
  if [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do  # up to 5 s for a clean exit
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) did not stop on SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$demo/$name.pid"
}

cmd_stop() {
  stop_one proxy
  stop_one upstream
}

# query [DIG_ARGS...]: one bounded query to the proxy. Succeeds on a NOERROR answer and prints
# the answer records (one per line, possibly none).
query() {
  local out
  out=$(dig +time=1 +tries=1 @127.0.0.1 -p "$PORT" example.com A "$@" 2>&1) || return 1
  grep -q 'status: NOERROR' <<<"$out" || return 1
  awk '/^;; ANSWER SECTION:/ {on = 1; next} on && /^$/ {exit} on {print}' <<<"$out"
}

cmd_status() {
  local name pid rc=0
  if [[ -z ${PORT_FROM_ENV:-} && -f $demo/config.yaml ]]; then  # the port the demo was started on
    PORT=$(sed -n 's/^ *addr: 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$demo/config.yaml" | head -n 1)
  fi
  for name in upstream proxy; do
    pid=$(pid_of "$name")
    if [[ -n $pid ]]; then say "$name running (pid $pid)"; else say "$name not running"; rc=1; fi
  done
  if query >/dev/null; then
    say "dig @127.0.0.1 -p $PORT example.com answers"
  else
    say "no answer from 127.0.0.1:$PORT"; rc=1
  fi
  return "$rc"
}

port_busy() {  # port_busy PORT: something already listens there (UDP or TCP, any address)
  ss -Hlnut "sport = :$1" 2>/dev/null | grep -q .
}

# prepare COMMAND: stop an earlier demo, install packages, check the ports, build the binary.
prepare() {
  mkdir -p "$demo"
  cmd_stop >/dev/null  # a second run replaces the first
  deploy/install-deps.sh
  port_busy "$PORT" && die "port $PORT is already in use; run: PORT=<free port> $0 $1"
  port_busy "$UPSTREAM_PORT" &&
    die "port $UPSTREAM_PORT is already in use; run: UPSTREAM_PORT=<free port> $0 $1"
  if [[ ! -f $BUILD_DIR/meson-private/coredata.dat ]]; then
    meson setup "$BUILD_DIR" --buildtype=release
  elif [[ ! -f $BUILD_DIR/build.ninja ]]; then
    meson setup --wipe "$BUILD_DIR"  # an interrupted setup
  fi
  ninja -C "$BUILD_DIR" src/dotproxy  # only the binary: the demo needs nothing else
  [[ -x $proxy_bin ]] || die "$proxy_bin was not built"
}

start_upstream() {
  local i
  [[ -f $upstream_py ]] || die "$upstream_py is missing"
  tests/testing/gen_certs.sh "$demo"  # throwaway CA + cert for dot.test/127.0.0.1 (kept while fresh)
  : >"$demo/upstream.log"
  # setsid: the demo keeps running after this script (and its terminal) exits.
  setsid python3 "$upstream_py" --listen "127.0.0.1:$UPSTREAM_PORT" \
    --cert "$demo/server.pem" --key "$demo/server.key" \
    </dev/null >>"$demo/upstream.log" 2>&1 &
  echo $! >"$demo/upstream.pid"
  for ((i = 0; i < 100; i++)); do  # it prints "ready <port>" once it listens
    grep -q '^ready' "$demo/upstream.log" && return 0
    kill -0 "$(<"$demo/upstream.pid")" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$demo/upstream.log" >&2
  cmd_stop
  die "the demo upstream did not start (log: $demo/upstream.log)"
}

write_config() {
  cat >"$demo/config.yaml" <<EOF
# Written by deploy/demo.sh: dotproxy on loopback, forwarding to the local demo DoT upstream.
listener:
  udp:
    addr: 127.0.0.1:$PORT
  tcp:
    addr: 127.0.0.1:$PORT
upstream:
  load_balancing_policy: RoundRobin
  servers:
    - addr: 127.0.0.1:$UPSTREAM_PORT
      server_name: dot.test
      ca_file: '$demo/ca.pem'
      connection_pool_size: 2
EOF
}

wait_ready() {
  local pid=$1 i
  for ((i = 0; i < 30; i++)); do  # about 30 s at most (each dig waits up to 1 s)
    query >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

print_usage_hint() {
  cat <<EOF

dotproxy is running on 127.0.0.1:$PORT (UDP and TCP), forwarding over TLS to the demo upstream
on 127.0.0.1:$UPSTREAM_PORT (server name dot.test, CA $demo/ca.pem).

  Query it:     dig @127.0.0.1 -p $PORT example.com
                dig @127.0.0.1 -p $PORT example.com +tcp
  Status:       deploy/demo.sh status
  Logs:         $demo/proxy.log  $demo/upstream.log
  Config:       $demo/config.yaml
  Stop it:      deploy/demo.sh stop
EOF
}

cmd_start() {
  prepare start
  start_upstream
  write_config
  : >"$demo/proxy.log"
  setsid "$proxy_bin" --config "$demo/config.yaml" --verbosity info \
    </dev/null >>"$demo/proxy.log" 2>&1 &
  echo $! >"$demo/proxy.pid"
  if ! wait_ready "$(<"$demo/proxy.pid")"; then
    tail -n 30 "$demo/proxy.log" >&2
    cmd_stop
    die "dotproxy did not answer on 127.0.0.1:$PORT (log: $demo/proxy.log)"
  fi
  say "started upstream (pid $(<"$demo/upstream.pid")) and dotproxy (pid $(<"$demo/proxy.pid"))"
  say "UDP answer: $(query | tr -s '\t\n' '  ')"
  say "TCP answer: $(query +tcp | tr -s '\t\n' '  ')"
  print_usage_hint
}

cmd_foreground() {
  prepare foreground
  start_upstream
  write_config
  trap 'stop_one upstream' EXIT
  say "dotproxy on 127.0.0.1:$PORT in the foreground; Ctrl-C stops it and the demo upstream"
  say "query it from another terminal: dig @127.0.0.1 -p $PORT example.com [+tcp]"
  "$proxy_bin" --config "$demo/config.yaml" --verbosity info
}

case ${1:-start} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  foreground) cmd_foreground ;;
  -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command: $1 (start|stop|status|foreground)" ;;
esac
