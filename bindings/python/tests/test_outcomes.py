# SPDX-License-Identifier: MIT
"""Outcomes of Python handlers: Retry and Fail, other exceptions retried
or failed by retry_on=/fail_on= with their traceback as the error, and
real deadlines: a busy loop past its timeout gets evfn.Timeout raised
inside it, is retried and dead-lettered, and the runtime goes on."""
import threading

import pytest

import evfn
from helpers import balanced, wait_for

FAST = 0.001  # backoff between attempts, in seconds


def test_outcome_retry_then_success(rt):
    @rt.function("flaky", attempts=3, backoff=FAST)
    def flaky(ev, ctx):
        if ctx.attempt < 3:
            raise evfn.Retry(f"attempt {ctx.attempt}")
        return b"done"
    assert rt.invoke("flaky") == b"done"
    s = rt.stats("flaky")
    assert s["attempts"] == 3 and s["retries"] == 2 and s["succeeded"] == 1


def test_outcome_fail_dead_letters_at_once(rt):
    @rt.function("broken", attempts=5, backoff=FAST)
    def broken(ev):
        raise evfn.Fail("bad input")
    with pytest.raises(evfn.Failed) as info:
        rt.invoke("broken")
    e = info.value
    assert e.attempts == 1 and e.error == "bad input"
    assert e.code == evfn.EFAILED and isinstance(e, evfn.InvocationError)
    assert rt.stats("broken")["dead_lettered"] == 1


def test_outcome_exception_retries_with_traceback(rt):
    @rt.function("boom", attempts=3, backoff=FAST)
    def boom(ev):
        raise ValueError("boom")
    with pytest.raises(evfn.Exhausted) as info:
        rt.invoke("boom")
    e = info.value
    assert e.attempts == 3
    # The exception first, its traceback after: the core keeps 1023 bytes.
    assert e.error.startswith("ValueError: boom\n\nTraceback (most recent")
    assert "in boom" in e.error
    assert "ValueError: boom" in str(e)


def test_outcome_retry_on_limits_retries(rt):
    calls = []

    @rt.function("picky", attempts=3, backoff=FAST, retry_on=KeyError)
    def picky(ev):
        calls.append(ev.text())
        raise (KeyError if ev.text() == "key" else ValueError)("x")
    with pytest.raises(evfn.Failed) as info:
        rt.invoke("picky", "value")
    assert info.value.attempts == 1
    with pytest.raises(evfn.Exhausted) as info:
        rt.invoke("picky", "key")
    assert info.value.attempts == 3
    assert calls.count("value") == 1 and calls.count("key") == 3


def test_outcome_fail_on_fails_at_once(rt):
    @rt.function("strict", attempts=3, backoff=FAST,
                 fail_on=(TypeError, LookupError))
    def strict(ev):
        raise IndexError("no such row")
    with pytest.raises(evfn.Failed) as info:
        rt.invoke("strict")
    assert info.value.attempts == 1
    assert "IndexError: no such row" in info.value.error


def test_outcome_busy_loop_times_out_and_runtime_goes_on(rt):
    entered = []

    @rt.function("spin", timeout=0.2, attempts=2, backoff=FAST)
    def spin(ev, ctx):
        entered.append(ctx.attempt)
        while True:
            pass

    @rt.function("fine")
    def fine(ev):
        return b"still here"

    with pytest.raises(evfn.Exhausted) as info:
        rt.invoke("spin")
    e = info.value
    assert e.attempts == 2 and entered == [1, 2]
    # Either watchdog may record it first: the binding's ("Timeout") or
    # the core's fence ("deadline of 200 ms exceeded").
    assert e.error in ("Timeout", "deadline of 200 ms exceeded")
    s = rt.stats("spin")
    assert s["dead_lettered"] == 1 and s["retries"] == 1
    assert s["timeouts"] + s["attempts_failed"] >= 2
    # Both spinning threads were stopped: they report back as late or
    # as finished attempts, and none is left running.
    wait_for(lambda: rt.stats("spin")["in_flight"] == 0)
    assert balanced(rt.stats("spin"))
    assert rt.invoke("fine") == b"still here"


def test_outcome_timeout_not_swallowed_by_except_exception(rt):
    caught = []

    @rt.function("stubborn", timeout=0.1, attempts=1)
    def stubborn(ev):
        while True:
            try:
                while True:
                    pass
            except Exception as e:  # noqa: BLE001 (what the test is about)
                caught.append(e)
    with pytest.raises(evfn.Exhausted):
        rt.invoke("stubborn")
    assert caught == []


def test_outcome_timeout_sets_cancelled(rt):
    states = []
    done = threading.Event()

    @rt.function("coop", timeout=0.1, attempts=1)
    def coop(ev, ctx):
        try:
            while True:
                pass
        except evfn.Timeout:
            states.append(ctx.cancelled)
            done.set()
            raise
    with pytest.raises(evfn.Exhausted):
        rt.invoke("coop")
    assert done.wait(10) and states == [True]


def test_outcome_timeout_does_not_leak_into_next_handler(rt):
    # A handler that returns right at its deadline must not leave a
    # pending Timeout for the next handler on the same thread.
    @rt.function("edge", timeout=0.05, attempts=1)
    def edge(ev, ctx):
        while ctx.remaining > 0:
            pass
    rt.register("after", lambda ev: b"ok")
    for _ in range(5):
        try:
            rt.invoke("edge")
        except evfn.Exhausted:
            pass
        assert rt.invoke("after") == b"ok"
