"""Load balancing over two and three fake upstreams (issue #4): every policy with every server
healthy (spread, weights), then with the first server not listening, then black-holed (TCP accepted,
TLS never completed), then back. Every query must be answered, a dead server must not slow the
queries down once it is known to be down, and a recovered server must get traffic again within its
backoff. When every server is down the proxy answers SERVFAIL at once and recovers by itself.

Short timeouts keep it fast: backoff 100 ms doubling to 1 s, connect and handshake 300 ms, one
worker (so per-upstream query counts measure the policy exactly). Loopback only; the fake upstreams
run in this process."""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import answer_problem, rcode_of, scaled, udp_many  # noqa: E402

POLICIES = ("RoundRobin", "Random", "HistoricalConnections", "Availability", "Failover",
            "LeastOutstanding")
BACKOFF_INITIAL = "100ms"
BACKOFF_MAX_S = 1.0
HANDSHAKE_S = 0.3
# A recovered server must be back in use within one capped backoff period, plus one handshake
# timeout (a probe may be stuck on a black-holed connection when the server comes back), plus slack.
RECOVERY_BOUND_S = BACKOFF_MAX_S + HANDSHAKE_S + 1.2
# How long a server may stay unnoticed after it dies: the first failure (a refused connect, or one
# handshake timeout) marks it down.
OUTAGE_GRACE_S = 1.0
FAST_P99_S = 0.100       # p99 of queries once the dead server is known to be down
FAST_SERVFAIL_S = 0.300  # SERVFAIL when every server is down (query_timeout is 3 s)


def percentile(values, pct):
    """Nearest-rank percentile of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, -(-len(v) * pct // 100) - 1))
    return v[int(k)]


class Result:
    __slots__ = ("name", "sent", "latency", "problem", "rcode")

    def __init__(self, name, sent, latency, problem, rcode):
        self.name, self.sent, self.latency, self.problem, self.rcode = name, sent, latency, problem, rcode


class BalancingTest(harness.ProxyTestCase):
    # setup --------------------------------------------------------------------------------------------
    def upstreams(self, n):
        return [self.up] + [self.start_upstream() for _ in range(n - 1)]

    def lb_config(self, policy, ups, weights=None):
        servers = []
        for i, up in enumerate(ups):
            over = {"connect_timeout": "300ms", "handshake_timeout": "300ms", "read_timeout": "1s"}
            if weights:
                over["weight"] = weights[i]
            servers.append(self.server_entry(up, **over))
        return self.make_config(servers=servers, workers=1, upstream={
            "load_balancing_policy": policy, "backoff_initial": BACKOFF_INITIAL,
            "backoff_max": f"{int(BACKOFF_MAX_S * 1000)}ms", "query_timeout": "3s",
            "max_connection_retries": 2})

    @staticmethod
    def counts(ups):
        return [u.queries_received for u in ups]

    @staticmethod
    def delta(before, after):
        return [a - b for a, b in zip(after, before)]

    # traffic ------------------------------------------------------------------------------------------
    def sequential(self, p, tag, n):
        """n queries one after the other; returns the problems."""
        problems = []
        for i in range(n):
            name = f"q{i}.{tag}.lb.test."
            q, r = p.udp(name, timeout=scaled(4))
            if (pr := answer_problem(r, name, "A", q.id)):
                problems.append(pr)
        return problems

    def bursts(self, p, tag, *, duration, burst=4, gap=0.005, until=None, max_queries=5000, origin=None):
        """Bursts of `burst` concurrent UDP queries, `gap` s apart, for `duration` s (or until
        until() is true after a burst). Returns [Result] (sent = seconds since `origin`, a
        time.monotonic() value, by default the call)."""
        out = []
        t0 = time.monotonic()
        origin = t0 if origin is None else origin
        n = 0
        while time.monotonic() - t0 < duration and n < max_queries:
            items = [(f"q{n + i}.{tag}.lb.test.", "A") for i in range(burst)]
            n += burst
            sent = time.monotonic() - origin
            for (name, _), (q, r, secs) in zip(items, udp_many(items, *p.udp_addr, timeout=scaled(4))):
                out.append(Result(name, sent, secs, answer_problem(r, name, "A", q.id),
                                  None if r is None else rcode_of(r)))
            if until is not None and until():
                break
            time.sleep(gap)
        return out

    def assertAllAnswered(self, results, what):
        bad = [r.problem for r in results if r.problem]
        self.assertFalse(bad, f"{what}: {len(bad)} of {len(results)} queries not answered right, "
                         f"e.g. {bad[:5]}")

    def assertFast(self, results, what, after=0.0):
        lat = [r.latency for r in results if r.sent >= after and r.latency is not None]
        self.assertTrue(lat, f"{what}: no answered queries after {after:.1f} s")
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        self.assertLess(p99, scaled(FAST_P99_S), f"{what}: p99 {p99 * 1000:.1f} ms (p50 {p50 * 1000:.1f} "
                        f"ms, max {max(lat) * 1000:.1f} ms) over {len(lat)} queries sent after {after:.1f} s")

    def assertShare(self, got, total, low, high, what):
        share = got / total if total else 0.0
        self.assertTrue(low <= share <= high,
                        f"{what}: {got} of {total} queries ({share:.1%}), expected {low:.0%}..{high:.0%}")

    # all servers healthy ----------------------------------------------------------------------------
    def check_healthy_spread(self, policy):
        """400 queries in turn over two healthy servers, then 300 over three. RoundRobin, Random,
        HistoricalConnections and Availability give each server its share (30..70% of 400 with two,
        15..52% of 300 with three); Failover sends everything to the first; LeastOutstanding measures
        every server, and under 20 concurrent queries spreads over all of them."""
        for n, count, (low, high) in ((2, 400, (0.30, 0.70)), (3, 300, (0.15, 0.52))):
            with self.subTest(servers=n):
                ups = self.upstreams(2) if n == 2 else [self.start_upstream() for _ in range(3)]
                with self.proxy(self.lb_config(policy, ups)) as p:
                    before = self.counts(ups)  # the harness's ready probe went to one of them
                    self.assertEqual(self.sequential(p, f"h{n}", count), [])
                    d = self.delta(before, self.counts(ups))
                    self.assertEqual(sum(d), count, f"{policy}: upstream query counts {d} != {count}")
                    if policy == "Failover":
                        self.assertEqual(d[0], count, f"Failover sent {d} (all should go to the first)")
                    elif policy == "LeastOutstanding":
                        total = self.counts(ups)
                        self.assertTrue(all(x >= 1 for x in total),
                                        f"LeastOutstanding never measured a server: {total} since start-up")
                        before = self.counts(ups)
                        res = []
                        for b in range(10):
                            # Spread over ~1.5 s: a latency older than 1 s is measured afresh,
                            # so one slow sample from the sequential phase cannot exclude a
                            # server from every batch (the policy's documented re-measuring).
                            time.sleep(0.15)
                            items = [(f"c{b}-{i}.h{n}.lb.test.", "A") for i in range(20)]
                            for (name, _), (q, r, _) in zip(items, udp_many(items, *p.udp_addr,
                                                                              timeout=scaled(4))):
                                res.append(answer_problem(r, name, "A", q.id))
                        self.assertEqual([x for x in res if x], [])
                        d = self.delta(before, self.counts(ups))
                        for i, x in enumerate(d):
                            self.assertShare(x, sum(d), 0.05, 1.0,
                                             f"LeastOutstanding, 20 concurrent, server {i} of {d}")
                    else:
                        for i, x in enumerate(d):
                            self.assertShare(x, count, low, high, f"{policy}, server {i} of {d}")

    def test_round_robin_healthy(self):
        self.check_healthy_spread("RoundRobin")

    def test_random_healthy(self):
        self.check_healthy_spread("Random")

    def test_historical_connections_healthy(self):
        self.check_healthy_spread("HistoricalConnections")

    def test_availability_healthy(self):
        self.check_healthy_spread("Availability")

    def test_failover_healthy(self):
        self.check_healthy_spread("Failover")

    def test_least_outstanding_healthy(self):
        self.check_healthy_spread("LeastOutstanding")

    def test_weights_3_to_1(self):
        """weight 3 and 1: RoundRobin gives the first 75% +-8% of 400 queries in turn; Random and
        Availability 75% +-10% (binomial, > 4 sd)."""
        for policy, tol in (("RoundRobin", 0.08), ("Random", 0.10), ("Availability", 0.10)):
            with self.subTest(policy=policy):
                ups = [self.start_upstream() for _ in range(2)]
                with self.proxy(self.lb_config(policy, ups, weights=[3, 1])) as p:
                    before = self.counts(ups)
                    self.assertEqual(self.sequential(p, "w", 400), [])
                    d = self.delta(before, self.counts(ups))
                    self.assertShare(d[0], sum(d), 0.75 - tol, 0.75 + tol, f"{policy} 3:1, {d}")

    # first server down, black-holed, back ---------------------------------------------------------
    def check_outage_and_recovery(self, policy, n, dead_from_start):
        """n servers. The first stops listening (from start-up, or after some traffic, dropping its
        connections), then accepts TCP but never completes TLS, then behaves again. Queries run
        throughout in bursts of 4: every one is answered; from OUTAGE_GRACE_S into the outage p99 <
        100 ms (no query pays a connect or handshake timeout); the proxy keeps probing the
        black-holed server; once back, the first server gets queries within RECOVERY_BOUND_S.
        Failover then sends everything to it again; the policies that share give it a fair share
        (HistoricalConnections does not make it catch up on the queries it missed)."""
        ups = self.upstreams(n)
        first = ups[0]
        if dead_from_start:
            first.set_refuse(True)
        with self.proxy(self.lb_config(policy, ups)) as p:
            if not dead_from_start:
                warm = self.bursts(p, "warm", duration=0.3)
                self.assertAllAnswered(warm, f"{policy}: all {n} servers healthy")
                first.set_refuse(True)
                first.drop_connections("rst")
            # Phase A: the first server refuses connections.
            outage = time.monotonic()
            refused = self.bursts(p, "refused", duration=1.3)
            self.assertAllAnswered(refused, f"{policy}: first of {n} servers not listening")
            received_while_refused = first.queries_received
            # Phase B: it listens again but black-holes every connection.
            first.black_hole = True
            first.set_refuse(False)
            hole = self.bursts(p, "hole", duration=1.3, origin=outage)
            self.assertAllAnswered(hole, f"{policy}: first of {n} servers black-holed")
            self.assertEqual(first.queries_received, received_while_refused,
                             "a black-holed server received a query")
            self.assertFast(refused + hole, f"{policy}: first of {n} servers dead", after=OUTAGE_GRACE_S)
            self.assertGreaterEqual(first.black_holed, 1,
                                    f"{policy}: the proxy never probed the black-holed server in 1.3 s "
                                    f"(backoff_max 1s): {self.upstream_snapshot(first)}")
            # Phase C: it behaves again.
            first.black_hole = False
            first.drop_connections("eof")
            base = first.queries_received
            t0 = time.monotonic()
            back = self.bursts(p, "back", duration=scaled(RECOVERY_BOUND_S) + 0.5,
                               until=lambda: first.queries_received > base)
            took = time.monotonic() - t0
            self.assertAllAnswered(back, f"{policy}: first of {n} servers recovering")
            self.assertGreater(first.queries_received, base,
                               f"{policy}: the recovered first server got no query in {took:.2f} s "
                               f"({len(back)} queries); snapshot {self.upstream_snapshot(first)}")
            self.assertLess(took, scaled(RECOVERY_BOUND_S),
                            f"{policy}: the recovered first server got traffic only after {took:.2f} s")
            # After recovery.
            before = self.counts(ups)
            if policy == "LeastOutstanding":
                after_res = self.bursts(p, "after", duration=0.4)
                self.assertAllAnswered(after_res, f"{policy}: after recovery")
            else:
                self.assertEqual(self.sequential(p, "after", 100 * n), [], f"{policy}: after recovery")
            d = self.delta(before, self.counts(ups))
            if policy == "Failover":
                self.assertEqual(d[1:], [0] * (n - 1), f"Failover did not move back to the first server: {d}")
            elif policy != "LeastOutstanding":
                self.assertShare(d[0], sum(d), 0.5 / n, 1.5 / n,
                                 f"{policy}: the recovered first server's share after recovery, {d}")

    def test_round_robin_two_servers_first_down_then_back(self):
        self.check_outage_and_recovery("RoundRobin", 2, dead_from_start=False)

    def test_random_two_servers_first_down_then_back(self):
        self.check_outage_and_recovery("Random", 2, dead_from_start=False)

    def test_historical_connections_two_servers_first_down_then_back(self):
        self.check_outage_and_recovery("HistoricalConnections", 2, dead_from_start=False)

    def test_availability_two_servers_first_down_then_back(self):
        self.check_outage_and_recovery("Availability", 2, dead_from_start=False)

    def test_failover_two_servers_first_down_then_back(self):
        self.check_outage_and_recovery("Failover", 2, dead_from_start=False)

    def test_least_outstanding_two_servers_first_down_then_back(self):
        self.check_outage_and_recovery("LeastOutstanding", 2, dead_from_start=False)

    def test_round_robin_three_servers_first_dead_at_start(self):
        self.check_outage_and_recovery("RoundRobin", 3, dead_from_start=True)

    def test_random_three_servers_first_dead_at_start(self):
        self.check_outage_and_recovery("Random", 3, dead_from_start=True)

    def test_historical_connections_three_servers_first_dead_at_start(self):
        self.check_outage_and_recovery("HistoricalConnections", 3, dead_from_start=True)

    def test_availability_three_servers_first_dead_at_start(self):
        self.check_outage_and_recovery("Availability", 3, dead_from_start=True)

    def test_failover_three_servers_first_dead_at_start(self):
        self.check_outage_and_recovery("Failover", 3, dead_from_start=True)

    def test_least_outstanding_three_servers_first_dead_at_start(self):
        self.check_outage_and_recovery("LeastOutstanding", 3, dead_from_start=True)

    def test_least_outstanding_slow_then_dead_then_back(self):
        """LeastOutstanding, two servers. The first answers 100 ms late for 0.3 s of traffic, then
        stops listening for 1 s, then comes back as fast as the second. Under bursts of 4 queries it
        must get queries again within RECOVERY_BOUND_S: the latency it had before it died must not
        keep it out for good (it never gets a query, so it never gets a new measurement)."""
        ups = self.upstreams(2)
        first = ups[0]
        with self.proxy(self.lb_config("LeastOutstanding", ups)) as p:
            first.answer_delay_ms = 100
            self.assertAllAnswered(self.bursts(p, "slow", duration=0.3), "first server slow")
            self.assertGreater(first.queries_received, 0, "the slow first server got no query at all")
            first.set_refuse(True)
            first.drop_connections("rst")
            first.answer_delay_ms = 0
            self.assertAllAnswered(self.bursts(p, "dead", duration=1.0), "first server not listening")
            first.set_refuse(False)
            base = first.queries_received
            t0 = time.monotonic()
            back = self.bursts(p, "back", duration=scaled(RECOVERY_BOUND_S) + 1.0,
                               until=lambda: first.queries_received > base)
            took = time.monotonic() - t0
            self.assertAllAnswered(back, "first server back")
            self.assertGreater(first.queries_received, base,
                               f"the recovered first server (as fast as the second now) got none of "
                               f"{len(back)} queries in {took:.2f} s: {self.counts(ups)}")
            self.assertLess(took, scaled(RECOVERY_BOUND_S),
                            f"the recovered first server got traffic only after {took:.2f} s")

    # every server down ------------------------------------------------------------------------------
    def check_servfail_fast(self, results, what):
        bad = []
        for r in results:
            if r.rcode != 2:
                bad.append(f"{r.name}: {'no response' if r.rcode is None else f'rcode {r.rcode}'}")
            elif r.latency >= scaled(FAST_SERVFAIL_S):
                bad.append(f"{r.name}: SERVFAIL after {r.latency * 1000:.0f} ms")
        self.assertFalse(bad, f"{what}: {len(bad)} of {len(results)} queries not a fast SERVFAIL "
                         f"(< {FAST_SERVFAIL_S * 1000:.0f} ms), e.g. {bad[:5]}")

    def test_every_server_down_servfail_fast_then_recovers(self):
        """Every policy, two servers. Both stop listening: every query gets SERVFAIL in < 300 ms
        (query_timeout 3s). Then both black-hole: after one handshake timeout, SERVFAIL in < 300 ms
        again. Then the second behaves: answers come back by themselves within RECOVERY_BOUND_S,
        without a restart."""
        for policy in POLICIES:
            with self.subTest(policy=policy):
                ups = [self.start_upstream() for _ in range(2)]
                with self.proxy(self.lb_config(policy, ups)) as p:
                    self.assertAllAnswered(self.bursts(p, "warm", duration=0.1), f"{policy}: healthy")
                    for u in ups:
                        u.set_refuse(True)
                        u.drop_connections("rst")
                    # The proxy learns of the resets asynchronously: give it a moment.
                    time.sleep(0.1)
                    self.check_servfail_fast(self.bursts(p, "down", duration=0.5, gap=0.02),
                                             f"{policy}: both servers not listening")
                    for u in ups:
                        u.black_hole = True
                        u.set_refuse(False)
                    time.sleep(HANDSHAKE_S + 0.1)
                    self.check_servfail_fast(self.bursts(p, "holes", duration=0.5, gap=0.02),
                                             f"{policy}: both servers black-holed")
                    ups[1].black_hole = False
                    ups[1].drop_connections("eof")
                    t0 = time.monotonic()
                    res = []
                    first_ok = None
                    while time.monotonic() - t0 < scaled(RECOVERY_BOUND_S) + 1 and len(res) < 2000:
                        res += self.bursts(p, f"back{len(res)}", burst=1, duration=0.001, origin=t0)
                        if first_ok is None and res[-1].problem is None:
                            first_ok = len(res) - 1
                        if first_ok is not None and len(res) - first_ok > 20:
                            break
                        time.sleep(0.02)
                    self.assertIsNotNone(first_ok, f"{policy}: no answer within {time.monotonic() - t0:.2f} "
                                         f"s after a server came back; last: {res[-1].problem}")
                    self.assertLess(res[first_ok].sent, scaled(RECOVERY_BOUND_S),
                                    f"{policy}: first answer {res[first_ok].sent:.2f} s after a server "
                                    f"came back")
                    for r in res[:first_ok]:
                        self.assertEqual(r.rcode, 2, f"{policy}: {r.name} while recovering: {r.problem}")
                    self.assertAllAnswered(res[first_ok:], f"{policy}: after the first answer")

if __name__ == "__main__":
    unittest.main()
