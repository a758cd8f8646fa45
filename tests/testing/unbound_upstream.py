"""Debian's unbound as a real DoT upstream on loopback, for interop tests and measurements.

``UnboundUpstream(certs_dir, incoming_num_tcp=10).start()`` writes its own config in a temp dir and
runs ``unbound -d -c CONF`` as the current user (no service, no chroot, no privilege change): TLS on
``tls-port`` with gen_certs.sh's server.pem/server.key (name dot.test), answers from ``local-data``
(``NAMES`` below: n0.unbound.test. .. n99.unbound.test. A 10.53.0.N), everything else REFUSED, so
nothing ever leaves the machine. ``stop()`` ends the process by its PID. ``established()`` counts
the TCP connections open to it now (``ss``); the proxy's own metrics count the connections it made
(handshakes and connect errors). ``unbound_binary()`` is None when
unbound is not installed (Debian: ``apt-get install unbound``); callers skip then.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from dnsclient import read_log

NAMES = [f"n{i}.unbound.test." for i in range(100)]


def unbound_binary() -> str | None:
    for path in (shutil.which("unbound"), "/usr/sbin/unbound"):
        if path and os.access(path, os.X_OK):
            return path
    return None


def expected_address(name: str) -> str:
    return f"10.53.0.{NAMES.index(name.lower())}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UnboundUpstream:
    def __init__(self, certs_dir: str, incoming_num_tcp: int = 10, threads: int = 1):
        self.certs_dir = certs_dir
        self.incoming_num_tcp = incoming_num_tcp
        self.threads = threads
        self.port = 0
        self.dir = None
        self.proc = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> str:
        lines = [
            "server:",
            f"  interface: 127.0.0.1@{self.port}",
            f"  tls-port: {self.port}",
            f'  tls-service-key: "{os.path.join(self.certs_dir, "server.key")}"',
            f'  tls-service-pem: "{os.path.join(self.certs_dir, "server.pem")}"',
            "  do-daemonize: no",
            '  chroot: ""',
            '  username: ""',
            f'  directory: "{self.dir}"',
            '  pidfile: ""',
            '  logfile: ""',
            "  use-syslog: no",
            "  verbosity: 1",
            f"  num-threads: {self.threads}",
            f"  incoming-num-tcp: {self.incoming_num_tcp}",
            "  do-ip6: no",
            "  do-udp: no",
            '  module-config: "iterator"',
            "  access-control: 127.0.0.0/8 allow",
            '  local-zone: "." refuse',
            '  local-zone: "unbound.test." static',
        ]
        lines += [f'  local-data: "{n} 60 IN A 10.53.0.{i}"' for i, n in enumerate(NAMES)]
        lines += ["remote-control:", "  control-enable: no", ""]
        return "\n".join(lines)

    def start(self, timeout: float = 10.0) -> "UnboundUpstream":
        binary = unbound_binary()
        if binary is None:
            raise RuntimeError("unbound is not installed (Debian: apt-get install unbound)")
        self.dir = tempfile.mkdtemp(prefix="dotproxy-unbound-")
        self.port = _free_port()
        conf = os.path.join(self.dir, "unbound.conf")
        with open(conf, "w") as f:
            f.write(self._config())
        self.log_path = os.path.join(self.dir, "unbound.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, "-d", "-c", conf], stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs_dir, "ca.pem"))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"unbound exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    with ctx.wrap_socket(s, server_hostname="dot.test"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"unbound did not accept TLS within {timeout} s: {self.log()[-2000:]}")

    def log(self) -> str:
        return read_log(self.log_path)

    def established(self) -> int:
        """TCP connections to unbound established right now (ss), from any client."""
        r = subprocess.run(["ss", "-Htn", "state", "established", "sport", "=", f":{self.port}"],
                           capture_output=True, text=True, timeout=10)
        return len([line for line in r.stdout.splitlines() if line.strip()])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def cleanup(self):
        self.stop()
        if self.dir:
            shutil.rmtree(self.dir, True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
