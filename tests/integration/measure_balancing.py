#!/usr/bin/env python3
"""Measures every load-balancing policy with one of two upstreams dead: answer rate and latency.

Not a test (meson does not run it); it prints a table for issue #4. For each policy and scenario it
starts the proxy on two upstreams, the first of which is

  healthy    a fake DoT upstream (baseline)
  dead       a loopback port nothing listens on (connects are refused at once)
  blackhole  a fake DoT upstream that accepts TCP and never completes TLS

and the second a healthy fake DoT upstream (fake_dot_upstream.py in its own process). It sends
--queries UDP queries, at most --concurrency in flight and at most --rate per second, starting as
soon as the proxy listens (so the cold start is included; "p99 >1s" leaves out the queries sent in
the first second, ">100ms" counts the slow ones), and checks every answer. "q first"/"q second"
are the queries each upstream received (retries included), "bh conns" the connections the
black-holed upstream accepted (the proxy's connects and probes). Timeouts and backoff are the proxy's defaults (connect and handshake 2s,
read 1500ms, query 3s, backoff 250ms..30s) unless --short (the integration tests' 300ms, 100ms..1s).

  DOTPROXY_BIN=build-full/src/dotproxy python3 tests/integration/measure_balancing.py
  ... --policies RoundRobin,Failover --scenarios dead --queries 5000 --concurrency 50 --rate 0

Loopback only; it stops only the processes it started.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import sys
import tempfile
import shutil
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import harness  # noqa: E402
from dnsclient import (FakeUpstreamProcess, ProxyProcess, answer_problem, free_port, hostport,  # noqa: E402
                       id_of, make_query, rcode_of)

POLICIES = ("RoundRobin", "Random", "HistoricalConnections", "Availability", "Failover",
            "LeastOutstanding")
SCENARIOS = ("healthy", "dead", "blackhole")


def percentile(values, pct):
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, -(-len(v) * pct // 100) - 1))
    return v[int(k)]


def run_load(addr, total, concurrency, rate, timeout, tag):
    """Closed loop: `concurrency` UDP sockets, each with one query in flight; sends paced to at
    most `rate` per second (0 = as fast as answers come). Returns [(sent_s, latency_s or None,
    outcome)] with outcome "ok", "servfail", "lost" or a problem string."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(concurrency):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect(addr)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ)
    inflight = {}  # sock -> (index, query, name, sent)
    results = []
    idle = list(socks)
    nxt = 0
    t0 = time.monotonic()
    next_send = t0  # pacing without catch-up: a stall does not turn into a burst afterwards
    try:
        while len(results) < total:
            now = time.monotonic()
            while idle and nxt < total and (rate <= 0 or now >= next_send):
                if rate > 0:
                    next_send = max(next_send, now - 0.5 / rate) + 1.0 / rate
                s = idle.pop()
                name = f"q{nxt}.{tag}.measure.test."
                q = make_query(name, "A")
                try:
                    s.send(q.to_wire())
                except OSError:
                    pass
                inflight[s] = (nxt, q, name, now)
                nxt += 1
            for s, (i, q, name, sent) in list(inflight.items()):
                if now - sent > timeout:
                    results.append((sent - t0, None, "lost"))
                    del inflight[s]
                    idle.append(s)
            wait = 0.05
            if idle and nxt < total and rate > 0:
                wait = max(0.0, min(wait, next_send - time.monotonic()))
            for key, _ in sel.select(wait):
                s = key.fileobj
                try:
                    data = s.recv(65535)
                except OSError:
                    continue
                if s not in inflight or len(data) < 12 or id_of(data) != inflight[s][1].id:
                    continue  # a late answer to an abandoned query
                i, q, name, sent = inflight.pop(s)
                lat = time.monotonic() - sent
                if rcode_of(data) == 2:
                    outcome = "servfail"
                else:
                    outcome = answer_problem(data, name, "A", q.id) or "ok"
                results.append((sent - t0, lat, outcome))
                idle.append(s)
    finally:
        for s in socks:
            sel.unregister(s)
            s.close()
    return results, time.monotonic() - t0


def server_entry(addr, certs, short):
    s = {"addr": addr, "server_name": "dot.test", "ca_file": certs.ca}
    if short:
        s.update({"connect_timeout": "300ms", "handshake_timeout": "300ms", "read_timeout": "1s"})
    return s


def measure(policy, scenario, args, certs, tmp):
    ups = []
    try:
        if scenario == "dead":
            first_addr = hostport("127.0.0.1", free_port())
        else:
            extra = ["--black-hole"] if scenario == "blackhole" else []
            first = FakeUpstreamProcess(certs.server_cert, certs.server_key, args=extra).start()
            ups.append(("first", first))
            first_addr = first.addr
        second = FakeUpstreamProcess(certs.server_cert, certs.server_key).start()
        ups.append(("second", second))
        port = free_port()
        addr = hostport("127.0.0.1", port)
        upstream = {"load_balancing_policy": policy,
                    "servers": [server_entry(first_addr, certs, args.short),
                                server_entry(second.addr, certs, args.short)]}
        if args.short:
            upstream.update({"backoff_initial": "100ms", "backoff_max": "1s"})
        cfg = {"server": {"workers": args.workers}, "listener": {"udp": {"addr": addr}},
               "upstream": upstream}
        with ProxyProcess(cfg, tmp, ready="listen", verbosity=args.verbosity) as p:
            if args.warmup:
                time.sleep(args.warmup)
            res, elapsed = run_load(("127.0.0.1", port), args.queries, args.concurrency, args.rate,
                                    args.client_timeout, f"{policy}-{scenario}".lower())
            log = p.log()
    finally:
        for _, u in reversed(ups):
            u.stop()
    stats = {name: u.stats or {} for name, u in ups}
    ok = [r for r in res if r[2] == "ok"]
    lat_ok = [r[1] for r in ok]
    lat_all = [r[1] for r in res if r[1] is not None]
    late = [r[1] for r in res if r[1] is not None and r[0] >= 1.0]
    return {
        "policy": policy, "scenario": scenario, "n": len(res), "elapsed": elapsed,
        "ok": len(ok), "servfail": sum(r[2] == "servfail" for r in res),
        "lost": sum(r[2] == "lost" for r in res),
        "wrong": sum(r[2] not in ("ok", "servfail", "lost") for r in res),
        "p50": percentile(lat_all, 50), "p99": percentile(lat_all, 99), "max": max(lat_all, default=float("nan")),
        "p99_late": percentile(late, 99), "p50_ok": percentile(lat_ok, 50),
        "slow": sum(x > 0.1 for x in lat_all),
        "first_q": stats.get("first", {}).get("queries_received", 0),
        "second_q": stats.get("second", {}).get("queries_received", 0),
        "probes": stats.get("first", {}).get("black_holed", 0) if scenario == "blackhole" else None,
        "warnings": sum(" WARN " in line for line in log.splitlines()),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--rate", type=float, default=1000, help="queries per second at most; 0 = closed loop only")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--short", action="store_true", help="the integration tests' short timeouts and backoff")
    ap.add_argument("--warmup", type=float, default=0.0, help="seconds between listening and the first query")
    ap.add_argument("--client-timeout", type=float, default=5.0, help="a query unanswered this long is lost")
    ap.add_argument("--verbosity", default="info")
    args = ap.parse_args()
    certs = harness.certs()
    tmp = tempfile.mkdtemp(prefix="dotproxy-measure-")
    try:
        print(f"# {args.queries} UDP queries per run, <= {args.concurrency} in flight, "
              f"<= {args.rate:g}/s, {args.workers} worker(s), "
              f"{'short timeouts (connect/handshake 300ms, backoff 100ms..1s)' if args.short else 'default timeouts (connect/handshake 2s, read 1500ms, query 3s, backoff 250ms..30s)'}; "
              f"first of two upstreams: healthy / dead (refused) / blackhole (TLS never completes)")
        hdr = ("policy", "first", "answered", "SERVFAIL", "lost", "p50 ms", "p99 ms", "max ms",
               ">100ms", "p99 >1s", "q first", "q second", "bh conns", "secs")
        rows = []
        for policy in args.policies.split(","):
            for scenario in args.scenarios.split(","):
                r = measure(policy, scenario, args, certs, tmp)
                rows.append((policy, scenario, f"{100.0 * r['ok'] / r['n']:.2f}%", str(r["servfail"]),
                             str(r["lost"] + r["wrong"]), f"{r['p50'] * 1000:.2f}", f"{r['p99'] * 1000:.2f}",
                             f"{r['max'] * 1000:.1f}", str(r["slow"]), f"{r['p99_late'] * 1000:.2f}", str(r["first_q"]),
                             str(r["second_q"]), "-" if r["probes"] is None else str(r["probes"]),
                             f"{r['elapsed']:.1f}"))
                print("  " + " ".join(rows[-1]), file=sys.stderr, flush=True)
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(hdr)]
        print("| " + " | ".join(h.ljust(w) for h, w in zip(hdr, widths)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for row in rows:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    finally:
        shutil.rmtree(tmp, True)


if __name__ == "__main__":
    main()
