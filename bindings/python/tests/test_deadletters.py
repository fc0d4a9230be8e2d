# SPDX-License-Identifier: MIT
"""Dead letters from Python: what the store keeps of an event that failed
(the Event as handlers see it, reason, attempts, times), replaying,
deleting and purging, the store's capacity, and the hop limit."""
import datetime

import pytest

import evfn
from helpers import wait_for


def refuse(event):
    raise evfn.Fail("refused")


def test_deadletters_failed_event_is_stored_with_why(rt):
    @rt.function("pay", attempts=1)
    def pay(event):
        raise evfn.Fail("card declined")
    before = datetime.datetime.now(datetime.timezone.utc)
    with pytest.raises(evfn.Failed):
        rt.invoke("pay", {"amount": 5}, id="order-1",
                  extensions={"tenant": "acme"})
    [dl] = rt.dead_letters()
    assert isinstance(dl, evfn.DeadLetter)
    assert dl.function == "pay" and dl.reason == "failed"
    assert dl.code == evfn.EFAILED and dl.attempts == 1
    assert "card declined" in dl.error
    assert dl.event.id == "order-1" and dl.event.json() == {"amount": 5}
    assert dl.event.extensions == {"tenant": "acme"}
    assert before - datetime.timedelta(seconds=1) <= dl.first_attempt \
        <= dl.last_attempt
    assert rt.dead_letter_count == 1


def test_deadletters_exhausted_and_pagination(rt):
    @rt.function("flaky", attempts=2, backoff=0.001)
    def flaky(event):
        raise RuntimeError("down")
    for i in range(3):
        with pytest.raises(evfn.Exhausted):
            rt.invoke("flaky", str(i))
    all_ = rt.dead_letters()
    assert [d.event.text() for d in all_] == ["0", "1", "2"]
    assert all(d.reason == "attempts_exhausted" and d.attempts == 2
               for d in all_)
    assert [d.id for d in rt.dead_letters(limit=1, offset=1)] == \
        [all_[1].id]
    assert rt.dead_letters(offset=5) == []
    with pytest.raises(evfn.InvalidArgument):
        rt.dead_letters(limit=-1)


def test_deadletters_replay_delete_purge(rt):
    healthy = {"now": False}
    done = []

    @rt.function("sync", attempts=1)
    def sync(event):
        if not healthy["now"]:
            raise evfn.Fail("backend down")
        done.append(event.text())
    for x in ("a", "b", "c"):
        with pytest.raises(evfn.Failed):
            rt.invoke("sync", x)
    first, second, third = rt.dead_letters()
    healthy["now"] = True
    first.replay()
    wait_for(lambda: done == ["a"])
    with pytest.raises(evfn.Error) as e:
        first.replay()
    assert e.value.code == evfn.ENOENT
    second.delete()
    with pytest.raises(evfn.Error):
        second.delete()
    assert [d.id for d in rt.dead_letters()] == [third.id]
    assert rt.replay_dead_letters() == 1
    wait_for(lambda: done == ["a", "c"])
    with pytest.raises(evfn.Failed):
        healthy["now"] = False
        rt.invoke("sync", "d")
    assert rt.purge_dead_letters() == 1 and rt.dead_letters() == []


def test_deadletters_capacity_evicts_oldest():
    with evfn.Runtime(workers=(1, 1), dead_letter_capacity=2) as rt:
        rt.register("no", refuse, attempts=1)
        for i in range(3):
            with pytest.raises(evfn.Failed):
                rt.invoke("no", str(i))
        assert [d.event.text() for d in rt.dead_letters()] == ["1", "2"]
        assert rt.dead_letters_evicted == 1
    with evfn.Runtime(dead_letter_capacity=0) as rt:
        rt.register("no", refuse, attempts=1)
        with pytest.raises(evfn.Failed):
            rt.invoke("no")
        assert rt.dead_letters() == []
    with pytest.raises(evfn.InvalidArgument):
        evfn.Runtime(dead_letter_capacity=-1)


def test_deadletters_hop_limit_stops_loops():
    with evfn.Runtime(workers=(1, 2), max_hops=3) as rt:
        @rt.function("echo", subscribe="ping")
        def echo(event, ctx):
            ctx.emit("ping", event.data)
        rt.emit("ping", b"x")
        wait_for(lambda: rt.dead_letter_count == 1)
        [dl] = rt.dead_letters()
        assert dl.reason == "loop_detected"
        assert dl.code == evfn.ELOOPDETECTED and dl.event.hops == 4
    with pytest.raises(evfn.InvalidArgument):
        evfn.Runtime(max_hops=0)
