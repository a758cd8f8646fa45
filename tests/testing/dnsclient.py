"""Client-side helpers for the dotproxy integration tests.

* ports and timing: ``free_port``, ``wait_until``, ``scaled`` (DOTPROXY_TEST_TIME_SCALE stretches every
  bound, default 1)
* queries: ``make_query`` / ``query_wire`` (dnspython), ``udp_query``, ``tcp_query``,
  ``TcpClient`` (raw framing: any split, pipelining, half-close), ``tcp_pipeline``
* checks: ``answer_problem`` says what is wrong with a response (None if it is the right one)
* processes: ``ProxyProcess`` (the binary under test, from a config dict) and ``FakeUpstreamProcess``
  (fake_dot_upstream.py run as a separate process)
* /proc readers: ``fd_count``, ``rss_kb``, ``is_sanitized``

Everything binds and connects on loopback only.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

try:
    import dns.message  # noqa: F401
except ImportError:  # e.g. a pyenv python first on PATH; Debian's python3-dnspython is pure Python
    for _p in ("/usr/lib/python3/dist-packages",):
        if os.path.isdir(os.path.join(_p, "dns")) and _p not in sys.path:
            sys.path.append(_p)
import dns.edns  # noqa: E402
import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fake_dot_upstream import expected_a, expected_aaaa, expected_txt  # noqa: E402

TIME_SCALE = float(os.environ.get("DOTPROXY_TEST_TIME_SCALE", "1") or 1)
SOURCE_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def read_log(path: str) -> str:
    """A process's log file as text; empty when it does not exist (yet)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def scaled(seconds: float) -> float:
    return seconds * TIME_SCALE


def wait_until(pred, timeout: float, interval: float = 0.02):
    """Polls pred() until it returns something true or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def have_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free for both TCP and UDP on host right now."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(fam, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(fam, socket.SOCK_DGRAM) as u:
                    u.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------------------------------------------
# Queries and checks


def make_query(name: str, rdtype="A", qid: int | None = None, edns: int | None = None) -> dns.message.Message:
    """edns: None = no OPT record, else the advertised UDP payload size."""
    q = dns.message.make_query(name, rdtype, use_edns=(edns is not None), payload=edns or 512)
    if qid is not None:
        q.id = qid
    else:
        q.id = random.randrange(65536)
    return q


def query_wire(name: str, rdtype="A", qid: int | None = None, edns: int | None = None) -> bytes:
    return make_query(name, rdtype, qid, edns).to_wire()


def frame(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


def parse(wire: bytes) -> dns.message.Message:
    return dns.message.from_wire(wire, ignore_trailing=False)


def answer_problem(resp, name: str, rdtype="A", qid: int | None = None) -> str | None:
    """None when resp (wire bytes or Message) is exactly the fake upstream's answer for (name, rdtype)
    with the given ID; else a one-line description of what is wrong."""
    if resp is None:
        return f"no response for {name} {rdtype}"
    if isinstance(resp, (bytes, bytearray)):
        try:
            msg = parse(bytes(resp))
        except Exception as e:  # noqa: BLE001
            return f"unparsable response for {name}: {e!r} ({len(resp)} bytes)"
    else:
        msg = resp
    rdtype = dns.rdatatype.from_text(rdtype) if isinstance(rdtype, str) else rdtype
    if qid is not None and msg.id != qid:
        return f"{name}: response ID {msg.id} != query ID {qid}"
    if not msg.flags & dns.flags.QR:
        return f"{name}: QR bit not set"
    rc = msg.rcode()
    if rc != dns.rcode.NOERROR:
        return f"{name}: rcode {dns.rcode.to_text(rc)}, expected NOERROR"
    if msg.flags & dns.flags.TC:
        return f"{name}: TC set on a response that should be complete"
    if len(msg.question) != 1:
        return f"{name}: {len(msg.question)} questions in response"
    q = msg.question[0]
    if q.name != dns.name.from_text(name) or q.rdtype != rdtype:
        return f"{name}: response is for question {q.name} {dns.rdatatype.to_text(q.rdtype)}"
    got = [(rr.rdtype, rd) for rr in msg.answer for rd in rr]
    if rdtype == dns.rdatatype.A:
        want = expected_a(name)
        addrs = [rd.address for t, rd in got if t == dns.rdatatype.A]
        if addrs != [want]:
            return f"{name}: A answer {addrs}, expected [{want}]"
    elif rdtype == dns.rdatatype.AAAA:
        want = expected_aaaa(name)
        addrs = [rd.address for t, rd in got if t == dns.rdatatype.AAAA]
        if addrs != [want]:
            return f"{name}: AAAA answer {addrs}, expected [{want}]"
    elif rdtype == dns.rdatatype.TXT and not name.lower().startswith("size-"):
        strings = [b"".join(rd.strings) for t, rd in got if t == dns.rdatatype.TXT]
        if strings != [expected_txt(name)]:
            return f"{name}: TXT answer {strings}, expected [{expected_txt(name)!r}]"
    return None


def rcode_of(wire: bytes) -> int:
    return struct.unpack("!H", wire[2:4])[0] & 0xF


def id_of(wire: bytes) -> int:
    return struct.unpack("!H", wire[:2])[0]


# ---------------------------------------------------------------------------------------------------
# UDP and TCP exchanges


def _family(host: str):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def udp_exchange(wire: bytes, host: str, port: int, timeout: float = 3.0, expect_id: int | None = None,
                 source: str | None = None):
    """Sends one datagram (from address `source`, if given); returns the first reply (bytes) whose ID
    matches (if given), or None."""
    if expect_id is None and len(wire) >= 2:
        expect_id = id_of(wire)
    with socket.socket(_family(host), socket.SOCK_DGRAM) as s:
        if source:
            s.bind((source, 0))
        s.connect((host, port))
        s.send(wire)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            s.settimeout(left)
            try:
                data = s.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                return None
            if expect_id is None or (len(data) >= 2 and id_of(data) == expect_id):
                return data


def udp_query(name: str, host: str, port: int, rdtype="A", edns=None, timeout: float = 3.0, qid=None):
    """Returns (query Message, response wire bytes or None)."""
    q = make_query(name, rdtype, qid, edns)
    return q, udp_exchange(q.to_wire(), host, port, timeout)


def udp_many(items, host: str, port: int, timeout: float = 5.0, edns=None):
    """Sends many queries at once, one socket each. items: [(name, rdtype)]. Returns a list, in the
    same order, of (query Message, response bytes or None, seconds until the response)."""
    socks, queries, results = [], [], {}
    try:
        t0 = time.monotonic()
        for name, rdtype in items:
            s = socket.socket(_family(host), socket.SOCK_DGRAM)
            s.setblocking(False)
            s.connect((host, port))
            q = make_query(name, rdtype, None, edns)
            s.send(q.to_wire())
            socks.append(s)
            queries.append(q)
        index = {s.fileno(): i for i, s in enumerate(socks)}
        deadline = t0 + timeout
        while len(results) < len(socks):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            waiting = [s for i, s in enumerate(socks) if i not in results]
            ready, _, _ = select.select(waiting, [], [], min(left, 0.5))
            for s in ready:
                i = index[s.fileno()]
                try:
                    data = s.recv(65535)
                except OSError:
                    continue
                if len(data) >= 2 and id_of(data) == queries[i].id:
                    results[i] = (data, time.monotonic() - t0)
        return [(q, *results.get(i, (None, None))) for i, q in enumerate(queries)]
    finally:
        for s in socks:
            s.close()


class TcpClient:
    """A raw DNS-over-TCP client: bytes go out exactly as the test says, frames are read back."""

    def __init__(self, host: str, port: int, timeout: float = 5.0, source: str | None = None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def send_pieces(self, data: bytes, sizes, gap: float = 0.0):
        """Sends data in pieces of the given sizes (the rest at the end), gap seconds apart."""
        off = 0
        for n in sizes:
            self.sock.sendall(data[off:off + n])
            off += n
            if gap:
                time.sleep(gap)
        if off < len(data):
            self.sock.sendall(data[off:])

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_frame(self, timeout: float = 5.0):
        """One response (bytes), or None on timeout / EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                n = struct.unpack("!H", self.buf[:2])[0]
                if len(self.buf) >= 2 + n:
                    msg, self.buf = self.buf[2:2 + n], self.buf[2 + n:]
                    return msg
            if self.eof or not self._fill(deadline):
                return None

    def read_frames(self, count: int, timeout: float = 5.0) -> list:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < count:
            m = self.read_frame(max(0.0, deadline - time.monotonic()))
            if m is None:
                break
            out.append(m)
        return out

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True once the peer has closed (EOF or reset) within timeout; data read meanwhile is kept."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if not self._fill(deadline) and not self.eof:
                return False
        return True


def tcp_query(name: str, host: str, port: int, rdtype="A", timeout: float = 5.0, qid=None):
    """Returns (query Message, response wire bytes or None) over a fresh TCP connection."""
    q = make_query(name, rdtype, qid)
    with TcpClient(host, port, timeout) as c:
        c.send(frame(q.to_wire()))
        return q, c.read_frame(timeout)


def match_responses(queries: dict, responses) -> list:
    """queries: {id: (name, rdtype)}; responses: wire bytes. Returns a list of problems (empty = all
    answered exactly once and correctly)."""
    problems = []
    seen = set()
    for r in responses:
        if len(r) < 12:
            problems.append(f"short response ({len(r)} bytes)")
            continue
        rid = id_of(r)
        if rid not in queries:
            problems.append(f"response with unknown ID {rid}")
            continue
        if rid in seen:
            problems.append(f"second response for ID {rid}")
            continue
        seen.add(rid)
        name, rdtype = queries[rid]
        p = answer_problem(r, name, rdtype, rid)
        if p:
            problems.append(p)
    missing = sorted(set(queries) - seen)
    if missing:
        problems.append(f"{len(missing)} of {len(queries)} queries unanswered, e.g. "
                        f"{[queries[i][0] for i in missing[:5]]}")
    return problems


# ---------------------------------------------------------------------------------------------------
# /proc


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def is_sanitized(pid: int) -> bool:
    """True when the process runs with ASan (its quarantine keeps freed memory resident)."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def udp_port_bound(port: int) -> bool:
    hexport = f":{port:04X}"
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    if line.split()[1].endswith(hexport):
                        return True
        except (OSError, StopIteration):
            pass
    return False


# ---------------------------------------------------------------------------------------------------
# YAML (emitted by hand: PyYAML is not always there)


def _yaml_scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent: int = 0) -> str:
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                out.append(f"{pad}{k}:\n{to_yaml(v, indent + 2)}")
            elif isinstance(v, list) and v:
                out.append(f"{pad}{k}:\n{to_yaml(v, indent + 2)}")
            elif isinstance(v, dict):
                out.append(f"{pad}{k}: {{}}\n")
            elif isinstance(v, list):
                out.append(f"{pad}{k}: []\n")
            else:
                out.append(f"{pad}{k}: {_yaml_scalar(v)}\n")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 2)
                out.append(f"{pad}- {body[indent + 2:]}")
            else:
                out.append(f"{pad}- {_yaml_scalar(item)}\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------------------
# The proxy under test


def proxy_binary() -> str:
    b = os.environ.get("DOTPROXY_BIN")
    if b:
        return b
    for cand in (os.path.join(SOURCE_ROOT, "build", "src", "dotproxy"),
                 os.path.join(HERE, "..", "..", "build", "src", "dotproxy")):
        if os.path.exists(cand):
            return os.path.abspath(cand)
    return os.path.join(SOURCE_ROOT, "build", "src", "dotproxy")


class ProxyError(AssertionError):
    pass


class ProxyProcess:
    """Runs the proxy on a config dict. ``with ProxyProcess(cfg, workdir) as p:`` ...

    ready: "udp" = wait until a UDP query is answered (any answer), "listen" = wait until the TCP
    listener accepts and the UDP port is bound, "none" = return at once. On exit: SIGTERM, wait, and
    fail unless it exited 0 in time (then SIGKILL, only this process)."""

    def __init__(self, config: dict, workdir: str, *, binary: str | None = None, verbosity: str = "info",
                 ready: str = "udp", ready_timeout: float = 15.0, stop_timeout: float = 5.0,
                 extra_args=()):
        self.config = config
        self.workdir = workdir
        self.binary = binary or proxy_binary()
        self.verbosity = verbosity
        self.ready = ready
        self.ready_timeout = scaled(ready_timeout)
        self.stop_timeout = scaled(stop_timeout)
        self.extra_args = list(extra_args)
        self.proc = None
        self.exit_code = None
        self.stop_seconds = None
        fd, self.config_path = tempfile.mkstemp(prefix="dotproxy-", suffix=".yaml", dir=workdir)
        with os.fdopen(fd, "w") as f:
            f.write(to_yaml(config))
        self.log_path = self.config_path[:-5] + ".log"
        self.udp_addr = self._addr("udp")
        self.tcp_addr = self._addr("tcp")

    def _addr(self, kind):
        a = self.config.get("listener", {}).get(kind, {}).get("addr")
        if isinstance(a, list):
            a = a[0] if a else None  # a list of addresses: probe the first
        if not a:
            return None
        host, _, port = a.rpartition(":")
        # ":PORT" and "[::]:PORT" serve every local address: probe loopback.
        return host.strip("[]") if host.strip("[]") not in ("", "::") else "127.0.0.1", int(port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return read_log(self.log_path)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def describe(self) -> str:
        return (f"proxy {self.binary} (config {self.config_path}):\n--- config ---\n{to_yaml(self.config)}"
                f"--- last log lines ---\n{self.log_tail()}\n---")

    def start(self):
        if not os.path.exists(self.binary):
            raise ProxyError(f"proxy binary {self.binary} does not exist (set DOTPROXY_BIN)")
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--config", self.config_path, "--verbosity", self.verbosity] + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT, cwd=self.workdir)
        try:
            self._wait_ready()
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def _wait_ready(self):
        if self.ready == "none":
            return
        deadline = time.monotonic() + self.ready_timeout
        ok = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ProxyError(f"proxy exited with {self.proc.returncode} during start-up\n{self.describe()}")
            if self._probe():
                ok = True
                break
            time.sleep(0.05)
        if not ok:
            raise ProxyError(f"proxy not ready ({self.ready}) within {self.ready_timeout:.1f} s\n{self.describe()}")

    def _probe(self) -> bool:
        if self.tcp_addr:
            try:
                socket.create_connection(self.tcp_addr, timeout=0.5).close()
            except OSError:
                return False
        if self.udp_addr and not udp_port_bound(self.udp_addr[1]):
            return False
        if self.ready == "udp" and self.udp_addr:
            q = query_wire("ready-probe.test.", "A")
            return udp_exchange(q, *self.udp_addr, timeout=0.5) is not None
        return True

    def send_signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, check: bool = True, sig=signal.SIGTERM):
        """Stops the proxy; with check, raises ProxyError unless it exits 0 within stop_timeout."""
        if self.proc is None:
            return
        problem = None
        if self.proc.poll() is None:
            t0 = time.monotonic()
            self.proc.send_signal(sig)
            try:
                self.proc.wait(self.stop_timeout)
                self.stop_seconds = time.monotonic() - t0
            except subprocess.TimeoutExpired:
                problem = f"proxy did not exit within {self.stop_timeout:.1f} s of {signal.Signals(sig).name}"
                self.proc.kill()
                self.proc.wait(10)
        elif check:
            problem = f"proxy had already exited (code {self.proc.returncode}) before it was stopped"
        self.exit_code = self.proc.returncode
        if problem is None and self.exit_code != 0:
            problem = f"proxy exited with code {self.exit_code} after {signal.Signals(sig).name}"
        self.logf.close()
        if check and problem:
            raise ProxyError(f"{problem}\n{self.describe()}")

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write(f"\n[test failed while the proxy ran]\n{self.describe()}\n")
        self.stop(check=exc_type is None)
        return False

    # conveniences ----------------------------------------------------------------------------------
    def udp(self, name, rdtype="A", edns=None, timeout=3.0, qid=None):
        return udp_query(name, *self.udp_addr, rdtype=rdtype, edns=edns, timeout=timeout, qid=qid)

    def tcp(self, name, rdtype="A", timeout=5.0, qid=None):
        return tcp_query(name, *self.tcp_addr, rdtype=rdtype, timeout=timeout, qid=qid)

    def tcp_client(self, timeout=5.0) -> TcpClient:
        return TcpClient(*self.tcp_addr, timeout=timeout)


class FakeUpstreamProcess:
    """fake_dot_upstream.py as a child process (keeps its Python work off the test's GIL)."""

    def __init__(self, cert: str, key: str, host: str = "127.0.0.1", args=()):
        self.cmd = [sys.executable, os.path.join(HERE, "fake_dot_upstream.py"),
                    "--listen", hostport(host, 0), "--cert", cert, "--key", key] + list(args)
        self.host = host
        self.proc = None
        self.port = None
        self.stats = None

    @property
    def addr(self) -> str:
        return hostport(self.host, self.port)

    def start(self, timeout: float = 10.0):
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        r, _, _ = select.select([self.proc.stdout], [], [], scaled(timeout))
        line = self.proc.stdout.readline() if r else ""
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"fake upstream did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stop(self, timeout: float = 10.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
        for line in (out or "").splitlines():
            if line.startswith("stats "):
                self.stats = json.loads(line[6:])
        self.stderr = err
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


__all__ = [n for n in dir() if not n.startswith("_")]
