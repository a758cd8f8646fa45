"""Turns bench/compare's records into bench/RESULTS.md and the plots beside it.

Every cell is the median over its repetitions; min-max is shown for QPS. Plots are drawn with
gnuplot (SVG, and PNG when the cairo terminal is available).
"""
import os
import platform
import shutil
import statistics
import subprocess
import time

import peers as peerlib


def _run(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_meta(bins, peer_names, peer_ctx):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    os_name = "?"
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu, "nproc": os.cpu_count(), "mem_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(), "os": os_name,
        "openssl": _run(["openssl", "version"]),
        "dnsperf": next((l.replace("Version ", "dnsperf ") for l in
                         _run(["dnsperf", "-h"]).splitlines() if l.startswith("Version")), "?"),
        "gnuplot": _run(["gnuplot", "--version"]),
        "git": _run(["git", "-C", peer_ctx["repo"], "rev-parse", "--short", "HEAD"]) +
               (" + uncommitted changes" if _run(["git", "-C", peer_ctx["repo"], "status",
                                                  "--porcelain", "--untracked-files=no"]) else ""),
        "peers": {p: peerlib.ALL[p](peer_ctx).version() for p in peer_names},
    }


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(v, digits=1, thousands=False):
    if v is None:
        return "-"
    if thousands:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def _group(records):
    groups = {}
    for r in records:
        if r.get("discarded"):
            continue
        key = (r.get("kind"), r["label"], r["tool"], r["mode"], r["level"])
        groups.setdefault(key, []).append(r)
    return groups


def _cell(rs, field):
    return _median([r.get(field) for r in rs])


def _mode_name(mode):
    return {"udp": "UDP", "tcp": "TCP", "dot": "DoT"}.get(mode, mode)


def _limited_by(rs):
    proxy = _cell(rs, "proxy_cpu_pct")
    cpu0 = _median([r.get("cpu_busy_pct", {}).get("cpu0") for r in rs])
    lost = sum(r.get("timeouts") or 0 for r in rs)
    sent = sum(r.get("sent") or 0 for r in rs)
    if sent and lost > 0.01 * sent:
        return "invalid: queries lost"
    if proxy is not None and proxy >= 85:
        return "proxy CPU"
    if cpu0 is not None and cpu0 >= 95:
        return "rig (CPU 0)"
    return "other"


def write(records, memory, meta, out_md, raw_path, plots_dir, work):
    groups = _group(records)
    peer_names = list(meta["peers"])
    settings = meta["settings"]
    os.makedirs(plots_dir, exist_ok=True)
    plots = _plots(groups, peer_names, plots_dir, work)
    L = []
    w = L.append
    w(f"# dotproxy vs. peers: measured results ({meta['date']})")
    w("")
    w("Written by `bench/compare` (raw records: "
      f"[`{os.path.basename(raw_path)}`]({os.path.basename(raw_path)})). How to run it and what "
      "each number means: [README.md](README.md).")
    w("")
    w("## Setup")
    w("")
    w(f"- Machine: {meta['nproc']} vCPU ({meta['cpu']}), {meta['mem_gb']} GB RAM, {meta['os']}, "
      f"kernel {meta['kernel']}; a shared VM, so absolute numbers are specific to it.")
    w(f"- {meta['openssl']}; {meta['dnsperf']}; dotload and dotresponder from this tree "
      f"(git {meta['git']}).")
    w("- Proxies (each forwards plaintext DNS on 127.0.0.1:5300 to the DoT upstream on "
      "127.0.0.1:8853, verifying its certificate for `dot.test`):")
    for p, v in meta["peers"].items():
        w(f"  - `{p}`: {v}")
    w(f"- Upstream: `dotresponder` (1 thread) answering every name from the question, TTL 0. "
      f"Every run asks fresh unique names; `fwd` = queries the upstream saw / answers the "
      f"client got (1.000 = no cache answered).")
    w(f"- Pinning (`taskset`): proxy on CPU {settings['cpu_proxy']} (all its threads); load "
      f"generator and upstream share CPU {settings['cpu_load_and_upstream']}. "
      f"dotproxy runs `workers: 1`, pool of {settings['pool_size']} upstream connections.")
    w(f"- Each cell is the median of {settings['reps']} run(s) of {settings['duration_s']} s; "
      f"the proxy is restarted for every repetition and warmed up for 1 s at 2,000 QPS. "
      f"Peak: {settings['peak']} (dnsperf `-c 10 -q 200`, dotload `--connections 10 "
      f"--inflight 200`). Fixed rates are open loop: {settings['light']} at 2,000 QPS, 10 at "
      f"10,000 QPS (dotload only); dotload measures latency from each query's intended send "
      f"time.")
    w("- Proxy CPU is the scheduler's run time of all its threads (`/proc/PID/task/*/schedstat`) "
      "over the run, divided by answered queries (`/proc/PID/stat` utime+stime is tick-sampled "
      "and overstates short wake-ups; it is kept in the raw file as `proxy_us_per_query_stat`).")
    if settings.get("quick"):
        w("- **Quick run** (`--quick`): one repetition of 3 s and a subset of cells; a smoke "
          "test, not a measurement.")
    w("")

    # ---- headline for dotproxy
    if "dotproxy" in peer_names:
        w("## dotproxy at a glance")
        w("")
        w("| target | measured (median) |")
        w("|---|---|")
        for mode in ("udp", "tcp"):
            rs = groups.get(("proxy", "dotproxy", "dotload", mode, "peak"))
            if rs:
                w(f"| proxy CPU per query at peak, {_mode_name(mode)} (dotload) | "
                  f"{_fmt(_cell(rs, 'proxy_us_per_query'), 2)} µs at "
                  f"{_fmt(_cell(rs, 'qps'), thousands=True)} QPS |")
        for mode in ("udp", "tcp"):
            rs = groups.get(("proxy", "dotproxy", "dotload", mode, "10000"))
            if rs:
                w(f"| proxy CPU per query at 10,000 QPS, {_mode_name(mode)} | "
                  f"{_fmt(_cell(rs, 'proxy_us_per_query'), 2)} µs |")
        for level in ("10000", "2000"):
            for mode in ("udp", "tcp"):
                rs = groups.get(("proxy", "dotproxy", "dotload", mode, level))
                if rs and _cell(rs, "proxy_cs_vol_per_query") is not None:
                    w(f"| per query at {int(level):,} QPS, {_mode_name(mode)}: io_uring_enter / "
                      f"all system calls / context switches (voluntary + involuntary) | "
                      f"{_fmt(_cell(rs, 'proxy_enters_per_query'), 2)} / "
                      f"{_fmt(_cell(rs, 'proxy_syscalls_per_query'), 2)} / "
                      f"{_fmt(_cell(rs, 'proxy_cs_vol_per_query'), 2)} + "
                      f"{_fmt(_cell(rs, 'proxy_cs_invol_per_query'), 3)} |")
        for mode in ("udp", "tcp"):
            rs = groups.get(("proxy", "dotproxy", "dotload", mode, "peak"))
            if rs:
                w(f"| peak QPS through one proxy core, {_mode_name(mode)} (dotload + dotresponder "
                  f"on the other core) | {_fmt(_cell(rs, 'qps'), thousands=True)} "
                  f"(limited by: {_limited_by(rs)}) |")
        direct = groups.get(("direct", "direct", "dotload", "dot", "2000"))
        for mode in ("udp", "tcp"):
            rs = groups.get(("proxy", "dotproxy", "dotload", mode, "2000"))
            if rs:
                d = (f"; asking the DoT upstream directly: {_fmt(_cell(direct, 'p50_ms'), 3)} / "
                     f"{_fmt(_cell(direct, 'p99_ms'), 3)} ms") if direct else ""
                w(f"| p50 / p99 at 2,000 QPS, {_mode_name(mode)} | "
                  f"{_fmt(_cell(rs, 'p50_ms'), 3)} / {_fmt(_cell(rs, 'p99_ms'), 3)} ms{d} |")
        mem = next((m for m in memory if m["peer"] == "dotproxy"), None)
        if mem:
            w(f"| RSS at start / per idle client TCP connection / per upstream TLS connection | "
              f"{_fmt((mem.get('rss_start_kb') or 0) / 1024, 1)} MiB / "
              f"{_fmt(mem.get('rss_per_tcp_client_kb'), 1)} KiB / "
              f"{_fmt(mem.get('rss_per_upstream_conn_kb'), 1)} KiB |")
        w("")

    w("## Pictures")
    w("")
    for title, name in plots:
        w(f"**{title}**")
        w("")
        w(f"![{title}](plots/{name})")
        w("")

    # ---- peak
    w("## Peak throughput (one proxy core)")
    w("")
    w("| proxy | tool | client | QPS median | QPS min–max | p50 ms | p99 ms | avg ms | lost | "
      "non-NOERROR | proxy CPU % | proxy µs/query | upstream µs/query | new upstream conns | "
      "fwd | CPU 0 busy % | limited by |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for p in peer_names:
        for tool in settings["tools"]:
            for mode in settings["modes"]:
                rs = groups.get(("proxy", p, tool, mode, "peak"))
                if not rs:
                    continue
                q = [r.get("qps") or 0 for r in rs]
                w(f"| {p} | {tool} | {_mode_name(mode)} | **{_fmt(_cell(rs, 'qps'), thousands=True)}** | "
                  f"{min(q):,.0f}–{max(q):,.0f} | {_fmt(_cell(rs, 'p50_ms'), 3)} | "
                  f"{_fmt(_cell(rs, 'p99_ms'), 3)} | {_fmt(_cell(rs, 'avg_ms'), 3)} | "
                  f"{_fmt(_cell(rs, 'timeouts'), 0)} | {_fmt(_cell(rs, 'non_noerror'), 0)} | "
                  f"{_fmt(_cell(rs, 'proxy_cpu_pct'))} | **{_fmt(_cell(rs, 'proxy_us_per_query'), 2)}** | "
                  f"{_fmt(_cell(rs, 'upstream_us_per_query'), 2)} | "
                  f"{_fmt(_cell(rs, 'upstream_new_conns'), 0)} | "
                  f"{_fmt(_cell(rs, 'forwarded_ratio'), 3)} | "
                  f"{_fmt(_median([r.get('cpu_busy_pct', {}).get('cpu0') for r in rs]))} | "
                  f"{_limited_by(rs)} |")
    w("")
    w("dnsperf reports no percentiles at peak (its per-query output would load it); its columns "
      "show `-`. `limited by`: `proxy CPU` when the proxy used ≥ 85 % of its core; `rig (CPU 0)` "
      "when the core shared by load generator and upstream was ≥ 95 % busy while the proxy was "
      "not, so the QPS is a lower bound for that proxy and its µs/query is the fairer figure.")
    w("")

    # ---- fixed rates
    for level, title in (("10000", "Fixed load: 10,000 QPS (CPU cost and latency)"),
                         ("2000", "Light load: 2,000 QPS (latency)")):
        rows = [(k, v) for k, v in groups.items() if k[4] == level and k[0] in ("proxy", "direct")]
        if not rows:
            continue
        w(f"## {title}")
        w("")
        w("| target | tool | client | achieved QPS | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
          "| p99 from send ms | lost | non-NOERROR | proxy CPU % | proxy µs/query | fwd |")
        w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        order = ["direct"] + peer_names
        for label in order:
            for tool in settings["tools"]:
                for mode in ("udp", "tcp", "dot"):
                    rs = groups.get(("direct" if label == "direct" else "proxy", label, tool,
                                     mode, level))
                    if not rs:
                        continue
                    name = ("upstream directly (no proxy)" if label == "direct" else label)
                    w(f"| {name} | {tool} | {_mode_name(mode)} | "
                      f"{_fmt(_cell(rs, 'qps'), thousands=True)} | {_fmt(_cell(rs, 'p50_ms'), 3)} | "
                      f"{_fmt(_cell(rs, 'p90_ms'), 3)} | {_fmt(_cell(rs, 'p99_ms'), 3)} | "
                      f"{_fmt(_cell(rs, 'p999_ms'), 3)} | {_fmt(_cell(rs, 'max_ms'), 2)} | "
                      f"{_fmt(_cell(rs, 'p99_from_send_ms'), 3)} | "
                      f"{_fmt(_cell(rs, 'timeouts'), 0)} | {_fmt(_cell(rs, 'non_noerror'), 0)} | "
                      f"{_fmt(_cell(rs, 'proxy_cpu_pct'))} | "
                      f"{_fmt(_cell(rs, 'proxy_us_per_query'), 2)} | "
                      f"{_fmt(_cell(rs, 'forwarded_ratio'), 3)} |")
        w("")
        w("dotload measures open-loop latency from each query's intended send time (so a stall "
          "anywhere, including in the load generator's own core, counts); `p99 from send` is "
          "from the moment the query was actually handed to the kernel. dnsperf measures from "
          "its actual send.")
        w("")

    # ---- wake-ups and system calls
    rows = [(k, v) for k, v in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][4]))
            if k[0] == "proxy" and k[4] in ("10000", "2000")
            and _cell(v, "proxy_cs_vol_per_query") is not None]
    if rows:
        w("## Wake-ups and system calls per answered query (fixed rates)")
        w("")
        w("| proxy | tool | client | QPS | context switches, voluntary (= sleeps, each ended by "
          "a wake-up) | involuntary | io_uring_enter | all system calls | proxy µs/query |")
        w("|---|---|---|---:|---:|---:|---:|---:|---:|")
        for p in peer_names:
            for level in ("10000", "2000"):
                for tool in settings["tools"]:
                    for mode in ("udp", "tcp"):
                        rs = groups.get(("proxy", p, tool, mode, level))
                        if not rs or _cell(rs, "proxy_cs_vol_per_query") is None:
                            continue
                        w(f"| {p} | {tool} | {_mode_name(mode)} | {int(level):,} | "
                          f"{_fmt(_cell(rs, 'proxy_cs_vol_per_query'), 2)} | "
                          f"{_fmt(_cell(rs, 'proxy_cs_invol_per_query'), 3)} | "
                          f"{_fmt(_cell(rs, 'proxy_enters_per_query'), 2)} | "
                          f"{_fmt(_cell(rs, 'proxy_syscalls_per_query'), 2)} | "
                          f"{_fmt(_cell(rs, 'proxy_us_per_query'), 2)} |")
        w("")
        w("All threads of the proxy, over the run, divided by answered queries. Context switches "
          "from `/proc/PID/task/*/status`; system calls from `perf stat -e "
          "syscalls:sys_enter_io_uring_enter,raw_syscalls:sys_enter -p PID` (`-` where perf does "
          "not work on this kernel). A forwarder at light load needs about two wake-ups per "
          "query: the client's query, then the upstream's answer; fewer means batching.")
        w("")

    # ---- memory
    if memory:
        w("## Memory (RSS from /proc/PID/status)")
        w("")
        w("| proxy | RSS after start + warm-up | per idle client TCP connection | "
          "per upstream TLS connection |")
        w("|---|---:|---:|---:|")
        for m in memory:
            up = (f"{_fmt(m.get('rss_per_upstream_conn_kb'), 1)} KiB "
                  f"({m.get('upstream_conns_pool64')} connections)"
                  if m.get("rss_per_upstream_conn_kb") is not None else "-")
            w(f"| {m['peer']} | {_fmt((m.get('rss_start_kb') or 0) / 1024, 1)} MiB | "
              f"{_fmt(m.get('rss_per_tcp_client_kb'), 1)} KiB "
              f"({m.get('tcp_clients_answered', 0)}/{m.get('tcp_clients', 0)} answered) | {up} |")
        w("")
        w(f"Idle clients: {memory[0].get('tcp_clients', 0)} TCP connections, each asks one query, "
          "reads the answer and stays open; the RSS growth is divided by their number (0 means "
          "the proxy's per-connection state is preallocated or too small to move RSS). Upstream "
          "connections (dotproxy only: the peers have no comparable knob): RSS with a pool of 64 "
          "minus RSS with the pool of 4, divided by the extra handshakes the upstream saw.")
        w("")

    # ---- capacity
    caps = [(k, v) for k, v in groups.items() if k[0] == "capacity"]
    if caps:
        w("## The tools themselves (no proxy; load generator on CPU 1, server on CPU 0)")
        w("")
        w("| server | tool | transport | QPS median | QPS min–max | lost | server µs/query |")
        w("|---|---|---|---:|---:|---:|---:|")
        for (kind, label, tool, mode, level), rs in caps:
            q = [r.get("qps") or 0 for r in rs]
            server = {"responder": "dotresponder", "dnsdist-upstream": "dnsdist (DoT server)"}
            up_us = _cell(rs, "server_us_per_query")
            w(f"| {server.get(label, label)} | {tool} | {_mode_name(mode)} | "
              f"**{_fmt(_cell(rs, 'qps'), thousands=True)}** | {min(q):,.0f}–{max(q):,.0f} | "
              f"{_fmt(_cell(rs, 'timeouts'), 0)} | {_fmt(up_us, 2)} |")
        w("")
        w("dotload vs dnsperf on one core against the same UDP responder is the first pair of "
          "rows; dotresponder vs dnsdist as DoT servers on one core are the DoT rows.")
        w("")

    discarded = [r for r in records if r.get("discarded")]
    noisy = [r for r in records if r.get("noisy")]
    w("## Noise")
    w("")
    w(f"The machine is shared. {len(discarded)} run(s) were repeated because other processes "
      f"used more than {settings.get('other_max_pct', 20):g} % of a core during them (`other_cpu_pct` in the raw file; they stay "
      f"there with `discarded: true`); {len(noisy)} run(s) were kept although still noisy "
      "after the retry. Rank proxies measured in the same run only.")
    w("")
    w("## Commands")
    w("")
    w("Every load command, exactly as run, is in the raw JSONL (`cmd`); `$WORK` is "
      "`/tmp/dotproxy-compare`, where compare keeps private copies of dotload, dotresponder and "
      "dotproxy, the generated configs and logs. Representative ones:")
    w("")
    w("```")
    seen = set()
    for r in records:
        key = (r.get("kind"), r["tool"], r["level"])
        if key in seen:
            continue
        seen.add(key)
        w(r["cmd"].replace(work, "$WORK"))
    w("```")
    w("")
    with open(out_md, "w") as f:
        f.write("\n".join(L))


# ---- plots ------------------------------------------------------------------------------------

def _gnuplot(script, name, plots_dir, size):
    out = []
    terms = [("svg", f"set terminal svg size {size[0]},{size[1]} dynamic font 'Helvetica,12' "
                     f"background rgb 'white'")]
    if "pngcairo" in _run(["gnuplot", "-e", "set terminal"]):
        terms.append(("png", f"set terminal pngcairo size {size[0]},{size[1]} font 'Helvetica,10'"))
    for ext, term in terms:
        path = os.path.join(plots_dir, f"{name}.{ext}")
        r = subprocess.run(["gnuplot"], input=f"{term}\nset output '{path}'\n{script}\n",
                           capture_output=True, text=True)
        if r.returncode == 0:
            out.append(f"{name}.{ext}")
        else:
            print(r.stderr[-2000:])
    return out


def _plots(groups, peer_names, plots_dir, work):
    if shutil.which("gnuplot") is None:
        return []
    made = []
    data_dir = os.path.join(plots_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    # CDF at 2,000 QPS: the repetition with the median p99 of each proxy (dotload).
    panels = []
    for mode in ("udp", "tcp"):
        series = []
        for label, kind, dmode in [("direct", "direct", "dot")] + \
                [(p, "proxy", mode) for p in peer_names]:
            rs = groups.get((kind, label, "dotload", dmode, "2000"))
            if not rs:
                continue
            rs = sorted(rs, key=lambda r: r.get("p99_ms") or 0)
            pick = rs[len(rs) // 2]
            src = os.path.join(work, pick.get("cdf", ""))
            if not pick.get("cdf") or not os.path.exists(src):
                continue
            dst = os.path.join(data_dir, f"cdf_2000qps_{label}_{dmode}.dat")
            shutil.copy(src, dst)
            title = "upstream directly (DoT)" if label == "direct" else label
            series.append((dst, title))
        if series:
            panels.append((mode, series))
    if panels:
        script = ["set multiplot layout 1,%d" % len(panels),
                  "set logscale x", "set grid", "set key bottom right",
                  "set xlabel 'latency (µs, log scale)'", "set ylabel 'fraction of queries'",
                  "set yrange [0:1]", "set format x '%g'"]
        for mode, series in panels:
            script.append(f"set title 'Latency CDF at 2,000 QPS, client over {mode.upper()} "
                          f"(dotload, open loop)'")
            script.append("plot " + ", ".join(
                f"'{path}' using 1:2 with steps lw 2 title '{title}'" for path, title in series))
        script.append("unset multiplot")
        for f in _gnuplot("\n".join(script), "cdf_2000qps", plots_dir, (1400, 560)):
            made.append(("Latency distribution per proxy at 2,000 QPS", f))
            break
    # CPU µs per query at peak: bars per proxy.
    columns = [("dotload", "udp"), ("dotload", "tcp"), ("dnsperf", "udp"), ("dnsperf", "tcp")]
    rows = []
    for p in peer_names:
        vals = [_cell(groups.get(("proxy", p, t, m, "peak"), []), "proxy_us_per_query")
                for t, m in columns]
        if any(v is not None for v in vals):
            rows.append((p, vals))
    if rows:
        used = [i for i, c in enumerate(columns) if any(r[1][i] is not None for r in rows)]
        dat = os.path.join(data_dir, "cpu_per_query_peak.dat")
        with open(dat, "w") as f:
            f.write("proxy " + " ".join(f"{columns[i][0]}-{columns[i][1]}" for i in used) + "\n")
            for p, vals in rows:
                f.write(p + " " + " ".join(_fmt(vals[i], 2) if vals[i] is not None else "0"
                                           for i in used) + "\n")
        script = ["set style data histogram", "set style histogram clustered gap 1",
                  "set style fill solid 0.85 border -1", "set boxwidth 0.9", "set grid ytics",
                  "set key top left autotitle columnheader",
                  "set ylabel 'proxy CPU µs per answered query'",
                  "set title 'Proxy CPU per query at peak load (one core; lower is better)'",
                  "set yrange [0:*]",
                  "plot " + ", ".join(f"'{dat}' using {i + 2}:xtic(1)" for i in range(len(used)))]
        for f in _gnuplot("\n".join(script), "cpu_per_query_peak", plots_dir, (1000, 560)):
            made.append(("Proxy CPU µs per query at peak", f))
            break
    return made
