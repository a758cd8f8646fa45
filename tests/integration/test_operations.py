"""Operations with the real binary: SIGTERM/SIGINT drain within server.shutdown_grace, a second
signal exits at once, SIGHUP reload (same file, bad file, an added server, a moved listener)."""

import concurrent.futures
import os
import signal
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
import dnsclient  # noqa: E402
from dnsclient import scaled, to_yaml, udp_query  # noqa: E402


def ask_all(names, addr, timeout):
    """Sends every name over UDP at once; returns [(name, query, response or None)]."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = [pool.submit(udp_query, n, *addr, timeout=timeout) for n in names]
        return [(n, *f.result()) for n, f in zip(names, futures)]


class DrainTest(harness.ProxyTestCase):
    def test_sigterm_answers_queries_in_flight_then_exits_0(self):
        cfg = self.make_config(workers=2)
        cfg["server"]["shutdown_grace"] = "3s"
        p = self.proxy(cfg).start()
        try:
            names = [f"slow-600.drain{i}.test." for i in range(20)]
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as bg:
                pending = bg.submit(ask_all, names, p.udp_addr, scaled(5))
                time.sleep(scaled(0.2))  # every query is at the upstream now
                t0 = time.monotonic()
                p.send_signal(signal.SIGTERM)
                results = pending.result()
            p.proc.wait(scaled(5))
            elapsed = time.monotonic() - t0
        finally:
            p.stop(check=False)
        for name, q, resp in results:
            self.assertAnswer(resp, name, qid=q.id, msg="query in flight at SIGTERM")
        self.assertEqual(p.proc.returncode, 0, p.log_tail())
        self.assertLess(elapsed, scaled(3.0), "the drain should end once the answers are out")

    def test_grace_deadline_gives_servfail_and_exit_0(self):
        cfg = self.make_config()
        cfg["server"]["shutdown_grace"] = "300ms"
        p = self.proxy(cfg).start()
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as bg:
                pending = bg.submit(ask_all, ["slow-2500.late.test."], p.udp_addr, scaled(4))
                time.sleep(scaled(0.2))
                t0 = time.monotonic()
                p.send_signal(signal.SIGTERM)
                [(_, q, resp)] = pending.result()
            p.proc.wait(scaled(5))
            elapsed = time.monotonic() - t0
        finally:
            p.stop(check=False)
        self.assertServfail(resp, q.id, "query still unanswered at the grace deadline")
        self.assertEqual(p.proc.returncode, 0, p.log_tail())
        self.assertLess(elapsed, scaled(1.5), f"exit took {elapsed:.2f} s with a 300 ms grace")

    def test_second_signal_exits_at_once(self):
        cfg = self.make_config()
        cfg["server"]["shutdown_grace"] = "10s"
        p = self.proxy(cfg).start()
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as bg:
                bg.submit(ask_all, ["slow-8000.stuck.test."], p.udp_addr, scaled(1))
                time.sleep(scaled(0.2))
                p.send_signal(signal.SIGTERM)
                time.sleep(scaled(0.2))
                t0 = time.monotonic()
                p.send_signal(signal.SIGTERM)
                p.proc.wait(scaled(3))
                elapsed = time.monotonic() - t0
        finally:
            p.stop(check=False)
        self.assertLess(elapsed, scaled(1.0), "a second SIGTERM must not wait for the grace")
        self.assertNotEqual(p.proc.returncode, 0, "queries were abandoned: not a clean exit")
        self.assertIn("second signal", p.log())


class ReloadTest(harness.ProxyTestCase):
    def _rewrite(self, p, cfg):
        with open(p.config_path, "w") as f:
            f.write(to_yaml(cfg))

    def _trickle(self, p, prefix, count, gap):
        """Queries one by one (count, gap apart); returns the problems (empty when all answered)."""
        problems = []
        for i in range(count):
            name = f"{prefix}{i}.reload.test."
            q, resp = udp_query(name, *p.udp_addr, timeout=scaled(2))
            problem = dnsclient.answer_problem(resp, name, "A", q.id)
            if problem:
                problems.append(f"{name}: {problem}")
            time.sleep(gap)
        return problems

    def _wait_for_log(self, p, text, seconds=3.0):
        deadline = time.monotonic() + scaled(seconds)
        while time.monotonic() < deadline:
            if text in p.log():
                return True
            time.sleep(0.05)
        return False

    def test_same_file_keeps_connections_and_loses_nothing(self):
        p = self.proxy(self.make_config(workers=2)).start()
        try:
            self.assertEqual(self._trickle(p, "warm", 10, 0.01), [])
            before = self.up.snapshot()
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as bg:
                trickle = bg.submit(self._trickle, p, "during", 150, 0.005)
                time.sleep(scaled(0.2))
                p.send_signal(signal.SIGHUP)
                problems = trickle.result()
            self.assertTrue(self._wait_for_log(p, "reload: servers: 1 kept"), p.log_tail())
            after = self.up.snapshot()
        finally:
            p.stop()
        self.assertEqual(problems, [], "queries lost or wrong across the reload")
        self.assertEqual(after["handshakes_completed"], before["handshakes_completed"],
                         "an unchanged server must keep its connections (no new handshakes)")

    def test_bad_file_keeps_serving_and_logs_the_error(self):
        p = self.proxy().start()
        try:
            with open(p.config_path, "a") as f:
                f.write("listener:\n  bogus: 1\n")
            p.send_signal(signal.SIGHUP)
            self.assertTrue(self._wait_for_log(p, "reload failed"), p.log_tail())
            self.assertEqual(self._trickle(p, "after-bad", 5, 0.01), [])
        finally:
            p.stop()
        line = [x for x in p.log().splitlines() if "reload failed" in x][0]
        self.assertIn(os.path.basename(p.config_path) + ":", line, "the error names the file")

    def test_added_server_gets_traffic(self):
        cfg = self.make_config()
        p = self.proxy(cfg).start()
        second = self.start_upstream()
        try:
            self.assertEqual(self._trickle(p, "one", 5, 0.01), [])
            cfg["upstream"]["servers"].append(self.server_entry(second))
            self._rewrite(p, cfg)
            p.send_signal(signal.SIGHUP)
            self.assertTrue(self._wait_for_log(p, "added " + second.addr), p.log_tail())
            time.sleep(scaled(0.3))  # the new server's handshake
            self.assertEqual(self._trickle(p, "two", 40, 0.005), [])
        finally:
            p.stop()
        self.assertGreater(second.snapshot()["queries_received"], 0,
                           "RoundRobin over two servers: the added one must answer some queries")

    def test_removed_server_gets_no_more_traffic(self):
        second = self.start_upstream()
        cfg = self.make_config(servers=[self.server_entry(), self.server_entry(second)])
        p = self.proxy(cfg).start()
        try:
            self.assertEqual(self._trickle(p, "both", 10, 0.01), [])
            cfg["upstream"]["servers"].pop()
            self._rewrite(p, cfg)
            p.send_signal(signal.SIGHUP)
            self.assertTrue(self._wait_for_log(p, "removed " + second.addr), p.log_tail())
            time.sleep(scaled(0.2))
            before = second.snapshot()["queries_received"]
            self.assertEqual(self._trickle(p, "first-only", 20, 0.005), [])
        finally:
            p.stop()
        self.assertEqual(second.snapshot()["queries_received"], before)
        self.assertGreater(second.snapshot()["close_notify_received"], 0,
                           "the removed server's connections close with close_notify")


if __name__ == "__main__":
    unittest.main()
