# SPDX-License-Identifier: MIT
"""asyncio: async def handlers on the runtime's event loop (results,
exceptions, deadlines), and invoke_async as a concurrent.futures.Future
that asyncio can await."""
import asyncio
import concurrent.futures
import threading

import pytest

import evfn


def test_async_handler_returns_response(rt):
    loops = []

    @rt.function("ahello")
    async def ahello(event, ctx):
        await asyncio.sleep(0.01)
        loops.append((asyncio.get_running_loop(), threading.current_thread()))
        return "hello, " + event.text()
    assert rt.invoke("ahello", "async") == b"hello, async"
    assert rt.invoke("ahello", "again") == b"hello, again"
    # One loop per runtime, on a thread of its own.
    assert loops[0] == loops[1]
    assert loops[0][1].name == "evfn-asyncio"


def test_async_handler_exception_retries(rt):
    @rt.function("abad", attempts=2, backoff=0.001)
    async def abad(event):
        await asyncio.sleep(0)
        raise ConnectionError("down")
    with pytest.raises(evfn.Exhausted) as info:
        rt.invoke("abad")
    assert info.value.attempts == 2
    assert "ConnectionError: down" in info.value.error


def test_async_handler_past_deadline_is_cancelled(rt):
    cancelled = threading.Event()

    @rt.function("asleep", timeout=0.2, attempts=1)
    async def asleep(event):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
    with pytest.raises(evfn.Exhausted):
        rt.invoke("asleep")
    assert cancelled.wait(10)


def test_async_handler_own_timeout_error_is_an_exception(rt):
    @rt.function("await_timeout", attempts=1, fail_on=TimeoutError)
    async def await_timeout(event):
        await asyncio.wait_for(asyncio.sleep(10), 0.01)
    with pytest.raises(evfn.Failed) as info:
        rt.invoke("await_timeout")
    assert "TimeoutError" in info.value.error


def test_async_invoke_async_future(rt):
    rt.register("echo", lambda ev: ev.data)
    rt.register("nope", lambda ev: (_ for _ in ()).throw(evfn.Fail("no")))
    fut = rt.invoke_async("echo", b"abc")
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=10) == b"abc"
    bad = rt.invoke_async("nope")
    with pytest.raises(evfn.Failed) as info:
        bad.result(timeout=10)
    assert info.value.error == "no" and info.value.attempts == 1
    futs = [rt.invoke_async("echo", str(i)) for i in range(200)]
    done, _ = concurrent.futures.wait(futs, timeout=20)
    assert sorted(int(f.result()) for f in done) == list(range(200))


def test_async_invoke_async_admission_error_raises_at_once(rt):
    with pytest.raises(evfn.NoFunction):
        rt.invoke_async("missing")


def test_async_await_from_asyncio(rt):
    rt.register("echo", lambda ev: ev.data)

    async def main():
        a = await rt.ainvoke("echo", b"1")
        b = await asyncio.wrap_future(rt.invoke_async("echo", b"2"))
        c = await asyncio.gather(*(rt.ainvoke("echo", str(i))
                                   for i in range(50)))
        return a, b, c
    a, b, c = asyncio.run(main())
    assert (a, b) == (b"1", b"2")
    assert c == [str(i).encode() for i in range(50)]


def test_async_sync_invoke_in_future_callback_works(rt):
    # Future callbacks run on the binding's completion thread, not on
    # evfn's loop thread, so a synchronous invoke there can wait.
    gate = threading.Event()
    rt.register("gated", lambda ev: gate.wait(10))
    rt.register("echo", lambda ev: ev.data)
    seen = []
    done = threading.Event()

    def callback(fut):
        seen.append((threading.current_thread().name,
                     rt.invoke("echo", b"nested")))
        done.set()
    fut = rt.invoke_async("gated")
    fut.add_done_callback(callback)
    gate.set()
    assert done.wait(10)
    assert seen[0][1] == b"nested"
    assert seen[0][0] != threading.main_thread().name


def test_async_futures_work_with_concurrent_futures_helpers(rt):
    # The futures share one Condition: as_completed, wait and threads
    # blocked in result() on different futures must each see their own.
    rt.register("echo", lambda ev: ev.data)
    futs = [rt.invoke_async("echo", str(i)) for i in range(300)]
    got = sorted(int(f.result())
                 for f in concurrent.futures.as_completed(futs, timeout=30))
    assert got == list(range(300))
    assert all(f.done() and not f.running() for f in futs)
    assert isinstance(futs[0], concurrent.futures.Future)
    assert futs[0].seq < futs[-1].seq

    gate = threading.Event()
    rt.register("gated", lambda ev: gate.wait(10) and ev.data)
    slow = [rt.invoke_async("gated", str(i)) for i in range(4)]
    results = {}

    def wait_one(i):
        results[i] = slow[i].result(timeout=30)
    threads = [threading.Thread(target=wait_one, args=(i,))
               for i in range(4)]
    for t in threads:
        t.start()
    with pytest.raises(concurrent.futures.TimeoutError):
        slow[0].result(timeout=0.05)
    gate.set()
    for t in threads:
        t.join(30)
    assert results == {i: str(i).encode() for i in range(4)}
