#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Totals one or more meson test runs (their meson-logs/testlog.json): every TAP subtest (C suites), every pytest and
Lua case that reports TAP-style lines, and every plain test counted once.
Prints one line per suite and the closing line "N passed, N failed"."""
import collections
import json
import re
import sys

SUBTEST = re.compile(r"^(ok|not ok)\b", re.M)


def main(paths):
    per_suite = collections.defaultdict(lambda: [0, 0])
    for path in paths:
        with open(path) as f:
            lines = f.readlines()
        for line in lines:
            t = json.loads(line)
            # "evfn:unit / runtime" -> "unit"
            suite = t["name"].split(" / ")[0].split(":")[-1]
            if len(paths) > 1:
                suite = path.split("/")[-3] + ":" + suite
            ok_result = t["result"] in ("OK", "EXPECTEDFAIL")
            marks = SUBTEST.findall(t.get("stdout") or "")
            passed = sum(1 for m in marks if m == "ok")
            failed = sum(1 for m in marks if m == "not ok")
            if not marks:
                passed, failed = (1, 0) if ok_result else (0, 1)
            elif not ok_result and failed == 0:
                failed = 1  # crashed or timed out after its last case
            per_suite[suite][0] += passed
            per_suite[suite][1] += failed
    total = [0, 0]
    for suite in sorted(per_suite):
        p, f = per_suite[suite]
        total[0] += p
        total[1] += f
        print(f"  {suite:20} {p} passed, {f} failed")
    print(f"{total[0]} passed, {total[1]} failed")


if __name__ == "__main__":
    main(sys.argv[1:])
