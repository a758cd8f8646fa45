"""How the proxy copes with its DoT upstream: pipelining over the pool, odd TLS record shapes,
reordered answers, connections closed when idle or in the middle of a query, refused and
black-holed connections."""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import (answer_problem, frame, make_query, match_responses, rcode_of, scaled,  # noqa: E402
                       udp_many, wait_until)


class UpstreamTest(harness.ProxyTestCase):
    def _many_udp(self, p, prefix, n, timeout=5.0, rdtype="A"):
        """n concurrent UDP queries; returns the list of problems."""
        items = [(f"{prefix}{i}.up.test.", rdtype) for i in range(n)]
        res = udp_many(items, *p.udp_addr, timeout=scaled(timeout))
        return [pr for (name, rdtype), (q, r, _) in zip(items, res)
                if (pr := answer_problem(r, name, rdtype, q.id))]

    def _tcp_pipelined(self, p, prefix, n):
        queries, wires = {}, []
        for i in range(n):
            q = make_query(f"{prefix}{i}.up.test.", "A", qid=3000 + i)
            queries[q.id] = (f"{prefix}{i}.up.test.", "A")
            wires.append(q.to_wire())
        with p.tcp_client() as c:
            c.send(b"".join(frame(w) for w in wires))
            return match_responses(queries, c.read_frames(n, scaled(10)))

    def test_pipelining_over_the_pool(self):
        """100 concurrent queries against a 300 ms upstream finish in well under 100 x 300 ms / pool:
        they are pipelined over at most connection_pool_size connections."""
        self.up.answer_delay_ms = 300
        with self.proxy() as p:
            t0 = time.monotonic()
            problems = self._many_udp(p, "pipe", 100)
            elapsed = time.monotonic() - t0
        self.assertEqual(problems, [])
        self.assertLess(elapsed, scaled(2.0), f"100 queries took {elapsed:.2f} s: not pipelined?")
        self.assertGreater(self.up.max_inflight_seen, 1, f"never more than one query in flight per "
                           f"upstream connection: {self.upstream_snapshot()}")
        self.assertLessEqual(self.up.connections_accepted, 2,
                             f"more connections than connection_pool_size 2: {self.upstream_snapshot()}")

    def test_max_inflight_per_upstream_connection(self):
        """max_inflight 4: never more than 4 queries outstanding on one upstream connection, and no
        query gets a wrong answer (the rest wait or get SERVFAIL)."""
        self.up.answer_delay_ms = 300
        cfg = self.make_config(server={"max_inflight": 4})
        with self.proxy(cfg) as p:
            items = [(f"cap{i}.up.test.", "A") for i in range(40)]
            res = udp_many(items, *p.udp_addr, timeout=scaled(5))
        answered = 0
        for (name, _), (q, r, _) in zip(items, res):
            self.assertIsNotNone(r, f"{name}: no response at all")
            if rcode_of(r) == 2:
                continue
            self.assertAnswer(r, name, "A", q.id)
            answered += 1
        self.assertLessEqual(self.up.max_inflight_seen, 4,
                             f"more than max_inflight queries on one connection: {self.upstream_snapshot()}")
        self.assertGreaterEqual(answered, 8, "fewer than 2 connections x 4 queries were answered")

    def test_split_records(self):
        """Every byte of the upstream's stream in its own TLS record and segment."""
        self.up.split_records = True
        with self.proxy() as p:
            for i in range(5):
                q, r = p.udp(f"split{i}.up.test.")
                self.assertAnswer(r, f"split{i}.up.test.", "A", q.id, "1-byte TLS records")
            q, r = p.tcp("size-1500.split.up.test.", "TXT", timeout=scaled(10))
            self.assertAnswer(r, "size-1500.split.up.test.", "TXT", q.id, "1500-byte answer in 1-byte records")
            self.assertEqual(self._tcp_pipelined(p, "splitpipe", 10), [])

    def test_coalesced_answers(self):
        """Many answers in one TLS record / write."""
        self.up.coalesce = True
        with self.proxy() as p:
            self.assertEqual(self._many_udp(p, "coal", 40), [])
            self.assertEqual(self._tcp_pipelined(p, "coalpipe", 50), [])
        self.assertGreaterEqual(self.up.coalesced_writes, 1)

    def test_out_of_order_answers_udp(self):
        self.up.out_of_order = "shuffle"
        with self.proxy() as p:
            self.assertEqual(self._many_udp(p, "ooo", 60), [])
            self.up.out_of_order = "reverse"
            self.assertEqual(self._many_udp(p, "rev", 60), [])

    def test_upstream_closes_idle_connections(self):
        """The upstream closes connections idle for 1 s (before stale_timeout 8s): 2 s later queries
        are still answered, each within 500 ms. Closed with close_notify+FIN, bare FIN, and RST."""
        self.up.idle_close_s = 1.0
        with self.proxy() as p:
            for mode in ("fin", "eof", "rst"):
                with self.subTest(close_mode=mode):
                    self.up.close_mode = mode
                    q, r = p.udp(f"before-{mode}.idle.up.test.")
                    self.assertAnswer(r, f"before-{mode}.idle.up.test.", "A", q.id)
                    closed_before = self.up.idle_closed
                    t_last = time.monotonic()
                    self.assertTrue(wait_until(lambda: self.up.idle_closed > closed_before, scaled(5)),
                                    f"upstream did not idle-close: {self.upstream_snapshot()}")
                    time.sleep(max(0.0, 2.0 - (time.monotonic() - t_last)))
                    for i in range(6):
                        name = f"after-{mode}{i}.idle.up.test."
                        t0 = time.monotonic()
                        q, r = (p.udp if i % 2 == 0 else p.tcp)(name, timeout=scaled(3))
                        elapsed = time.monotonic() - t0
                        self.assertAnswer(r, name, "A", q.id, f"query {i} after idle close ({mode})")
                        self.assertLess(elapsed, scaled(0.5), f"query {i} after the upstream's idle close "
                                        f"({mode}) took {elapsed:.3f} s")

    def test_stale_timeout_closes_idle_connections(self):
        """stale_timeout 1s: the proxy itself closes idle upstream connections, cleanly (close_notify),
        and later queries are still answered promptly."""
        cfg = self.make_config(server={"stale_timeout": "1s"})
        with self.proxy(cfg) as p:
            q, r = p.udp("before.stale.up.test.")
            self.assertAnswer(r, "before.stale.up.test.", "A", q.id)
            self.assertTrue(wait_until(lambda: self.up.closed_by_peer >= 1, scaled(4)),
                            f"no upstream connection closed by the proxy within 4 s of stale_timeout 1s: "
                            f"{self.upstream_snapshot()}")
            self.assertGreaterEqual(self.up.close_notify_received, 1,
                                    f"stale connection closed without close_notify: {self.upstream_snapshot()}")
            for i in range(4):
                t0 = time.monotonic()
                q, r = p.udp(f"after{i}.stale.up.test.", timeout=scaled(3))
                elapsed = time.monotonic() - t0
                self.assertAnswer(r, f"after{i}.stale.up.test.", "A", q.id, "query after a stale close")
                self.assertLess(elapsed, scaled(0.5), f"query {i} after a stale close took {elapsed:.3f} s")

    def test_upstream_drops_connection_mid_query(self):
        """The upstream reads a query and closes the connection without answering (every 3rd query
        of a connection): the query is re-sent on another connection, promptly (before the 1.5 s
        per-attempt read_timeout)."""
        self.up.close_after_queries = 3
        cfg = self.make_config(server={"connection_pool_size": 1})
        with self.proxy(cfg) as p:
            for mode in ("fin", "eof", "rst"):
                self.up.close_mode = mode
                for i in range(6):
                    name = f"drop-{mode}{i}.up.test."
                    t0 = time.monotonic()
                    q, r = p.udp(name, timeout=scaled(4))
                    elapsed = time.monotonic() - t0
                    self.assertAnswer(r, name, "A", q.id, f"query {i} with close mode {mode}")
                    self.assertLess(elapsed, scaled(1.0), f"query {i} ({mode}) took {elapsed:.3f} s: "
                                    "retried only after a timeout, not on the connection's EOF/reset?")
        self.assertGreaterEqual(self.up.dropped_mid_query, 6, self.upstream_snapshot())

    def test_upstream_drops_connection_with_many_in_flight(self):
        """20 queries at once on one connection, which the upstream closes on reading the 15th (the
        queries after it are lost with the connection): every query is still answered."""
        self.up.close_after_queries = 15
        cfg = self.make_config(server={"connection_pool_size": 1})
        with self.proxy(cfg, ready="listen") as p:
            self.assertEqual(self._many_udp(p, "burst", 20), [])
        self.assertGreaterEqual(self.up.dropped_mid_query, 1, self.upstream_snapshot())

    def test_two_upstreams_round_robin_and_failover(self):
        """Two upstreams with RoundRobin: both get a share of the queries; when one stops listening
        and drops its connections, every query is still answered (retried on the other one)."""
        up2 = self.start_upstream()
        cfg = self.make_config(servers=[self.server_entry(self.up), self.server_entry(up2)])
        with self.proxy(cfg) as p:
            for i in range(40):
                q, r = p.udp(f"rr{i}.two.up.test.")
                self.assertAnswer(r, f"rr{i}.two.up.test.", "A", q.id)
            shares = (self.up.queries_received, up2.queries_received)
            self.assertTrue(min(shares) >= 8, f"RoundRobin over 2 servers gave them {shares} of 40 queries")
            self.up.set_refuse(True)
            self.up.drop_connections("rst")
            for i in range(20):
                t0 = time.monotonic()
                q, r = p.udp(f"failover{i}.two.up.test.", timeout=scaled(4))
                elapsed = time.monotonic() - t0
                self.assertAnswer(r, f"failover{i}.two.up.test.", "A", q.id,
                                  f"query {i} with one of two upstreams down")
                self.assertLess(elapsed, scaled(2.0), f"query {i} with one upstream down took {elapsed:.2f} s")

    def test_refused_upstream_then_back(self):
        """Upstream stops listening and drops its connections: SERVFAIL within query_timeout, never
        silence. When it listens again, queries are answered again."""
        cfg = self.make_config(upstream={"query_timeout": "2s"})
        with self.proxy(cfg) as p:
            q, r = p.udp("up.refuse.test.")
            self.assertAnswer(r, "up.refuse.test.", "A", q.id)
            self.up.set_refuse(True)
            self.up.drop_connections("fin")
            for i in range(3):
                t0 = time.monotonic()
                q, r = p.udp(f"down{i}.refuse.test.", timeout=scaled(4))
                elapsed = time.monotonic() - t0
                self.assertServfail(r, q.id, f"query {i} with the upstream refusing connections")
                self.assertLess(elapsed, scaled(3.0), f"SERVFAIL took {elapsed:.2f} s (query_timeout 2s)")
            self.up.set_refuse(False)

            def answered():
                q, r = p.udp("again.refuse.test.", timeout=0.5)
                return r is not None and answer_problem(r, "again.refuse.test.", "A", q.id) is None
            self.assertTrue(wait_until(answered, scaled(15), 0.25),
                            "no correct answer within 15 s after the upstream listened again")

    def test_black_hole_upstream(self):
        """The upstream accepts TCP but never completes TLS: SERVFAIL by query_timeout, no query ever
        reaches it; when it behaves again the proxy recovers."""
        self.up.black_hole = True
        cfg = self.make_config(upstream={"query_timeout": "2s"})
        with self.proxy(cfg, ready="listen") as p:
            for i in range(2):
                t0 = time.monotonic()
                q, r = p.udp(f"hole{i}.up.test.", timeout=scaled(4))
                elapsed = time.monotonic() - t0
                self.assertServfail(r, q.id, "black-holed upstream")
                self.assertLess(elapsed, scaled(3.0), f"SERVFAIL took {elapsed:.2f} s (query_timeout 2s)")
            self.assertGreaterEqual(self.up.black_holed, 1, self.upstream_snapshot())
            self.assertEqual(self.up.queries_received, 0)
            self.up.black_hole = False
            self.up.drop_connections("eof")

            def answered():
                q, r = p.udp("recovered.hole.test.", timeout=0.5)
                return r is not None and answer_problem(r, "recovered.hole.test.", "A", q.id) is None
            self.assertTrue(wait_until(answered, scaled(15), 0.25),
                            "no correct answer within 15 s after the upstream completed TLS again")


if __name__ == "__main__":
    unittest.main()
