"""Wake-ups and system calls of a proxy during one cell, per answered query.

Context switches come from /proc/PID/task/*/status (always available): a voluntary switch is the
proxy going to sleep, so each one costs a wake-up later; involuntary ones are preemptions. The
io_uring_enter and total system-call counts come from `perf stat` on the syscall tracepoints,
when perf works on this kernel (it is probed once); otherwise they are left out.
"""

import os
import shutil
import signal
import subprocess
import time

_EVENTS = ("syscalls:sys_enter_io_uring_enter", "raw_syscalls:sys_enter")
_perf_ok = None


def perf_available():
    global _perf_ok
    if _perf_ok is None:
        _perf_ok = False
        if shutil.which("perf"):
            r = subprocess.run(["perf", "stat", "-x,", "-e", ",".join(_EVENTS), "--", "true"],
                               capture_output=True, text=True)
            _perf_ok = r.returncode == 0 and "<not supported>" not in r.stderr
    return _perf_ok


def context_switches(pid):
    """(voluntary, involuntary) summed over the threads of PID, or None."""
    vol = inv = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        inv += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
    return vol, inv


class Counter:
    """Counts around one load run: start() before it, finish(answered) after it."""

    def __init__(self, pid, out_path):
        self.pid = pid
        self.out = out_path
        self.perf = None
        self.cs0 = None

    def start(self):
        if perf_available():
            self.perf = subprocess.Popen(
                ["perf", "stat", "-x,", "-e", ",".join(_EVENTS), "-p", str(self.pid),
                 "-o", self.out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.3)  # attached before the load starts, so no query goes uncounted
        self.cs0 = context_switches(self.pid)

    def finish(self, answered):
        """Fields for the record: per-query figures (None where unknown)."""
        cs1 = context_switches(self.pid)
        rec = {}
        counts = {}
        if self.perf is not None:
            self.perf.send_signal(signal.SIGINT)
            try:
                self.perf.wait(timeout=10)
                with open(self.out) as f:
                    for line in f:
                        fields = line.strip().split(",")
                        if len(fields) > 2 and fields[0].isdigit():
                            counts[fields[2]] = int(fields[0])
            except (OSError, subprocess.TimeoutExpired):
                self.perf.kill()
        if not answered:
            return rec
        if self.cs0 and cs1:
            rec["proxy_cs_vol_per_query"] = round((cs1[0] - self.cs0[0]) / answered, 3)
            rec["proxy_cs_invol_per_query"] = round((cs1[1] - self.cs0[1]) / answered, 3)
        if _EVENTS[0] in counts:
            rec["proxy_enters_per_query"] = round(counts[_EVENTS[0]] / answered, 3)
        if _EVENTS[1] in counts:
            rec["proxy_syscalls_per_query"] = round(counts[_EVENTS[1]] / answered, 3)
        return rec
