#!/usr/bin/python3
"""Count meson test results from <builddir>/meson-logs/testlog.json (one JSON object per line).

Usage: deploy/test-counts.py BUILDDIR [BUILDDIR...]
Prints one line "PASSED FAILED SKIPPED" summed over the build dirs. A build dir without a
testlog.json contributes nothing (the caller decides what a missing log means).

passed  = OK + EXPECTEDFAIL
failed  = FAIL + TIMEOUT + ERROR + UNEXPECTEDPASS + INTERRUPT
skipped = SKIP (counted in neither)
"""
import json
import os
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
FAILED = {"FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS", "INTERRUPT"}
SKIPPED = {"SKIP"}


def count(builddir):
    passed = failed = skipped = 0
    path = os.path.join(builddir, "meson-logs", "testlog.json")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return 0, 0, 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            result = json.loads(line).get("result")
        except json.JSONDecodeError:
            failed += 1  # a torn log line: do not let it pass silently
            continue
        if result in PASSED:
            passed += 1
        elif result in FAILED:
            failed += 1
        elif result in SKIPPED:
            skipped += 1
        else:
            failed += 1  # an unknown or unfinished state (PENDING, RUNNING) is not a pass
    return passed, failed, skipped


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    totals = [0, 0, 0]
    for builddir in argv[1:]:
        for i, n in enumerate(count(builddir)):
            totals[i] += n
    print(*totals)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
