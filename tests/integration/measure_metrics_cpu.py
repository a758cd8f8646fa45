#!/usr/bin/env python3
"""The proxy's CPU time per query with metrics off, statsd on, and statsd + Prometheus on, driven
by a closed loop of UDP clients in Python (loopback, the in-tree fake upstream). A rough check
only: bench/compare (dotload, pinned CPUs) is the real measurement. Not run by meson.

  DOTPROXY_BIN=build/src/dotproxy python3 tests/integration/measure_metrics_cpu.py [QUERIES] [ROUNDS]

Prints one line per configuration and round: queries, proxy CPU (user+system) per query in us,
and the rate the Python clients reached."""

import os
import select
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import ProxyProcess, free_port, id_of, query_wire  # noqa: E402

CLIENTS = 64
TIME_LIMIT_S = 120


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(addr, total: int) -> float:
    """Sends `total` queries from CLIENTS sockets, one in flight each; returns the seconds taken."""
    socks = []
    for _ in range(CLIENTS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect(addr)
        socks.append(s)
    sent = 0
    done = 0
    t0 = time.monotonic()
    pending = {}
    for s in socks:
        if sent < total:
            pending[s] = sent & 0xFFFF
            s.send(query_wire(f"c{sent}.cpu.test.", "A", qid=sent & 0xFFFF))
            sent += 1
    while done < total and time.monotonic() - t0 < TIME_LIMIT_S:
        ready, _, _ = select.select(list(pending), [], [], 1.0)
        if not ready:  # a lost datagram: send that client's query again
            for s, qid in pending.items():
                s.send(query_wire(f"r{qid}.cpu.test.", "A", qid=qid))
            continue
        for s in ready:
            data = s.recv(65535)
            if len(data) < 2 or id_of(data) != pending.get(s):
                continue
            done += 1
            del pending[s]
            if sent < total:
                pending[s] = sent & 0xFFFF
                s.send(query_wire(f"c{sent}.cpu.test.", "A", qid=sent & 0xFFFF))
                sent += 1
    for s in socks:
        s.close()
    return time.monotonic() - t0


def main():
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    case = harness.ProxyTestCase()
    case.setUp()
    statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    statsd.bind(("127.0.0.1", 0))
    statsd.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    configs = {
        "metrics off": None,
        "statsd": {"statsd": {"addr": f"udp://127.0.0.1:{statsd.getsockname()[1]}"}},
        "statsd+prometheus": {"statsd": {"addr": f"udp://127.0.0.1:{statsd.getsockname()[1]}"},
                              "prometheus": {"addr": f"127.0.0.1:{free_port()}"}},
    }
    try:
        for r in range(rounds):
            for label, metrics in configs.items():
                cfg = case.make_config(workers=1)
                if metrics:
                    cfg["metrics"] = metrics
                with ProxyProcess(cfg, tempfile.mkdtemp(dir=case.tmp), verbosity="warn") as p:
                    drive(p.udp_addr, 1000)  # warm up: connections, caches
                    before = cpu_seconds(p.pid)
                    seconds = drive(p.udp_addr, total)
                    cpu = cpu_seconds(p.pid) - before
                    while select.select([statsd], [], [], 0)[0]:
                        statsd.recv(65536)
                print(f"round {r + 1} {label:18s} {total} queries: {cpu * 1e6 / total:6.1f} us CPU/query, "
                      f"{total / seconds:7.0f} q/s", flush=True)
    finally:
        statsd.close()
        case.doCleanups()


if __name__ == "__main__":
    main()
