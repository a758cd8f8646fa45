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
        # The query must still be in flight at the second signal, however far the sleeps below
        # are stretched (DOTPROXY_TEST_TIME_SCALE; the proxy's own timeouts are not).
        cfg["upstream"]["query_timeout"] = "30s"
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
            # The pool's 2 connections (one per shard) may still be handshaking (slow under
            # TSan): the baseline is taken once both are up.
            deadline = time.monotonic() + scaled(5)
            while self.up.snapshot()["handshakes_completed"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            before = self.up.snapshot()
            self.assertEqual(before["handshakes_completed"], 2, "the pool of 2 never came up")
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

    def test_acl_change_applies_on_reload(self):
        cfg = self.make_config()
        p = self.proxy(cfg).start()
        try:
            self.assertEqual(self._trickle(p, "open", 3, 0.01), [])
            cfg["listener"]["allow"] = ["127.0.0.2/32"]  # 127.0.0.1, where the test sends from: out
            self._rewrite(p, cfg)
            p.send_signal(signal.SIGHUP)
            self.assertTrue(self._wait_for_log(p, "reload: servers: 1 kept"), p.log_tail())
            time.sleep(scaled(0.2))
            q, resp = udp_query("closed.acl.reload.test.", *p.udp_addr, timeout=scaled(0.5))
        finally:
            p.stop(check=False)
        self.assertIsNone(resp, "a source the reloaded ACL leaves out must get no answer")

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


class SystemdNotifyTest(harness.ProxyTestCase):
    def test_ready_reloading_stopping_in_order(self):
        import socket
        path = os.path.join(self.tmp, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        self.addCleanup(sock.close)
        old = os.environ.get("NOTIFY_SOCKET")
        os.environ["NOTIFY_SOCKET"] = path
        try:
            p = self.proxy().start()
        finally:
            if old is None:
                del os.environ["NOTIFY_SOCKET"]
            else:
                os.environ["NOTIFY_SOCKET"] = old
        seen = []

        def collect(until, seconds=3.0):
            deadline = time.monotonic() + scaled(seconds)
            while time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    msg = sock.recv(4096).decode()
                except socket.timeout:
                    break
                seen.extend(x for x in msg.split("\n") if x.split("=")[0] in
                            ("READY", "RELOADING", "STOPPING"))
                if until in msg:
                    return

        try:
            collect("READY=1")
            p.send_signal(signal.SIGHUP)
            collect("RELOADING=1")
            collect("READY=1")
            p.send_signal(signal.SIGTERM)
            collect("STOPPING=1")
            p.proc.wait(scaled(5))
        finally:
            p.stop(check=False)
        self.assertEqual(seen, ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"], p.log_tail())
        self.assertEqual(p.proc.returncode, 0)


class ListenerTest(harness.ProxyTestCase):
    def _answered(self, host, port, name):
        q, resp = udp_query(name, host, port, timeout=scaled(2))
        return dnsclient.answer_problem(resp, name, "A", q.id) is None

    def _tcp_answered(self, host, port, name):
        q, resp = dnsclient.tcp_query(name, host, port, timeout=scaled(2))
        return dnsclient.answer_problem(resp, name, "A", q.id) is None

    def test_two_addresses_in_a_list(self):
        port = dnsclient.free_port("127.0.0.1")
        cfg = self.make_config()
        addrs = [f"127.0.0.1:{port}", f"127.0.0.2:{port}"]
        cfg["listener"]["udp"]["addr"] = addrs
        cfg["listener"]["tcp"]["addr"] = addrs
        with self.proxy(cfg, ready="none") as p:
            time.sleep(scaled(0.5))
            for host in ("127.0.0.1", "127.0.0.2"):
                self.assertTrue(self._answered(host, port, f"udp.{host}.list.test."), p.log_tail())
                self.assertTrue(self._tcp_answered(host, port, f"tcp.{host}.list.test."),
                                p.log_tail())

    def test_wildcard_port_answers_on_any_local_address_from_that_address(self):
        port = dnsclient.free_port("127.0.0.1")
        cfg = self.make_config()
        cfg["listener"]["udp"]["addr"] = f":{port}"
        cfg["listener"]["tcp"]["addr"] = f":{port}"
        with self.proxy(cfg, ready="none") as p:
            time.sleep(scaled(0.5))
            # udp_query connects its socket: a reply from another source address would be ignored.
            self.assertTrue(self._answered("127.0.0.3", port, "v4.wild.test."), p.log_tail())
            self.assertTrue(self._tcp_answered("127.0.0.3", port, "tcp.wild.test."), p.log_tail())
            self.assertTrue(self._answered("::1", port, "v6.wild.test."), p.log_tail())

    def test_sighup_moves_the_listener(self):
        old_port = dnsclient.free_port("127.0.0.1")
        new_port = dnsclient.free_port("127.0.0.1")
        cfg = self.make_config()
        cfg["listener"]["udp"]["addr"] = f"127.0.0.1:{old_port}"
        cfg["listener"]["tcp"]["addr"] = f"127.0.0.1:{old_port}"
        with self.proxy(cfg, ready="none") as p:
            time.sleep(scaled(0.5))
            self.assertTrue(self._answered("127.0.0.1", old_port, "before.move.test."))
            cfg["listener"]["udp"]["addr"] = f"127.0.0.1:{new_port}"
            cfg["listener"]["tcp"]["addr"] = f"127.0.0.1:{new_port}"
            with open(p.config_path, "w") as f:
                f.write(to_yaml(cfg))
            p.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + scaled(3)
            while time.monotonic() < deadline and "reload: " not in p.log():
                time.sleep(0.05)
            time.sleep(scaled(0.2))
            self.assertTrue(self._answered("127.0.0.1", new_port, "after.move.test."), p.log_tail())
            self.assertTrue(self._tcp_answered("127.0.0.1", new_port, "tcp.move.test."), p.log_tail())
            q, resp = udp_query("gone.move.test.", "127.0.0.1", old_port, timeout=scaled(0.5))
            self.assertIsNone(resp, "the removed address must no longer answer")


class PrivilegeDropTest(harness.ProxyTestCase):
    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_runs_as_the_configured_user_after_binding(self):
        import pwd
        nobody = pwd.getpwnam("nobody")
        cfg = self.make_config()
        cfg["server"]["user"] = "nobody"
        os.chmod(self.tmp, 0o755)  # the log and config stay readable to the test
        with self.proxy(cfg) as p:
            with open(f"/proc/{p.pid}/status") as f:
                ids = {k: v.split() for k, v in (line.split(":", 1) for line in f) if k in
                       ("Uid", "Gid", "Groups")}
            self.assertEqual({int(x) for x in ids["Uid"]}, {nobody.pw_uid})
            self.assertEqual({int(x) for x in ids["Gid"]}, {nobody.pw_gid})
            self.assertTrue(self._answered_after_drop(p))

    def _answered_after_drop(self, p):
        q, resp = udp_query("after-drop.priv.test.", *p.udp_addr, timeout=scaled(2))
        return dnsclient.answer_problem(resp, "after-drop.priv.test.", "A", q.id) is None


if __name__ == "__main__":
    unittest.main()
