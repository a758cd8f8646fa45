"""Failures: slow upstream answers (SERVFAIL by query_timeout, others unaffected), upstream answers
with the wrong ID or question (never delivered), malformed client input (dropped, the proxy keeps
serving), clients that vanish before their answer (no leak)."""

import os
import random
import socket
import struct
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import (answer_problem, fd_count, frame, id_of, make_query, parse,  # noqa: E402
                       rcode_of, rss_kb, scaled, udp_many, wait_until)


def fd_targets(pid):
    out = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            out.append(f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return out


class SlowUpstreamTest(harness.ProxyTestCase):
    def test_slow_query_servfail_others_fast_udp(self):
        """slow-5000 with query_timeout 2s: SERVFAIL within 2.5 s; meanwhile other queries are
        answered, each within 500 ms."""
        cfg = self.make_config(upstream={"query_timeout": "2s"})
        with self.proxy(cfg) as p, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as slow:
            q_slow = make_query("slow-5000.timeout.test.", "A")
            t0 = time.monotonic()
            slow.sendto(q_slow.to_wire(), p.udp_addr)
            for i in range(10):
                t1 = time.monotonic()
                q, r = p.udp(f"fast{i}.timeout.test.", timeout=scaled(2))
                elapsed = time.monotonic() - t1
                self.assertAnswer(r, f"fast{i}.timeout.test.", "A", q.id, "fast query next to a slow one")
                self.assertLess(elapsed, scaled(0.5), f"fast query {i} took {elapsed:.3f} s")
            slow.settimeout(max(0.1, t0 + scaled(4) - time.monotonic()))
            try:
                r = slow.recv(65535)
            except socket.timeout:
                r = None
            elapsed = time.monotonic() - t0
            self.assertServfail(r, q_slow.id, "slow-5000 with query_timeout 2s")
            self.assertLess(elapsed, scaled(2.5), f"SERVFAIL after {elapsed:.2f} s (query_timeout 2s)")

    def test_slow_answers_later_than_read_timeout_still_arrive(self):
        """An upstream that is slow (a cold cache), not dead: answers after 1.2 s with a 500 ms
        per-attempt read_timeout and query_timeout 3s. The retry does not cancel the first attempt,
        so the slow answer is delivered; and a row of slow queries does not take the only upstream
        out of service for the queries that follow."""
        cfg = self.make_config(server={"read_timeout": "500ms"}, upstream={"query_timeout": "3s"})
        with self.proxy(cfg) as p:
            names = [f"slow-1200.cold{i}.test." for i in range(4)]
            got = udp_many([(n, "A") for n in names], *p.udp_addr, timeout=scaled(4))
            for n, (q, r, _) in zip(names, got):
                self.assertAnswer(parse(r) if r else None, n, "A", q.id,
                                  "slow answer after read_timeout")
            for i in range(5):
                q, r = p.udp(f"after-slow{i}.cold.test.", timeout=scaled(2))
                self.assertAnswer(r, f"after-slow{i}.cold.test.", "A", q.id,
                                  "query after a row of slow ones")

    def test_slow_query_servfail_others_fast_tcp(self):
        """The same on one TCP connection: the fast answers come first, then the SERVFAIL."""
        cfg = self.make_config(upstream={"query_timeout": "2s"})
        with self.proxy(cfg) as p, p.tcp_client() as c:
            q_slow = make_query("slow-5000.tcp-timeout.test.", "A", qid=1)
            t0 = time.monotonic()
            c.send(frame(q_slow.to_wire()))
            for i in range(5):
                q = make_query(f"fast{i}.tcp-timeout.test.", "A", qid=100 + i)
                t1 = time.monotonic()
                c.send(frame(q.to_wire()))
                r = c.read_frame(scaled(2))
                elapsed = time.monotonic() - t1
                self.assertAnswer(r, f"fast{i}.tcp-timeout.test.", "A", q.id, "fast query behind a slow one")
                self.assertLess(elapsed, scaled(0.5), f"fast query {i} took {elapsed:.3f} s")
            r = c.read_frame(max(0.1, t0 + scaled(4) - time.monotonic()))
            elapsed = time.monotonic() - t0
            self.assertServfail(r, 1, "slow-5000 over TCP with query_timeout 2s")
            self.assertLess(elapsed, scaled(2.5), f"SERVFAIL after {elapsed:.2f} s (query_timeout 2s)")


class BadUpstreamAnswersTest(harness.ProxyTestCase):
    def _never_delivered(self, knob, value):
        setattr(self.up, knob, value)
        cfg = self.make_config(upstream={"query_timeout": "2s"}, server={"read_timeout": "1s"})
        with self.proxy(cfg, ready="listen") as p:
            items = [(f"bad{i}.{knob}.test.", "A") for i in range(10)]
            res = udp_many(items, *p.udp_addr, timeout=scaled(4))
            for (name, _), (q, r, _) in zip(items, res):
                if r is None:
                    continue  # silence is tolerated here; a wrong answer is not
                self.assertEqual(id_of(r), q.id, f"{knob}={value}: {name}: reply with ID {id_of(r)}")
                self.assertEqual(rcode_of(r), 2, f"{knob}={value}: {name}: a mismatched upstream answer "
                                 f"was delivered (rcode {rcode_of(r)}, expected SERVFAIL)")
            self.assertGreaterEqual(self.up.responses_sent, 10, self.upstream_snapshot())
            setattr(self.up, knob, False)

            def answered():
                q, r = p.udp("good-again.test.", timeout=0.5)
                return r is not None and answer_problem(r, "good-again.test.", "A", q.id) is None
            self.assertTrue(wait_until(answered, scaled(10), 0.1),
                            f"no correct answer within 10 s after {knob} was turned off")

    def test_wrong_id_plus_one(self):
        self._never_delivered("wrong_id", "plus1")

    def test_wrong_id_random(self):
        self._never_delivered("wrong_id", "random")

    def test_wrong_question(self):
        self._never_delivered("wrong_question", True)


def bad_datagrams():
    rnd = random.Random(7)
    good = make_query("malformed.test.", "A", qid=0x4242).to_wire()
    qr = bytearray(good)
    qr[2] |= 0x80
    two = bytearray(good[:12] + good[12:] + good[12:])
    two[4:6] = struct.pack("!H", 2)
    zero = bytearray(good[:12])
    zero[4:6] = b"\x00\x00"
    garbage = bytearray(rnd.randbytes(100))
    garbage[4:6] = b"\x12\x34"
    return {
        "5 bytes": good[:5],
        "QR=1": bytes(qr),
        "qdcount=2": bytes(two),
        "qdcount=0": bytes(zero),
        "header only": good[:12],
        "question cut short": good[:17],
        "random garbage": bytes(garbage),
    }


class MalformedTest(harness.ProxyTestCase):
    def test_malformed_udp(self):
        """Malformed datagrams get no reply (or FORMERR), are not forwarded, and the proxy keeps
        serving."""
        with self.proxy() as p:
            base = self.up.queries_received
            socks = {}
            try:
                for what, data in bad_datagrams().items():
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.sendto(data, p.udp_addr)
                    socks[what] = s
                q, r = p.udp("after-malformed.test.")
                self.assertAnswer(r, "after-malformed.test.", "A", q.id, "good query after malformed ones")
                time.sleep(0.5)
                for what, s in socks.items():
                    s.setblocking(False)
                    try:
                        reply = s.recv(65535)
                    except BlockingIOError:
                        continue
                    self.assertTrue(len(reply) >= 12 and rcode_of(reply) == 1 and reply[2] & 0x80,
                                    f"{what}: reply {reply[:16].hex()}... is not a FORMERR")
            finally:
                for s in socks.values():
                    s.close()
            self.assertEqual(self.up.queries_received, base + 1,
                             f"malformed datagrams were forwarded upstream: {self.upstream_snapshot()}")

    def test_malformed_tcp(self):
        """A length-0 frame or garbage closes that TCP connection; other clients are still served."""
        rnd = random.Random(11)
        garbage = bytearray(rnd.randbytes(20))
        garbage[4:6] = b"\x12\x34"
        cases = {
            "length 0": b"\x00\x00",
            "garbage": frame(bytes(garbage)),
            "5-byte message": frame(rnd.randbytes(5)),
        }
        with self.proxy() as p:
            base = self.up.queries_received
            with p.tcp_client() as bystander:
                for what, data in cases.items():
                    with p.tcp_client() as c:
                        c.send(data)
                        self.assertTrue(c.wait_closed(scaled(3)), f"{what}: connection still open after 3 s")
                    q = make_query(f"bystander-{what.replace(' ', '-')}.test.", "A")
                    bystander.send(frame(q.to_wire()))
                    self.assertAnswer(bystander.read_frame(scaled(3)), q.question[0].name.to_text(), "A",
                                      q.id, f"another TCP client after {what}")
                    q, r = p.udp(f"udp-after-{what.replace(' ', '-')}.test.")
                    self.assertAnswer(r, q.question[0].name.to_text(), "A", q.id, f"UDP after {what}")
            self.assertEqual(self.up.queries_received, base + 2 * len(cases),
                             f"malformed TCP input was forwarded upstream: {self.upstream_snapshot()}")


class VanishingClientsTest(harness.ProxyTestCase):
    def test_clients_vanish_before_answer(self):
        """50 UDP and 50 TCP clients send a slow query and go away at once (TCP: half close, half
        reset): the proxy keeps answering promptly and its fd count returns to the baseline."""
        cfg = self.make_config(server={"connection_pool_size": 1})
        with self.proxy(cfg) as p:
            for i in range(3):
                self.assertAnswer(p.udp(f"warm{i}.vanish.test.")[1], f"warm{i}.vanish.test.", "A")
                self.assertAnswer(p.tcp(f"warmt{i}.vanish.test.")[1], f"warmt{i}.vanish.test.", "A")
            time.sleep(0.3)
            baseline = fd_count(p.pid)
            rss0 = rss_kb(p.pid)
            for i in range(50):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(make_query(f"slow-800.u{i}.vanish.test.", "A").to_wire(), p.udp_addr)
            for i in range(50):
                s = socket.create_connection(p.tcp_addr, timeout=5)
                s.sendall(frame(make_query(f"slow-800.t{i}.vanish.test.", "A").to_wire()))
                if i % 2:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            t0 = time.monotonic()
            q, r = p.udp("meanwhile.vanish.test.", timeout=scaled(2))
            self.assertAnswer(r, "meanwhile.vanish.test.", "A", q.id, "query while vanished clients are pending")
            self.assertLess(time.monotonic() - t0, scaled(0.5))
            q, r = p.tcp("meanwhile-tcp.vanish.test.", timeout=scaled(2))
            self.assertAnswer(r, "meanwhile-tcp.vanish.test.", "A", q.id)
            wait_until(lambda: self.up.responses_sent >= 100, scaled(5))
            ok = wait_until(lambda: fd_count(p.pid) <= baseline, scaled(5), 0.1)
            self.assertTrue(ok, f"fd count {fd_count(p.pid)} did not return to the baseline {baseline} "
                            f"within 5 s; fds now: {fd_targets(p.pid)}")
            q, r = p.udp("after.vanish.test.")
            self.assertAnswer(r, "after.vanish.test.", "A", q.id, "query after the vanished clients")
            sys.stderr.write(f"\n[vanish] fds {baseline} -> {fd_count(p.pid)}, RSS {rss0} -> {rss_kb(p.pid)} kB\n")


if __name__ == "__main__":
    unittest.main()
