# SPDX-License-Identifier: MIT
"""Shared helpers of the binding tests: polling a condition with a
deadline, where no event can be waited for (counters)."""
import time


def wait_for(cond, timeout=10.0, step=0.002):
    """Poll cond() until it is true; fail the test after timeout s."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def balanced(stats):
    """The accounting identity every snapshot must satisfy."""
    return stats["accepted"] == (
        stats["succeeded"] + stats["dead_lettered"] + stats["expired"] +
        stats["handed_back"] + stats["cancelled"] + stats["in_flight"] +
        stats["queued"] + stats["waiting_retry"] + stats["delayed"])
