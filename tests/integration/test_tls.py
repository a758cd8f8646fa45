"""Upstream TLS authentication: a certificate that does not match server_name or is not signed by
the trusted CA fails the handshake and no query is ever sent over it; IP-literal server names."""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import answer_problem, have_ipv6_loopback, scaled, wait_until  # noqa: E402


class TlsTest(harness.ProxyTestCase):
    def _assert_rejected(self, p, what):
        for i, transport in enumerate((p.udp, p.udp, p.tcp)):
            t0 = time.monotonic()
            q, r = transport(f"rejected{i}.tls.test.", timeout=scaled(4))
            elapsed = time.monotonic() - t0
            self.assertServfail(r, q.id, f"{what}, query {i} ({transport.__name__})")
            self.assertLess(elapsed, scaled(3.0), f"{what}: SERVFAIL took {elapsed:.2f} s (query_timeout 2s)")
        self.assertEqual(self.up.queries_received, 0,
                         f"{what}: a query was sent over an unverified connection: {self.upstream_snapshot()}")
        self.assertGreaterEqual(self.up.connections_accepted, 1,
                                f"{what}: the proxy never even tried to connect: {self.upstream_snapshot()}")

    def _recovers(self, p, what):
        def answered():
            q, r = p.udp("recovered.tls.test.", timeout=0.5)
            return r is not None and answer_problem(r, "recovered.tls.test.", "A", q.id) is None
        self.assertTrue(wait_until(answered, scaled(15), 0.25), f"{what}: no correct answer within 15 s")

    def test_certificate_for_another_name(self):
        """The upstream presents a valid certificate for wrong.test; server_name is dot.test."""
        self.up.set_cert(self.certs.wrong_cert, self.certs.wrong_key)
        cfg = self.make_config(upstream={"query_timeout": "2s"})
        with self.proxy(cfg, ready="listen") as p:
            self._assert_rejected(p, "certificate for wrong.test")
            self.up.set_cert(self.certs.server_cert, self.certs.server_key)
            self._recovers(p, "after the upstream got the right certificate")

    def test_certificate_from_untrusted_ca(self):
        other = harness.certs("other")
        self.up.set_cert(other.server_cert, other.server_key)
        cfg = self.make_config(upstream={"query_timeout": "2s"})
        with self.proxy(cfg, ready="listen") as p:
            self._assert_rejected(p, "certificate from another CA")

    def test_ip_literal_server_name(self):
        """server_name 127.0.0.1 matches the certificate's IP SAN."""
        cfg = self.make_config(server={"server_name": "127.0.0.1"})
        with self.proxy(cfg) as p:
            q, r = p.udp("ip-name.tls.test.")
            self.assertAnswer(r, "ip-name.tls.test.", "A", q.id, "server_name 127.0.0.1")

    def test_ip_literal_server_name_mismatch(self):
        """server_name 127.0.0.2 is not in the certificate (which has 127.0.0.1 and ::1)."""
        cfg = self.make_config(server={"server_name": "127.0.0.2"}, upstream={"query_timeout": "2s"})
        with self.proxy(cfg, ready="listen") as p:
            self._assert_rejected(p, "server_name 127.0.0.2")

    @unittest.skipUnless(have_ipv6_loopback(), "no ::1 on this host")
    def test_ipv6_upstream(self):
        """An upstream on [::1] with server_name ::1."""
        up6 = self.start_upstream(host="::1")
        cfg = self.make_config(servers=[self.server_entry(up6, server_name="::1")])
        with self.proxy(cfg) as p:
            for i in range(3):
                q, r = p.udp(f"v6up{i}.tls.test.", "AAAA")
                self.assertAnswer(r, f"v6up{i}.tls.test.", "AAAA", q.id, "upstream over IPv6")
        self.assertGreaterEqual(up6.queries_received, 3)


if __name__ == "__main__":
    unittest.main()
