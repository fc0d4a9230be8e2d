# SPDX-License-Identifier: MIT
"""No reference or memory leak per invocation: after a warm-up, 100,000
invocations through every path (invoke_async with str/JSON payloads and
responses, handlers that read the event and use the context, sync invoke,
emit) leave Python memory (tracemalloc) and the object count flat."""
import concurrent.futures
import gc
import sys
import tracemalloc

import evfn
from helpers import balanced

BATCH = 5000


def run_batches(rt, batches):
    for _ in range(batches):
        futs = [rt.invoke_async("work", {"i": i}) for i in range(BATCH)]
        done, not_done = concurrent.futures.wait(futs, timeout=60)
        assert not not_done
        for f in done:
            f.result()
        for i in range(50):
            assert rt.invoke("work", "x") == b"ok"
        for i in range(200):
            rt.emit("work.topic", b"e")


def test_leaks_none_over_100k_invocations():
    rt = evfn.Runtime(workers=(2, 2)).start()

    def work(ev, ctx):
        ev.data, ev.id, ev.type, ctx.attempt, ctx.remaining
        return "ok"
    rt.register("work", work, subscribe="work.topic")
    handler_refs = sys.getrefcount(work)

    run_batches(rt, 2)  # warm-up: caches, free lists, thread states
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    objects = len(gc.get_objects())
    run_batches(rt, 18)  # 18 * (5000 + 50 + 200) = 94,500 more
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()

    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert growth < 256 * 1024, after.compare_to(before, "lineno")[:10]
    assert len(gc.get_objects()) - objects < 500
    assert sys.getrefcount(work) == handler_refs
    s = rt.stats("work")
    assert s["accepted"] >= 100000 and balanced(s)
    rt.close()
