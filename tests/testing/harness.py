"""unittest scaffolding shared by tests/integration: certificates, an in-process fake upstream per
test, and proxy configs built from the defaults below.

A test does::

    class MyTest(harness.ProxyTestCase):
        def test_x(self):
            cfg = self.make_config(upstream={"query_timeout": "2s"})
            with self.proxy(cfg) as p:
                q, r = p.udp("example.com")
                self.assertAnswer(r, "example.com", "A", q.id)
"""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import dnsclient  # noqa: E402
from dnsclient import ProxyProcess, answer_problem  # noqa: E402
from fake_dot_upstream import FakeDotUpstream  # noqa: E402


class Certs:
    def __init__(self, d: str):
        self.dir = d
        self.ca = os.path.join(d, "ca.pem")
        self.server_cert = os.path.join(d, "server.pem")
        self.server_key = os.path.join(d, "server.key")
        self.wrong_cert = os.path.join(d, "wrong.pem")
        self.wrong_key = os.path.join(d, "wrong.key")


_certs: dict[str, Certs] = {}
_cert_root = None


def certs(which: str = "main") -> Certs:
    """A PKI made by gen_certs.sh, once per process and name ("main", or "other" for a second,
    unrelated CA)."""
    global _cert_root
    if which not in _certs:
        if _cert_root is None:
            _cert_root = tempfile.mkdtemp(prefix="dotproxy-certs-")
            atexit.register(shutil.rmtree, _cert_root, True)
        d = os.path.join(_cert_root, which)
        r = subprocess.run(["sh", os.path.join(HERE, "gen_certs.sh"), d], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"gen_certs.sh failed ({r.returncode}): {r.stderr}")
        _certs[which] = Certs(d)
    return _certs[which]


def deep_update(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        elif v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return base


class ProxyTestCase(unittest.TestCase):
    """Each test gets a temp dir, certificates and a fresh fake upstream (self.up) on 127.0.0.1."""

    upstream_knobs: dict = {}
    maxDiff = None

    def setUp(self):
        self.certs = certs()
        self.tmp = tempfile.mkdtemp(prefix="dotproxy-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.up = self.start_upstream(**self.upstream_knobs)

    def start_upstream(self, host: str = "127.0.0.1", cert: str | None = None, key: str | None = None,
                       **knobs) -> FakeDotUpstream:
        # tests/vm --subset ktls pins the fake upstreams to TLS 1.2, where both directions offload.
        if os.environ.get("DOTPROXY_TEST_UPSTREAM_TLS"):
            knobs.setdefault("tls_version", os.environ["DOTPROXY_TEST_UPSTREAM_TLS"])
        up = FakeDotUpstream(cert or self.certs.server_cert, key or self.certs.server_key, host=host,
                             **knobs).start()
        self.addCleanup(up.stop)
        return up

    def server_entry(self, up=None, **over) -> dict:
        up = up or self.up
        s = {
            "addr": up.addr if hasattr(up, "addr") else up,
            "server_name": "dot.test",
            "ca_file": self.certs.ca,
            "connection_pool_size": 2,
            "connect_timeout": "1s",
            "handshake_timeout": "1s",
            "read_timeout": "1500ms",
            "write_timeout": "2s",
            "stale_timeout": "8s",
            "max_inflight": 128,
        }
        return deep_update(s, over)

    def make_config(self, *, servers=None, workers: int = 1, listen_host: str = "127.0.0.1",
                    tcp: bool = True, server: dict | None = None, upstream: dict | None = None,
                    tcp_listener: dict | None = None, udp_listener: dict | None = None,
                    listener: dict | None = None) -> dict:
        """server: overrides for the (single, default) upstream server entry; upstream: overrides for
        the upstream section; tcp_listener / udp_listener: overrides for listener.tcp / .udp;
        listener: other listener keys (allow, rate_limit, ...). None values delete keys."""
        port = dnsclient.free_port(listen_host)
        addr = dnsclient.hostport(listen_host, port)
        cfg = {
            "server": {"workers": workers},
            "listener": {"udp": {"addr": addr}},
            "upstream": {
                "load_balancing_policy": "RoundRobin",
                "max_connection_retries": 2,
                "query_timeout": "3s",
                "servers": servers if servers is not None else [self.server_entry(**(server or {}))],
            },
        }
        if tcp:
            cfg["listener"]["tcp"] = deep_update({
                "addr": addr, "read_timeout": "10s", "write_timeout": "10s", "max_connections": 1024,
                "max_inflight_per_connection": 128}, tcp_listener or {})
        # The whole suite can run with kernel TLS on or off (tests/vm: --subset ktls).
        if os.environ.get("DOTPROXY_TEST_KTLS"):
            cfg["upstream"]["ktls"] = os.environ["DOTPROXY_TEST_KTLS"]
        if upstream:
            deep_update(cfg["upstream"], upstream)
        if udp_listener:
            deep_update(cfg["listener"]["udp"], udp_listener)
        if listener:
            deep_update(cfg["listener"], listener)
        return cfg

    def proxy(self, cfg: dict | None = None, **kw) -> ProxyProcess:
        return ProxyProcess(cfg if cfg is not None else self.make_config(), self.tmp, **kw)

    # assertions --------------------------------------------------------------------------------------
    def assertAnswer(self, resp, name: str, rdtype="A", qid=None, msg: str = ""):
        p = answer_problem(resp, name, rdtype, qid)
        if p:
            self.fail(f"{msg}{': ' if msg else ''}{p}")

    def assertServfail(self, resp, qid: int, what: str = ""):
        self.assertIsNotNone(resp, f"{what}: no response at all (expected SERVFAIL, never silence)")
        self.assertGreaterEqual(len(resp), 12, f"{what}: short response")
        self.assertEqual(dnsclient.id_of(resp), qid, f"{what}: SERVFAIL with the wrong ID")
        self.assertEqual(dnsclient.rcode_of(resp), 2,
                         f"{what}: expected SERVFAIL (rcode 2), got rcode {dnsclient.rcode_of(resp)}")

    def upstream_snapshot(self, up=None) -> str:
        return repr((up or self.up).snapshot())


def copy_config(cfg: dict) -> dict:
    return copy.deepcopy(cfg)
