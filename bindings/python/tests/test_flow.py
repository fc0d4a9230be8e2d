# SPDX-License-Identifier: MIT
"""Flow control from Python: batches with per-item failures, ordering
keys, rate limits, circuit breakers (and their event-log records, which
carry no event), delayed events, pause/resume and cancellation."""
import collections
import datetime
import threading
import time

import pytest

import evfn
from helpers import balanced, wait_for


def test_flow_batch_sizes_and_per_item_failures(rt):
    calls = []
    seen = collections.Counter()

    # The retry's backoff outlasts the first three calls, so it comes
    # back alone (after the window).
    @rt.function("batch", batch=evfn.Batch(4, window=0.05), concurrency=1,
                 attempts=3, backoff=0.3, subscribe="batch")
    def batch(events, ctx):
        assert isinstance(events, list) and len(ctx.events) == len(events)
        calls.append([e.text() for e in events])
        for i, e in enumerate(events):
            seen[e.text()] += 1
            if e.text() == "3" and seen["3"] == 1:
                ctx.fail_item(i)                 # retried alone
            elif e.text() == "7":
                ctx.fail_item(e, retry=False)    # dead-lettered
    rt.pause("batch")  # so that all ten wait and the sizes are exact
    for n in range(10):
        rt.emit("batch", str(n))
    rt.resume("batch")
    wait_for(lambda: rt.stats("batch")["succeeded"] == 9 and
             rt.stats("batch")["dead_lettered"] == 1)
    assert calls == [["0", "1", "2", "3"], ["4", "5", "6", "7"],
                     ["8", "9"], ["3"]]
    assert seen == {str(n): 2 if n == 3 else 1 for n in range(10)}
    s = rt.stats("batch")
    assert s["batches"] == len(calls) and s["retries"] == 1
    assert balanced(s)
    [dl] = rt.dead_letters()
    assert dl.event.text() == "7" and dl.reason == "failed"


def test_flow_batch_options_are_checked(rt):
    with pytest.raises(evfn.InvalidArgument):
        rt.register("b0", lambda events: None, batch=0)
    with pytest.raises(evfn.InvalidArgument):
        rt.register("bw", lambda events: None,
                    batch=evfn.Batch(2, window=-1))
    got = []

    @rt.function("one")
    def one(event, ctx):
        got.append(ctx.events)
        with pytest.raises(evfn.InvalidArgument):
            ctx.fail_item(1)
    rt.invoke("one", b"x")
    [[ev]] = got
    assert ev.data == b"x"


def test_flow_ordering_key_one_at_a_time_in_order(rt):
    lock = threading.Lock()
    starts = collections.defaultdict(list)
    active = collections.Counter()
    # Each key's first event waits for the others': proof that different
    # keys run in parallel (a broken barrier would fail the test).
    barrier = threading.Barrier(3, timeout=5)

    @rt.function("ordered", concurrency=4, attempts=3, backoff=0.01,
                 subscribe="ordered")
    def ordered(event, ctx):
        key, n = event.key, event.json()
        with lock:
            starts[key].append(n)
            active[key] += 1
            assert active[key] == 1, "two events of one key at once"
        try:
            if n == 0:
                barrier.wait()
            if key == "a" and n == 5 and ctx.attempt == 1:
                raise evfn.Retry("once")
            time.sleep(0.001)
        finally:
            with lock:
                active[key] -= 1
    for n in range(10):
        for key in "abc":
            rt.emit("ordered", n, key=key)
    wait_for(lambda: rt.stats("ordered")["succeeded"] == 30)
    assert starts["a"] == [0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9]
    assert starts["b"] == starts["c"] == list(range(10))
    assert rt.stats("ordered")["dead_lettered"] == 0


def test_flow_rate_limit_spaces_calls(rt):
    done = []

    @rt.function("limited", rate_limit=evfn.RateLimit(50, burst=1),
                 concurrency=4, subscribe="limited")
    def limited(event):
        done.append(time.monotonic())
    t0 = time.monotonic()
    for n in range(20):
        rt.emit("limited", n)
    wait_for(lambda: len(done) == 20)
    wait_for(lambda: rt.stats("limited")["succeeded"] == 20)
    # 19 intervals of 20 ms after the first token: 0.38 s.
    assert done[-1] - t0 >= 0.35
    s = rt.stats("limited")
    assert s["rate_limited"] > 0 and s["succeeded"] == 20
    with pytest.raises(evfn.InvalidArgument):
        rt.register("bad", lambda e: None, rate_limit=evfn.RateLimit(5, 0))


def test_flow_circuit_breaker_refuses_then_closes_after_probe():
    records = []
    broken = [True]
    with evfn.Runtime(workers=(1, 2), on_record=records.append) as rt:
        @rt.function("fragile", attempts=1,
                     circuit_breaker=evfn.CircuitBreaker(
                         consecutive_failures=3, cooldown=0.3,
                         policy="refuse"))
        def fragile(event):
            if broken[0]:
                raise evfn.Fail("down")
            return "up"
        for _ in range(3):
            # The third call opens it: no earlier than this.
            opened = time.monotonic()
            with pytest.raises(evfn.Failed):
                rt.invoke("fragile")
        s = rt.stats("fragile")
        assert s["circuit_opens"] == 1 and s["circuit_state"] == 1
        with pytest.raises(evfn.CircuitOpen) as info:
            rt.invoke("fragile")
        assert info.value.code == evfn.ECIRCUITOPEN
        assert rt.stats("fragile")["attempts"] == 3
        broken[0] = False
        wait_for(lambda: rt.stats("fragile")["circuit_state"] == 2)
        assert time.monotonic() - opened >= 0.3
        assert rt.invoke("fragile") == b"up"     # the probe closes it
        assert rt.stats("fragile")["circuit_state"] == 0
        wait_for(lambda: any(r.kind == "circuit_closed" for r in records))
    kinds = [r.kind for r in records if r.kind.startswith("circuit_")]
    assert kinds == ["circuit_open", "circuit_half_open", "circuit_closed"]
    for r in records:
        if r.kind.startswith("circuit_"):
            assert r.event is None and r.attempt == 0
            assert r.function == "fragile"
    with pytest.raises(evfn.InvalidArgument):
        evfn.CircuitBreaker(policy="maybe")._as_tuple()


def test_flow_circuit_breaker_options_are_checked(rt):
    with pytest.raises(evfn.InvalidArgument):
        rt.register("b", lambda e: None,
                    circuit_breaker=evfn.CircuitBreaker(0, 0.0))
    with pytest.raises(evfn.InvalidArgument):
        rt.register("b", lambda e: None,
                    circuit_breaker=evfn.CircuitBreaker(failure_rate=1.5))
    rt.register("ok", lambda e: None, circuit_breaker=5)


def test_flow_delay_and_at_fire_no_earlier():
    ran = {}
    with evfn.Runtime(workers=(1, 2)) as rt:
        @rt.function("later", subscribe="later")
        def later(event):
            ran[event.text()] = time.monotonic()
        t0 = time.monotonic()
        rt.emit("later", "delay", delay=0.2)
        t1 = time.monotonic()
        at = (datetime.datetime.now(datetime.timezone.utc) +
              datetime.timedelta(seconds=0.25))
        rt.emit("later", "at", at=at)
        assert rt.stats("later")["delayed"] == 2
        fut = rt.invoke_async("later", "epoch", at=time.time() + 0.1)
        fut.result(timeout=5)
        wait_for(lambda: len(ran) == 3)
        # Counted after the handler returns: wait for the counter too.
        wait_for(lambda: rt.stats("later")["succeeded"] == 3)
        assert ran["delay"] - t0 >= 0.2
        # The wall clock was read after t1; 1 ms for its rounding.
        assert ran["at"] - t1 >= 0.249
        assert ran["epoch"] - t1 >= 0.099
        s = rt.stats("later")
        assert s["delayed"] == 0 and s["succeeded"] == 3 and balanced(s)
        with pytest.raises(TypeError):
            rt.emit("later", delay=1, at=time.time())
        with pytest.raises(ValueError):
            rt.emit("later", at=datetime.datetime.now())
        with pytest.raises(evfn.InvalidArgument):
            rt.emit("later", delay=-1)
        # At drain, delayed events are handed back.
        rt.emit("later", "never", delay=60)
        [back] = rt.drain()
        assert back.function == "later" and back.event.text() == "never"


def test_flow_cancel_a_delayed_event(rt):
    rt.register("job", lambda e: None, subscribe="job")
    fut = rt.invoke_async("job", b"x", delay=60)
    wait_for(lambda: rt.stats("job")["delayed"] == 1)
    assert rt.cancel(fut.seq) == 1
    with pytest.raises(evfn.Cancelled) as info:
        fut.result(timeout=5)
    assert info.value.code == evfn.ECANCELED
    s = rt.stats("job")
    assert s["cancelled"] == 1 and s["delayed"] == 0 and balanced(s)
    assert rt.cancel(fut.seq) == 0                 # nothing left
    seq = rt.emit("job", b"y", id="job-1", delay=60)
    assert seq != 0 and rt.cancel("job-1", function="job") == 1
    assert rt.stats("job")["cancelled"] == 2
    assert rt.dead_letter_count == 0
    with pytest.raises(evfn.NoFunction):
        rt.cancel("job-1", function="missing")


def test_flow_cancel_a_running_attempt(rt):
    started = threading.Event()

    @rt.function("long", timeout=10, attempts=3)
    def long_running(event, ctx):
        started.set()
        while not ctx.cancelled:
            time.sleep(0.001)
        raise evfn.Retry("stopping")
    fut = rt.invoke_async("long")
    assert started.wait(5)
    assert rt.cancel(fut.seq, "long") == 1
    with pytest.raises(evfn.Cancelled):
        fut.result(timeout=5)
    s = rt.stats("long")
    assert s["cancelled"] == 1 and s["attempts"] == 1 and balanced(s)


def test_flow_pause_and_resume(rt):
    ran = []
    rt.register("p", lambda e: ran.append(e.json()), concurrency=1,
                subscribe="p")
    rt.pause("p")
    for n in range(3):
        rt.emit("p", n)
    s = rt.stats("p")
    assert s["paused"] == 1 and s["queued"] == 3 and s["in_flight"] == 0
    assert ran == []
    rt.resume("p")
    wait_for(lambda: rt.stats("p")["succeeded"] == 3)
    assert ran == [0, 1, 2] and rt.stats("p")["paused"] == 0
    with pytest.raises(evfn.NoFunction):
        rt.pause("missing")
    with pytest.raises(evfn.NoFunction):
        rt.resume("missing")


def test_flow_event_carries_its_key(rt):
    keys = []
    rt.register("k", lambda e: keys.append(e.key), subscribe="k")
    rt.invoke("k", key="order-7")
    rt.invoke("k")
    rt.emit(evfn.Event("k", b"", key="order-8"))
    wait_for(lambda: len(keys) == 3)
    assert keys == ["order-7", None, "order-8"]
    with pytest.raises(evfn.InvalidArgument):
        rt.emit("k", key="")
