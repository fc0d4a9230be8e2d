# SPDX-License-Identifier: MIT
"""No-op Python handlers through evfn against Python's own dispatchers,
measured in the same run: concurrent.futures.ThreadPoolExecutor.submit
(same number of threads, a Future per task, like invoke_async) and asyncio's
loop.call_soon (one thread, no futures). Prints JSON: the median
throughput of 5 runs of each, and python_vs_threadpoolexecutor =
evfn invoke_async throughput / ThreadPoolExecutor throughput.

Run from the build dir: PYTHONPATH=<build>/bindings/python python3
bindings/python/bench_python.py [--tasks N] [--workers W]
"""
import argparse
import asyncio
import concurrent.futures
import json
import os
import statistics
import sys
import threading
import time

# This file sits next to the source package, which has no _evfn: import
# the built one from PYTHONPATH instead.
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or ".") != os.path.dirname(
                   os.path.abspath(__file__))]
import evfn  # noqa: E402


def noop(*args):
    return None


def bench_evfn_invoke_async(rt, n):
    t = time.perf_counter()
    futs = [rt.invoke_async("noop") for _ in range(n)]
    concurrent.futures.wait(futs)
    return n / (time.perf_counter() - t)


def bench_evfn_emit(rt, n):
    """Fire and forget: completion is read from the counters."""
    base = rt.stats("noop")["succeeded"]
    t = time.perf_counter()
    for _ in range(n):
        rt.emit("noop", b"")
    while rt.stats("noop")["succeeded"] - base < n:
        time.sleep(0.0005)
    return n / (time.perf_counter() - t)


def bench_threadpool(pool, n):
    t = time.perf_counter()
    futs = [pool.submit(noop) for _ in range(n)]
    concurrent.futures.wait(futs)
    return n / (time.perf_counter() - t)


def bench_call_soon(loop, n):
    done = threading.Event()

    def run():
        for _ in range(n):
            loop.call_soon(noop)
        loop.call_soon(done.set)
    t = time.perf_counter()
    loop.call_soon_threadsafe(run)
    done.wait()
    return n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    rt = evfn.Runtime(workers=(args.workers, args.workers)).start()
    rt.register("noop", lambda ev: None, subscribe="noop")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.workers)
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()

    peers = {
        "evfn_invoke_async": lambda: bench_evfn_invoke_async(rt, args.tasks),
        "evfn_emit": lambda: bench_evfn_emit(rt, args.tasks),
        "threadpoolexecutor_submit": lambda: bench_threadpool(pool,
                                                              args.tasks),
        "asyncio_call_soon": lambda: bench_call_soon(loop, args.tasks),
    }
    for run in peers.values():  # warm-up: threads, thread states, caches
        run()
    samples = {name: [] for name in peers}
    for _ in range(args.runs):  # interleaved, so drift hits all alike
        for name, run in peers.items():
            samples[name].append(run())
    med = {name: statistics.median(v) for name, v in samples.items()}

    rt.close()
    pool.shutdown()
    loop.call_soon_threadsafe(loop.stop)
    loop_thread.join()
    loop.close()
    print(json.dumps({
        "tasks": args.tasks,
        "workers": args.workers,
        "runs": args.runs,
        "ops_per_s_median": {k: round(v) for k, v in med.items()},
        "python_vs_threadpoolexecutor": round(
            med["evfn_invoke_async"] / med["threadpoolexecutor_submit"], 3),
        "emit_vs_threadpoolexecutor": round(
            med["evfn_emit"] / med["threadpoolexecutor_submit"], 3),
        "python_vs_asyncio_call_soon": round(
            med["evfn_invoke_async"] / med["asyncio_call_soon"], 3),
    }, indent=2))


if __name__ == "__main__":
    main()
