# SPDX-License-Identifier: MIT
"""Instructions per dispatched event, counted by valgrind's callgrind.

Wall-clock throughput on a shared 2-core VM swings 2-3x from run to run;
instruction counts repeat to about 1%. This module runs bench-dispatch
under `valgrind --tool=callgrind --fair-sched=yes` at two task counts and
reports the difference divided by the difference in tasks, so start-up,
warm-up, pool creation and teardown cancel out and what remains is the
cost of one more event, end to end (producer, workers, allocator, locks).
The interleaving callgrind picks still moves a count by a few percent, so
run.py takes the median of three such pairs (one with --quick).

Callgrind runs one thread at a time, so a thread that spins waiting for
another (evfn's spinning worker, glibc's adaptive mutex) executes
instructions for as long as the scheduler lets it, which counts time,
not work. Those instructions are subtracted: every loop that executes a
`pause` instruction is a spin-wait, found in each object's disassembly
(objdump); its instructions, and the calls made from inside it (the
spinner's sched_yield), are taken out of the count using callgrind's
per-instruction costs (--dump-instr=yes). The share subtracted is
reported beside the count.
"""

import os
import re
import subprocess
import tempfile

# A loop that spins is short: each backward branch that makes it up lies
# within this many bytes of its target (a longer one is an outer loop or a
# jump to shared code, not the wait).
MAX_SPIN_LOOP_BYTES = 128

_INSN = re.compile(r"^\s*([0-9a-f]+):\s+([a-z]\S*)\s*([0-9a-f]*)")


def spin_ranges(path):
    """Address ranges [lo, hi] of the loops in object `path` that execute
    `pause`: the short backward branches around a pause, and those that
    overlap them (a spinner's second path back, through its yield)."""
    try:
        out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                             capture_output=True, text=True,
                             timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    pauses, back = [], []
    for line in out.splitlines():
        m = _INSN.match(line)
        if not m:
            continue
        addr, op, arg = int(m.group(1), 16), m.group(2), m.group(3)
        if op == "pause":
            pauses.append(addr)
        elif op.startswith("j") and arg:
            target = int(arg, 16)
            if target <= addr and addr - target <= MAX_SPIN_LOOP_BYTES:
                back.append((target, addr))
    ranges = []
    for p in pauses:
        lo = hi = p
        grown = True
        while grown:
            grown = False
            for t, j in back:
                if t <= hi and j >= lo and (t < lo or j > hi):
                    lo, hi, grown = min(lo, t), max(hi, j), True
        if hi > lo:
            ranges.append((lo, hi))
    return ranges


def parse_callgrind(path):
    """Returns (total Ir, {object: [(address, Ir, is_call)]}) from a
    callgrind file written with --dump-instr=yes --compress-pos=no
    --compress-strings=no. is_call marks the inclusive cost of a call
    made from that address."""
    total = 0
    costs = {}
    obj = None
    after_calls = False
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = max(total, int(line.split()[1]))
            elif line.startswith("ob="):
                obj = line[3:].strip()
            elif line.startswith("calls="):
                after_calls = True
            elif line.startswith("0x"):
                parts = line.split()
                if len(parts) >= 3 and obj is not None:
                    costs.setdefault(obj, []).append(
                        (int(parts[0], 16), int(parts[2]), after_calls))
                after_calls = False
    return total, costs


def spin_instructions(costs):
    """Instructions executed inside spin-wait loops, calls included."""
    spun = 0
    for obj, rows in costs.items():
        if not os.path.isfile(obj):
            continue
        ranges = spin_ranges(obj)
        if not ranges:
            continue
        for addr, ir, _ in rows:
            if any(lo <= addr <= hi for lo, hi in ranges):
                spun += ir
    return spun


def count(binary, system, tasks, extra=(), timeout=600):
    """Runs one callgrind measurement; returns (total, spin) Ir."""
    fd, out = tempfile.mkstemp(prefix="evfn-callgrind-")
    os.close(fd)
    try:
        cmd = ["valgrind", "--tool=callgrind", "--fair-sched=yes",
               "--dump-instr=yes", "--compress-pos=no",
               "--compress-strings=no", "--callgrind-out-file=" + out,
               binary, "--system", system, "--workload", "noop",
               "--tasks", str(tasks)] + list(extra)
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("callgrind run failed: %s"
                               % p.stderr.strip()[-400:])
        total, costs = parse_callgrind(out)
        return total, spin_instructions(costs)
    finally:
        os.unlink(out)


def per_event(binary, system, small, large, extra=(), repeat=1):
    """Instructions per no-op event for `system`: the difference between
    runs of `large` and `small` tasks, spin-waits excluded, over the
    difference in tasks; the median of `repeat` such pairs (the count
    moves by a few percent with the interleaving callgrind happens to
    pick). Returns a dict of the numbers behind it."""
    pairs = []
    for _ in range(repeat):
        t1, s1 = count(binary, system, small, extra)
        t2, s2 = count(binary, system, large, extra)
        pairs.append((((t2 - s2) - (t1 - s1)) / float(large - small),
                      (s2 - s1) / float(max(t2 - t1, 1)), t1, t2, s1, s2))
    pairs.sort()
    mid = pairs[len(pairs) // 2]
    return {"system": system, "instructions_per_event": mid[0],
            "spin_share": mid[1], "tasks": [small, large],
            "total_ir": [mid[2], mid[3]], "spin_ir": [mid[4], mid[5]],
            "per_pair": [p[0] for p in pairs]}


if __name__ == "__main__":
    import argparse
    import json
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--system", default="evfn")
    ap.add_argument("--tasks", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1,
                    help="tasks per batch submit (evfn_publish_batch)")
    args = ap.parse_args()
    extra = ["--batch", str(args.batch)] if args.batch > 1 else []
    print(json.dumps(per_event(args.binary, args.system, args.tasks,
                               2 * args.tasks, extra, repeat=args.repeat)))
