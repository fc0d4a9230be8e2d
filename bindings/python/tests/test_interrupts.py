# SPDX-License-Identifier: MIT
"""A Python user's habits: Ctrl-C interrupts rt.invoke and invoke has a
timeout= (both cancel the invocation); close(grace) waits no longer than
the grace; leaving a `with` block or run() never replaces the exception
already propagating; Future.cancel() cancels a waiting event and
running() says whether an attempt runs; cancelling the asyncio task that
awaits ainvoke cancels the event."""
import asyncio
import concurrent.futures
import signal
import threading
import time

import pytest

import evfn
from helpers import balanced, wait_for


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt in the main thread meanwhile."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def interrupt_main():
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


@pytest.fixture
def blocked():
    """A runtime whose one worker runs "block" until gate is set: other
    events wait in the queue meanwhile. Yields (rt, gate, blocker)."""
    rt = evfn.Runtime(workers=(1, 1)).start()
    gate = threading.Event()
    rt.register("block", lambda event: gate.wait(10))
    blocker = rt.invoke_async("block")
    wait_for(blocker.running)
    yield rt, gate, blocker
    gate.set()
    rt.close()


def test_interrupt_ctrl_c_ends_invoke_and_cancels_it(rt, sigint_raises):
    gate = threading.Event()

    @rt.function("slow")
    def slow(event):
        interrupt_main()  # the invoke below is waiting now
        gate.wait(10)

    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            rt.invoke("slow")
        assert time.monotonic() - t0 < 5
    finally:
        gate.set()
    wait_for(lambda: rt.stats("slow")["in_flight"] == 0)
    assert balanced(rt.stats("slow"))


def test_interrupt_invoke_timeout_cancels_the_waiting_event(blocked):
    rt, gate, blocker = blocked
    ran = []
    rt.register("queued", lambda event: ran.append(1))
    t0 = time.monotonic()
    with pytest.raises(evfn.TimedOut) as info:
        rt.invoke("queued", timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert 0.15 < time.monotonic() - t0 < 5
    assert rt.stats("queued")["cancelled"] == 1
    gate.set()
    blocker.result(timeout=10)
    assert ran == []
    with pytest.raises(evfn.InvalidArgument):
        rt.invoke("queued", timeout=-1)


def test_interrupt_close_waits_no_longer_than_its_grace():
    rt = evfn.Runtime(workers=(1, 1)).start()
    started = threading.Event()

    @rt.function("stuck", timeout=0.1, attempts=1)
    def stuck(event):
        started.set()
        time.sleep(3)  # in C: Timeout waits until it returns

    rt.invoke_async("stuck")
    assert started.wait(10)
    t0 = time.monotonic()
    with pytest.raises(evfn.Busy):
        rt.close(grace=0.3)
    assert time.monotonic() - t0 < 1.2
    assert not rt.closed
    rt.close(grace=10)  # the handler returns: now it closes
    assert rt.closed


def stuck_runtime(grace):
    rt = evfn.Runtime(workers=(1, 1), grace=grace).start()
    started = threading.Event()

    def stuck(event):
        started.set()
        time.sleep(1.5)
    rt.register("stuck", stuck, timeout=0.1, attempts=1)
    rt.invoke_async("stuck")
    assert started.wait(10)
    return rt


def test_interrupt_with_block_exception_is_not_masked_by_busy():
    with pytest.raises(ValueError) as info:
        with stuck_runtime(grace=0.2) as rt:
            raise ValueError("the body failed")
    assert str(info.value) == "the body failed"
    assert any("Busy" in n or "EBUSY" in n
               for n in getattr(info.value, "__notes__", []))
    rt.close(grace=10)


def test_interrupt_with_block_without_exception_raises_busy():
    with pytest.raises(evfn.Busy):
        with stuck_runtime(grace=0.2) as rt:
            pass
    rt.close(grace=10)


def test_interrupt_run_lets_ctrl_c_go_on(sigint_raises):
    rt = stuck_runtime(grace=0.2)
    timer = threading.Timer(0.2, interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            rt.run()
        assert any("EBUSY" in n for n in info.value.__notes__)
    finally:
        timer.cancel()
        rt.close(grace=10)


def test_interrupt_future_cancel_cancels_a_waiting_event(blocked):
    rt, gate, blocker = blocked
    ran = []
    rt.register("work", lambda event: ran.append(1))
    fut = rt.invoke_async("work")
    assert not fut.running() and not fut.done()
    assert fut.cancel() and fut.cancelled() and fut.done()
    assert fut.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        fut.result(timeout=1)
    done, _ = concurrent.futures.wait([fut, blocker], timeout=10,
                                      return_when="FIRST_COMPLETED")
    assert done == {fut}
    assert not blocker.cancel()  # it runs: too late
    gate.set()
    assert blocker.result(timeout=10) == b"true"
    assert not blocker.running() and not blocker.cancel()
    assert ran == []
    s = rt.stats("work")
    assert s["cancelled"] == 1 and balanced(s)


def test_interrupt_cancelling_ainvoke_cancels_the_event(blocked):
    rt, gate, blocker = blocked
    ran = []

    def polite(event, ctx):
        ran.append(1)
        while not ctx.cancelled:
            time.sleep(0.005)
        raise evfn.Fail("asked to stop")
    rt.register("work", lambda event: ran.append(2))
    rt.register("polite", polite)

    async def cancel_after(coro, ready):
        task = asyncio.ensure_future(coro)
        await ready()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def submitted():
        await asyncio.sleep(0)

    async def running():
        while not ran:
            await asyncio.sleep(0.005)

    # Waiting behind the blocker: cancelled at once.
    asyncio.run(cancel_after(rt.ainvoke("work"), submitted))
    wait_for(lambda: rt.stats("work")["cancelled"] == 1)
    gate.set()
    blocker.result(timeout=10)
    # Running: asked to stop, it ends cancelled.
    asyncio.run(cancel_after(rt.ainvoke("polite"), running))
    wait_for(lambda: rt.stats("polite")["cancelled"] == 1)
    assert 2 not in ran
