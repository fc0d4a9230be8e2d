# SPDX-License-Identifier: MIT
"""Deadlines with no escape: an async handler busy on the runtime's loop
is stopped at its deadline (and leaves the loop to the others), close()
does not wait forever for a coroutine that ignores cancellation, a
handler whose deadline passed while it waited for the GIL does not run,
and a synchronous invoke inside a handler ends at that handler's
deadline."""
import asyncio
import sys
import threading
import time

import pytest

import evfn
from helpers import wait_for


def test_deadline_async_cpu_loop_is_stopped_and_frees_the_loop(rt):
    spun = threading.Event()

    @rt.function("aspin", timeout=0.3, attempts=1)
    async def aspin(event):
        spun.set()
        while True:
            pass

    @rt.function("anap", timeout=2.0, attempts=1)
    async def anap(event):
        await asyncio.sleep(0.01)
        return b"slept"

    with pytest.raises(evfn.Exhausted):
        rt.invoke("aspin")
    assert spun.is_set()
    # The loop is free again: another async handler runs (it would time
    # out behind a coroutine still spinning on the one loop).
    assert rt.invoke("anap") == b"slept"
    assert rt.invoke("anap") == b"slept"


def test_deadline_async_spin_started_after_an_await_is_stopped(rt):
    @rt.function("alate", timeout=0.3, attempts=2, backoff=0.001)
    async def alate(event):
        await asyncio.sleep(0.05)
        while True:
            pass

    @rt.function("aok")
    async def aok(event):
        return b"ok"

    with pytest.raises(evfn.Exhausted) as info:
        rt.invoke("alate")
    assert info.value.attempts == 2
    assert rt.invoke("aok") == b"ok"


def test_deadline_close_does_not_wait_forever_for_a_stubborn_coroutine():
    rt = evfn.Runtime(workers=(1, 2)).start()
    entered = threading.Event()

    @rt.function("stubborn", timeout=0.2, attempts=1)
    async def stubborn(event):
        entered.set()
        while True:  # swallows every cancellation, at an await each time
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass

    with pytest.raises(evfn.Exhausted):
        rt.invoke("stubborn")
    assert entered.is_set()
    t0 = time.monotonic()
    with pytest.warns(RuntimeWarning, match="coroutine ignores"):
        rt.close(grace=0.5)
    assert rt.closed
    assert time.monotonic() - t0 < 5


def test_deadline_passed_while_waiting_for_the_gil_means_no_run(rt):
    ran = []

    @rt.function("late", timeout=0.2, attempts=1)
    def late(event, ctx):
        ran.append(ctx.cancelled)
        return b"ran"

    old = sys.getswitchinterval()
    sys.setswitchinterval(30)  # this thread keeps the GIL while it spins
    try:
        fut = rt.invoke_async("late")
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            pass
    finally:
        sys.setswitchinterval(old)
    with pytest.raises(evfn.Exhausted):
        fut.result(timeout=10)
    assert ran == [], "the handler ran with its deadline already past"


def test_deadline_nested_invoke_ends_at_the_handlers_deadline():
    # One worker: the nested event can only run once the outer handler's
    # worker is replaced at its deadline, and then it blocks.
    rt = evfn.Runtime(workers=(1, 1)).start()
    gate = threading.Event()
    woke = []

    @rt.function("inner")
    def inner(event):
        gate.wait(10)
        return b"inner"

    @rt.function("outer", timeout=0.3, attempts=1)
    def outer(event):
        t0 = time.monotonic()
        try:
            rt.invoke("inner")
        except evfn.Timeout:
            woke.append(time.monotonic() - t0)
            raise

    try:
        with pytest.raises(evfn.Exhausted):
            rt.invoke("outer")
        wait_for(lambda: woke, timeout=5)
        assert woke[0] < 3
    finally:
        gate.set()
        rt.close()
