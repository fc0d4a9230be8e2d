# SPDX-License-Identifier: MIT
"""Schedules: parsing expressions and computing next fire times through
evfn/schedule.h, with the parser's reason on errors."""
import datetime as dt

import pytest

import evfn

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def test_schedule_rate_and_every():
    assert evfn.Schedule("rate(5 minutes)").next(T0) == \
        T0 + dt.timedelta(minutes=5)
    assert evfn.Schedule("@every 1m30s").next(T0) == \
        T0 + dt.timedelta(seconds=90)


def test_schedule_cron_in_a_time_zone():
    s = evfn.Schedule("0 9 * * *", tz="Europe/Berlin")
    # 09:00 in Berlin on 2 March 2026 (CET, UTC+1) is 08:00 UTC.
    assert s.next(T0) == dt.datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert "Europe/Berlin" in repr(s)


def test_schedule_at_fires_once():
    s = evfn.Schedule("at(2026-03-01T13:00:00)")
    first = s.next(T0)
    assert first == dt.datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    assert s.next(first) is None
    assert s.next_ns(0) is not None and s.next() is None


def test_schedule_errors():
    with pytest.raises(evfn.InvalidArgument) as info:
        evfn.Schedule("61 * * * *")
    assert info.value.code == evfn.ESCHEDULE
    assert "offset" in str(info.value)
    with pytest.raises(evfn.InvalidArgument) as info:
        evfn.Schedule("@hourly", tz="Mars/Olympus")
    assert info.value.code == evfn.ETIMEZONE
    with pytest.raises(ValueError):
        evfn.Schedule("@hourly").next(dt.datetime(2026, 1, 1))
