"""Misbehaving upstreams (issue 9): a desynchronized stream is closed and its queries re-sent at
once; a query that keeps killing connections is quarantined (SERVFAIL, never a third send); an
upstream that stops reading is cut off after write_timeout; local fd exhaustion does not mark
the server down; a down server's backlog moves to another server."""

import os
import re
import resource
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import (answer_problem, fd_count, frame, parse, scaled, udp_many,  # noqa: E402
                       wait_until)


def exit_counter(log: str, name: str) -> int:
    """A counter from the shard's exit log line ("name N")."""
    m = re.search(rf"{name} (\d+)", log)
    return int(m.group(1)) if m else -1


class DesyncTest(harness.ProxyTestCase):
    def _recovers(self, mode):
        """Pool of one connection, read_timeout 2s: after the upstream sends `mode` instead of an
        answer, that query and the next ones are answered correctly well within one read_timeout
        (the connection is closed at once and the query re-sent on a new one)."""
        cfg = self.make_config(server={"connection_pool_size": 1, "read_timeout": "2s"},
                               upstream={"query_timeout": "5s"})
        with self.proxy(cfg) as p:
            accepted = self.up.connections_accepted
            self.up.inject_once = mode
            t0 = time.monotonic()
            q, r = p.udp(f"first.{mode}.desync.test.", timeout=scaled(4))
            elapsed = time.monotonic() - t0
            self.assertAnswer(r, f"first.{mode}.desync.test.", "A", q.id, f"{mode}: the query hit")
            self.assertEqual(self.up.injected, 1, self.upstream_snapshot())
            self.assertLess(elapsed, scaled(1.0), f"{mode}: answered after {elapsed:.2f} s "
                            "(read_timeout 2s): the desync was not detected at once")
            self.assertGreater(self.up.connections_accepted, accepted, "no new connection")
            for i in range(4):
                t1 = time.monotonic()
                q, r = p.udp(f"next{i}.{mode}.desync.test.", timeout=scaled(2))
                self.assertAnswer(r, f"next{i}.{mode}.desync.test.", "A", q.id, f"{mode}: next query")
                self.assertLess(time.monotonic() - t1, scaled(0.5), f"{mode}: next query {i} slow")
        self.assertGreaterEqual(exit_counter(p.log(), "desyncs"), 1, p.log_tail())

    def test_unframed_garbage(self):
        self._recovers("garbage")

    def test_frame_that_is_not_a_response(self):
        self._recovers("query_frame")

    def test_answer_with_unknown_id(self):
        self._recovers("unknown_id")

    def test_late_answer_is_not_a_desync(self):
        """An answer that arrives after its query gave up (an ID recently released) is dropped
        without closing the connection."""
        cfg = self.make_config(server={"connection_pool_size": 1, "read_timeout": "300ms"},
                               upstream={"query_timeout": "600ms", "max_connection_retries": 0})
        with self.proxy(cfg) as p:
            q, r = p.udp("slow-1200.late.test.", timeout=scaled(2))
            self.assertServfail(r, q.id, "slow-1200 with query_timeout 600ms")
            accepted = self.up.connections_accepted
            time.sleep(1.0)  # the late answer arrives
            q, r = p.udp("after-late.test.")
            self.assertAnswer(r, "after-late.test.", "A", q.id)
            self.assertEqual(self.up.connections_accepted, accepted, "a late answer closed the connection")
        self.assertEqual(exit_counter(p.log(), "desyncs"), 0, p.log_tail())


class QuarantineTest(harness.ProxyTestCase):
    def test_query_that_kills_connections_is_not_sent_a_third_time(self):
        """The upstream resets the connection on every "poison.*" query. With retries to spare
        (max_connection_retries 5) the query is still sent only twice, then answered SERVFAIL;
        other queries keep being answered."""
        cfg = self.make_config(upstream={"max_connection_retries": 5, "query_timeout": "5s"})
        self.up.close_on_label = b"poison"
        with self.proxy(cfg) as p:
            time.sleep(1.2)  # past the short-life window: these closes are not set-up failures
            t0 = time.monotonic()
            q, r = p.udp("poison.quarantine.test.", timeout=scaled(4))
            self.assertServfail(r, q.id, "poison query")
            self.assertLess(time.monotonic() - t0, scaled(2), "SERVFAIL only at the deadline")
            time.sleep(0.3)
            self.assertEqual(self.up.poison_received, 2, self.upstream_snapshot())

            def answered():
                q, r = p.udp("after-poison.test.", timeout=0.5)
                return r is not None and answer_problem(r, "after-poison.test.", "A", q.id) is None
            self.assertTrue(wait_until(answered, scaled(5), 0.1), "no answer after the poison query")
        self.assertEqual(exit_counter(p.log(), "quarantined"), 1, p.log_tail())


def big_query(name: str, size: int) -> bytes:
    """An A query with an EDNS option (code 65001, local use) that makes it `size` bytes."""
    import dns.edns
    import dns.message
    q = dns.message.make_query(name, "A")
    base = len(q.to_wire())
    q.use_edns(0, payload=1232, options=[dns.edns.GenericOption(65001, b"x" * max(0, size - base - 15))])
    return q


class WriteTimeoutTest(harness.ProxyTestCase):
    def test_upstream_that_stops_reading_is_cut_off(self):
        """Pool of one connection, write_timeout 1s, read_timeout 10s, query_timeout 8s: the
        upstream stops reading and the proxy's sends back up. After write_timeout the connection is closed and replaced,
        and the queries are answered on the new one well before any read or query timeout; the
        proxy's fd count does not grow."""
        cfg = self.make_config(server={"connection_pool_size": 1, "write_timeout": "1s",
                                       "read_timeout": "10s", "max_inflight": 1024},
                               upstream={"query_timeout": "8s"},
                               tcp_listener={"max_inflight_per_connection": 128})
        with self.proxy(cfg) as p:
            q, r = p.udp("warm.write-timeout.test.")
            self.assertAnswer(r, "warm.write-timeout.test.", "A", q.id)
            fds_before = fd_count(p.pid)
            accepted = self.up.connections_accepted
            self.up.set_stop_reading(True)
            # More than the kernel buffers (tcp_wmem max 4 MiB + the peer's window): 6 TCP
            # clients pipeline 100 queries of 14 KB each (TCP, so no datagram is lost).
            clients = [p.tcp_client(timeout=scaled(8)) for _ in range(6)]
            expected = {}
            t0 = time.monotonic()
            try:
                for ci, c in enumerate(clients):
                    wires = []
                    for i in range(100):
                        name = f"big{ci}-{i}.write-timeout.test."
                        q = big_query(name, 14000)
                        q.id = ci * 1000 + i
                        expected[(ci, q.id)] = name
                        wires.append(frame(q.to_wire(max_size=65535)))
                    c.send(b"".join(wires))
                answered, servfail, problems = 0, 0, []
                for ci, c in enumerate(clients):
                    for r in c.read_frames(100, max(0.1, t0 + scaled(7) - time.monotonic())):
                        m = parse(r)
                        name = expected.get((ci, m.id))
                        if name is None:
                            problems.append(f"client {ci}: unexpected ID {m.id}")
                        elif m.rcode() == 2:
                            servfail += 1
                        elif (pr := answer_problem(m, name, "A")):
                            problems.append(pr)
                        else:
                            answered += 1
            finally:
                for c in clients:
                    c.close()
            elapsed = time.monotonic() - t0
            self.assertEqual(problems, [])
            self.assertEqual(answered + servfail, 600, f"answered {answered}, SERVFAIL {servfail}, "
                             f"the rest silent: {self.upstream_snapshot()}")
            self.assertGreater(answered, 300, f"answered {answered}, SERVFAIL {servfail}")
            self.assertLess(elapsed, scaled(7), "replies came only at query_timeout")
            self.assertGreater(self.up.connections_accepted, accepted, "the connection was not replaced")
            self.up.set_stop_reading(False)
            self.assertTrue(wait_until(lambda: fd_count(p.pid) <= fds_before, scaled(5)),
                            f"fds {fds_before} before, {fd_count(p.pid)} after")
        self.assertGreaterEqual(exit_counter(p.log(), "write timeouts"), 1, p.log_tail())


class LocalResourceTest(harness.ProxyTestCase):
    def test_emfile_does_not_mark_the_server_down(self):
        """With its fd limit lowered at run time, the proxy cannot open sockets to replace its
        upstream connections (EMFILE). That is counted and retried, the server is never marked
        down, and once the limit is lifted queries are answered again within a few seconds."""
        with self.proxy() as p:
            q, r = p.udp("before.emfile.test.")
            self.assertAnswer(r, "before.emfile.test.", "A", q.id)
            limits = resource.prlimit(p.pid, resource.RLIMIT_NOFILE)
            resource.prlimit(p.pid, resource.RLIMIT_NOFILE, (3, limits[1]))
            try:
                self.up.drop_connections("rst")
                time.sleep(1.5)
                for i in range(3):
                    p.udp(f"during{i}.emfile.test.", timeout=1)  # SERVFAIL or an answer, no hang
            finally:
                resource.prlimit(p.pid, resource.RLIMIT_NOFILE, limits)

            def answered():
                q, r = p.udp("after.emfile.test.", timeout=0.5)
                return r is not None and answer_problem(r, "after.emfile.test.", "A", q.id) is None
            self.assertTrue(wait_until(answered, scaled(5), 0.1), "no answer after the limit was lifted")
        log = p.log()
        self.assertNotRegex(log, r"upstream \S+: down", "EMFILE marked the server down")
        self.assertIn("not a server failure", log)
        self.assertGreater(exit_counter(log, "local resource errors"), 0, p.log_tail())


class BacklogTest(harness.ProxyTestCase):
    def test_backlog_of_a_down_server_moves(self):
        """Two servers, one ID each (max_inflight 1): a burst of queries backs up on both. The slow
        one is then killed and refuses connections; it goes down and its backlog is answered by
        the other server at once, not at query_timeout (6s)."""
        slow = self.up
        slow.answer_delay_ms = 2500
        fast = self.start_upstream()
        fast.answer_delay_ms = 20
        servers = [self.server_entry(slow, connection_pool_size=1, max_inflight=1, read_timeout="5s"),
                   self.server_entry(fast, connection_pool_size=1, max_inflight=1, read_timeout="5s")]
        cfg = self.make_config(servers=servers, upstream={"query_timeout": "6s"})
        with self.proxy(cfg) as p:
            time.sleep(1.2)
            items = [(f"q{i}.backlog.test.", "A") for i in range(30)]
            import threading
            result = {}

            def run():
                result["r"] = udp_many(items, *p.udp_addr, timeout=scaled(8))
            t = threading.Thread(target=run)
            t.start()
            time.sleep(0.5)
            t_kill = time.monotonic()
            slow.set_refuse(True)
            slow.drop_connections("rst")
            t.join(scaled(10))
            problems = []
            for (name, _), (q, r, when) in zip(items, result["r"]):
                if r is None:
                    problems.append(f"{name}: no reply")
                    continue
                pr = answer_problem(parse(r), name, "A", q.id)
                if pr:
                    problems.append(pr)
            self.assertEqual(problems, [], self.upstream_snapshot(fast))
            self.assertLess(time.monotonic() - t_kill, scaled(4), "the backlog waited for its deadline")
        self.assertGreater(exit_counter(p.log(), "backlog moved"), 0, p.log_tail())


class DnssecBitsTest(harness.ProxyTestCase):
    def _query(self, p, name, cd, do):
        import dns.flags
        import dns.message
        q = dns.message.make_query(name, "A", want_dnssec=do, use_edns=0 if do else None)
        if cd:
            q.flags |= dns.flags.CD
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(scaled(4))
            s.sendto(q.to_wire(), p.udp_addr)
            return q, parse(s.recv(65535))
        finally:
            s.close()

    def test_cd_and_do_must_match(self):
        """Answers carry the query's CD and DO bits back. An answer whose CD or DO differ is for
        another query (a late answer after ID reuse) and never reaches this client: SERVFAIL."""
        import dns.flags
        cfg = self.make_config(server={"read_timeout": "400ms"}, upstream={"query_timeout": "1200ms"})
        with self.proxy(cfg) as p:
            for cd, do in ((False, False), (True, False), (False, True), (True, True)):
                name = f"cd{int(cd)}-do{int(do)}.dnssec.test."
                q, r = self._query(p, name, cd, do)
                self.assertIsNone(answer_problem(r, name, "A", q.id), name)
                self.assertEqual(bool(r.flags & dns.flags.CD), cd, name)
                self.assertEqual(bool(r.ednsflags & dns.flags.DO), do, name)
            self.up.flip_dnssec_bits = True
            for cd, do in ((True, False), (False, True)):
                name = f"flipped-cd{int(cd)}-do{int(do)}.dnssec.test."
                sent = self.up.responses_sent
                q, r = self._query(p, name, cd, do)
                self.assertEqual(r.rcode(), 2, f"{name}: an answer with other CD/DO was delivered")
                self.assertGreater(self.up.responses_sent, sent, self.upstream_snapshot())


class HealthTest(harness.ProxyTestCase):
    def test_slow_queries_do_not_take_a_healthy_server_down(self):
        """Two servers, read_timeout 300ms: eight slow queries (2 s) whose attempt timers fire
        together count as one timeout per server, so no server is marked down, and the slow
        answers are still delivered."""
        other = self.start_upstream()
        servers = [self.server_entry(u, read_timeout="300ms") for u in (self.up, other)]
        cfg = self.make_config(servers=servers, upstream={"query_timeout": "3s",
                                                          "max_connection_retries": 1})
        with self.proxy(cfg) as p:
            items = [(f"slow-2000.s{i}.health.test.", "A") for i in range(8)]
            for (name, _), (q, r, _) in zip(items, udp_many(items, *p.udp_addr, timeout=scaled(4))):
                self.assertIsNone(answer_problem(parse(r) if r else None, name, "A", q.id), name)
            q, r = p.udp("after-slow.health.test.")
            self.assertAnswer(r, "after-slow.health.test.", "A", q.id)
        self.assertNotRegex(p.log(), r"upstream \S+: down", "slow queries took a server down")


def spki_pin(cert_path: str) -> str:
    """The RFC 7469 pin-sha256 of a certificate's key, with the openssl CLI."""
    import base64
    import hashlib
    import subprocess
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-pubkey", "-noout"],
                         capture_output=True, check=True, timeout=30).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True, timeout=30).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class PaddingTest(harness.ProxyTestCase):
    def test_queries_are_padded_and_answers_unpadded(self):
        """edns_padding (default on): every query the upstream receives carries an RFC 7830
        padding option and is a multiple of 128 bytes; the client gets back the OPT it would have
        got: none when it sent none, one without padding when it sent one."""
        with self.proxy() as p:
            for name in ("a.pad.test.", "a-much-longer-name-to-cross-a-block.pad.test.", "x.y.z.pad.test."):
                q, r = p.udp(name)
                self.assertAnswer(r, name, "A", q.id)
                m = parse(r)
                self.assertIsNone(m.opt, f"{name}: an OPT the client did not send")
                self.assertEqual(len(m.additional), 0, f"{name}: additional records {m.additional}")
                q, r = p.udp(name, edns=1232)
                self.assertAnswer(r, name, "A", q.id)
                m = parse(r)
                self.assertIsNotNone(m.opt, f"{name}: the client's OPT was removed")
                self.assertEqual([o for o in m.options if o.otype == 12], [],
                                 f"{name}: padding reached the client")
                q, r = p.tcp(name)
                self.assertAnswer(r, name, "A", q.id)
                self.assertIsNone(parse(r).opt, f"{name} over TCP: an OPT the client did not send")
            self.assertGreaterEqual(self.up.queries_padded, 9, self.upstream_snapshot())
            self.assertEqual(self.up.padded_off_block, 0, self.upstream_snapshot())

    def test_padding_can_be_turned_off(self):
        cfg = self.make_config(server={"edns_padding": False})
        with self.proxy(cfg) as p:
            base = self.up.queries_padded
            q, r = p.udp("off.pad.test.")
            self.assertAnswer(r, "off.pad.test.", "A", q.id)
            self.assertIsNone(parse(r).opt)
            self.assertEqual(self.up.queries_padded, base, self.upstream_snapshot())


class SpkiPinTest(harness.ProxyTestCase):
    def test_matching_pin_answers_also_after_resumption(self):
        """A pin of the server's key: queries are answered, and still after the connection was
        replaced with a resumed handshake (stale_timeout 1s)."""
        cfg = self.make_config(server={"spki_pins": [spki_pin(self.certs.server_cert)],
                                       "connection_pool_size": 1, "stale_timeout": "1s"})
        with self.proxy(cfg, verbosity="debug") as p:
            q, r = p.udp("pinned.pin.test.")
            self.assertAnswer(r, "pinned.pin.test.", "A", q.id)
            self.assertTrue(wait_until(lambda: "resumed handshake" in p.log(), scaled(5)),
                            "no resumed handshake after stale_timeout")
            for i in range(3):
                q, r = p.udp(f"resumed{i}.pin.test.")
                self.assertAnswer(r, f"resumed{i}.pin.test.", "A", q.id, "after a resumed handshake")
        self.assertNotIn("spki_pins", p.log())

    def test_mismatching_pin_fails_the_server(self):
        """A pin of another key (plus one that is not even a key of the chain): every handshake
        fails, the server is marked down, clients get SERVFAIL, nothing is sent to it."""
        cfg = self.make_config(server={"spki_pins": [spki_pin(self.certs.wrong_cert)]})
        with self.proxy(cfg, ready="listen") as p:
            time.sleep(0.5)
            for i in range(3):
                q, r = p.udp(f"mismatch{i}.pin.test.", timeout=scaled(4))
                self.assertServfail(r, q.id, "pin mismatch")
            self.assertEqual(self.up.queries_received, 0, self.upstream_snapshot())
        log = p.log()
        self.assertIn("no certificate of the server matches its spki_pins", log)
        self.assertRegex(log, r"upstream \S+: down")


if __name__ == "__main__":
    unittest.main()
