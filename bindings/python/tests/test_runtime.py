# SPDX-License-Identifier: MIT
"""Runtime life cycle: options, start, drain with handed-back events,
close, run/stop, the context manager, stats, and exit with a live
runtime."""
import os
import subprocess
import sys
import threading
import time

import pytest

import evfn
from helpers import balanced, wait_for


def test_runtime_context_manager_starts_and_closes():
    with evfn.Runtime(workers=(1, 2)) as rt:
        rt.register("echo", lambda ev: ev.data)
        assert rt.invoke("echo", b"x") == b"x"
        assert rt.workers >= 1
    assert rt.closed
    with pytest.raises(evfn.ShutDown):
        rt.emit("t", b"")


def test_runtime_bad_workers_raise_invalid_argument():
    with pytest.raises(evfn.InvalidArgument) as info:
        evfn.Runtime(workers=(3, 1))
    assert info.value.code == evfn.ERANGE
    assert isinstance(info.value, ValueError)


def test_runtime_invoke_before_start_raises_not_running():
    rt = evfn.Runtime()
    rt.register("f", lambda ev: None)
    with pytest.raises(evfn.NotRunning):
        rt.invoke("f")
    rt.close()


def test_runtime_events_emitted_before_start_run_after():
    rt = evfn.Runtime(workers=1)
    got = threading.Event()
    rt.register("f", lambda ev: got.set(), subscribe="early")
    rt.emit("early", b"1")
    rt.start()
    assert got.wait(10)
    rt.close()


def test_runtime_drain_hands_back_queued_events():
    rt = evfn.Runtime(workers=(1, 1)).start()
    started, gate = threading.Event(), threading.Event()

    def slow(ev):
        started.set()
        gate.wait(10)
    rt.register("slow", slow, concurrency=1, subscribe="jobs")
    for i in range(5):
        rt.emit("jobs", str(i))
    assert started.wait(10)
    with pytest.raises(evfn.TimedOut) as info:
        rt.drain(grace=0)
    handed = info.value.handed_back
    assert len(handed) == 4
    assert all(h.function == "slow" for h in handed)
    assert sorted(h.event.text() for h in handed) == ["1", "2", "3", "4"]
    with pytest.raises(evfn.ShutDown):
        rt.emit("jobs", b"late")
    gate.set()
    assert rt.close() == []
    assert rt.closed


def test_runtime_drain_waits_for_in_flight_work():
    rt = evfn.Runtime(workers=(2, 2)).start()
    started = threading.Event()

    def work(ev):
        started.set()
        time.sleep(0.1)  # the work drain has to wait for
    rt.register("work", work, subscribe="t")
    rt.emit("t", b"x")
    assert started.wait(10)
    assert rt.drain(grace=5.0) == []
    s = rt.stats("work")
    assert s["succeeded"] == 1 and s["in_flight"] == 0 and balanced(s)
    rt.close()


def test_runtime_run_returns_after_stop():
    rt = evfn.Runtime(workers=1)
    rt.register("stopper", lambda ev: rt.stop(), subscribe="stop")
    rt.emit("stop", b"")
    assert rt.run(grace=1.0) == []
    assert rt.closed


def test_runtime_close_is_idempotent_and_unstarted_close_works():
    rt = evfn.Runtime()
    rt.close()
    rt.close()
    assert rt.closed


def test_runtime_stats_dict(rt):
    rt.register("ok", lambda ev: None)
    rt.register("bad", lambda ev: (_ for _ in ()).throw(evfn.Fail("x")))
    for _ in range(3):
        rt.invoke("ok")
    with pytest.raises(evfn.Failed):
        rt.invoke("bad")
    s = rt.stats("ok")
    assert tuple(s) == evfn.STATS
    assert s["accepted"] == 3 and s["succeeded"] == 3 and balanced(s)
    total = rt.stats()
    assert total["accepted"] == 4 and total["dead_lettered"] == 1
    assert balanced(total)
    with pytest.raises(evfn.NoFunction):
        rt.stats("nope")


def test_runtime_closed_at_exit_with_work_in_flight():
    # An interpreter that exits with a started runtime, a handler running
    # Python code and more queued must exit cleanly and promptly.
    code = """
import threading, evfn
rt = evfn.Runtime(workers=(2, 2), grace=0.5)
running = threading.Event()
@rt.function(subscribe="t", timeout=0.3)
def spin(ev):
    running.set()
    while True:
        pass
rt.start()
for i in range(10):
    rt.emit("t", b"x")
running.wait(10)
print("exiting")
"""
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "exiting"


@pytest.mark.parametrize("mode", ["durable", "fast"])
def test_runtime_journal_keeps_events_across_runtimes(tmp_path, mode):
    path = str(tmp_path / "journal.db")
    with evfn.Runtime(journal=path, journal_mode=mode) as rt:
        rt.register("f", lambda ev: None)
        rt.pause("f")
        for i in range(3):
            rt.invoke_async("f", b"e%d" % i)
    # Handed back at close and kept: the next runtime runs them, its
    # function registered before start() reads the journal.
    got = []
    rt = evfn.Runtime(journal=path, journal_mode=mode)
    rt.register("f", lambda ev: got.append(ev.data))
    with rt.start():
        wait_for(lambda: len(got) == 3)
    assert sorted(got) == [b"e0", b"e1", b"e2"]


def test_runtime_journal_refusals_are_specific(tmp_path):
    with pytest.raises(evfn.InvalidArgument):
        evfn.Runtime(journal=str(tmp_path / "j.db"), journal_mode="sometimes")
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    rt = evfn.Runtime(journal=str(junk))
    with pytest.raises(evfn.Error) as info:
        rt.start()
    assert info.value.code == evfn.ECORRUPT
    rt.close()


def test_emit_many_admits_all_with_consecutive_seqs():
    seen = []
    lock = threading.Lock()
    with evfn.Runtime(workers=(1, 1)) as rt:
        def record(ev):
            with lock:
                seen.append((ev.seq, ev.type, ev.data))
        rt.register("rec", record, concurrency=1)
        rt.subscribe("m.#", "rec")
        built = evfn.Event("m.built", b"b")
        seqs = rt.emit_many([("m.a", b"1"), ("m.b", "two"), built,
                             ("m.c",)])
        assert isinstance(seqs, range) and len(seqs) == 4
        assert built.seq == seqs[2]
        wait_for(lambda: len(seen) == 4)
        assert sorted(seen) == [(seqs[0], "m.a", b"1"),
                                (seqs[1], "m.b", b"two"),
                                (seqs[2], "m.built", b"b"),
                                (seqs[3], "m.c", b"")]


def test_emit_many_is_all_or_nothing():
    gate = threading.Event()
    running = threading.Event()

    def slow(ev):
        running.set()
        gate.wait(10)

    with evfn.Runtime(workers=(1, 1)) as rt:
        rt.register("slow", slow, concurrency=1, queue=4)
        rt.subscribe("s", "slow")
        try:
            with pytest.raises(evfn.QueueFull):
                rt.emit_many([("s", b"x")] * 5)
            assert rt.stats("slow")["accepted"] == 0
            # One event runs, held by the gate: from here the queue's
            # bound of 4 is all that admits or refuses.
            rt.emit("s", b"x")
            assert running.wait(10)
            assert len(rt.emit_many([("s", b"x")] * 4)) == 4
            with pytest.raises(evfn.QueueFull):
                rt.emit_many([("s", b"x")])
            assert rt.stats("slow")["accepted"] == 5
        finally:
            gate.set()


def test_emit_many_bad_items_raise():
    with evfn.Runtime(workers=(1, 1)) as rt:
        rt.register("f", lambda ev: None)
        rt.subscribe("t", "f")
        with pytest.raises(TypeError):
            rt.emit_many([("t", b"x"), "not a pair"])
        with pytest.raises(TypeError):
            rt.emit_many(42)
        with pytest.raises(evfn.InvalidArgument):
            rt.emit_many([])
        with pytest.raises(evfn.NoSubscriber):
            rt.emit_many([("t", b"x"), ("nobody", b"y")])
        with pytest.raises(evfn.InvalidArgument) as info:
            rt.emit_many([("t", b"")] * 1025)
        assert info.value.code == evfn.ERANGE
        ev = evfn.Event("t", b"")
        rt.emit(ev)
        with pytest.raises(evfn.Error) as info:
            rt.emit_many([ev])
        assert info.value.code == evfn.EPERM
        assert rt.stats("f")["accepted"] == 1
