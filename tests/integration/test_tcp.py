"""DNS over TCP from clients (RFC 7766): pipelining, any framing split, half-close, big answers,
many idle connections, idle timeout."""

import os
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import (fd_count, frame, make_query, match_responses, parse, scaled,  # noqa: E402
                       wait_until)


def batch(prefix: str, n: int, first_id: int = 1000):
    """n distinct queries: ({id: (name, "A")}, [wire])."""
    queries, wires = {}, []
    for i in range(n):
        name = f"{prefix}{i}.pipeline.test."
        q = make_query(name, "A", qid=first_id + i)
        queries[q.id] = (name, "A")
        wires.append(q.to_wire())
    return queries, wires


class TcpTest(harness.ProxyTestCase):
    def _pipelined(self, p, n=50, prefix="p"):
        queries, wires = batch(prefix, n)
        with p.tcp_client() as c:
            c.send(b"".join(frame(w) for w in wires))  # all n in one write
            responses = c.read_frames(n, scaled(10))
        problems = match_responses(queries, responses)
        self.assertEqual(problems, [], f"{n} queries pipelined in one write on one TCP connection")

    def test_pipelined_50_in_one_write(self):
        with self.proxy() as p:
            self._pipelined(p)

    def test_pipelined_50_upstream_out_of_order(self):
        """The same with an upstream that answers each batch in reverse, then shuffled, order."""
        with self.proxy() as p:
            self.up.out_of_order = "reverse"
            self._pipelined(p, prefix="rev")
            self.up.out_of_order = "shuffle"
            self._pipelined(p, prefix="shuf")

    def test_more_pipelined_than_max_inflight(self):
        """300 queries in one write with max_inflight_per_connection 128 and a slowish upstream: the
        proxy applies back-pressure, it does not drop any."""
        self.up.answer_delay_ms = 50
        cfg = self.make_config(tcp_listener={"max_inflight_per_connection": 128})
        with self.proxy(cfg) as p:
            self._pipelined(p, n=300, prefix="many")

    def test_answers_as_they_complete(self):
        """A slow query first, a fast one after it on the same connection: the fast answer is not held
        behind the slow one."""
        with self.proxy() as p, p.tcp_client() as c:
            slow = make_query("slow-1500.order.test.", "A", qid=1)
            fast = make_query("fast.order.test.", "A", qid=2)
            t0 = time.monotonic()
            c.send(frame(slow.to_wire()) + frame(fast.to_wire()))
            first = c.read_frame(scaled(5))
            elapsed = time.monotonic() - t0
            self.assertIsNotNone(first, "no answer at all")
            self.assertAnswer(first, "fast.order.test.", "A", 2,
                              "first answer on the connection should be the fast query's")
            self.assertLess(elapsed, scaled(1.0), f"fast answer took {elapsed:.3f} s behind a slow query")
            self.assertAnswer(c.read_frame(scaled(5)), "slow-1500.order.test.", "A", 1, "slow query")

    def test_prefix_and_body_in_separate_writes(self):
        with self.proxy() as p, p.tcp_client() as c:
            q = make_query("split.prefix.test.", "A", qid=11)
            data = frame(q.to_wire())
            c.send_pieces(data, [2], gap=0.05)
            self.assertAnswer(c.read_frame(scaled(5)), "split.prefix.test.", "A", 11,
                              "length prefix and body in two writes")
            q = make_query("split.bytes.test.", "A", qid=12)
            data = frame(q.to_wire())
            c.send_pieces(data, [1] * len(data), gap=0.005)
            self.assertAnswer(c.read_frame(scaled(5)), "split.bytes.test.", "A", 12,
                              "query sent one byte per write")
            q = make_query("split.mid-prefix.test.", "A", qid=13)
            c.send_pieces(frame(q.to_wire()), [1, 5], gap=0.05)
            self.assertAnswer(c.read_frame(scaled(5)), "split.mid-prefix.test.", "A", 13,
                              "query split inside the length prefix")

    def test_several_messages_in_one_segment(self):
        """Three whole queries and half of a fourth in one write, the rest of the fourth later."""
        queries, wires = batch("seg", 4)
        data = b"".join(frame(w) for w in wires)
        cut = len(data) - len(wires[-1]) // 2
        with self.proxy() as p, p.tcp_client() as c:
            c.send_pieces(data, [cut], gap=0.1)
            responses = c.read_frames(4, scaled(5))
        self.assertEqual(match_responses(queries, responses), [])

    def test_half_close_still_answered(self):
        """The client sends its queries (some slow) and shuts down its write side: it still gets every
        answer, and then the proxy closes the connection."""
        queries, wires = batch("half", 8)
        for i, qid in enumerate((2000, 2001)):
            name = f"slow-{300 * (i + 1)}.half.test."
            queries[qid] = (name, "A")
            wires.append(make_query(name, "A", qid=qid).to_wire())
        cfg = self.make_config(tcp_listener={"read_timeout": "3s"})
        with self.proxy(cfg) as p, p.tcp_client() as c:
            c.send(b"".join(frame(w) for w in wires))
            c.shutdown_write()
            responses = c.read_frames(len(wires), scaled(5))
            self.assertEqual(match_responses(queries, responses), [], "answers after the client's FIN")
            self.assertTrue(c.wait_closed(scaled(5)), "proxy kept the half-closed connection open")

    def test_large_answer_over_tcp(self):
        """A ~60000-byte answer arrives whole over TCP."""
        with self.proxy() as p:
            q, r = p.tcp("size-60000.big.test.", "TXT", timeout=scaled(10))
            self.assertAnswer(r, "size-60000.big.test.", "TXT", q.id)
            self.assertGreaterEqual(len(r), 59000, f"answer is {len(r)} bytes, expected ~60000")
            self.assertGreater(len(parse(r).answer), 0)

    def test_300_idle_clients_then_a_query(self):
        """300 idle TCP connections do not slow down a new client (< 200 ms for its answer)."""
        idle = []
        with self.proxy() as p:
            p.tcp("warm.idle.test.")  # upstream connection up
            # The proxy closes the warm-up connection when it sees the client's EOF; take the
            # baseline once that has happened, or it is one fd too high.
            time.sleep(0.3)
            fds = fd_count(p.pid)
            try:
                for _ in range(300):
                    idle.append(socket.create_connection(p.tcp_addr, timeout=5))
                self.assertTrue(wait_until(lambda: fd_count(p.pid) >= fds + 300, scaled(5)),
                                f"the proxy holds {fd_count(p.pid) - fds} more fds, not 300, 5 s after 300 "
                                "clients connected (max_connections 1024)")
                for transport in ("tcp", "udp"):
                    t0 = time.monotonic()
                    q, r = getattr(p, transport)(f"busy-{transport}.idle.test.", timeout=scaled(2))
                    elapsed = time.monotonic() - t0
                    self.assertAnswer(r, f"busy-{transport}.idle.test.", "A", q.id,
                                      f"{transport} query with 300 idle TCP clients connected")
                    self.assertLess(elapsed, scaled(0.2), f"{transport} answer took {elapsed:.3f} s")
            finally:
                for s in idle:
                    s.close()

    def test_idle_client_connection_timeout(self):
        """listener.tcp.read_timeout closes a client connection that stays idle."""
        cfg = self.make_config(tcp_listener={"read_timeout": "1s"})
        with self.proxy(cfg) as p, p.tcp_client() as c:
            c.send(frame(make_query("before-idle.test.", "A", qid=5).to_wire()))
            self.assertAnswer(c.read_frame(scaled(5)), "before-idle.test.", "A", 5)
            t0 = time.monotonic()
            closed = c.wait_closed(scaled(5))
            self.assertTrue(closed, "idle connection still open 5 s after its last answer (read_timeout 1s)")
            self.assertGreater(time.monotonic() - t0, 0.5, "closed too early for a 1 s idle timeout")


if __name__ == "__main__":
    unittest.main()
