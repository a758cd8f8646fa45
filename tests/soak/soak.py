#!/usr/bin/env python3
"""Soak: mixed UDP and TCP load against the real binary while faults happen at once, for a bounded
time (default 60 s; --seconds N or DOTPROXY_SOAK_SECONDS for longer).

Faults: upstream A closes idle connections after 1 s and, in bursts, drops connections mid-query;
upstream B restarts (stop, then listen again on the same port) every 15 s; malformed UDP datagrams
and TCP frames from a junk client; one TCP client pipelines queries for ~4 KB answers and never
reads. Asserts:
  * every query gets its own answer or SERVFAIL: none unanswered, none with another's answer;
  * the proxy's RSS after warm-up (15 s and 2,000 queries, at most half the run) stays flat
    (within 10 % + 8 MiB) to the end;
  * the proxy's fd count before the load equals the count after it (once the faults stop).
Prints one line of figures (queries sent, answered, SERVFAIL, wrong, RSS and fds before/after).
Loopback only; every loop is bounded in time; stops only what it started.
"""
import argparse
import os
import random
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import dnsclient  # noqa: E402
import harness  # noqa: E402
from dnsclient import ProxyProcess, answer_problem, make_query, scaled  # noqa: E402
from fake_dot_upstream import FakeDotUpstream  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


WARMUP_QUERIES = 2000


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.answered = self.servfail = self.wrong = self.missing = 0
        self.examples = []

    def record(self, name, qid, resp):
        with self.lock:
            self.sent += 1
            if resp is None:
                self.missing += 1
                problem = f"no response for {name}"
            elif len(resp) >= 12 and dnsclient.id_of(resp) == qid and dnsclient.rcode_of(resp) == 2:
                self.servfail += 1
                return
            else:
                problem = answer_problem(resp, name, "A", qid)
                if problem is None:
                    self.answered += 1
                    return
                self.wrong += 1
            if len(self.examples) < 5:
                self.examples.append(problem)


def udp_worker(addr, tag, tally, stop):
    i = 0
    while not stop.is_set():
        name = f"u{tag}-{i}.soak.test."
        q, resp = dnsclient.udp_query(name, *addr, timeout=scaled(5))
        tally.record(name, q.id, resp)
        i += 1


def tcp_worker(addr, tag, tally, stop):
    i = 0
    while not stop.is_set():
        try:
            with dnsclient.TcpClient(*addr, timeout=scaled(5)) as c:
                for _ in range(20):  # 20 rounds of 10 pipelined queries per connection
                    if stop.is_set():
                        break
                    batch = {}
                    for _ in range(10):
                        name = f"t{tag}-{i}.soak.test."
                        q = make_query(name, "A", qid=i & 0xFFFF)  # unique within a batch
                        batch[q.id] = name
                        wire = q.to_wire()
                        c.send(struct.pack("!H", len(wire)) + wire)
                        i += 1
                    for resp in c.read_frames(len(batch), timeout=scaled(5)):
                        qid = dnsclient.id_of(resp) if resp and len(resp) >= 2 else None
                        name = batch.pop(qid, None)
                        if name is None:  # an ID we did not ask, or a duplicate
                            tally.record("(unknown id)", -1, resp)
                        else:
                            tally.record(name, qid, resp)
                    for qid, name in batch.items():  # never answered
                        tally.record(name, qid, None)
        except OSError as e:
            tally.record(f"tcp connection error {e!r}", -1, None)


def junk_worker(addr, stop):
    rnd = random.Random(7)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        while not stop.is_set():
            s.sendto(rnd.randbytes(rnd.randint(0, 600)), addr)
            if rnd.random() < 0.05:
                try:
                    with socket.create_connection(addr, timeout=1) as t:
                        t.sendall(struct.pack("!H", 40) + rnd.randbytes(40) + b"\x00\x00")
                except OSError:
                    pass
            time.sleep(0.02)


def never_reading_client(addr, stop):
    with socket.create_connection(addr, timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        for i in range(5000):
            if stop.is_set():
                break
            wire = make_query(f"size-4000.r{i}.soak.test.", "TXT").to_wire()
            try:
                s.send(struct.pack("!H", len(wire)) + wire)
            except BlockingIOError:
                time.sleep(0.01)  # the proxy stopped reading us: back-pressure works
        stop.wait()


def faults(up_a, b_holder, b_port, certs, stop):
    t0 = time.monotonic()
    next_restart = t0 + 15
    while not stop.wait(1.0):
        up_a.close_after_queries = 50 if int(time.monotonic() - t0) % 6 < 2 else 0
        if time.monotonic() >= next_restart:
            b_holder[0].stop()
            time.sleep(0.5)
            b_holder[0] = FakeDotUpstream(certs.server_cert, certs.server_key, port=b_port).start()
            next_restart += 15
    up_a.close_after_queries = 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float,
                    default=float(os.environ.get("DOTPROXY_SOAK_SECONDS", "60")))
    args = ap.parse_args()
    certs = harness.certs()
    work = harness.tempfile.mkdtemp(prefix="dotproxy-soak-")
    up_a = FakeDotUpstream(certs.server_cert, certs.server_key, idle_close_s=1.0).start()
    b_port = dnsclient.free_port("127.0.0.1")
    b_holder = [FakeDotUpstream(certs.server_cert, certs.server_key, port=b_port).start()]
    port = dnsclient.free_port("127.0.0.1")
    addr = f"127.0.0.1:{port}"

    def server(a):
        return {"addr": a, "server_name": "dot.test", "ca_file": certs.ca,
                "connection_pool_size": 2, "read_timeout": "1500ms", "stale_timeout": "8s"}

    cfg = {"server": {"workers": 2},
           "listener": {"udp": {"addr": addr},
                        "tcp": {"addr": addr, "max_inflight_per_connection": 64}},
           "upstream": {"load_balancing_policy": "RoundRobin", "max_connection_retries": 2,
                        "query_timeout": "3s",
                        "servers": [server(up_a.addr), server(f"127.0.0.1:{b_port}")]}}
    proxy = ProxyProcess(cfg, work, verbosity="warn").start()
    stop = threading.Event()
    threads = []
    try:
        # The baseline once start-up is over (every pool connection up), however slow the
        # machine: stretched by DOTPROXY_TEST_TIME_SCALE, and two readings that agree.
        time.sleep(scaled(1.0))
        fds_before = fd_count(proxy.pid)
        settle = time.monotonic() + scaled(5)
        while time.monotonic() < settle:
            time.sleep(0.5)
            again = fd_count(proxy.pid)
            if again == fds_before:
                break
            fds_before = again
        tally = Tally()
        target = ("127.0.0.1", port)
        for t in range(4):
            threads.append(threading.Thread(target=udp_worker, args=(target, t, tally, stop)))
        for t in range(2):
            threads.append(threading.Thread(target=tcp_worker, args=(target, t, tally, stop)))
        threads.append(threading.Thread(target=junk_worker, args=(target, stop)))
        threads.append(threading.Thread(target=never_reading_client, args=(target, stop)))
        threads.append(threading.Thread(target=faults,
                                        args=(up_a, b_holder, b_port, certs, stop)))
        for t in threads:
            t.daemon = True
            t.start()
        # Warm-up is measured in work, not only in time: at least 15 s (a quarter of a short
        # run) and 2,000 queries, so that a slow machine (tests/vm under TCG answers a tenth as
        # many) has grown its buffers and slots too; at most half the run.
        started = time.monotonic()
        min_warmup, max_warmup = min(15.0, args.seconds / 4), args.seconds / 2
        while time.monotonic() - started < max_warmup and (
                time.monotonic() - started < min_warmup or tally.sent < WARMUP_QUERIES):
            time.sleep(0.2)
        warmup = time.monotonic() - started
        rss_warm = rss_kib(proxy.pid)
        rss_peak = rss_warm
        deadline = time.monotonic() + args.seconds - warmup
        while time.monotonic() < deadline:
            time.sleep(1.0)
            rss_peak = max(rss_peak, rss_kib(proxy.pid))
        rss_end = rss_kib(proxy.pid)
        stop.set()
        for t in threads:
            t.join(scaled(15))
        settle = time.monotonic() + scaled(10)
        fds_after = fd_count(proxy.pid)
        while fds_after != fds_before and time.monotonic() < settle:
            time.sleep(0.2)
            fds_after = fd_count(proxy.pid)
        alive = proxy.proc.poll() is None
    finally:
        stop.set()
        proxy.stop(check=False)
        up_a.stop()
        b_holder[0].stop()
    print(f"soak {args.seconds:.0f} s: sent {tally.sent}, answered {tally.answered}, "
          f"SERVFAIL {tally.servfail}, wrong {tally.wrong}, unanswered {tally.missing}; "
          f"RSS {rss_warm} KiB after warm-up, {rss_end} KiB at the end (peak {rss_peak}); "
          f"fds {fds_before} before, {fds_after} after")
    problems = []
    if not alive:
        problems.append(f"the proxy died (exit {proxy.proc.returncode})")
    if tally.wrong or tally.missing:
        problems.append(f"{tally.wrong} wrong and {tally.missing} unanswered: {tally.examples}")
    if tally.answered < tally.sent // 2:
        problems.append("fewer than half the queries were answered")
    if rss_end > rss_warm * 1.10 + 8 * 1024:
        problems.append(f"RSS grew from {rss_warm} to {rss_end} KiB after warm-up")
    if fds_after != fds_before:
        problems.append(f"fd count {fds_before} before, {fds_after} after")
    for p in problems:
        print("FAIL:", p)
    if problems:
        print(proxy.log_tail(30))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
