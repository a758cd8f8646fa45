#!/usr/bin/env python3
"""A fake DNS-over-TLS upstream (RFC 7858: TLS over TCP, 2-byte length framing) with fault knobs.

Two ways to use it:

* In-process (the integration tests): ``FakeDotUpstream(cert, key).start()`` runs an asyncio loop in a
  background thread. Knobs are plain attributes that may be changed at any time from the test
  thread; counters are plain attributes too (``queries_received`` ...), see ``snapshot()``.
* CLI (the README demo, the load test): ``python3 fake_dot_upstream.py --listen 127.0.0.1:8853
  --cert server.pem --key server.key [--port-file F] [knobs]`` prints ``ready <port>``; on SIGTERM or
  SIGINT it prints ``stats <json>`` and exits 0 (SIGUSR1 prints the stats line without exiting).

Answers are synthesised from the question (no zone): QR=1, RA=1, RD copied, the same ID and the
question echoed byte for byte. A: one record whose address is derived from the lower-cased qname
(``expected_a``), AAAA likewise (``expected_aaaa``), TXT: the lower-cased qname, other types: NOERROR
with no answer; TTL 60. If the query carried an OPT record the response carries one too.
Special first labels:
  size-N   the answer is padded with TXT records (whatever the qtype) so that the whole message is
           N bytes (N <= 65000; at least the unpadded size)
  slow-MS  wait MS milliseconds before answering (other queries are not held up)
  nx       NXDOMAIN

TLS is done by hand with ssl.MemoryBIO, so the knobs control the records exactly: normally one TLS
record per response; ``split_records`` sends every byte of the stream as its own record (and its own
send()); ``coalesce`` puts every response of a batch into one write (one record up to 16 KiB).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import ipaddress
import json
import os
import random
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time

__all__ = ["FakeDotUpstream", "expected_a", "expected_aaaa", "expected_txt", "name_labels"]

# ---------------------------------------------------------------------------------------------------
# Deterministic answers, shared with the test clients.


def name_labels(name) -> list[bytes]:
    """Labels of a name (str like "Example.COM." or a dns.name.Name), without the root label."""
    if hasattr(name, "labels"):
        return [bytes(l) for l in name.labels if l]
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("latin-1")
    return [l.encode("latin-1") for l in name.rstrip(".").split(".") if l]


def _key(labels) -> bytes:
    return b".".join(l.lower() for l in labels) + b"."


def _digest(labels) -> bytes:
    return hashlib.sha256(_key(labels)).digest()


def address_v4(labels) -> bytes:
    d = _digest(labels)
    return bytes([10, d[0], d[1], d[2]])


def address_v6(labels) -> bytes:
    d = _digest(labels)
    return b"\xfd\x00" + d[2:16]


def expected_a(name) -> str:
    """The address the fake upstream answers for an A query for ``name`` (case-insensitive)."""
    return str(ipaddress.IPv4Address(address_v4(name_labels(name))))


def expected_aaaa(name) -> str:
    return str(ipaddress.IPv6Address(address_v6(name_labels(name))))


def expected_txt(name) -> bytes:
    return _key(name_labels(name))[:255]


# ---------------------------------------------------------------------------------------------------
# Wire format (just enough; queries never use compression).

TYPE_A, TYPE_TXT, TYPE_AAAA, TYPE_OPT = 1, 16, 28, 41
RCODE_FORMERR, RCODE_NXDOMAIN = 1, 3
MAX_SIZE = 65000
_SIZE_RE = re.compile(rb"size-(\d+)")
_SLOW_RE = re.compile(rb"slow-(\d+)")


def _parse_name(msg: bytes, off: int):
    labels = []
    total = 0
    while True:
        if off >= len(msg):
            raise ValueError("name runs past the end")
        n = msg[off]
        off += 1
        if n == 0:
            return labels, off
        if n & 0xC0:
            raise ValueError("compression in a query name")
        if off + n > len(msg):
            raise ValueError("label runs past the end")
        total += n + 1
        if total > 255:
            raise ValueError("name too long")
        labels.append(msg[off:off + n])
        off += n


def _has_padding(rdata: bytes) -> bool:
    """Whether OPT rdata (read from its RDLENGTH) holds an RFC 7830 padding option."""
    if len(rdata) < 2:
        return False
    n = struct.unpack("!H", rdata[:2])[0]
    off, end = 2, min(2 + n, len(rdata))
    while off + 4 <= end:
        code, size = struct.unpack("!HH", rdata[off:off + 4])
        if code == 12:
            return True
        off += 4 + size
    return False


def query_padding(query: bytes) -> bool:
    """Whether the query's OPT (if it is the record right after the question) carries padding."""
    try:
        _labels, end = _parse_name(query, 12)
    except ValueError:
        return False
    qend = end + 4
    if len(query) < qend + 11 or query[qend] != 0 or query[qend + 1:qend + 3] != b"\x00\x29":
        return False
    return _has_padding(query[qend + 9:])


def _txt_rr(ttl: int, strings) -> bytes:
    rdata = b"".join(bytes([len(s)]) + s for s in strings)
    return b"\xc0\x0c" + struct.pack("!HHIH", TYPE_TXT, 1, ttl, len(rdata)) + rdata


def build_response(query: bytes, *, ttl: int = 60, wrong_id=False, wrong_question=False,
                   flip_dnssec_bits=False):
    """Returns (response bytes or None to ignore, delay in ms, info string)."""
    if len(query) < 12:
        return None, 0, "short"
    qid, flags, qd, _an, _ns, ar = struct.unpack("!HHHHHH", query[:12])
    if flags & 0x8000:
        return None, 0, "qr"
    opcode = (flags >> 11) & 0xF
    base_flags = 0x8000 | (opcode << 11) | (flags & 0x0110) | 0x0080  # RD and CD copied
    try:
        if qd != 1:
            raise ValueError("qdcount != 1")
        labels, end = _parse_name(query, 12)
        if end + 4 > len(query):
            raise ValueError("question truncated")
        qtype, _qclass = struct.unpack("!HH", query[end:end + 4])
        qend = end + 4
    except ValueError as e:
        return struct.pack("!HHHHHH", qid, base_flags | RCODE_FORMERR, 0, 0, 0, 0), 0, str(e)

    opt = b""
    padded = False
    if ar >= 1 and qend + 11 <= len(query) and query[qend] == 0:
        if struct.unpack("!H", query[qend + 1:qend + 3])[0] == TYPE_OPT:
            ttl = struct.unpack("!I", query[qend + 5:qend + 9])[0]
            padded = _has_padding(query[qend + 9:])
            # DO copied (RFC 3225 §3); a padded query gets a padded answer (RFC 8467 §4.1)
            options = struct.pack("!HH", 12, 20) + bytes(20) if padded else b""
            do_bit = (ttl & 0x8000) ^ (0x8000 if flip_dnssec_bits else 0)
            opt = b"\x00" + struct.pack("!HHIH", TYPE_OPT, 1232, do_bit, len(options)) + options

    question = query[12:qend]
    if wrong_question:
        question = b"\x05wrong" + question
        labels = [b"wrong"] + labels
    first = labels[0].lower() if labels else b""
    rcode = 0
    delay = 0
    answers = []
    m = _SLOW_RE.fullmatch(first)
    if m:
        delay = int(m.group(1))
    size = None
    m = _SIZE_RE.fullmatch(first)
    if m:
        size = min(int(m.group(1)), MAX_SIZE)
    if first == b"nx":
        rcode = RCODE_NXDOMAIN
    elif size is not None:
        remaining = size - (12 + len(question) + len(opt))
        filler = (hashlib.sha256(_key(labels)).hexdigest().encode() * 5)[:255]
        while remaining >= 13:
            n = min(255, remaining - 13)
            left = remaining - 13 - n
            if 0 < left < 13:
                n -= 13 - left
            answers.append(_txt_rr(ttl, [filler[:n]]))
            remaining -= 13 + n
    elif qtype == TYPE_A:
        answers.append(b"\xc0\x0c" + struct.pack("!HHIH", TYPE_A, 1, ttl, 4) + address_v4(labels))
    elif qtype == TYPE_AAAA:
        answers.append(b"\xc0\x0c" + struct.pack("!HHIH", TYPE_AAAA, 1, ttl, 16) + address_v6(labels))
    elif qtype == TYPE_TXT:
        answers.append(_txt_rr(ttl, [_key(labels)[:255]]))

    rid = qid
    if wrong_id == "random":
        rid = random.randrange(65535)
        if rid >= qid:
            rid += 1
    elif wrong_id:
        rid = (qid + 1) & 0xFFFF
    if flip_dnssec_bits:
        base_flags ^= 0x0010  # CD
    header = struct.pack("!HHHHHH", rid, base_flags | rcode, 1, len(answers), 0, 1 if opt else 0)
    return header + question + b"".join(answers) + opt, delay, _key(labels).decode("latin-1")


# ---------------------------------------------------------------------------------------------------
# The server.

_KNOBS = {
    "answer_delay_ms": 0,      # added to every answer's delay
    "out_of_order": False,     # False | "reverse" (or True) | "shuffle": answers of a batch reordered
    "batch_window_ms": 20,     # how long answers are gathered for out_of_order / coalesce
    "idle_close_s": 0.0,       # close (close_notify + FIN) connections with nothing to do for this long
    "close_after_queries": 0,  # on reading the Nth query of a connection, close it without answering
    "close_mode": "fin",       # how knobs close: "fin" (close_notify + FIN), "rst" (reset), "eof" (FIN only)
    "wrong_id": False,         # False | "plus1" (or True) | "random": answer with another ID
    "wrong_question": False,   # answer for "wrong.<qname>" instead
    "split_records": False,    # every byte of the stream in its own TLS record and its own send()
    "coalesce": False,         # all answers of a batch in one write
    "black_hole": False,       # new connections: accept TCP, never do TLS, never answer
    "ignore_queries": False,   # read queries and never answer them
    "ttl": 60,
    "handshake_timeout_s": 10.0,
    "max_connections": 0,      # > 0: like unbound's incoming-num-tcp, at most this many established
                               # connections; one more is closed (close_notify + FIN) right after
                               # its handshake, before any query is read (counted in "capped")
    "tls_version": None,       # None (1.2 or 1.3, as negotiated) | "1.2" | "1.3": pin the version (set_cert)
    "cap_mode": "close",       # how max_connections caps: "close" (as above) or "stall": a new
                               # connection while max_connections are up (ready or in handshake)
                               # gets no TLS at all, as unbound leaves the ones beyond its cap in
                               # its accept queue (counted in "capped")
    # One-shot faults, each consumed by the next query received (instead of its answer):
    "inject_once": None,       # None | "garbage" (unframed bytes) | "query_frame" (the query echoed,
                               # QR=0) | "unknown_id" (the answer with an ID never sent)
    "close_on_label": None,    # bytes: a query whose first label is this closes its connection (RST)
    "stop_reading": False,     # stop reading from every connection (TCP back-pressure on the proxy)
    "flip_dnssec_bits": False,  # answer with CD and the OPT's DO bit inverted (another query's answer)
}

GARBAGE = b"this is not DNS at all, just a stream of garbage bytes\n"


class _Conn(asyncio.Protocol):
    def __init__(self, srv: "FakeDotUpstream"):
        self.srv = srv
        self.id = None
        self.transport = None
        self.sslobj = None
        self.state = "new"
        self.inbuf = bytearray()
        self.nqueries = 0
        self.inflight = 0
        self.batch = []
        self.batch_handle = None
        self.last_activity = time.monotonic()
        self.started = self.last_activity
        self.we_closed = False
        self.got_close_notify = False

    # asyncio callbacks ---------------------------------------------------------------------------
    def connection_made(self, transport):
        srv = self.srv
        self.transport = transport
        self.id = srv._next_conn_id
        srv._next_conn_id += 1
        srv.connections_accepted += 1
        srv.connections_open += 1
        srv._conns.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if srv.black_hole:
            self.state = "black_hole"
            srv.black_holed += 1
            return
        if srv.max_connections and srv.cap_mode == "stall":
            up = sum(1 for c in srv._conns if c.state in ("handshake", "ready"))
            if up >= srv.max_connections:
                self.state = "black_hole"
                srv.capped += 1
                return
        self.inbio = ssl.MemoryBIO()
        self.outbio = ssl.MemoryBIO()
        self.sslobj = srv._ctx.wrap_bio(self.inbio, self.outbio, server_side=True)
        self.state = "handshake"

    def data_received(self, data):
        if self.state in ("black_hole", "closed"):
            return
        self.inbio.write(data)
        if self.state == "handshake":
            try:
                self.sslobj.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return
            except (ssl.SSLError, OSError) as e:
                self.srv.handshake_failures += 1
                self.srv.last_handshake_error = str(e)
                self._flush()
                self._close("eof")
                return
            self.state = "ready"
            self.srv.handshakes_completed += 1
            self.last_activity = time.monotonic()
            ready = sum(1 for c in self.srv._conns if c.state == "ready")
            if self.srv.max_connections and ready > self.srv.max_connections:
                self.srv.capped += 1
                self._flush()
                self._close("fin")
                return
            self.srv.max_ready_seen = max(self.srv.max_ready_seen, ready)
        while True:
            try:
                chunk = self.sslobj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify (some Python versions)
                chunk = b""
            except (ssl.SSLError, OSError) as e:
                self.srv.last_read_error = str(e)
                self._close("rst")
                return
            if not chunk:  # the peer's close_notify: SSL_ERROR_ZERO_RETURN reads as b""
                if not self.got_close_notify:
                    self.got_close_notify = True
                    self.srv.close_notify_received += 1
                break
            self.inbuf += chunk
        self._flush()
        self._parse_frames()
        if self.got_close_notify:  # answer it with ours and close, as servers do
            self._close("fin", by_peer=True)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        srv = self.srv
        if self.state != "closed":
            self.state = "closed"
        srv.connections_open -= 1
        srv.connections_closed += 1
        if not self.we_closed:
            srv.closed_by_peer += 1
        srv._conns.discard(self)
        if self.batch_handle:
            self.batch_handle.cancel()

    # queries -------------------------------------------------------------------------------------
    def _parse_frames(self):
        buf = self.inbuf
        while len(buf) >= 2 and self.state == "ready":
            n = (buf[0] << 8) | buf[1]
            if len(buf) < 2 + n:
                break
            msg = bytes(buf[2:2 + n])
            del buf[:2 + n]
            self._on_query(msg)

    def _on_query(self, msg: bytes):
        srv = self.srv
        self.last_activity = time.monotonic()
        self.nqueries += 1
        srv.queries_received += 1
        if query_padding(msg):
            srv.queries_padded += 1
            if len(msg) % 128:
                srv.padded_off_block += 1
        srv.queries_per_connection[self.id] = self.nqueries
        if srv.close_after_queries and self.nqueries == srv.close_after_queries:
            srv.dropped_mid_query += 1
            self._close(srv.close_mode)
            return
        resp, delay, info = build_response(msg, ttl=srv.ttl, wrong_id=srv.wrong_id,
                                           wrong_question=srv.wrong_question,
                                           flip_dnssec_bits=srv.flip_dnssec_bits)
        srv.qnames.append(info)
        if srv.close_on_label is not None and info.split(".")[0].encode() == srv.close_on_label:
            srv.poison_received += 1
            self._close("rst")
            return
        mode, srv.inject_once = srv.inject_once, None
        if mode is not None and resp is not None:
            srv.injected += 1
            if mode == "garbage":
                self._send_raw(GARBAGE)
            elif mode == "query_frame":
                self._send([msg])
            else:
                self._send([struct.pack("!H", struct.unpack("!H", resp[:2])[0] ^ 0x4000) + resp[2:]])
            return
        if resp is None or srv.ignore_queries:
            srv.queries_ignored += 1
            return
        self.inflight += 1
        if self.inflight > srv.max_inflight_seen:
            srv.max_inflight_seen = self.inflight
        delay += srv.answer_delay_ms
        if delay > 0:
            srv._loop.call_later(delay / 1000.0, self._answer, resp)
        else:
            self._answer(resp)

    def _answer(self, resp: bytes):
        self.inflight -= 1
        if self.state != "ready":
            return
        self.last_activity = time.monotonic()
        srv = self.srv
        if srv.out_of_order or srv.coalesce:
            self.batch.append(resp)
            if self.batch_handle is None:
                self.batch_handle = srv._loop.call_later(srv.batch_window_ms / 1000.0, self._flush_batch)
        else:
            self._send([resp])

    def _flush_batch(self):
        self.batch_handle = None
        items, self.batch = self.batch, []
        if self.state != "ready" or not items:
            return
        if self.srv.out_of_order == "shuffle":
            random.shuffle(items)
        elif self.srv.out_of_order:
            items.reverse()
        self._send(items)

    def _send_raw(self, data: bytes):
        try:
            self.sslobj.write(data)
        except (ssl.SSLError, OSError):
            self._close("rst")
            return
        self._flush()

    def _send(self, items):
        srv = self.srv
        frames = [struct.pack("!H", len(r)) + r for r in items]
        try:
            if srv.split_records:
                for b in b"".join(frames):
                    self.sslobj.write(bytes((b,)))
                    self._flush()
            elif srv.coalesce:
                self.sslobj.write(b"".join(frames))
                srv.coalesced_writes += 1
            else:
                for f in frames:
                    self.sslobj.write(f)
        except (ssl.SSLError, OSError):
            self._close("rst")
            return
        self._flush()
        srv.responses_sent += len(items)
        self.last_activity = time.monotonic()

    # plumbing ------------------------------------------------------------------------------------
    def _flush(self):
        if self.sslobj is None or self.transport is None or self.transport.is_closing():
            return
        data = self.outbio.read()
        if data:
            self.transport.write(data)

    def _close(self, mode: str, by_peer: bool = False):
        """mode: "fin" = close_notify then FIN, "eof" = FIN without close_notify, "rst" = reset.
        by_peer: the peer started it (its close_notify); counted as closed_by_peer."""
        if self.state == "closed" or self.transport is None:
            return
        self.we_closed = not by_peer
        self.state = "closed"
        if not by_peer:
            self.srv.closed_by_us += 1
        if mode == "rst":
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            self.transport.abort()
            return
        if mode == "fin" and self.sslobj is not None:
            try:
                self.sslobj.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass
            data = self.outbio.read()
            if data:
                self.transport.write(data)
        self.transport.close()

    def _tick(self, now: float):
        srv = self.srv
        if self.state == "handshake" and now - self.started > srv.handshake_timeout_s:
            srv.handshake_failures += 1
            self._close("eof")
        elif (self.state == "ready" and srv.idle_close_s and self.inflight == 0 and not self.batch
              and now - self.last_activity >= srv.idle_close_s):
            srv.idle_closed += 1
            self._close(srv.close_mode)


_COUNTERS = [
    "connections_accepted", "connections_open", "connections_closed", "closed_by_peer", "closed_by_us",
    "handshakes_completed", "handshake_failures", "black_holed", "queries_received",
    "queries_ignored", "responses_sent", "dropped_mid_query", "idle_closed", "coalesced_writes",
    "close_notify_received", "max_inflight_seen", "injected", "poison_received",
    "queries_padded", "padded_off_block", "capped", "max_ready_seen",
]


class FakeDotUpstream:
    """See the module docstring. All knobs are in _KNOBS; every counter is in _COUNTERS."""

    def __init__(self, cert: str, key: str, host: str = "127.0.0.1", port: int = 0, **knobs):
        self.host = host
        self.port = port
        for k, v in _KNOBS.items():
            setattr(self, k, v)
        for k, v in knobs.items():
            if k not in _KNOBS:
                raise TypeError(f"unknown knob {k!r}")
            setattr(self, k, v)
        self.set_cert(cert, key)
        self._conns: set[_Conn] = set()
        self._next_conn_id = 1
        self._loop = None
        self._server = None
        self._thread = None
        self._stop = None
        self.reset_counters()

    # setup -----------------------------------------------------------------------------------------
    def set_cert(self, cert: str, key: str):
        """Certificate for connections accepted from now on (e.g. wrong.pem)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.tls_version:
            pinned = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[self.tls_version]
            ctx.minimum_version = ctx.maximum_version = pinned
        ctx.load_cert_chain(cert, key)
        self.cert, self.key, self._ctx = cert, key, ctx

    def reset_counters(self):
        for c in _COUNTERS:
            setattr(self, c, 0)
        self.connections_open = len(getattr(self, "_conns", ()))
        self.queries_per_connection = {}
        self.qnames = collections.deque(maxlen=100000)
        self.last_handshake_error = ""
        self.last_read_error = ""

    def snapshot(self) -> dict:
        d = {c: getattr(self, c) for c in _COUNTERS}
        d["queries_per_connection"] = dict(self.queries_per_connection)
        d["port"] = self.port
        return d

    @property
    def addr(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    # asyncio side ----------------------------------------------------------------------------------
    async def _listen(self):
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), self.host, self.port,
                                                reuse_address=True, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _ticker(self):
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for c in list(self._conns):
                c._tick(now)

    async def serve(self, on_ready=None):
        """Runs until stop() (or the returned task is cancelled)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self._listen()
        ticker = asyncio.ensure_future(self._ticker())
        if on_ready:
            on_ready()
        try:
            await self._stop.wait()
        finally:
            ticker.cancel()
            if self._server:
                self._server.close()
            for c in list(self._conns):
                c._close("eof")
            await asyncio.sleep(0)

    # thread side -----------------------------------------------------------------------------------
    def start(self) -> "FakeDotUpstream":
        ready = threading.Event()
        errors = []

        def run():
            try:
                asyncio.run(self.serve(ready.set))
            except BaseException as e:  # surfaced to start() below
                errors.append(e)
                ready.set()

        self._thread = threading.Thread(target=run, name=f"fake-dot-{self.host}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake DoT upstream did not start within 10 s")
        if errors:
            raise RuntimeError(f"fake DoT upstream failed to start: {errors[0]!r}")
        return self

    def stop(self):
        if self._loop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def call(self, fn, *args, timeout: float = 10):
        """Runs fn(*args) in the server's loop (a coroutine function is awaited); returns its result."""
        async def wrapper():
            r = fn(*args)
            if asyncio.iscoroutine(r):
                r = await r
            return r
        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout)

    def set_refuse(self, refuse: bool):
        """True: close the listening socket (connects are refused); False: listen again (same port)."""
        async def go():
            if refuse and self._server is not None:
                self._server.close()  # (wait_closed() would wait for every connection in 3.12+)
                self._server = None
            elif not refuse and self._server is None:
                await self._listen()
        self.call(go)

    def set_stop_reading(self, stop: bool):
        """True: stop reading from every open connection (the proxy's sends back up); False: read
        again."""
        def go():
            self.stop_reading = stop
            for c in list(self._conns):
                if c.transport is not None and not c.transport.is_closing():
                    (c.transport.pause_reading if stop else c.transport.resume_reading)()
        self.call(go)

    def drop_connections(self, mode: str = "fin"):
        """Closes every open connection now ("fin", "eof" or "rst")."""
        def go():
            for c in list(self._conns):
                c._close(mode)
        self.call(go)


# ---------------------------------------------------------------------------------------------------
# CLI


def _parse_listen(s: str):
    m = re.fullmatch(r"\[(.*)\]:(\d+)|([^:]*):(\d+)", s)
    if not m:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or [V6]:PORT, got {s!r}")
    return (m.group(1), int(m.group(2))) if m.group(1) is not None else (m.group(3), int(m.group(4)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", type=_parse_listen, default=("127.0.0.1", 0), help="HOST:PORT (port 0: any)")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--answer-delay-ms", type=int, default=0)
    p.add_argument("--out-of-order", choices=["reverse", "shuffle"])
    p.add_argument("--batch-window-ms", type=int, default=20)
    p.add_argument("--idle-close-s", type=float, default=0)
    p.add_argument("--close-after-queries", type=int, default=0)
    p.add_argument("--close-mode", choices=["fin", "eof", "rst"], default="fin")
    p.add_argument("--wrong-id", choices=["plus1", "random"])
    p.add_argument("--wrong-question", action="store_true")
    p.add_argument("--split-records", action="store_true")
    p.add_argument("--coalesce", action="store_true")
    p.add_argument("--black-hole", action="store_true")
    p.add_argument("--ignore-queries", action="store_true")
    p.add_argument("--ttl", type=int, default=60)
    p.add_argument("--max-connections", type=int, default=0)
    a = p.parse_args(argv)

    knobs = {k: getattr(a, k) for k in _KNOBS if hasattr(a, k) and getattr(a, k) is not None}
    knobs["out_of_order"] = a.out_of_order or False
    knobs["wrong_id"] = a.wrong_id or False
    srv = FakeDotUpstream(a.cert, a.key, host=a.listen[0], port=a.listen[1], **knobs)

    def print_stats():
        print("stats " + json.dumps(srv.snapshot(), sort_keys=True), flush=True)

    def on_ready():
        if a.port_file:
            with open(a.port_file + ".tmp", "w") as f:
                f.write(f"{srv.port}\n")
            os.replace(a.port_file + ".tmp", a.port_file)
        print(f"ready {srv.port}", flush=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, srv._stop.set)
        loop.add_signal_handler(signal.SIGUSR1, print_stats)

    asyncio.run(srv.serve(on_ready))
    print_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main())
