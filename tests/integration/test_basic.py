"""Basic answers over UDP and TCP, ID handling, IPv6 listener."""

import os
import select
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import (answer_problem, have_ipv6_loopback, id_of, make_query, rcode_of,  # noqa: E402
                       scaled)

CASES = [("example.com.", "A"), ("Mixed-Case.Example.ORG.", "A"), ("example.net.", "AAAA"),
         ("txt.example.", "TXT"), ("mx.example.", "MX")]


class BasicTest(harness.ProxyTestCase):
    def test_udp_answers(self):
        """UDP: the client's ID comes back and the answer is the upstream's deterministic one."""
        with self.proxy() as p:
            for name, rdtype in CASES:
                for qid in (0, 1, 0x1234, 0xFFFF):
                    q, r = p.udp(name, rdtype, qid=qid)
                    self.assertAnswer(r, name, rdtype, qid, f"UDP {name} {rdtype} id={qid}")

    def test_tcp_answers(self):
        """TCP: fresh connections and several queries in turn on one connection."""
        with self.proxy() as p:
            for name, rdtype in CASES:
                q, r = p.tcp(name, rdtype)
                self.assertAnswer(r, name, rdtype, q.id, f"TCP {name} {rdtype}")
            with p.tcp_client() as c:
                for i, (name, rdtype) in enumerate(CASES * 2):
                    q = make_query(name, rdtype, qid=1000 + i)
                    c.send(harness.dnsclient.frame(q.to_wire()))
                    self.assertAnswer(c.read_frame(5), name, rdtype, q.id,
                                      f"query {i} in turn on one TCP connection")

    def test_nxdomain_passed_through(self):
        """An upstream NXDOMAIN reaches the client as NXDOMAIN with its own ID."""
        with self.proxy() as p:
            for transport in (p.udp, p.tcp):
                q, r = transport("nx.example.", "A", qid=777)
                self.assertIsNotNone(r, f"{transport.__name__}: no response")
                self.assertEqual(id_of(r), 777)
                self.assertEqual(rcode_of(r), 3, f"{transport.__name__}: expected NXDOMAIN")

    def test_200_udp_clients_same_id(self):
        """200 UDP sockets all use query ID 4242 for different names at once: each gets its own
        answer (the proxy must key on client address + ID, not ID alone)."""
        n = 200
        cfg = self.make_config(workers=2)
        with self.proxy(cfg) as p:
            socks = []
            try:
                for i in range(n):
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.setblocking(False)
                    socks.append(s)
                names = [f"client{i}.same-id.test." for i in range(n)]
                for s, name in zip(socks, names):
                    s.sendto(make_query(name, "A", qid=4242).to_wire(), p.udp_addr)
                got = {}
                deadline = time.monotonic() + scaled(10)
                while len(got) < n and time.monotonic() < deadline:
                    r, _, _ = select.select([s for s in socks if s.fileno() not in got], [], [], 0.5)
                    for s in r:
                        got[s.fileno()] = (s, s.recv(65535))
                problems = []
                by_fd = {s.fileno(): name for s, name in zip(socks, names)}
                for fd, name in by_fd.items():
                    if fd not in got:
                        problems.append(f"{name}: no answer")
                        continue
                    pr = answer_problem(got[fd][1], name, "A", 4242)
                    if pr:
                        problems.append(pr)
                self.assertEqual(problems, [], f"{len(problems)} of {n} clients got no or a wrong answer")
            finally:
                for s in socks:
                    s.close()

    def test_upstream_connections_are_reused(self):
        """60 queries one after another travel over the pooled connections: no more TLS connections
        than connection_pool_size."""
        with self.proxy() as p:
            for i in range(30):
                q, r = p.udp(f"reuse{i}.example.")
                self.assertAnswer(r, f"reuse{i}.example.", "A", q.id)
                q, r = p.tcp(f"reuse-tcp{i}.example.")
                self.assertAnswer(r, f"reuse-tcp{i}.example.", "A", q.id)
        self.assertLessEqual(self.up.connections_accepted, 2,
                             f"more upstream connections than the pool size: {self.upstream_snapshot()}")
        self.assertGreaterEqual(self.up.queries_received, 60)

    @unittest.skipUnless(have_ipv6_loopback(), "no ::1 on this host")
    def test_ipv6_listener(self):
        """Listening on [::1] for UDP and TCP."""
        cfg = self.make_config(listen_host="::1")
        with self.proxy(cfg) as p:
            self.assertEqual(p.udp_addr[0], "::1")
            q, r = p.udp("v6-udp.example.", "AAAA")
            self.assertAnswer(r, "v6-udp.example.", "AAAA", q.id, "UDP over ::1")
            q, r = p.tcp("v6-tcp.example.", "A")
            self.assertAnswer(r, "v6-tcp.example.", "A", q.id, "TCP over ::1")


if __name__ == "__main__":
    unittest.main()
