#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Run the dispatch benchmarks of evfn against its peers and summarise them.

Drives bench-dispatch (one system, one workload, one JSON line per process):
a warm-up round, then N rounds in which every workload runs once on every
system, interleaved (A B C D A B C D ...) so that drift on a shared machine
hits all systems alike. Prints medians with min-max and ratios, writes
bench/results/latest.json (machine, versions, raw runs, statistics and a
flat "summary" of numbers) and, when matplotlib imports, PNG plots next to
it. Run with Debian's /usr/bin/python3; stdlib plus matplotlib only.
"""

import argparse
import json
import re
import os
import shutil
import platform
import statistics
import subprocess
import sys
import time

import instructions

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = ["pthread", "libuv", "glib"]
SYSTEMS = ["evfn"] + PEERS

# evfn run with one option changed, and the bench-dispatch arguments that
# change it: "evfn-off" has deadlines, ages and retries disabled,
# "evfn-nometrics" records no latency histograms or billed duration.
VARIANTS = {
    "evfn-off": ("evfn", ["--features", "off"]),
    "evfn-nometrics": ("evfn", ["--metrics", "off"]),
}

# key, bench-dispatch workload, extra arguments, full and quick task counts,
# systems. "metrics" is noop_p1 for evfn alone, with and without metrics,
# so that --only metrics measures just that pair.
WORKLOADS = [
    ("noop_p1", "noop", ["--producers", "1"], 2000000, 300000,
     ["evfn", "evfn-off"] + PEERS),
    ("noop_p2", "noop", ["--producers", "2"], 2000000, 300000, SYSTEMS),
    ("noop_p4", "noop", ["--producers", "4"], 2000000, 300000, SYSTEMS),
    ("noop_p8", "noop", ["--producers", "8"], 2000000, 300000, SYSTEMS),
    # evfn admits 64 events per evfn_publish_batch(); the pthread pool,
    # which has no batch call, submits one by one in the same round.
    ("noop_batch64", "noop", ["--producers", "1", "--batch", "64"],
     2000000, 300000, ["evfn", "pthread"]),
    ("work1us", "work1us", [], 1000000, 200000, SYSTEMS),
    ("lat_100k", "latency", ["--rate", "100000"], 200000, 50000, SYSTEMS),
    ("lat_1m", "latency", ["--rate", "1000000"], 200000, 50000, SYSTEMS),
    ("memory", "memory", [], 1000000, 200000, SYSTEMS),
    ("fanout8", "fanout", ["--fanout", "8"], 250000, 40000, SYSTEMS),
    ("metrics", "noop", ["--producers", "1"], 2000000, 300000,
     ["evfn", "evfn-nometrics"]),
]

# The producers scaling row: workload keys by producer threads.
PRODUCER_ROW = {1: "noop_p1", 2: "noop_p2", 4: "noop_p4", 8: "noop_p8"}
# --only names that stand for several keys.
ONLY_GROUPS = {"producers": sorted(PRODUCER_ROW.values())}

# What each workload is judged by, and whether larger is better.
METRICS = {
    "noop": [("tasks_per_s", True)],
    "work1us": [("tasks_per_s", True), ("fraction_of_limit", True)],
    "latency": [("p50_us", False), ("p99_us", False), ("p999_us", False),
                ("achieved_rate", True)],
    "memory": [("bytes_per_task", False)],
    "fanout": [("tasks_per_s", True), ("events_per_s", True)],
}


def find_binary(arg):
    """Returns the bench-dispatch path from --binary or build/bench/."""
    cands = [arg] if arg else [
        os.path.join(ROOT, "build", "bench", "bench-dispatch"),
        os.path.join(os.getcwd(), "build", "bench", "bench-dispatch"),
    ]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    sys.exit("bench-dispatch not found (tried %s); build with "
             "meson setup build -Dbench=true && ninja -C build, or pass "
             "--binary" % ", ".join(c for c in cands if c))


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "loadavg_at_start": load,
        "python": platform.python_version(),
    }


def run_one(binary, system, wl, tasks, extra, timeout):
    """Runs one process; returns its JSON result or an error record."""
    real, variant = VARIANTS.get(system, (system, []))
    cmd = [binary, "--system", real, "--workload", wl,
           "--tasks", str(tasks)] + extra + variant
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timeout after %ds" % timeout, "cmd": cmd}
    wall = time.monotonic() - t0
    if p.returncode != 0:
        return {"error": "exit %d: %s" % (p.returncode,
                                          p.stderr.strip()[-400:]),
                "cmd": cmd}
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            r["system"] = system
            r["wall_s"] = round(wall, 3)
            if p.stderr.strip():
                r["stderr"] = p.stderr.strip()[-400:]
            return r
    return {"error": "no JSON in output", "cmd": cmd}


def describe(vals):
    return {"median": statistics.median(vals), "min": min(vals),
            "max": max(vals), "n": len(vals)}


def round_order(plan, r):
    """The plan for round r: each workload's systems in the planned order
    in even rounds and reversed in odd ones, so that no system always
    runs first (the first run of a pair was measurably slower here)."""
    if r % 2 == 0:
        return plan
    out, group = [], []
    for step in plan:
        if group and group[-1][0] != step[0]:
            out += reversed(group)
            group = []
        group.append(step)
    return out + list(reversed(group))


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e6:
        return "%.2fM" % (v / 1e6)
    if a >= 1e4:
        return "%.0fk" % (v / 1e3)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    return "%.3g" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", help="path to bench-dispatch")
    ap.add_argument("--quick", action="store_true",
                    help="fewer tasks and 3 runs (under a minute)")
    ap.add_argument("--runs", type=int, help="measured rounds (5; quick 3)")
    ap.add_argument("--only", help="comma-separated workload keys")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()

    binary = find_binary(args.binary)
    runs = args.runs or (3 if args.quick else 5)
    timeout = 120
    vp = subprocess.run([binary, "--versions"], capture_output=True,
                        text=True, timeout=30)
    versions = json.loads(vp.stdout)
    available = set(versions.pop("systems", SYSTEMS))
    available |= {v for v, (base, _) in VARIANTS.items()
                  if base in available}
    workloads = WORKLOADS
    only = set()
    for name in (args.only.split(",") if args.only else []):
        only |= set(ONLY_GROUPS.get(name, [name]))
    if args.only:
        workloads = [w for w in WORKLOADS if w[0] in only]

    plan = []
    for key, wl, extra, full, quick, systems in workloads:
        tasks = quick if args.quick else full
        for s in systems:
            if s in available:
                plan.append((key, wl, extra, tasks, s))

    print("bench-dispatch: %s" % binary)
    print("machine: %(nproc)s cpus, %(cpu_model)s" % machine_info())
    print("versions: " + ", ".join("%s %s" % kv for kv in versions.items()))
    print("warm-up round, then %d interleaved rounds of %d runs"
          % (runs, len(plan)))
    for key, wl, extra, tasks, s in plan:
        run_one(binary, s, wl, max(tasks // 10, 10000), extra, timeout)

    raw = []
    t_start = time.monotonic()
    for r in range(runs):
        for key, wl, extra, tasks, s in round_order(plan, r):
            res = run_one(binary, s, wl, tasks, extra, timeout)
            res.update({"key": key, "round": r})
            res.setdefault("system", s)
            raw.append(res)
            if "error" in res:
                print("  round %d %s %s: %s" % (r, key, s, res["error"]),
                      file=sys.stderr)
        print("  round %d done (%.0f s)" % (r + 1,
                                            time.monotonic() - t_start))

    # Statistics per workload, system and metric.
    stats = {}
    for key, wl, extra, tasks, s in plan:
        ok = [x for x in raw if x["key"] == key and x["system"] == s
              and "error" not in x]
        entry = stats.setdefault(key, {}).setdefault(s, {})
        for metric, _ in METRICS[wl]:
            vals = [x[metric] for x in ok if metric in x]
            if vals:
                entry[metric] = describe(vals)
        backoffs = [x.get("backoffs", 0) for x in ok]
        if any(backoffs):
            entry["backoffs"] = describe(backoffs)

    def med(key, system, metric):
        try:
            return stats[key][system][metric]["median"]
        except KeyError:
            return None

    # Ratios: every system against the pthread baseline and evfn against
    # each peer, on the main metric of each workload (medians).
    ratios = {}
    for key, wl, extra, full, quick, systems in workloads:
        metric, higher = METRICS[wl][0] if wl != "latency" else \
            ("p99_us", False)
        for s in systems:
            v = ratio(med(key, s, metric), med(key, "pthread", metric))
            if v is not None:
                ratios["%s_%s_vs_pthread" % (key, s)] = v
        for p in PEERS:
            v = ratio(med(key, "evfn", metric), med(key, p, metric))
            if v is not None:
                ratios["%s_evfn_vs_%s" % (key, p)] = v

    summary = {}

    def put(name, value):
        if value is not None:
            summary[name] = round(value, 4)

    noop_evfn = med("noop_p1", "evfn", "tasks_per_s")
    for p in PEERS:
        put("noop_vs_" + p, ratio(noop_evfn, med("noop_p1", p,
                                                 "tasks_per_s")))
    for n, key in sorted(PRODUCER_ROW.items()):
        put("noop_%dproducers_vs_pthread" % n,
            ratio(med(key, "evfn", "tasks_per_s"),
                  med(key, "pthread", "tasks_per_s")))
    put("noop_batch64_vs_pthread",
        ratio(med("noop_batch64", "evfn", "tasks_per_s"),
              med("noop_batch64", "pthread", "tasks_per_s")))
    put("work1us_vs_pthread", ratio(med("work1us", "evfn", "tasks_per_s"),
                                    med("work1us", "pthread",
                                        "tasks_per_s")))
    put("work1us_of_limit", med("work1us", "evfn", "fraction_of_limit"))
    put("p50_us_100k_evfn", med("lat_100k", "evfn", "p50_us"))
    put("p99_us_100k_evfn", med("lat_100k", "evfn", "p99_us"))
    peer_p99 = [med("lat_100k", p, "p99_us") for p in PEERS]
    peer_p99 = [v for v in peer_p99 if v is not None]
    put("p99_us_100k_best_peer", min(peer_p99) if peer_p99 else None)
    put("bytes_per_queued_event", med("memory", "evfn", "bytes_per_task"))
    # An on/off pair runs back to back in each round; the median of the
    # per-round ratios cancels the drifts of a shared machine that a
    # ratio of two medians keeps.
    def paired(key, on, off, metric):
        per_round = {}
        for x in raw:
            if x["key"] == key and metric in x and "error" not in x:
                per_round.setdefault(x["round"], {})[x["system"]] = x[metric]
        vals = [ratio(r[on], r[off]) for r in per_round.values()
                if on in r and off in r and r[off]]
        return statistics.median(vals) if vals else None

    put("features_on_vs_off", paired("noop_p1", "evfn", "evfn-off",
                                     "tasks_per_s"))
    put("metrics_on_vs_off", paired("metrics", "evfn", "evfn-nometrics",
                                    "tasks_per_s"))

    # Instructions per no-op event (callgrind; see instructions.py): the
    # repeatable figure beside the wall clock, for evfn and the pthread
    # baseline, spin-waits excluded.
    if shutil.which("valgrind") and shutil.which("objdump") and (
            not args.only or "instructions" in only):
        small, large = (50000, 100000) if args.quick else (100000, 200000)
        for s, name, extra in (
                ("evfn", "instructions_per_event_noop", []),
                ("pthread", "instructions_per_event_noop_pthread", []),
                ("evfn", "instructions_per_event_noop_batch64",
                 ["--batch", "64"])):
            try:
                res = instructions.per_event(binary, s, small, large, extra,
                                             repeat=1 if args.quick else 3)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print("instructions %s: %s" % (s, e), file=sys.stderr)
                continue
            res["key"] = "instructions"
            raw.append(res)
            stats.setdefault("instructions", {})[
                s + ("-batch64" if extra else "")] = {
                "instructions_per_event": res["instructions_per_event"],
                "spin_share": res["spin_share"]}
            put(name, res["instructions_per_event"])
            print("instr     %-9s per no-op event%-9s%10.0f "
                  "(spin-waits excluded: %.2f%% of the count)"
                  % (s, " (batch)" if extra else "",
                     res["instructions_per_event"],
                     100 * res["spin_share"]))

    # Memory per event waiting for a retry (bench-retry, beside one
    # libevent timer per waiting item), interleaved like the rest.
    retry_bin = os.path.join(os.path.dirname(binary), "bench-retry")
    if os.path.exists(retry_bin) and (not args.only or
                                      "retrymem" in only):
        n = 200000 if args.quick else 1000000
        per = {"evfn": [], "libevent": []}
        for r in range(runs):
            for s in per:
                p = subprocess.run([retry_bin, "--system", s, "--tasks",
                                    str(n)], capture_output=True, text=True,
                                   timeout=timeout)
                if p.returncode == 0:
                    res = json.loads(p.stdout)
                    res.update({"key": "retrymem", "round": r})
                    raw.append(res)
                    per[s].append(res["bytes_per_waiting"])
        for s, vals in per.items():
            if vals:
                stats.setdefault("retrymem", {})[s] = {
                    "bytes_per_waiting": describe(vals)}
        put("bytes_per_waiting_retry", med("retrymem", "evfn",
                                           "bytes_per_waiting"))
        put("retrymem_vs_libevent_timer",
            ratio(med("retrymem", "evfn", "bytes_per_waiting"),
                  med("retrymem", "libevent", "bytes_per_waiting")))
        for s in per:
            d = stats.get("retrymem", {}).get(s, {}).get("bytes_per_waiting")
            if d:
                print("retrymem  %-9s bytes/waiting      %10s %21s" % (
                    s, fmt(d["median"]),
                    "%s-%s" % (fmt(d["min"]), fmt(d["max"]))))

    # HTTP asynchronous intake: wrk against evfn's async route and against
    # a bare evhttp handler answering 202, interleaved (bench-http).
    http_bin = os.path.join(os.path.dirname(binary), "bench-http")
    if (os.path.exists(http_bin) and shutil.which("wrk") and
            (not args.only or "http" in only)):
        secs = "1s" if args.quick else "3s"
        per = {"evfn": [], "bare": []}
        for r in range(runs):
            for system in per:
                srv = subprocess.Popen([http_bin, "--system", system],
                                       stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
                try:
                    port = int(srv.stdout.readline())
                    w = subprocess.run(
                        ["wrk", "-t1", "-c16", "-d" + secs,
                         "http://127.0.0.1:%d/intake" % port],
                        capture_output=True, text=True, timeout=60)
                    m = re.search(r"Requests/sec:\s+([0-9.]+)", w.stdout)
                    if m:
                        v = float(m.group(1))
                        per[system].append(v)
                        raw.append({"key": "http", "round": r,
                                    "system": system, "requests_per_s": v})
                finally:
                    srv.stdin.close()
                    srv.wait(timeout=30)
        for system, vals in per.items():
            if vals:
                stats.setdefault("http", {})[system] = {
                    "requests_per_s": describe(vals)}
                d = stats["http"][system]["requests_per_s"]
                print("http      %-9s requests/s         %10s %21s" % (
                    system, fmt(d["median"]),
                    "%s-%s" % (fmt(d["min"]), fmt(d["max"]))))
        put("http_async_vs_bare_evhttp",
            ratio(med("http", "evfn", "requests_per_s"),
                  med("http", "bare", "requests_per_s")))

    # Redis Streams end to end (XADD to acknowledged handler, 1 and 3
    # consumer processes, and 3 of which one is SIGKILLed a third of the
    # way, its entries reclaimed by the others) beside redis-benchmark's
    # XADD rate on the same server in the same run: tests/test-redis
    # --bench drives them all.
    redis_bin = os.path.join(os.path.dirname(os.path.dirname(binary)),
                             "tests", "test-redis")
    if (os.path.exists(redis_bin) and shutil.which("redis-server")
            and (not args.only or "redis" in only)):
        n = 20000 if args.quick else 100000
        vals = {"xadd": [], "c1": [], "c3": [], "c3kill": []}
        for r in range(runs):
            p = subprocess.run([redis_bin, "--bench", str(n)],
                               capture_output=True, text=True,
                               timeout=timeout * 3)
            out = p.stdout
            m = re.search(r"XADD[^:\n]*: ([0-9.]+) requests per second", out)
            c1 = re.search(r"1 consumer\(s\):.*: ([0-9.]+) entries/s", out)
            c3 = re.search(r"3 consumer\(s\):.*: ([0-9.]+) entries/s", out)
            c3kill = re.search(
                r"3 consumer\(s\), one killed:.*: ([0-9.]+) entries/s", out)
            if p.returncode == 0 and m and c1 and c3 and c3kill:
                res = {"key": "redis", "round": r,
                       "xadd_per_s": float(m.group(1)),
                       "c1_per_s": float(c1.group(1)),
                       "c3_per_s": float(c3.group(1)),
                       "c3kill_per_s": float(c3kill.group(1))}
                raw.append(res)
                for k in vals:
                    vals[k].append(res[k + "_per_s"])
        if vals["xadd"]:
            stats["redis"] = {k: {"per_s": describe(v)}
                              for k, v in vals.items()}
            xadd = stats["redis"]["xadd"]["per_s"]["median"]
            put("redis_vs_xadd",
                ratio(stats["redis"]["c1"]["per_s"]["median"], xadd))
            put("redis3_vs_xadd",
                ratio(stats["redis"]["c3"]["per_s"]["median"], xadd))
            put("redis3_kill_vs_xadd",
                ratio(stats["redis"]["c3kill"]["per_s"]["median"], xadd))
            for k in ("xadd", "c1", "c3", "c3kill"):
                d = stats["redis"][k]["per_s"]
                print("redis     %-9s entries/s          %10s %21s" % (
                    k, fmt(d["median"]),
                    "%s-%s" % (fmt(d["min"]), fmt(d["max"]))))

    # PostgreSQL row changes through the pg source beside pgbench's insert
    # rate on the same server, in a throwaway cluster (tests/pg-cluster.sh,
    # the tests' script); bench-pg runs the rounds itself, alternating
    # which of each pair runs first, and the ratio is the median of the
    # per-round ratios.
    pg_bin = os.path.join(os.path.dirname(binary), "bench-pg")
    cluster = os.path.join(ROOT, "tests", "pg-cluster.sh")
    if (os.path.exists(pg_bin) and shutil.which("pgbench") and
            (not args.only or "pg" in only)):
        n = 20000 if args.quick else 50000
        p = subprocess.run(["sh", cluster, "run", pg_bin, "--rounds",
                            str(runs), "--rows", str(n)],
                           capture_output=True, text=True,
                           timeout=timeout * 5)
        rounds = [json.loads(line) for line in p.stdout.splitlines()
                  if line.startswith("{")]
        if p.returncode != 0 or not rounds:
            print("pg: bench-pg failed: %s" % p.stderr.strip()[-400:],
                  file=sys.stderr)
        for res in rounds:
            res["key"] = "pg"
            raw.append(res)
        if rounds:
            stats["pg"] = {k: describe([x[k] for x in rounds])
                           for k in ("insert_rows_per_s", "pg_rows_per_s",
                                     "p50_us", "p99_us", "ratio")}
            put("pg_rows_per_s", stats["pg"]["pg_rows_per_s"]["median"])
            put("pg_p50_us", stats["pg"]["p50_us"]["median"])
            put("pg_p99_us", stats["pg"]["p99_us"]["median"])
            put("pg_vs_insert_rate", stats["pg"]["ratio"]["median"])
            for k in ("insert_rows_per_s", "pg_rows_per_s", "p50_us",
                      "p99_us"):
                d = stats["pg"][k]
                print("pg        %-18s %10s %21s" % (
                    k, fmt(d["median"]),
                    "%s-%s" % (fmt(d["min"]), fmt(d["max"]))))

    # The journal (bench-journal): durable appends with 1 and 8 waiting
    # producers beside the disk's fsync latency (and 8 producers
    # appending batches of 64), fast mode around no-op dispatch against
    # the same loop without a journal (paired per round), its commit
    # delays paced at 100,000 events/s, and recovery of 1,000,000
    # pending events. Interleaved like the rest.
    journal_bin = os.path.join(os.path.dirname(binary), "bench-journal")
    if os.path.exists(journal_bin) and (not args.only or
                                        "journal" in only):
        secs = "1" if args.quick else "3"
        n_dispatch = "300000" if args.quick else "1000000"
        n_recover = "200000" if args.quick else "1000000"
        plan_j = [
            ("durable_p1", ["--workload", "durable", "--producers", "1",
                            "--seconds", secs]),
            ("durable_p8", ["--workload", "durable", "--producers", "8",
                            "--seconds", secs]),
            ("durable_p8_b64", ["--workload", "durable", "--producers",
                                "8", "--batch", "64", "--seconds", secs]),
            ("dispatch_off", ["--workload", "dispatch", "--journal", "off",
                              "--events", n_dispatch]),
            ("dispatch_fast", ["--workload", "dispatch", "--journal",
                               "fast", "--events", n_dispatch]),
            ("dispatch_fast_100k", ["--workload", "dispatch", "--journal",
                                    "fast", "--rate", "100000", "--events",
                                    "200000" if args.quick else "500000"]),
            ("recover", ["--workload", "recover", "--events", n_recover]),
            # The same through the runtime's own journal option.
            ("rt_durable_p1", ["--workload", "durable", "--through",
                               "runtime", "--producers", "1",
                               "--seconds", secs]),
            ("rt_durable_p8", ["--workload", "durable", "--through",
                               "runtime", "--producers", "8",
                               "--seconds", secs]),
            ("rt_durable_p8_b64", ["--workload", "durable", "--through",
                                   "runtime", "--producers", "8",
                                   "--batch", "64", "--seconds", secs]),
            ("rt_dispatch_fast", ["--workload", "dispatch", "--through",
                                  "runtime", "--journal", "fast",
                                  "--events", n_dispatch]),
            ("rt_recover", ["--workload", "recover", "--through",
                            "runtime", "--events", n_recover]),
        ]
        jvals = {}
        for r in range(runs):
            for key, jargs in (plan_j if r % 2 == 0 else plan_j[::-1]):
                try:
                    p = subprocess.run([journal_bin] + jargs,
                                       capture_output=True, text=True,
                                       timeout=timeout * 3)
                except subprocess.TimeoutExpired:
                    continue
                if p.returncode != 0 or not p.stdout.startswith("{"):
                    print("  journal %s: %s" % (key, p.stderr.strip()[-300:]),
                          file=sys.stderr)
                    continue
                res = json.loads(p.stdout)
                res.update({"key": "journal_" + key, "round": r})
                raw.append(res)
                jvals.setdefault(key, []).append(res)

        def jmed(key, metric):
            vals = [x[metric] for x in jvals.get(key, []) if metric in x]
            return statistics.median(vals) if vals else None

        stats["journal"] = {
            key: {m: describe([x[m] for x in xs])
                  for m in xs[0] if isinstance(xs[0][m], (int, float))
                  and m not in ("round",)}
            for key, xs in jvals.items()}
        # The journal alone (its own calls, a hand-made dispatch loop),
        # then the runtime with its journal option: the rows named in
        # issue 20 are the runtime's.
        put("journal_leaf_durable_events_per_s", jmed("durable_p8",
                                                      "events_per_s"))
        put("journal_leaf_durable_events_per_s_p1", jmed("durable_p1",
                                                         "events_per_s"))
        put("journal_durable_events_per_s", jmed("rt_durable_p8",
                                                 "events_per_s"))
        put("journal_durable_events_per_s_p1", jmed("rt_durable_p1",
                                                    "events_per_s"))
        put("journal_durable_events_per_commit",
            jmed("rt_durable_p8", "events_per_commit"))
        put("journal_durable_events_per_commit_p1",
            jmed("rt_durable_p1", "events_per_commit"))
        put("journal_durable_events_per_s_p8_batch64",
            jmed("durable_p8_b64", "events_per_s"))
        put("journal_durable_events_per_s_batch",
            jmed("rt_durable_p8_b64", "events_per_s"))
        put("journal_durable_events_per_commit_batch",
            jmed("rt_durable_p8_b64", "events_per_commit"))
        put("journal_durable_events_per_commit_p8",
            jmed("durable_p8", "events_per_commit"))
        put("journal_fsync_us", jmed("durable_p8", "fsync_us"))
        put("journal_fast_events_per_s", jmed("dispatch_fast",
                                              "events_per_s"))
        put("journal_off_events_per_s", jmed("dispatch_off",
                                             "events_per_s"))
        put("journal_rt_fast_events_per_s", jmed("rt_dispatch_fast",
                                                 "events_per_s"))
        per_round = {}
        for key in ("dispatch_off", "dispatch_fast", "rt_dispatch_fast"):
            for x in jvals.get(key, []):
                per_round.setdefault(x["round"], {})[key] = x["events_per_s"]

        def paired(key):
            pairs = [ratio(v[key], v["dispatch_off"])
                     for v in per_round.values()
                     if key in v and "dispatch_off" in v]
            return statistics.median(pairs) if pairs else None
        put("journal_leaf_fast_vs_off", paired("dispatch_fast"))
        put("journal_fast_vs_off", paired("rt_dispatch_fast"))
        put("journal_fast_commit_delay_p99_ms",
            jmed("dispatch_fast_100k", "commit_delay_p99_ms"))
        put("journal_fast_commit_delay_max_ms",
            jmed("dispatch_fast_100k", "commit_delay_max_ms"))
        put("journal_fast_cancelled_100k",
            ratio(jmed("dispatch_fast_100k", "appends_cancelled"),
                  jmed("dispatch_fast_100k", "events")))
        put("journal_fast_burst_commit_delay_p99_ms",
            jmed("dispatch_fast", "commit_delay_p99_ms"))
        for key, name in (("recover", "journal_leaf_recovery_s_1m"),
                          ("rt_recover", "journal_recovery_s_1m")):
            rec = jmed(key, "recover_s")
            n_rec = jmed(key, "events")
            if rec is not None and n_rec:
                put(name, rec * 1e6 / n_rec)
        for key, metric in (("durable_p1", "events_per_s"),
                            ("durable_p8", "events_per_s"),
                            ("durable_p8_b64", "events_per_s"),
                            ("durable_p8", "fsync_us"),
                            ("dispatch_off", "events_per_s"),
                            ("dispatch_fast", "events_per_s"),
                            ("dispatch_fast", "commit_delay_p99_ms"),
                            ("dispatch_fast_100k", "commit_delay_p99_ms"),
                            ("recover", "recover_s"),
                            ("rt_durable_p1", "events_per_s"),
                            ("rt_durable_p8", "events_per_s"),
                            ("rt_durable_p8", "events_per_commit"),
                            ("rt_dispatch_fast", "events_per_s"),
                            ("rt_recover", "recover_s")):
            vals = [x[metric] for x in jvals.get(key, []) if metric in x]
            if vals:
                d = describe(vals)
                print("journal   %-15s %-18s %10s %21s" % (
                    key, metric, fmt(d["median"]),
                    "%s-%s" % (fmt(d["min"]), fmt(d["max"]))))

    # Python handlers through evfn beside ThreadPoolExecutor and asyncio
    # (bindings/python/bench_python.py interleaves them itself).
    build_root = os.path.dirname(os.path.dirname(binary))
    pymod = os.path.join(build_root, "bindings", "python")
    pybench = os.path.join(HERE, "..", "bindings", "python",
                           "bench_python.py")
    if (os.path.isdir(os.path.join(pymod, "evfn")) and
            os.path.exists(pybench) and
            (not args.only or "python" in only)):
        env = dict(os.environ, PYTHONPATH=pymod)
        p = subprocess.run(["/usr/bin/python3", pybench, "--runs", str(runs),
                            "--tasks", "10000" if args.quick else "20000"],
                           capture_output=True, text=True, env=env,
                           timeout=timeout * 5)
        if p.returncode == 0:
            res = json.loads(p.stdout)
            res["key"] = "python"
            raw.append(res)
            stats["python"] = {"ops_per_s_median": res["ops_per_s_median"]}
            put("python_vs_threadpoolexecutor",
                res["python_vs_threadpoolexecutor"])
            put("python_emit_vs_threadpoolexecutor",
                res["emit_vs_threadpoolexecutor"])
            for k, v in res["ops_per_s_median"].items():
                print("python    %-26s ops/s  %10s" % (k, fmt(v)))

    # Table.
    print()
    print("%-9s %-14s %-18s %10s %21s %9s" % ("workload", "system",
                                              "metric", "median",
                                              "min-max", "vs pthread"))
    for key, wl, extra, full, quick, systems in workloads:
        for s in systems:
            for metric, _ in METRICS[wl]:
                d = stats.get(key, {}).get(s, {}).get(metric)
                if d is None:
                    continue
                base = med(key, "pthread", metric)
                rv = ratio(d["median"], base)
                print("%-9s %-14s %-18s %10s %21s %9s" % (
                    key, s, metric, fmt(d["median"]),
                    "%s-%s" % (fmt(d["min"]), fmt(d["max"])),
                    "%.2fx" % rv if rv is not None else "-"))
        print()
    print("summary:")
    for k, v in summary.items():
        print("  %-36s %s" % (k, v))

    os.makedirs(args.out, exist_ok=True)
    doc = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "binary": binary,
        "mode": "quick" if args.quick else "full",
        "runs": runs,
        "machine": machine_info(),
        "versions": versions,
        "workloads": [{"key": k, "workload": wl, "args": e,
                       "tasks": q if args.quick else f, "systems": ss}
                      for k, wl, e, f, q, ss in workloads],
        "summary": summary,
        "ratios": ratios,
        "stats": stats,
        "raw": raw,
    }
    path = os.path.join(args.out, "latest.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote " + path)
    if not args.no_plots:
        plot(doc, args.out)


def plot(doc, out):
    """Draws throughput bars and latency CDFs; skips without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print("plots skipped: matplotlib unavailable (%s); "
              "apt-get install python3-matplotlib" % e)
        return
    stats = doc["stats"]
    colors = {"evfn": "#d62728", "evfn-off": "#ff9896",
              "evfn-nometrics": "#e377c2", "pthread": "#7f7f7f",
              "libuv": "#1f77b4", "glib": "#2ca02c"}

    tp = [(w["key"], w["systems"]) for w in doc["workloads"]
          if w["workload"] in ("noop", "work1us", "fanout")]
    if tp:
        fig, axes = plt.subplots(1, len(tp), figsize=(3.2 * len(tp), 3.8),
                                 squeeze=False)
        for ax, (key, systems) in zip(axes[0], tp):
            names, meds, lo, hi = [], [], [], []
            for s in systems:
                d = stats.get(key, {}).get(s, {}).get("tasks_per_s")
                if d is None:
                    continue
                names.append(s)
                meds.append(d["median"] / 1e6)
                lo.append((d["median"] - d["min"]) / 1e6)
                hi.append((d["max"] - d["median"]) / 1e6)
            ax.bar(range(len(names)), meds, yerr=[lo, hi], capsize=3,
                   color=[colors.get(n, "#999999") for n in names])
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=45, ha="right")
            ax.set_title(key)
            ax.set_ylabel("M tasks/s (median, min-max)")
        fig.suptitle("Dispatch throughput, 2 workers (%s)" % doc["mode"])
        fig.tight_layout()
        fig.savefig(os.path.join(out, "throughput.png"), dpi=100)
        plt.close(fig)

    lat = [w for w in doc["workloads"] if w["workload"] == "latency"]
    if lat:
        fig, axes = plt.subplots(1, len(lat), figsize=(6 * len(lat), 4),
                                 squeeze=False)
        for ax, w in zip(axes[0], lat):
            for s in w["systems"]:
                rs = [r for r in doc["raw"] if r.get("key") == w["key"]
                      and r.get("system") == s and "cdf" in r]
                if not rs:
                    continue
                # The run with the median p99 stands for the system.
                rs.sort(key=lambda r: r["p99_us"])
                r = rs[len(rs) // 2]
                xs = [max(p[1], 0.01) for p in r["cdf"]]
                ys = [p[0] for p in r["cdf"]]
                ax.plot(xs, ys, label=s, color=colors.get(s))
            ax.set_xscale("log")
            ax.set_xlabel("submit to handler start (us)")
            ax.set_ylabel("fraction of tasks")
            ax.set_title("%s (%s tasks/s)" % (w["key"], w["args"][-1]))
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "latency-cdf.png"), dpi=100)
        plt.close(fig)
    print("plots written to " + out)


if __name__ == "__main__":
    main()
