"""Listener behaviour: replies from the address each query was sent to on wildcard binds, large
queries never cut, and the per-shard TCP connection cap shedding idle clients first."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))

import harness  # noqa: E402  (puts Debian's dnspython on the path if needed)
import dns.edns  # noqa: E402
import dns.message  # noqa: E402
from dnsclient import (have_ipv6_loopback, make_query, parse, query_wire, scaled,  # noqa: E402
                       wait_until)


def exchange_from(dest_host: str, port: int, wire: bytes, family=socket.AF_INET, timeout=3.0):
    """Sends `wire` to dest_host:port from an unconnected socket; returns (reply, source address)."""
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(wire, (dest_host, port))
        data, src = s.recvfrom(65535)
        return data, src
    finally:
        s.close()


class ListenerTest(harness.ProxyTestCase):

    def test_wildcard_ipv4_replies_from_the_queried_address(self):
        cfg = self.make_config(listen_host="0.0.0.0", tcp=False)
        port = int(cfg["listener"]["udp"]["addr"].rsplit(":", 1)[1])
        with self.proxy(cfg):
            for i, dest in enumerate(("127.0.0.2", "127.0.0.3", "127.0.0.1")):
                name = f"wild{i}.listener.test."
                q = make_query(name, "A")
                data, src = exchange_from(dest, port, q.to_wire())
                self.assertEqual(src[0], dest, f"reply to a query sent to {dest} came from {src[0]}: "
                                 "clients drop replies from any other address")
                self.assertAnswer(parse(data), name, "A", q.id)

    @unittest.skipUnless(have_ipv6_loopback(), "no ::1 on this host")
    def test_wildcard_ipv6_replies_from_the_queried_address(self):
        cfg = self.make_config(listen_host="::", tcp=False)
        port = int(cfg["listener"]["udp"]["addr"].rsplit(":", 1)[1])
        with self.proxy(cfg):
            q = make_query("wild6.listener.test.", "A")
            data, src = exchange_from("::1", port, q.to_wire(), family=socket.AF_INET6)
            self.assertEqual(src[0], "::1")
            self.assertAnswer(parse(data), "wild6.listener.test.", "A", q.id)
            # The [::] socket is dual-stack: IPv4 clients get their reply from the right address too.
            q = make_query("wild4on6.listener.test.", "A")
            data, src = exchange_from("127.0.0.2", port, q.to_wire())
            self.assertEqual(src[0], "127.0.0.2")
            self.assertAnswer(parse(data), "wild4on6.listener.test.", "A", q.id)

    def test_large_udp_query_is_not_cut(self):
        # A 4000-byte query (EDNS padding, RFC 7830) must reach the upstream whole: the seed cut
        # datagrams at 1024 bytes and the upstream answered FORMERR.
        with self.proxy() as p:
            q = dns.message.make_query("big.listener.test.", "A", use_edns=0, payload=4096,
                                       options=[dns.edns.GenericOption(12, b"\0" * 3900)])
            wire = q.to_wire()
            self.assertGreater(len(wire), 3900)
            data, _ = exchange_from("127.0.0.1", p.udp_addr[1], wire)
            self.assertAnswer(parse(data), "big.listener.test.", "A", q.id)

    def test_connection_cap_sheds_idle_clients_first(self):
        # max_connections 20 per shard: 25 idle clients, then a query. The 5 (and then 6) oldest idle
        # connections are shed to admit the newer ones; nobody who is busy is closed.
        cfg = self.make_config(tcp_listener={"max_connections": 20})
        with self.proxy(cfg) as p:
            p.tcp("warm.cap.test.")
            old = [socket.create_connection(p.tcp_addr, timeout=5) for _ in range(20)]
            time.sleep(0.3)  # the proxy has accepted them; these are now the oldest idle clients
            new = [socket.create_connection(p.tcp_addr, timeout=5) for _ in range(5)]
            try:
                name = "over-cap.cap.test."
                q, r = p.tcp(name, timeout=scaled(3))
                self.assertAnswer(r, name, "A", q.id, "a client beyond max_connections")

                def closed(sockets):
                    n = 0
                    for s in sockets:
                        s.setblocking(False)
                        try:
                            if s.recv(1) == b"":
                                n += 1
                        except BlockingIOError:
                            pass
                        except OSError:
                            n += 1
                    return n
                self.assertTrue(wait_until(lambda: closed(old) >= 5, scaled(3)),
                                f"expected >= 5 of the oldest idle clients shed, {closed(old)} closed")
                self.assertEqual(closed(new), 0, "a newer idle client was shed before older ones")
            finally:
                for s in old + new:
                    s.close()


if __name__ == "__main__":
    unittest.main()
