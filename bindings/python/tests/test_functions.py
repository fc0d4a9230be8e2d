# SPDX-License-Identifier: MIT
"""Functions, topics and payloads: the decorator and its options,
subscriptions, emit of bytes/str/JSON with CloudEvents attributes, what
handlers see (event, context), responses, and emitting or invoking from
inside handlers."""
import json
import queue
import threading
import time

import pytest

import evfn


def test_function_decorator_returns_function_and_names_it(rt):
    @rt.function
    def double(event):
        return str(2 * int(event.text()))

    @rt.function("triple", timeout=1.0, attempts=1, max_age=60,
                 concurrency=2, queue=100,
                 backoff=evfn.Backoff("linear", 0.01, 1.0, 0.1, "equal"))
    def triple_impl(event):
        return str(3 * int(event.text()))

    assert double.__name__ == "double"
    assert rt.invoke("double", "21") == b"42"
    assert rt.invoke("triple", "5") == b"15"


def test_function_duplicate_name_raises_already_exists(rt):
    rt.register("f", lambda ev: None)
    with pytest.raises(evfn.AlreadyExists) as info:
        rt.register("f", lambda ev: None)
    assert info.value.code == evfn.EEXIST


def test_function_bad_options_raise_invalid_argument(rt):
    with pytest.raises(evfn.InvalidArgument):
        rt.register("f", lambda ev: None, attempts=0)
    with pytest.raises(evfn.InvalidArgument):
        rt.register("g", lambda ev: None, backoff=evfn.Backoff("bogus"))
    with pytest.raises(TypeError):
        rt.register("h", 42)


def test_function_subscribe_patterns(rt):
    got = queue.Queue()
    rt.register("sink", lambda ev: got.put(ev.type),
                subscribe=("orders.*", "audit.#"))
    rt.emit("orders.created", b"")
    rt.emit("audit.a.b", b"")
    assert sorted([got.get(timeout=10), got.get(timeout=10)]) == [
        "audit.a.b", "orders.created"]
    with pytest.raises(evfn.NoSubscriber):
        rt.emit("orders.eu.created", b"")
    with pytest.raises(evfn.InvalidArgument) as info:
        rt.subscribe("a..b", "sink")
    assert info.value.code == evfn.EPATTERN
    with pytest.raises(evfn.NoFunction):
        rt.subscribe("x", "nope")


def test_function_emit_payload_kinds_and_attributes(rt):
    got = queue.Queue()
    rt.register("sink", lambda ev: got.put(ev), subscribe="t")
    rt.emit("t", b"\x00raw")
    rt.emit("t", "h\u00e9llo")
    rt.emit("t", {"n": [1, 2]})
    rt.emit("t", bytearray(b"ba"))
    seq = rt.emit("t", b"x", id="id-7", source="/tests", subject="s1",
                  extensions={"tenant": "acme"})
    evs = sorted((got.get(timeout=10) for _ in range(5)),
                 key=lambda e: e.seq)
    raw, text, obj, ba, attr = evs
    assert raw.data == b"\x00raw" and raw.datacontenttype is None
    assert text.text() == "h\u00e9llo"
    assert text.datacontenttype.startswith("text/plain")
    assert obj.json() == {"n": [1, 2]}
    assert obj.datacontenttype == "application/json"
    assert ba.data == b"ba"
    assert attr.seq == seq and attr.id == "id-7"
    assert attr.source == "/tests" and attr.subject == "s1"
    assert attr.extension("tenant") == "acme"
    assert attr.extension("other") is None
    assert attr.type == "t" and attr.hops == 0
    assert abs(attr.time.timestamp() - time.time()) < 60
    assert attr.time_ns > 0 and "evfn.Event" in repr(attr)
    with pytest.raises(TypeError):
        rt.emit("t", object())


def test_function_context_attributes(rt):
    seen = {}

    def handler(ev, ctx):
        seen.update(attempt=ctx.attempt, remaining=ctx.remaining,
                    deadline=ctx.deadline, cancelled=ctx.cancelled,
                    function=ctx.function, now=time.monotonic())
        ctx.respond("via ctx")
    rt.register("ctxf", handler, timeout=2.0)
    assert rt.invoke("ctxf") == b"via ctx"
    assert seen["attempt"] == 1 and seen["function"] == "ctxf"
    assert 0 < seen["remaining"] <= 2.0 and seen["cancelled"] is False
    assert 0 < seen["deadline"] - seen["now"] <= 2.0


def test_function_return_value_is_response(rt):
    rt.register("b", lambda ev: b"bytes")
    rt.register("s", lambda ev: "str")
    rt.register("j", lambda ev: {"a": 1})
    rt.register("n", lambda ev: None)
    assert rt.invoke("b") == b"bytes"
    assert rt.invoke("s") == b"str"
    assert json.loads(rt.invoke("j")) == {"a": 1}
    assert rt.invoke("n") == b""


def test_function_context_invalid_after_return(rt):
    kept = []
    rt.register("keep", lambda ev, ctx: kept.append((ev, ctx)))
    rt.invoke("keep", b"payload")
    ev, ctx = kept[0]
    assert ev.data == b"payload"  # events stay valid
    with pytest.raises(evfn.Error) as info:
        ctx.respond(b"late")
    assert info.value.code == evfn.EPERM
    assert "finished" in repr(ctx)


def test_function_emit_from_handler_carries_hops(rt):
    got = queue.Queue()
    rt.register("child", lambda ev: got.put((ev.hops, ev.data)),
                subscribe="child")

    def parent(ev, ctx):
        ctx.emit("child", b"from ctx")
        rt.emit("child", b"from rt")
    rt.register("parent", parent, subscribe="parent")
    rt.emit("parent", b"")
    assert sorted([got.get(timeout=10), got.get(timeout=10)]) == [
        (0, b"from rt"), (1, b"from ctx")]


def test_function_invoke_from_handler(rt):
    rt.register("inner", lambda ev: b"inner:" + ev.data)
    rt.register("outer", lambda ev: rt.invoke("inner", ev.data) + b"!")
    assert rt.invoke("outer", b"x") == b"inner:x!"


def test_function_queue_full_raises(rt):
    gate, started = threading.Event(), threading.Event()

    def blocked(ev):
        started.set()
        gate.wait(10)
    rt.register("blocked", blocked, concurrency=1, queue=1,
                subscribe="q")
    rt.emit("q", b"1")
    assert started.wait(10)
    rt.emit("q", b"2")  # waits in the queue
    with pytest.raises(evfn.QueueFull) as info:
        rt.emit("q", b"3")
    assert info.value.code == evfn.EQUEUEFULL
    assert rt.stats("blocked")["throttled"] == 1
    gate.set()


def test_function_gil_released_while_invoke_waits(rt):
    # A Python thread keeps running while the main thread waits in invoke.
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)
    rt.register("slow", lambda ev: time.sleep(0.2))
    t = threading.Thread(target=ticker)
    t.start()
    try:
        rt.invoke("slow")
    finally:
        stop.set()
        t.join()
    assert len(ticks) > 10
