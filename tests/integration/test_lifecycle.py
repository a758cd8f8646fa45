"""Start-up and shut-down: bad configs exit 1 at once with one FILE:LINE:COL line, --check-config,
SIGTERM/SIGINT exit 0 within ~2 s."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import make_query, proxy_binary, scaled, to_yaml  # noqa: E402

LOCATION_RE = re.compile(r"^(.+):(\d+):(\d+): ")


class ConfigErrorTest(harness.ProxyTestCase):
    def _write(self, lines, name="bad.yaml"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _lines(self):
        return to_yaml(self.make_config()).splitlines()

    def _run(self, path, *extra):
        binary = proxy_binary()
        if not os.path.exists(binary):
            self.fail(f"proxy binary {binary} does not exist (set DOTPROXY_BIN)")
        t0 = time.monotonic()
        r = subprocess.run([binary, "--config", path, *extra], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=scaled(10))
        return r, time.monotonic() - t0

    def _assert_config_error(self, path, line, key, *extra):
        r, elapsed = self._run(path, *extra)
        detail = f"exit {r.returncode} after {elapsed:.2f} s\nstderr:\n{r.stderr}\nstdout:\n{r.stdout}"
        self.assertEqual(r.returncode, 1, f"bad config should exit 1; {detail}")
        self.assertLess(elapsed, scaled(1.0), f"took too long to reject the config; {detail}")
        err_lines = [x for x in r.stderr.splitlines() if x.strip()]
        self.assertEqual(len(err_lines), 1, f"expected exactly one line on stderr; {detail}")
        m = LOCATION_RE.match(err_lines[0])
        self.assertIsNotNone(m, f"stderr line is not FILE:LINE:COL: ...; {detail}")
        self.assertTrue(m.group(1).endswith(os.path.basename(path)), f"file name missing; {detail}")
        self.assertEqual(int(m.group(2)), line, f"wrong line number (expected {line}); {detail}")
        self.assertGreaterEqual(int(m.group(3)), 1, detail)
        self.assertIn(key, err_lines[0], f"the message should name the key {key!r}; {detail}")

    def test_unknown_key(self):
        lines = self._lines()
        i = lines.index("  udp:")
        lines.insert(i + 2, "    bogus_key: 1")
        self._assert_config_error(self._write(lines), i + 3, "bogus_key")

    def test_bad_duration(self):
        lines = self._lines()
        i = next(n for n, x in enumerate(lines) if x.strip().startswith("query_timeout:"))
        lines[i] = lines[i].split(":")[0] + ': "3 parsecs"'
        self._assert_config_error(self._write(lines), i + 1, "query_timeout")

    def test_bad_upstream_addr(self):
        lines = self._lines()
        i = next(n for n, x in enumerate(lines) if x.strip().startswith("- addr:"))
        lines[i] = lines[i].split("-")[0] + '- addr: "no port here"'
        self._assert_config_error(self._write(lines), i + 1, "addr")

    def test_check_config(self):
        """--check-config: 0 for a good file (and nothing stays listening), 1 + the line for a bad one."""
        cfg = self.make_config()
        good = self._write(to_yaml(cfg).splitlines(), "good.yaml")
        r, elapsed = self._run(good, "--check-config")
        self.assertEqual(r.returncode, 0, f"--check-config on a good file: exit {r.returncode}\n{r.stderr}")
        self.assertLess(elapsed, scaled(1.0))
        port = int(cfg["listener"]["udp"]["addr"].rsplit(":", 1)[1])
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # still free: --check-config did not start serving
        lines = self._lines()
        i = lines.index("  udp:")
        lines.insert(i + 2, "    bogus_key: 1")
        self._assert_config_error(self._write(lines), i + 3, "bogus_key", "--check-config")

    def test_missing_config_file(self):
        r, elapsed = self._run(os.path.join(self.tmp, "does-not-exist.yaml"))
        self.assertEqual(r.returncode, 1, f"missing config file: exit {r.returncode}\n{r.stderr}")
        self.assertLess(elapsed, scaled(1.0))
        self.assertTrue(r.stderr.strip(), "no message on stderr for a missing config file")


class AddressInUseTest(harness.ProxyTestCase):
    def test_second_instance_on_the_same_address_refuses_to_start(self):
        # Shards bind with SO_REUSEPORT; without a check a second proxy would silently take half
        # of the first one's traffic.
        cfg = self.make_config()
        with self.proxy(cfg) as p:
            path = os.path.join(self.tmp, "second.yaml")
            with open(path, "w") as f:
                f.write(to_yaml(cfg))
            r = subprocess.run([proxy_binary(), "--config", path], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=scaled(10))
            self.assertEqual(r.returncode, 1, f"second instance: exit {r.returncode}\n{r.stderr}")
            self.assertIn("Address already in use", r.stderr)
            q, resp = p.udp("still-first.inuse.test.")
            self.assertAnswer(resp, "still-first.inuse.test.", "A", q.id)


class SignalTest(harness.ProxyTestCase):
    def _stop_with(self, sig):
        p = self.proxy().start()
        try:
            idle = socket.create_connection(p.tcp_addr, timeout=5)
            busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            busy.sendto(make_query("slow-1000.signal.test.", "A").to_wire(), p.udp_addr)
            time.sleep(0.1)
            p.stop(sig=sig)  # raises unless exit code 0 within the stop timeout
        finally:
            p.stop(check=False)
        idle.close()
        busy.close()
        self.assertLess(p.stop_seconds, scaled(2.5),
                        f"{signal.Signals(sig).name}: took {p.stop_seconds:.2f} s to exit")

    def test_sigterm(self):
        self._stop_with(signal.SIGTERM)

    def test_sigint(self):
        self._stop_with(signal.SIGINT)


if __name__ == "__main__":
    unittest.main()
