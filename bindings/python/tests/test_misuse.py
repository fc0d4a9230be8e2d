# SPDX-License-Identifier: MIT
"""Misuse is reported where it happens, naming what was wrong: negative
counts are refused instead of meaning "default", values beyond C's range
and of the wrong type name their option, retry_on/fail_on must be
exception classes, start() after close() raises, and a handler that
returns something that cannot be a response fails at once instead of
being retried."""
import pytest

import evfn


def test_misuse_negative_counts_are_refused(rt):
    f = lambda event: None  # noqa: E731
    for option in ("attempts", "concurrency", "max_stuck", "queue"):
        with pytest.raises(evfn.InvalidArgument) as info:
            rt.register("neg_" + option, f, **{option: -1})
        assert f"{option}=-1" in str(info.value)
    for workers in (-1, (-1, 2), (1, -1)):
        with pytest.raises(evfn.InvalidArgument) as info:
            evfn.Runtime(workers=workers)
        assert "workers" in str(info.value)


def test_misuse_out_of_range_and_wrong_types_name_the_option(rt):
    f = lambda event: None  # noqa: E731
    cases = [
        ({"attempts": 2 ** 40}, evfn.InvalidArgument, "attempts=1099511627776"),
        ({"timeout": 1e300}, evfn.InvalidArgument, "timeout=1e+300"),
        ({"timeout": "soon"}, TypeError, "timeout must be a number"),
        ({"attempts": "3"}, TypeError, "attempts must be an int"),
        ({"concurrency": 1.5}, TypeError, "concurrency must be an int"),
        ({"idempotency": []}, TypeError, "idempotency must be a number"),
        ({"batch": evfn.Batch(2 ** 40)}, evfn.InvalidArgument,
         "batch.max_items"),
        ({"rate_limit": evfn.RateLimit(10, burst="x")}, TypeError,
         "rate_limit.burst must be an int"),
        ({"circuit_breaker": evfn.CircuitBreaker(window="x")}, TypeError,
         "circuit_breaker.window must be a number"),
        ({"backoff": evfn.Backoff(base="x")}, TypeError,
         "backoff.base must be a number"),
        ({"backoff": "fast"}, TypeError, "backoff must be an evfn.Backoff"),
    ]
    for i, (opts, cls, text) in enumerate(cases):
        with pytest.raises(cls) as info:
            rt.register(f"f{i}", f, **opts)
        assert text in str(info.value), (opts, str(info.value))
    for kw, text in (({"workers": (1, 2 ** 40)}, "workers"),
                     ({"idle_timeout": "x"}, "idle_timeout"),
                     ({"max_hops": 2 ** 40}, "max_hops"),
                     ({"dead_letter_capacity": 2 ** 70},
                      "dead_letter_capacity")):
        with pytest.raises((TypeError, evfn.InvalidArgument)) as info:
            evfn.Runtime(**kw)
        assert text in str(info.value)
    with pytest.raises(TypeError, match="workers must be an int or a"):
        evfn.Runtime(workers="two")


def test_misuse_retry_on_must_be_exception_classes(rt):
    f = lambda event: None  # noqa: E731
    for bad in ("ValueError", ValueError(), (ValueError, "KeyError"), int,
                [ValueError]):
        for option in ("retry_on", "fail_on"):
            with pytest.raises(TypeError, match=option):
                rt.register("r", f, **{option: bad})
    rt.register("ok", f, retry_on=(ValueError, KeyError), fail_on=OSError)


def test_misuse_start_after_close_raises():
    rt = evfn.Runtime()
    rt.close()
    with pytest.raises(evfn.ShutDown):
        rt.start()
    rt = evfn.Runtime().start()
    rt.close()
    with pytest.raises(evfn.ShutDown):
        rt.start()


def test_misuse_unusable_return_value_fails_at_once(rt):
    calls = []

    @rt.function("obj", attempts=3, backoff=0.001)
    def obj(event):
        calls.append("obj")
        return object()

    @rt.function("gen", attempts=3, backoff=0.001)
    def gen(event):
        calls.append("gen")
        yield b"chunk"

    with pytest.raises(evfn.Failed) as info:
        rt.invoke("obj")
    assert info.value.attempts == 1
    assert "handler returned a object" in info.value.error
    assert "JSON-serialisable" in info.value.error
    with pytest.raises(evfn.Failed) as info:
        rt.invoke("gen")
    assert info.value.attempts == 1
    assert "generator" in info.value.error and "async def" in info.value.error
    assert calls == ["obj"]  # a generator's body never ran
