#!/usr/bin/env python3
"""Measures reloads under load: UDP and TCP queries from several threads while SIGHUP arrives
every 0.5 s, alternating between the same file and a file that adds (then removes) a second
upstream; with NOTIFY_SOCKET bound, it also records the sd_notify sequence.

  DOTPROXY_BIN=build/src/dotproxy tests/integration/measure_reload.py [--seconds 20]

Prints queries sent, answered, SERVFAIL, lost (no answer) and wrong, reloads done, and the
sd_notify messages seen. Loopback only; bounded in time.
"""
import argparse
import os
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import dnsclient  # noqa: E402
import harness  # noqa: E402
from dnsclient import ProxyProcess, answer_problem, to_yaml  # noqa: E402
from fake_dot_upstream import FakeDotUpstream  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    certs = harness.certs()
    work = tempfile.mkdtemp(prefix="dotproxy-reload-")
    up1 = FakeDotUpstream(certs.server_cert, certs.server_key).start()
    up2 = FakeDotUpstream(certs.server_cert, certs.server_key).start()
    port = dnsclient.free_port("127.0.0.1")
    addr = f"127.0.0.1:{port}"

    def server(u):
        return {"addr": u.addr, "server_name": "dot.test", "ca_file": certs.ca}

    base = {"server": {"workers": 2}, "listener": {"udp": {"addr": addr}, "tcp": {"addr": addr}},
            "upstream": {"servers": [server(up1)]}}
    notify_path = os.path.join(work, "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    os.environ["NOTIFY_SOCKET"] = notify_path
    proxy = ProxyProcess(base, work, verbosity="warn").start()
    del os.environ["NOTIFY_SOCKET"]
    messages = []

    def collect():
        notify.settimeout(0.2)
        while not done.is_set():
            try:
                msg = notify.recv(4096).decode()
            except socket.timeout:
                continue
            messages.extend(x for x in msg.split("\n")
                            if x.split("=")[0] in ("READY", "RELOADING", "STOPPING"))

    lock = threading.Lock()
    tally = {"sent": 0, "answered": 0, "servfail": 0, "lost": 0, "wrong": 0}
    done = threading.Event()       # the sd_notify collector
    load_done = threading.Event()  # the load threads

    def load(tag, tcp):
        i = 0
        while not load_done.is_set():
            name = f"{'t' if tcp else 'u'}{tag}-{i}.reload.test."
            query = dnsclient.tcp_query if tcp else dnsclient.udp_query
            q, resp = query(name, "127.0.0.1", port, timeout=3)
            with lock:
                tally["sent"] += 1
                if resp is None:
                    tally["lost"] += 1
                elif answer_problem(resp, name, "A", q.id) is None:
                    tally["answered"] += 1
                elif dnsclient.rcode_of(resp) == 2 and dnsclient.id_of(resp) == q.id:
                    tally["servfail"] += 1
                else:
                    tally["wrong"] += 1
            i += 1

    threads = [threading.Thread(target=collect)]
    threads += [threading.Thread(target=load, args=(t, t % 4 == 3)) for t in range(8)]
    for t in threads:
        t.start()
    reloads = 0
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            cfg = dict(base)
            if reloads % 4 == 1:  # every fourth: add the second server; the next one drops it
                cfg = {**base, "upstream": {"servers": [server(up1), server(up2)]}}
            with open(proxy.config_path, "w") as f:
                f.write(to_yaml(cfg))
            proxy.send_signal(__import__("signal").SIGHUP)
            reloads += 1
        load_done.set()
        for t in threads[1:]:
            t.join(10)
        proxy.stop()
        time.sleep(0.3)  # STOPPING=1 reaches the collector
        done.set()
        threads[0].join(5)
    finally:
        load_done.set()
        done.set()
        proxy.stop(check=False)
        up1.stop()
        up2.stop()
    print(f"{args.seconds:.0f} s, {reloads} reloads: sent {tally['sent']}, answered "
          f"{tally['answered']}, SERVFAIL {tally['servfail']}, lost {tally['lost']}, wrong "
          f"{tally['wrong']}; second upstream answered {up2.snapshot()['queries_received']}")
    print("sd_notify:", " ".join(messages[:6]), "...", " ".join(messages[-3:]),
          f"({len(messages)} messages)")
    return 0 if tally["lost"] == 0 and tally["wrong"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
