# SPDX-License-Identifier: MIT
"""Triggers from Python: schedules (also through the decorator), directory
watches, signals (and how they share the process with Python's own signal
handling) and file descriptors; Trigger objects, their counters, closing,
and a runtime that closes its open triggers itself."""
import datetime
import gc
import os
import signal
import threading
import time

import pytest

import evfn
from helpers import wait_for


def collector(rt, name):
    """Registers a function that records the events it gets."""
    got = []
    lock = threading.Lock()

    def handler(event):
        with lock:
            got.append(event)
    rt.register(name, handler)
    return got


def test_triggers_schedule_fires_function_and_reports_next(rt):
    got = collector(rt, "tick")
    t = rt.schedule("@every 50ms", function="tick", name="ticker")
    wait_for(lambda: len(got) >= 2)
    assert got[0].type == "evfn.schedule"
    assert got[0].source == "evfn/schedule/ticker"
    assert got[0].subject == "ticker"
    nxt = t.next()
    assert isinstance(nxt, datetime.datetime) and nxt.tzinfo is not None
    now = datetime.datetime.now(datetime.timezone.utc)
    assert now - datetime.timedelta(seconds=1) < nxt < \
        now + datetime.timedelta(seconds=1)
    # Counted when admission returns, which may be after the handler ran.
    wait_for(lambda: t.stats()["fired"] >= 2)
    assert t.kind == "schedule"
    t.close()
    assert t.closed
    t.close()  # idempotent
    with pytest.raises(evfn.InvalidArgument):
        t.stats()


def test_triggers_schedule_decorator_registers_and_attaches(rt):
    seen = threading.Event()

    @rt.function("report", schedule="@every 50ms")
    def report(event):
        assert event.type == "evfn.schedule"
        seen.set()
    assert seen.wait(10)


def test_triggers_schedule_to_topic_and_at_in_the_past(rt):
    got = collector(rt, "sub")
    rt.subscribe("beat", "sub")
    with rt.schedule("rate(1 minute)", type="beat") as minute:
        assert minute.next() > datetime.datetime.now(datetime.timezone.utc)
    assert minute.closed
    with rt.schedule("at(2001-01-01T00:00:00)", type="beat",
                     missed="skip") as past:
        assert past.next() is None
    assert got == []


def test_triggers_unreferenced_trigger_keeps_firing(rt):
    got = collector(rt, "kept")
    rt.schedule("@every 40ms", function="kept")
    gc.collect()
    wait_for(lambda: len(got) >= 2)


def test_triggers_schedule_bad_input(rt):
    rt.register("f", lambda e: None)
    with pytest.raises(evfn.InvalidArgument) as e:
        rt.schedule("every 5 minutes", function="f")
    assert e.value.code == evfn.ESCHEDULE and "offset" in str(e.value)
    with pytest.raises(evfn.InvalidArgument) as e:
        rt.schedule("@every 1s", tz="Mars/Olympus", function="f")
    assert e.value.code == evfn.ETIMEZONE
    with pytest.raises(evfn.InvalidArgument):
        rt.schedule("@every 1s", function="f", missed="sometimes")
    with pytest.raises(evfn.NoFunction):
        rt.schedule("@every 1s", function="nope")


def test_triggers_watch_emits_arrivals_matching_glob(rt, tmp_path):
    got = collector(rt, "upload")
    (tmp_path / "old.csv").write_text("old")
    with rt.watch(tmp_path, "*.csv", function="upload",
                  existing=True) as w:
        wait_for(lambda: len(got) == 1)
        assert got[0].extensions["arrival"] == "existing"
        (tmp_path / "skip.txt").write_text("no")
        (tmp_path / "new.csv").write_text("a,b\n")
        wait_for(lambda: len(got) == 2)
        ev = got[1]
        assert ev.type == "evfn.file.created" and ev.subject == "new.csv"
        assert ev.text() == str(tmp_path / "new.csv")
        assert ev.extensions["arrival"] == "written"
        wait_for(lambda: w.stats()["fired"] == 2)
    time.sleep(0.05)  # nothing more may arrive: the .txt never does
    assert len(got) == 2


def test_triggers_watch_bad_directory(rt, tmp_path):
    rt.register("f", lambda e: None)
    with pytest.raises(evfn.Error) as e:
        rt.watch(tmp_path / "missing", function="f")
    assert e.value.code == evfn.ENOENT
    (tmp_path / "file").write_text("")
    with pytest.raises(evfn.Error) as e:
        rt.watch(tmp_path / "file", function="f")
    assert e.value.code == evfn.ENOTDIR
    with pytest.raises(evfn.InvalidArgument):
        rt.watch(tmp_path, "a/b", function="f")


def test_triggers_fd_fires_when_readable(rt):
    r, w = os.pipe()
    got = []

    def drain(event):
        got.append((event.extensions, os.read(r, 100)))
    rt.register("pipe", drain)
    try:
        with rt.on_fd(r, edge=True, function="pipe") as t:
            os.write(w, b"ping")
            wait_for(lambda: len(got) == 1)
            ext, data = got[0]
            assert ext == {"fd": str(r), "ready": "read"} and data == b"ping"
            assert t.kind == "fd"
    finally:
        os.close(r)
        os.close(w)


def test_triggers_fd_bad_input(rt):
    rt.register("f", lambda e: None)
    with pytest.raises(ValueError):
        rt.on_fd(-1, function="f")
    with pytest.raises(evfn.InvalidArgument):
        rt.on_fd(0, read=False, write=False, function="f")


def test_triggers_signal_fires_and_restores_python_handler(rt):
    got = collector(rt, "usr")
    python_calls = []
    old = signal.signal(signal.SIGUSR2,
                        lambda signo, frame: python_calls.append(signo))
    try:
        t = rt.on_signal(signal.SIGUSR2, function="usr")
        os.kill(os.getpid(), signal.SIGUSR2)
        wait_for(lambda: len(got) == 1)
        assert got[0].subject == "SIGUSR2"
        assert got[0].extensions["signal"] == str(int(signal.SIGUSR2))
        assert python_calls == []  # the trigger held the signal
        t.close()
        os.kill(os.getpid(), signal.SIGUSR2)
        wait_for(lambda: python_calls == [signal.SIGUSR2])
        assert len(got) == 1
    finally:
        signal.signal(signal.SIGUSR2, old)


def test_triggers_signal_leaves_sigint_to_python(rt):
    got = collector(rt, "usr1")
    with rt.on_signal(signal.SIGUSR1, function="usr1"):
        os.kill(os.getpid(), signal.SIGUSR1)
        wait_for(lambda: len(got) == 1)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                time.sleep(0.01)


def test_triggers_signal_bad_number(rt):
    with pytest.raises(evfn.InvalidArgument):
        rt.on_signal(signal.SIGKILL, type="never")
    with pytest.raises(evfn.InvalidArgument):
        rt.on_signal(0, type="never")


def test_triggers_closed_with_their_runtime(tmp_path):
    rt = evfn.Runtime(workers=(1, 1)).start()
    rt.register("f", lambda e: None)
    triggers = [rt.schedule("@every 1h", function="f"),
                rt.watch(tmp_path, function="f")]
    rt.close()
    assert rt.closed and all(t.closed for t in triggers)
    with pytest.raises(evfn.ShutDown):
        rt.schedule("@every 1h", function="f")
