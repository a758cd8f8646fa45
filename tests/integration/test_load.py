"""Load: 20,000 queries with 200 in flight (150 UDP sockets + one TCP connection pipelining 50),
none lost, none mismatched. Bounded in count and in time (60 s)."""

import os
import selectors
import socket
import statistics
import struct
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import FakeUpstreamProcess, fd_count, rss_kb, scaled  # noqa: E402
from fake_dot_upstream import address_v4  # noqa: E402

TOTAL = int(os.environ.get("DOTPROXY_LOAD_QUERIES", "20000"))
UDP_SOCKETS = 150
TCP_INFLIGHT = 50
TIME_LIMIT = 60.0
UDP_LOST_AFTER = 5.0


def qname_wire(i: int):
    labels = [f"q{i}".encode(), b"load", b"test"]
    return b"".join(bytes([len(x)]) + x for x in labels) + b"\x00", labels


class Query:
    __slots__ = ("qid", "wire_name", "addr", "sent", "name")

    def __init__(self, i, qid):
        self.wire_name, labels = qname_wire(i)
        self.name = f"q{i}.load.test."
        self.addr = address_v4(labels)
        self.qid = qid
        self.sent = 0.0

    def wire(self) -> bytes:
        return struct.pack("!HHHHHH", self.qid, 0x0100, 1, 0, 0, 0) + self.wire_name + b"\x00\x01\x00\x01"

    def problem(self, r: bytes):
        if len(r) < 12:
            return f"{self.name}: short response"
        rid, flags, qd, an = struct.unpack("!HHHH", r[:8])
        if rid != self.qid:
            return f"{self.name}: ID {rid} != {self.qid}"
        if not flags & 0x8000 or flags & 0xF:
            return f"{self.name}: flags {flags:#06x} (rcode {flags & 0xF})"
        if qd != 1 or an != 1:
            return f"{self.name}: qdcount {qd} ancount {an}"
        end = 12 + len(self.wire_name) + 4
        if r[12:end].lower() != self.wire_name + b"\x00\x01\x00\x01":
            return f"{self.name}: response is for another question"
        rr = r[end:end + 16]
        if len(rr) != 16 or rr[2:4] != b"\x00\x01" or rr[10:12] != b"\x00\x04" or rr[12:16] != self.addr:
            return f"{self.name}: wrong answer record {rr.hex()}"
        return None


class LoadTest(harness.ProxyTestCase):
    def test_20000_queries_200_in_flight(self):
        c = self.certs
        with FakeUpstreamProcess(c.server_cert, c.server_key) as up:
            servers = [self.server_entry(up, connection_pool_size=2)]
            cfg = self.make_config(servers=servers, workers=2)
            with self.proxy(cfg) as p:
                fds0, rss0 = fd_count(p.pid), rss_kb(p.pid)
                result = self._run_load(p)
                fds1, rss1 = fd_count(p.pid), rss_kb(p.pid)
        sys.stderr.write(
            f"\n[load] {result['answered']}/{TOTAL} answered in {result['elapsed']:.2f} s "
            f"({result['answered'] / max(result['elapsed'], 1e-9):.0f} q/s), latency p50 "
            f"{result['p50'] * 1000:.1f} ms p99 {result['p99'] * 1000:.1f} ms max {result['max'] * 1000:.1f} ms; "
            f"udp {result['udp']} tcp {result['tcp']}; proxy fds {fds0}->{fds1}, RSS {rss0}->{rss1} kB; "
            f"upstream {up.stats and {k: up.stats[k] for k in ('connections_accepted', 'queries_received', 'max_inflight_seen')}}\n")
        bad = result["bad"]
        self.assertEqual(bad, [], f"{len(bad)} wrong answers, e.g. {bad[:5]}")
        self.assertEqual(result["lost"], [], f"{len(result['lost'])} UDP queries unanswered after "
                         f"{UDP_LOST_AFTER} s, e.g. {result['lost'][:5]}")
        self.assertEqual(result["answered"], TOTAL,
                         f"only {result['answered']} of {TOTAL} answered within {TIME_LIMIT} s "
                         f"(TCP outstanding: {result['tcp_outstanding']})")

    def _run_load(self, p):
        sel = selectors.DefaultSelector()
        next_i = 0
        answered = 0
        latencies, bad, lost = [], [], []
        counts = {"udp": 0, "tcp": 0}
        start = time.monotonic()
        deadline = start + scaled(TIME_LIMIT)

        def new_query(qid):
            nonlocal next_i
            q = Query(next_i, qid)
            next_i += 1
            q.sent = time.monotonic()
            return q

        udp = []
        for k in range(UDP_SOCKETS):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.connect(p.udp_addr)
            udp.append({"sock": s, "q": None, "n": k})
            sel.register(s, selectors.EVENT_READ, ("udp", udp[-1]))
        tcp = socket.create_connection(p.tcp_addr, timeout=5)
        tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tcp.setblocking(False)
        sel.register(tcp, selectors.EVENT_READ, ("tcp", None))
        tcp_out = {}
        tcp_next_id = 0
        tcp_buf = bytearray()
        tcp_pending_send = bytearray()

        def udp_issue(u):
            if next_i >= TOTAL:
                u["q"] = None
                return
            u["n"] = (u["n"] + 7919) & 0xFFFF
            q = new_query(u["n"])
            u["q"] = q
            u["sock"].send(q.wire())

        def tcp_fill():
            nonlocal tcp_next_id
            while len(tcp_out) < TCP_INFLIGHT and next_i < TOTAL:
                tcp_next_id = (tcp_next_id + 1) & 0xFFFF
                while tcp_next_id in tcp_out:
                    tcp_next_id = (tcp_next_id + 1) & 0xFFFF
                q = new_query(tcp_next_id)
                tcp_out[q.qid] = q
                w = q.wire()
                tcp_pending_send.extend(struct.pack("!H", len(w)) + w)
            if tcp_pending_send:
                try:
                    n = tcp.send(tcp_pending_send)
                    del tcp_pending_send[:n]
                except BlockingIOError:
                    pass

        def done(q, r):
            nonlocal answered
            pr = q.problem(r)
            if pr:
                bad.append(pr)
            answered += 1
            latencies.append(time.monotonic() - q.sent)

        try:
            tcp_fill()
            for u in udp:
                udp_issue(u)
            while answered + len(lost) < TOTAL and time.monotonic() < deadline:
                for key, _ in sel.select(0.2):
                    kind, u = key.data
                    if kind == "udp":
                        try:
                            r = u["sock"].recv(65535)
                        except (BlockingIOError, ConnectionRefusedError):
                            continue
                        q = u["q"]
                        if q is None or len(r) < 2 or struct.unpack("!H", r[:2])[0] != q.qid:
                            bad.append(f"UDP socket got an unexpected datagram {r[:16].hex()}")
                            continue
                        done(q, r)
                        counts["udp"] += 1
                        udp_issue(u)
                    else:
                        try:
                            data = tcp.recv(262144)
                        except BlockingIOError:
                            continue
                        if not data:
                            bad.append("proxy closed the load TCP connection")
                            sel.unregister(tcp)
                            continue
                        tcp_buf.extend(data)
                        while len(tcp_buf) >= 2:
                            n = (tcp_buf[0] << 8) | tcp_buf[1]
                            if len(tcp_buf) < 2 + n:
                                break
                            r = bytes(tcp_buf[2:2 + n])
                            del tcp_buf[:2 + n]
                            q = tcp_out.pop(struct.unpack("!H", r[:2])[0], None) if n >= 2 else None
                            if q is None:
                                bad.append(f"TCP response with unknown ID {r[:2].hex()}")
                                continue
                            done(q, r)
                            counts["tcp"] += 1
                tcp_fill()
                now = time.monotonic()
                for u in udp:
                    q = u["q"]
                    if q is not None and now - q.sent > scaled(UDP_LOST_AFTER):
                        lost.append(q.name)
                        udp_issue(u)
        finally:
            for u in udp:
                u["sock"].close()
            tcp.close()
            sel.close()
        elapsed = time.monotonic() - start
        lat = sorted(latencies) or [0.0]
        return {"answered": answered, "bad": bad, "lost": lost, "elapsed": elapsed,
                "p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99) - 1 if len(lat) > 1 else 0],
                "max": lat[-1], "udp": counts["udp"], "tcp": counts["tcp"],
                "tcp_outstanding": len(tcp_out)}


if __name__ == "__main__":
    unittest.main()
