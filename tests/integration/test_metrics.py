"""Metrics: statsd (a UDP listener standing in for the statsd server, and the other addr forms)
and Prometheus (an HTTP GET of /metrics) against exactly counted traffic, a proxy whose statsd
consumer is absent still answering everything, and per-upstream series across a reload. Loopback
only; every loop is bounded in count and time; throughput is printed as a sanity figure, never
asserted on (bench/ measures)."""

import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import free_port, scaled, to_yaml, udp_many, wait_until  # noqa: E402

QUERIES = 1000
BATCH = 100
MAX_DATAGRAM = 1432


class Collector:
    """Receives statsd payloads on a socket (UDP, unix datagram or TCP) in a thread; keeps every
    payload, bounded by a deadline."""

    def __init__(self, kind: str, path: str | None = None):
        self.kind = kind
        self.payloads: list[bytes] = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        if kind == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            # A flush is a burst of datagrams; a loaded CI machine may not run this thread for a
            # while (the kernel caps this at net.core.rmem_max).
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            self.sock.bind(("127.0.0.1", 0))
            self.addr = f"udp://127.0.0.1:{self.sock.getsockname()[1]}"
        elif kind == "unix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(path)
            self.addr = f"unix://{path}"
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen(4)
            self.addr = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        deadline = time.monotonic() + scaled(120)
        conn = None
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            try:
                if self.kind == "tcp":
                    if conn is None:
                        conn, _ = self.sock.accept()
                        conn.settimeout(0.1)
                    data = conn.recv(65536)
                    if not data:
                        conn.close()
                        conn = None
                        continue
                else:
                    data = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                continue
            with self.lock:
                self.payloads.append(data)
        if conn is not None:
            conn.close()

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped for this socket (full receive buffer), from /proc/net."""
        port = self.sock.getsockname()[1] if self.kind == "udp" else None
        try:
            with open("/proc/net/udp") as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if port is not None and int(fields[1].split(":")[1], 16) == port:
                        return int(fields[-1])
        except (OSError, ValueError, IndexError):
            pass
        return -1

    def lines(self) -> list[str]:
        with self.lock:
            text = b"".join(self.payloads).decode()
        return [line for line in text.split("\n") if line]

    def close(self):
        self.stop_flag.set()
        self.thread.join(5)
        self.sock.close()


def counter_sum(lines, name: str, tag: str = "") -> int:
    """Sums a statsd counter (influx or DogStatsD form) over lines: dotproxy.NAME[,tags]:N|c."""
    total = 0
    for line in lines:
        m = re.match(r"dotproxy\.([a-z_.]+)((?:,[^:]*)?):(\d+)\|c(.*)$", line)
        if m and m.group(1) == name and tag in (m.group(2) + m.group(4)):
            total += int(m.group(3))
    return total


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def scrape_when_up(port: int, timeout: float) -> str | None:
    """/metrics once the endpoint listens: the reporter, which serves it, starts after the
    shards, so the first queries can be answered before it is up (seen under TSan)."""
    def attempt():
        try:
            return scrape(port)
        except OSError:  # urllib.error.URLError: connection refused
            return None
    return wait_until(attempt, timeout)


def prom_value(text: str, series: str):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def send_exactly(test, proxy, count: int, prefix: str = "m"):
    """count UDP queries in batches of BATCH, each answered (asserted), bounded in time."""
    t0 = time.monotonic()
    for start in range(0, count, BATCH):
        items = [(f"{prefix}{i}.metrics.test.", "A") for i in range(start, min(count, start + BATCH))]
        results = udp_many(items, *proxy.udp_addr, timeout=scaled(10))
        missing = [q.question[0].name for q, r, _ in results if r is None]
        test.assertEqual(missing, [], "queries without an answer")
    return time.monotonic() - t0


class MetricsTest(harness.ProxyTestCase):
    def metrics_config(self, metrics: dict, workers: int = 2) -> dict:
        cfg = self.make_config(workers=workers)
        cfg["metrics"] = metrics
        return cfg

    def test_exactly_1000_queries_in_statsd_and_prometheus(self):
        """After exactly 1,000 forwarded queries the forwarded counter sums to 1,000 over the
        statsd datagrams and reads 1,000 on /metrics; every datagram is at most 1,432 bytes."""
        statsd = Collector("udp")
        self.addCleanup(statsd.close)
        prom_port = free_port()
        cfg = self.metrics_config({"flush_interval": "200ms",
                                   "statsd": {"addr": statsd.addr},
                                   "prometheus": {"addr": f"127.0.0.1:{prom_port}"}})
        # "listen": no ready-probe query, so the proxy sees exactly the queries sent here.
        with self.proxy(cfg, ready="listen") as p:
            send_exactly(self, p, QUERIES)

            def settled():
                lines = statsd.lines()
                return counter_sum(lines, "event.proxy.process") >= QUERIES and \
                    prom_value(scrape(prom_port), "dotproxy_forwarded_total") == QUERIES
            self.assertTrue(wait_until(settled, scaled(10)),
                            f"counters did not reach {QUERIES}: statsd "
                            f"{counter_sum(statsd.lines(), 'event.proxy.process')}, /metrics "
                            f"{prom_value(scrape(prom_port), 'dotproxy_forwarded_total')}, "
                            f"{statsd.kernel_drops()} datagrams dropped by the kernel")
            time.sleep(0.6)  # three more flushes: nothing may be counted twice
            lines = statsd.lines()
            text = scrape(prom_port)
            log = p.log()
        self.assertEqual(counter_sum(lines, "event.proxy.process"), QUERIES)
        self.assertEqual(counter_sum(lines, "event.client.cx_read", "transport=udp"), QUERIES)
        self.assertEqual(counter_sum(lines, "event.upstream.cx_read", "addr=127.0.0.1"), QUERIES)
        self.assertEqual(counter_sum(lines, "event.client.answer", "rcode=NOERROR"), QUERIES)
        timings = [line for line in lines if line.startswith("dotproxy.latency.proxy.tx_rtt,")]
        self.assertEqual(len(timings), QUERIES, "sample_rate 1: one timing per answered query")
        self.assertTrue(all(re.search(r":\d+\.\d{3}\|ms$", t) for t in timings), timings[:3])
        self.assertTrue(any(line.startswith("dotproxy.gauge.upstream.latency_p99,addr=127.0.0.1,")
                            for line in lines))
        self.assertTrue(all(len(d) <= MAX_DATAGRAM for d in statsd.payloads))
        self.assertGreater(max(len(d) for d in statsd.payloads), MAX_DATAGRAM - 200,
                           "lines are packed many to a datagram")
        self.assertEqual(prom_value(text, 'dotproxy_queries_total{transport="udp"}'), QUERIES)
        self.assertEqual(prom_value(text, 'dotproxy_answers_total{rcode="NOERROR"}'), QUERIES)
        self.assertEqual(prom_value(text, "dotproxy_query_duration_seconds_count"), QUERIES)
        upstream = self.up.addr
        self.assertEqual(prom_value(text, f'dotproxy_upstream_answers_total{{upstream="{upstream}"}}'),
                         QUERIES)
        self.assertEqual(prom_value(text, f'dotproxy_upstream_up{{upstream="{upstream}"}}'), 1)
        self.assertIn("# TYPE dotproxy_upstream_latency_seconds histogram", text)
        self.assertIn('dotproxy_query_slots_in_use{shard="1"}', text)
        self.assertIn("dotproxy_acl_dropped_total 0", text)
        self.assertRegex(log, r"INFO metrics: \d+ qps \(udp \d+, tcp \d+\), answers \d+, "
                              r"servfail \d+ .*p99 [\d.]+ ms")

    def test_statsd_absent_proxy_answers_everything(self):
        """With nothing listening on the statsd ports (UDP and TCP), every query is answered;
        the throughput with and without statsd is printed for the record, not asserted on."""
        closed = free_port()
        rates = {}
        for label, metrics in (("metrics off", None),
                               ("statsd absent", {"flush_interval": "100ms", "statsd": {
                                   "addr": f"udp://127.0.0.1:{closed},tcp://127.0.0.1:{closed}"}})):
            cfg = self.make_config(workers=2)
            if metrics:
                cfg["metrics"] = metrics
            with self.proxy(cfg) as p:
                seconds = send_exactly(self, p, QUERIES)
                rates[label] = QUERIES / seconds
                if metrics:
                    time.sleep(0.3)  # a few flushes into the void
                    self.assertIsNone(p.proc.poll(), "the proxy is still running")
        sys.stderr.write(f"\n  throughput (sanity only): " +
                         ", ".join(f"{k} {v:.0f} q/s" for k, v in rates.items()) + "\n")

    def test_every_addr_form_with_dogstatsd_tags(self):
        """One comma-separated addr fans out to UDP, TCP, a unix datagram socket and a file, all in
        DogStatsD format; each receives every count."""
        d = tempfile.mkdtemp(prefix="dotproxy-statsd-", dir=self.tmp)
        udp = Collector("udp")
        tcp = Collector("tcp")
        unix = Collector("unix", os.path.join(d, "statsd.sock"))
        for c in (udp, tcp, unix):
            self.addCleanup(c.close)
        path = os.path.join(d, "statsd.log")
        addr = ",".join([udp.addr, tcp.addr, unix.addr, f"file://{path}"])
        cfg = self.metrics_config({"flush_interval": "100ms",
                                   "statsd": {"addr": addr, "tag_format": "dogstatsd"}},
                                  workers=1)
        n = 50
        def file_lines():
            try:
                with open(path) as f:
                    return f.read().splitlines()
            except OSError:
                return []
        sources = {"udp": udp.lines, "tcp": tcp.lines, "unix": unix.lines, "file": file_lines}
        with self.proxy(cfg, ready="listen") as p:
            # Counts made while a consumer is unreachable (TCP still connecting) are dropped, not
            # kept for later: wait until every consumer has had a flush.
            self.assertTrue(wait_until(lambda: all(get() for get in sources.values()), scaled(10)),
                            {k: len(get()) for k, get in sources.items()})
            send_exactly(self, p, n)
            self.assertTrue(wait_until(lambda: all(counter_sum(get(), "event.proxy.process") >= n
                                                   for get in sources.values()), scaled(10)),
                            {k: counter_sum(get(), "event.proxy.process") for k, get in sources.items()})
        for kind, get in sources.items():
            lines = get()
            self.assertEqual(counter_sum(lines, "event.proxy.process"), n, kind)
            self.assertEqual(counter_sum(lines, "event.client.cx_read", "|#transport:udp,version:"),
                             n, kind)


class MetricsReloadTest(harness.ProxyTestCase):
    def test_upstream_series_follow_their_servers_across_a_reload(self):
        """Servers [A, B], queries, then a SIGHUP reload to [B, C] (A removed, C added, B moved
        to index 0), queries: on /metrics B's series holds exactly what B received (before and
        after the reload), C's series exists with exactly C's queries, A's series is gone."""
        a = self.up
        b = self.start_upstream()
        c = self.start_upstream()
        prom_port = free_port()
        cfg = self.make_config(servers=[self.server_entry(a), self.server_entry(b)], workers=2)
        cfg["metrics"] = {"flush_interval": "100ms",
                          "prometheus": {"addr": f"127.0.0.1:{prom_port}"}}

        def series(text, up):
            return prom_value(text, f'dotproxy_upstream_queries_total{{upstream="{up.addr}"}}')

        def report(text, *ups):
            return ", ".join(f"{up.addr}: /metrics {series(text, up)}, received "
                             f"{up.snapshot()['queries_received']}" for up in ups)

        def matches(text, *ups):
            """Each server's series equals the queries that server received (all > 0)."""
            return all(up.snapshot()["queries_received"] > 0 and
                       series(text, up) == up.snapshot()["queries_received"] for up in ups)

        with self.proxy(cfg) as p:
            self.assertIsNotNone(scrape_when_up(prom_port, scaled(10)), "no /metrics endpoint")
            send_exactly(self, p, 40, prefix="before")
            self.assertTrue(wait_until(lambda: matches(scrape(prom_port), a, b), scaled(5)),
                            "before the reload: " + report(scrape(prom_port), a, b))
            b_before = series(scrape(prom_port), b)
            cfg["upstream"]["servers"] = [self.server_entry(b), self.server_entry(c)]
            with open(p.config_path, "w") as f:
                f.write(to_yaml(cfg))
            p.send_signal(signal.SIGHUP)
            self.assertTrue(wait_until(lambda: "removed " + a.addr in p.log(), scaled(5)),
                            p.log_tail())
            time.sleep(scaled(0.3))  # C's handshakes
            send_exactly(self, p, 40, prefix="after")
            wait_until(lambda: (lambda t: matches(t, b, c) and series(t, a) is None)(
                scrape(prom_port)), scaled(5))
            text = scrape(prom_port)
        stale = [line for line in text.splitlines() if f'upstream="{a.addr}"' in line]
        self.assertEqual(stale[:3], [], "the removed server's series must go; after the reload: "
                         + report(text, a, b, c))
        self.assertTrue(matches(text, b, c), "after the reload: " + report(text, a, b, c))
        self.assertGreater(series(text, b), b_before, "B's series continues with new queries")
        self.assertIn(f'dotproxy_upstream_up{{upstream="{c.addr}"}} 1', text)

if __name__ == "__main__":
    unittest.main()
