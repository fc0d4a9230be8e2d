# SPDX-License-Identifier: MIT
"""The newer function and event features from Python: destinations
(on_success, on_failure), idempotency windows, max_stuck, deadlines
enforced through the core's cancel hook, event extensions, child events
built with attributes or as Event objects, and the event log."""
import threading
import time

import pytest

import evfn
from helpers import wait_for


def refuse(event):
    raise evfn.Fail("refused")


def test_options_on_success_gets_the_response(rt):
    got = []
    rt.register("audit", lambda e: got.append(e))

    @rt.function("charge", on_success="audit")
    def charge(event):
        return {"charged": event.json()["amount"]}
    rt.invoke("charge", {"amount": 7}, id="c-1")
    wait_for(lambda: len(got) == 1)
    ev = got[0]
    assert ev.json() == {"charged": 7} and ev.type == "charge"
    assert ev.extensions["evfnparent"] == "c-1"
    assert ev.extensions["evfnfunction"] == "charge" and ev.hops == 1


def test_options_on_failure_gets_the_original_with_reason(rt):
    got = []
    rt.register("dlq", lambda e: got.append(e))

    @rt.function("ship", attempts=2, backoff=0.001, on_failure="dlq")
    def ship(event):
        raise ConnectionError("carrier offline")
    with pytest.raises(evfn.Exhausted):
        rt.invoke("ship", b"parcel")
    wait_for(lambda: len(got) == 1)
    ext = got[0].extensions
    assert got[0].data == b"parcel"
    assert ext["evfnreason"] == "attempts_exhausted"
    assert ext["evfnattempts"] == "2" and ext["evfnfunction"] == "ship"
    assert "carrier offline" in ext["evfnerror"]


def test_options_idempotency_runs_an_id_once(rt):
    runs = []

    @rt.function("once", idempotency=60)
    def once(event):
        runs.append(event.id)
        return "r%d" % len(runs)
    assert rt.invoke("once", id="k1") == b"r1"
    assert rt.invoke("once", id="k1") == b"r1"  # stored response
    assert rt.invoke("once", id="k2") == b"r2"
    assert runs == ["k1", "k2"]
    with pytest.raises(evfn.InvalidArgument):
        rt.register("bad", lambda e: None, idempotency=-1)


def test_options_max_stuck_makes_function_unhealthy(rt):
    release = threading.Event()

    @rt.function("stuck", timeout=0.05, attempts=1, max_stuck=1)
    def stuck(event):
        # Blocked in C: the Timeout is only seen when this returns.
        release.wait(10)
    with pytest.raises(evfn.DeadlineExceeded):
        rt.invoke("stuck")
    with pytest.raises(evfn.Unhealthy):
        rt.invoke("stuck")
    release.set()
    wait_for(lambda: rt.stats("stuck")["in_flight"] == 0)
    with pytest.raises(evfn.InvalidArgument):
        rt.register("bad", lambda e: None, max_stuck=0)
    with pytest.raises(evfn.InvalidArgument):
        rt.register("bad", lambda e: None, max_stuck=-1)


def test_options_cancel_hook_stops_busy_loop_promptly(rt):
    ended = threading.Event()

    @rt.function("spin", timeout=0.1, attempts=1)
    def spin(event):
        try:
            while True:
                pass
        finally:
            ended.set()
    start = time.monotonic()
    with pytest.raises(evfn.DeadlineExceeded):
        rt.invoke("spin")
    assert ended.wait(5)
    assert time.monotonic() - start < 3


def test_options_event_extensions_dict(rt):
    seen = []
    rt.register("ext", lambda e: seen.append(e.extensions),
                subscribe="ext")
    rt.emit("ext", b"", extensions={"tenant": "acme", "region": "eu"})
    wait_for(lambda: seen)
    assert seen == [{"tenant": "acme", "region": "eu"}]


def test_options_ctx_emit_with_attributes_and_built_event(rt):
    children = []
    lock = threading.Lock()

    def child(event):
        with lock:
            children.append(event)
    rt.register("child", child, subscribe="child.*")

    @rt.function("parent")
    def parent(event, ctx):
        ctx.emit("child.attrs", {"n": 1}, subject="s1",
                 extensions={"k": "v"})
        ctx.emit(evfn.Event("child.built", b"raw", subject="s2",
                            datacontenttype="application/x-raw"))
        with pytest.raises(TypeError):
            ctx.emit("child.bad", b"", colour="red")
    rt.invoke("parent")
    wait_for(lambda: len(children) == 2)
    by_type = {c.type: c for c in children}
    a, b = by_type["child.attrs"], by_type["child.built"]
    assert a.json() == {"n": 1} and a.subject == "s1" and a.hops == 1
    assert a.datacontenttype == "application/json"
    assert a.extensions == {"k": "v"}
    assert b.data == b"raw" and b.subject == "s2" and b.hops == 1
    assert b.datacontenttype == "application/x-raw"


def test_options_runtime_emits_built_event_once(rt):
    got = []
    rt.register("sink", lambda e: got.append(e.id), subscribe="built")
    ev = evfn.Event("built", "x", id="fixed-id", extensions={"a": "b"})
    assert ev.id == "fixed-id" and ev.extensions == {"a": "b"}
    assert repr(evfn.Event("t")).endswith("id=(unpublished)>")
    rt.emit(ev)
    wait_for(lambda: got == ["fixed-id"])
    with pytest.raises(evfn.Error) as e:
        rt.emit(ev)
    assert e.value.code == evfn.EPERM
    with pytest.raises(evfn.InvalidArgument):
        evfn.Event("")


def test_options_event_log_delivers_records():
    records = []
    lock = threading.Lock()

    def on_record(r):
        assert threading.current_thread() is not threading.main_thread()
        with lock:
            records.append(r)
    with evfn.Runtime(workers=(1, 2), on_record=on_record) as rt:
        rt.register("ok", lambda e: "fine")
        rt.register("bad", refuse, attempts=1)
        rt.invoke("ok", id="e1")
        with pytest.raises(evfn.Failed):
            rt.invoke("bad", id="e2")
        wait_for(lambda: len(records) >= 4)
    kinds = {(r.function, r.kind) for r in records}
    assert {("ok", "start"), ("ok", "success"), ("bad", "start"),
            ("bad", "dead_letter")} <= kinds
    dead = next(r for r in records if r.kind == "dead_letter")
    assert isinstance(dead, evfn.Record) and dead.code == evfn.EFAILED
    assert dead.event.id == "e2" and dead.attempt == 1
    assert dead.duration >= 0
    with pytest.raises(TypeError):
        evfn.Runtime(on_record=42)
