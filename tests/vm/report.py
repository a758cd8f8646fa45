#!/usr/bin/python3
"""Summarise one VM run from its results directory (tests/vm/run.sh's BUILD/vm-results).

Usage: tests/vm/report.py [--command] RESULTS_DIR

Prints one line per test (from meson's meson-logs/testlog.json, written live by the guest), the
kernel seen inside the guest and whether "tls" is in tcp_available_ulp, boot and suite times, and
last "N passed, N failed, N skipped". Exit 0 only if the guest finished, meson exited 0 and no
test failed. A guest that never finished counts as one more failure, so a VM that died or timed
out never reports a clean run. With --command (run.sh --command): the guest's facts and the
command's exit code, which is also report.py's.
"""
import json
import os
import re
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}


def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


def kv(text):
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


def main(argv):
    command_mode = len(argv) == 3 and argv[1] == "--command"
    if len(argv) != 2 and not command_mode:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    res = argv[-1]
    info = kv(read(os.path.join(res, "guest-info")))
    if command_mode:
        command_rc = read(os.path.join(res, "command-exit-code"))
        print_guest(res, info)
        print(f"vm: command exit {command_rc or '(did not finish)'}")
        return int(command_rc) if command_rc.isdigit() else 1
    passed = failed = skipped = 0
    print("vm: ---- results ----")
    log = os.path.join(res, "meson-logs", "testlog.json")
    lines = read(log).splitlines()
    width = max([len(m.group(1)) for m in map(re.compile(r'"name": "([^"]*)"').search, lines) if m]
                + [20])
    for line in lines:
        if not line.strip():
            continue
        try:
            t = json.loads(line)
        except json.JSONDecodeError:
            failed += 1
            print("vm: FAIL (a torn line in testlog.json)")
            continue
        result = t.get("result", "?")
        if result in PASSED:
            passed += 1
            word = "PASS"
        elif result in SKIPPED:
            skipped += 1
            word = "SKIP"
        else:
            failed += 1
            word = "FAIL"
        print(f"vm: {word:4} {t.get('name', '?'):{width}} {result:8} {float(t.get('duration') or 0):8.1f} s")

    rc = read(os.path.join(res, "exit-code"))
    init_error = read(os.path.join(res, "init-error"))
    finished = rc != ""
    if init_error:
        print(f"vm: the guest's /init failed: {init_error}")
    if not finished:
        print("vm: FAIL the guest did not finish the suite (crash, hang or VM timeout); "
              f"see {os.path.join(res, 'serial.log')}")
        failed += 1
    elif passed + failed == 0:
        print("vm: FAIL no test ran")
        failed += 1
    elif rc != "0" and failed == 0:
        print(f"vm: FAIL meson test exited {rc} without a failing test")
        failed += 1

    print_guest(res, info)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and finished else 1


def print_guest(res, info):
    ulp = info.get("tcp_available_ulp")
    if ulp is None:
        print("vm: kernel in the guest: unknown (guest-info missing)")
    else:
        tls = "yes" if "tls" in ulp.split() else "NO"
        print(f"vm: kernel in the guest: {info.get('uname_r', '?')} ({info.get('nproc', '?')} vCPUs); "
              f"tcp_available_ulp '{ulp}': tls {tls}; gcm(aes) driver {info.get('gcm_aes_driver') or '?'}")
    boot = read(os.path.join(res, "uptime-init"))
    suite = read(os.path.join(res, "suite-seconds"))
    wall = read(os.path.join(res, "wall-seconds"))
    accel = read(os.path.join(res, "accel"), "?")
    print(f"vm: accel {accel}; boot {boot or '?'} s (kernel start to tests, guest clock); "
          f"suite {suite or '?'} s; QEMU wall time {wall or '?'} s")
    print(f"vm: results in {res}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
