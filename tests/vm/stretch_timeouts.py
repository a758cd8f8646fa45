#!/usr/bin/python3
"""Diagnosis under emulation: run integration tests with the proxy's own durations stretched too.

Usage (from the repository root, DOTPROXY_BIN set; inside the VM through run.sh --command):
    python3 tests/vm/stretch_timeouts.py FACTOR TEST [TEST...]
    TEST: test_load, test_balancing.BalancingTest, test_failures.MalformedTest.test_malformed_udp

DOTPROXY_TEST_TIME_SCALE stretches the tests' own bounds, but not the durations written into the
proxy's configuration (query_timeout 3s, handshake_timeout 300ms, backoff ...). Under TCG, where
everything runs about ten times slower, those can expire where on hardware they never would.
This wrapper multiplies every Go duration string in the generated YAML configs by FACTOR (and the
harness's 0.5 s readiness-probe wait) before running the tests, so a test that fails plainly but
passes here failed on speed, not on the kernel. Not used by run.sh's subsets or by CI.
"""
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import dnsclient  # noqa: E402

_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def stretch(value: str, factor: float) -> str:
    ms = sum(float(n) * _UNIT_MS[u] for n, u in _PART.findall(value))
    return f"{max(1, round(ms * factor))}ms" if ms > 0 else value


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    factor = float(argv[1])
    plain = dnsclient._yaml_scalar

    def scalar(v):
        if isinstance(v, str) and _DURATION.match(v):
            v = stretch(v, factor)
        return plain(v)

    dnsclient._yaml_scalar = scalar  # to_yaml looks the name up at each call

    # The harness's readiness probe (ProxyProcess._probe) waits 0.5 s for its answer, unscaled;
    # when it gives up early it sends a second probe and the first one still reaches an upstream
    # later, one query more than a test counted. Stretch that wait too.
    exchange = dnsclient.udp_exchange

    def udp_exchange(wire, host, port, timeout=3.0, expect_id=None):
        if b"\x0bready-probe\x04test" in wire:
            timeout *= factor
        return exchange(wire, host, port, timeout, expect_id)

    dnsclient.udp_exchange = udp_exchange
    os.chdir(os.path.join(HERE, "..", "integration"))
    print(f"stretch_timeouts: proxy durations x{factor:g}, test bounds x{dnsclient.TIME_SCALE:g}",
          file=sys.stderr)
    suite = unittest.defaultTestLoader.loadTestsFromNames(argv[2:])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
