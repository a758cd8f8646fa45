#!/usr/bin/env python3
"""Reproduces issue 15's table: Debian's unbound as the DoT upstream (local-data answers,
tests/testing/unbound_upstream.py), dotproxy in front, dnsperf -c 32 -q 100 -l SECONDS, for
workers 2 / incoming-num-tcp 10, workers 16 / 10 and workers 16 / 100 (or --runs W:CAP[:POOL],...;
POOL sets connection_pool_size, default: the proxy's default).

  DOTPROXY_BIN=build/src/dotproxy tests/integration/measure_unbound.py [--seconds 5] [--runs 2:10,16:10,16:100]

Prints one Markdown row per run: QPS, rcodes, queries lost, the connections the proxy made to
unbound (TLS handshakes + failed connects, from its metrics), the most connections open to unbound
at once (ss, sampled every 200 ms), the connections closed or stalled by unbound's cap (capped) and
the shards' summed target_connections at the end. Needs unbound and dnsperf (apt-get install unbound dnsperf);
loopback only; bounded in time.
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import dnsclient  # noqa: E402
import harness  # noqa: E402
from dnsclient import ProxyProcess  # noqa: E402
from test_capped_upstream import metric, scrape  # noqa: E402
from test_unbound import dnsperf  # noqa: E402
from unbound_upstream import NAMES, UnboundUpstream, unbound_binary  # noqa: E402


def one_run(certs, work: str, workers: int, cap: int, pool, seconds: int) -> dict:
    with UnboundUpstream(certs.dir, incoming_num_tcp=cap) as ub:
        prom = dnsclient.free_port("127.0.0.1")
        port = dnsclient.free_port("127.0.0.1")
        cfg = {
            "server": {"workers": workers},
            "listener": {"udp": {"addr": f"127.0.0.1:{port}"}},
            "upstream": {"servers": [{"addr": ub.addr, "server_name": "dot.test", "ca_file": certs.ca}]},
            "metrics": {"flush_interval": "200ms", "prometheus": {"addr": f"127.0.0.1:{prom}"}},
        }
        if pool is not None:
            cfg["upstream"]["servers"][0]["connection_pool_size"] = pool
        names = os.path.join(work, "names.txt")
        with open(names, "w") as f:
            f.writelines(f"{n} A\n" for n in NAMES)
        peak = [0]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.2):
                peak[0] = max(peak[0], ub.established())

        with ProxyProcess(cfg, work) as p:
            t = threading.Thread(target=sample, daemon=True)
            t.start()
            try:
                r = dnsperf(p.udp_addr, names, seconds)
            finally:
                stop.set()
                t.join()
            text = scrape(prom)
            r["made"] = int(metric(text, "dotproxy_upstream_handshakes_total") +
                            metric(text, "dotproxy_upstream_connect_errors_total"))
            r["capped"] = int(metric(text, "dotproxy_upstream_capped_closes_total"))
            r["target"] = int(metric(text, "dotproxy_upstream_target_connections"))
            r["peak"] = peak[0]
        return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", default="2:10,16:10,16:100", help="WORKERS:CAP[:POOL],...")
    args = ap.parse_args()
    if unbound_binary() is None or shutil.which("dnsperf") is None:
        sys.exit("needs unbound and dnsperf (apt-get install unbound dnsperf)")
    certs = harness.certs()
    print("| workers | pool | incoming-num-tcp | QPS | rcodes | lost | connections made | max open at once "
          "| capped closes | target (sum) |")
    print("|-|-|-|-|-|-|-|-|-|-|")
    for run in args.runs.split(","):
        fields = [int(x) for x in run.split(":")]
        workers, cap = fields[0], fields[1]
        pool = fields[2] if len(fields) > 2 else None
        work = tempfile.mkdtemp(prefix="dotproxy-unbound-run-")
        try:
            r = one_run(certs, work, workers, cap, pool, args.seconds)
        finally:
            shutil.rmtree(work, True)
        rcodes = ", ".join(f"{k} {v}" for k, v in sorted(r["rcodes"].items())) or "-"
        print(f"| {workers} | {pool or 'default'} | {cap} | {r['qps']:,.0f} | {rcodes} | {r['lost']} | {r['made']} "
              f"| {r['peak']} | {r['capped']} | {r['target']} |", flush=True)


if __name__ == "__main__":
    main()
