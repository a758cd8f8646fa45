"""UDP answers larger than the client's limit are truncated (TC=1, header + question (+ OPT));
the same answers over TCP, or with a big enough EDNS size, arrive whole."""

import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import parse, scaled  # noqa: E402

import dns.flags  # noqa: E402
import dns.rdatatype  # noqa: E402


class TruncationTest(harness.ProxyTestCase):
    def _assert_truncated(self, q, r, limit, edns: bool):
        what = f"size-3000 over UDP with {'EDNS ' + str(limit) if edns else 'no EDNS'}"
        self.assertIsNotNone(r, f"{what}: no response")
        self.assertLessEqual(len(r), limit, f"{what}: {len(r)}-byte response exceeds the client's limit {limit}")
        m = parse(r)
        self.assertEqual(m.id, q.id, f"{what}: ID")
        self.assertTrue(m.flags & dns.flags.TC, f"{what}: TC bit not set on a {len(r)}-byte response")
        self.assertEqual(len(m.question), 1, f"{what}: question missing")
        self.assertEqual(m.question[0].name, q.question[0].name, f"{what}: wrong question")
        self.assertEqual(m.question[0].rdtype, dns.rdatatype.TXT)
        self.assertEqual(len(m.answer), 0, f"{what}: truncated response should have an empty answer section")
        if edns:
            self.assertGreaterEqual(m.edns, 0, f"{what}: the client used EDNS; the truncated reply lacks OPT")

    def test_udp_without_edns_truncated_to_512(self):
        with self.proxy() as p:
            q, r = p.udp("size-3000.trunc.test.", "TXT")
            self._assert_truncated(q, r, 512, edns=False)

    def test_udp_edns_1232_truncated(self):
        with self.proxy() as p:
            q, r = p.udp("size-3000.trunc1232.test.", "TXT", edns=1232)
            self._assert_truncated(q, r, 1232, edns=True)

    def test_udp_edns_4096_complete(self):
        """With listener.udp.max_answer_size raised to 4096 (the default 1232 would truncate)."""
        with self.proxy(self.make_config(udp_listener={"max_answer_size": 4096})) as p:
            q, r = p.udp("size-3000.full.test.", "TXT", edns=4096)
            self.assertAnswer(r, "size-3000.full.test.", "TXT", q.id, "EDNS 4096 client, 3000-byte answer")
            self.assertGreaterEqual(len(r), 2900, f"answer is {len(r)} bytes, expected ~3000")

    def test_udp_small_answer_not_truncated(self):
        """A 400-byte answer fits in 512: not truncated."""
        with self.proxy() as p:
            q, r = p.udp("size-400.small.test.", "TXT")
            self.assertAnswer(r, "size-400.small.test.", "TXT", q.id, "400-byte answer to a non-EDNS client")
            self.assertGreaterEqual(len(r), 350)

    def test_tcp_gets_full_answer(self):
        """The client retries over TCP, as it would after TC=1: full answer."""
        with self.proxy() as p:
            q, r = p.udp("size-3000.retry.test.", "TXT")
            self.assertTrue(r and parse(r).flags & dns.flags.TC, "expected TC=1 over UDP first")
            q, r = p.tcp("size-3000.retry.test.", "TXT", timeout=scaled(5))
            self.assertAnswer(r, "size-3000.retry.test.", "TXT", q.id, "same name over TCP")
            self.assertGreaterEqual(len(r), 2900, f"answer is {len(r)} bytes, expected ~3000")


if __name__ == "__main__":
    unittest.main()
