#!/usr/bin/env python3
"""Issue 15 interop: Debian's unbound as the DoT upstream (tests/testing/unbound_upstream.py) with
its default incoming-num-tcp (10) and dotproxy with 12 workers (more shards than unbound takes
connections). Every query is answered, the proxy makes no reconnect storm, and dnsperf's
throughput is within 20 % of the same run with the cap raised to 100. Skipped when unbound is not
installed (Debian: apt-get install unbound; deploy/install-deps.sh installs it); the throughput
comparison also needs dnsperf.

Depends on the hand-off between shards (branch handoff): with more shards than the cap, a shard
whose connection unbound does not take must hand its queries to one that has a connection."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import free_port, parse, scaled, udp_many  # noqa: E402
from test_capped_upstream import metric, scrape  # noqa: E402
from unbound_upstream import NAMES, UnboundUpstream, expected_address, unbound_binary  # noqa: E402

import dns.rcode  # noqa: E402

WORKERS = 12


def dnsperf(addr, names_file: str, seconds: int) -> dict:
    """dnsperf -c 32 -q 100 against the proxy; returns qps, completed, lost and the rcode counts."""
    r = subprocess.run(["dnsperf", "-s", addr[0], "-p", str(addr[1]), "-d", names_file, "-c", "32",
                        "-q", "100", "-l", str(seconds), "-t", "3"],
                       capture_output=True, text=True, timeout=seconds + 30)
    out = r.stdout
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    completed = re.search(r"Queries completed:\s+(\d+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    codes = re.search(r"Response codes:\s+(.*)", out)
    rcodes = dict((k, int(v)) for k, v in re.findall(r"([A-Z]+) (\d+) \(", codes.group(1) if codes else ""))
    if not (qps and completed and lost):
        raise AssertionError(f"dnsperf output not understood (rc {r.returncode}):\n{out}\n{r.stderr}")
    return {"qps": float(qps.group(1)), "completed": int(completed.group(1)),
            "lost": int(lost.group(1)), "rcodes": rcodes}


@unittest.skipIf(unbound_binary() is None, "unbound is not installed (apt-get install unbound)")
class UnboundInteropTest(harness.ProxyTestCase):
    def run_against(self, cap: int, seconds: int, workers: int = WORKERS, pool=None) -> dict:
        """One proxy (`workers`, connection_pool_size `pool` or the default) in front of unbound
        with incoming-num-tcp `cap`: every query of a python burst answered correctly, then dnsperf
        for `seconds` (if present). Returns the figures and the proxy's connection counts."""
        ub = UnboundUpstream(self.certs.dir, incoming_num_tcp=cap)
        ub.start()
        self.addCleanup(ub.cleanup)
        prom = free_port()
        server = self.server_entry(ub.addr, connection_pool_size=pool, connect_timeout=None,
                                   handshake_timeout=None, read_timeout=None, stale_timeout=None,
                                   max_inflight=None)
        # query_timeout stretches with the test's clock (tests/vm: TCG, 10x): a query that waits
        # for a stalled handshake there can take longer than 5 s, and its SERVFAIL is no defect.
        cfg = self.make_config(workers=workers, servers=[server],
                               upstream={"query_timeout": f"{int(scaled(5))}s"})
        cfg["metrics"] = {"flush_interval": "200ms", "prometheus": {"addr": f"127.0.0.1:{prom}"}}
        names_file = os.path.join(self.tmp, "names.txt")
        with open(names_file, "w") as f:
            f.writelines(f"{n} A\n" for n in NAMES)
        result = {"cap": cap}
        with self.proxy(cfg) as p:
            problems = []
            for r in range(5):
                items = [(NAMES[(r * 40 + i) % len(NAMES)], "A") for i in range(200)]
                for (name, _), (q, resp, _) in zip(items, udp_many(items, *p.udp_addr,
                                                                   timeout=scaled(8))):
                    got = None if resp is None else [rr.to_text() for rrset in parse(resp).answer
                                                     for rr in rrset]
                    if got != [expected_address(name)]:
                        rcode = None if resp is None else dns.rcode.to_text(parse(resp).rcode())
                        problems.append(f"{name}: {rcode} {got}")
            result["problems"] = problems
            if shutil.which("dnsperf"):
                # Two runs, the better one counts: the CI machine is shared and noisy. Lost
                # queries and rcodes add up over both.
                runs = [dnsperf(p.udp_addr, names_file, seconds) for _ in range(2)]
                result.update(max(runs, key=lambda r: r["qps"]))
                result["lost"] = sum(r["lost"] for r in runs)
                result["rcodes"] = {k: sum(r["rcodes"].get(k, 0) for r in runs)
                                    for k in set().union(*(r["rcodes"] for r in runs))}
            text = scrape(prom)
            result["handshakes"] = metric(text, "dotproxy_upstream_handshakes_total")
            result["connect_errors"] = metric(text, "dotproxy_upstream_connect_errors_total")
            result["capped"] = metric(text, "dotproxy_upstream_capped_closes_total")
            result["down"] = metric(text, "dotproxy_upstream_down_transitions_total")
            result["target"] = metric(text, "dotproxy_upstream_target_connections")
            result["established"] = ub.established()
        return result

    def check(self, capped: dict, raised: dict, max_made: int):
        summary = f"cap {capped['cap']}: {capped}\ncap {raised['cap']}: {raised}"
        print(summary, file=sys.stderr)
        for run in (capped, raised):
            self.assertEqual(run["problems"], [], summary)
            self.assertEqual(run["down"], 0, f"server marked down: {summary}")
            # No reconnect storm: a bounded number of connections over the whole run.
            self.assertLessEqual(run["handshakes"] + run["connect_errors"], max_made,
                                 f"reconnect storm: {summary}")
            if "qps" in run:
                self.assertEqual(run["lost"], 0, summary)
                self.assertEqual(set(run["rcodes"]), {"NOERROR"}, summary)
        if "qps" not in capped:
            self.skipTest("dnsperf not installed: throughput not compared")
        if float(os.environ.get("DOTPROXY_TEST_TIME_SCALE", "1")) > 1:
            # Sanitizer and VM builds: everything above is checked, but their throughput is the
            # sanitizer's, not the proxy's; the ratio is asserted in the plain build only.
            print("throughput ratio not asserted under DOTPROXY_TEST_TIME_SCALE > 1",
                  file=sys.stderr)
            return
        self.assertGreaterEqual(capped["qps"], 0.8 * raised["qps"], summary)

    def compare_caps(self, max_made: int, **kwargs) -> dict:
        """Cap 10 against cap 100 with the same settings; check() both. Noise on a shared machine
        only ever lowers a throughput, so when the ratio misses, one more round of both is run
        and each side keeps its better figure (the other checks hold for every run)."""
        capped = self.run_against(10, seconds=2, **kwargs)
        raised = self.run_against(100, seconds=2, **kwargs)
        if "qps" in capped and capped["qps"] < 0.8 * raised["qps"]:
            print(f"ratio missed ({capped['qps']:.0f} vs {raised['qps']:.0f} QPS): one more round",
                  file=sys.stderr)
            for cap, first in ((10, capped), (100, raised)):
                again = self.run_against(cap, seconds=2, **kwargs)
                for run in (first, again):
                    self.assertEqual(run["problems"], [], f"{run}")
                    self.assertEqual(run["lost"], 0, f"{run}")
                    self.assertEqual(set(run["rcodes"]), {"NOERROR"}, f"{run}")
                first["qps"] = max(first["qps"], again["qps"])
        self.check(capped, raised, max_made=max_made)
        return capped

    def test_pool_above_cap(self):
        """2 workers, connection_pool_size 16 (8 a shard), unbound's default cap 10: the shards
        shrink to what unbound keeps open; no query lost, no storm, the server never down, and
        dnsperf within 20 % of the same run with the cap raised to 100."""
        capped = self.compare_caps(16 + 24, workers=2, pool=16)
        self.assertLessEqual(capped["target"], 12, f"the target did not come down: {capped}")

    def test_default_cap_with_more_workers_than_cap(self):
        """12 workers, the default pool, unbound's default cap 10 (issue 15's table): every query
        answered, at most 2 x workers + 10 connections made, dnsperf within 20 % of cap 100."""
        self.compare_caps(2 * WORKERS + 10)

    def test_one_or_two_connections_per_shard_above_cap(self):
        """12 workers, connection_pool_size 16 (one or two connections a shard), unbound's default
        cap 10: the connections unbound leaves in its accept queue stall with no other connection
        in their shard, which counts as a cap from the other shards' ready ones. No SERVFAIL, every
        query answered, the server never down, at most 16 + 12 connections made, and the stalled
        shards' targets lowered (their queries handed over)."""
        capped = self.run_against(10, seconds=2, pool=16)
        summary = f"{capped}"
        print(summary, file=sys.stderr)
        self.assertEqual(capped["problems"], [], summary)
        self.assertEqual(capped["down"], 0, f"server marked down: {summary}")
        self.assertLessEqual(capped["handshakes"] + capped["connect_errors"], 16 + WORKERS,
                             f"reconnect storm: {summary}")
        self.assertLessEqual(capped["target"], 15, f"the target did not come down: {summary}")
        if "qps" in capped:
            self.assertEqual(capped["lost"], 0, summary)
            self.assertEqual(set(capped["rcodes"]), {"NOERROR"}, summary)


if __name__ == "__main__":
    unittest.main()
