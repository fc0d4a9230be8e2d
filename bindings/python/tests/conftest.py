# SPDX-License-Identifier: MIT
"""pytest set-up for the evfn binding tests, and a small TAP reporter.

With ``--tap`` (what meson passes), stdout carries valid TAP only: the plan
"1..N" once collection is done, then one "ok N - test" or "not ok N - test"
line per test, with a failure's report as "# " comment lines. pytest's own
terminal output goes to stderr. meson then shows subtests and ./dev counts
them.
"""
import os
import sys

import pytest

SOURCE_DIR = os.environ.get(
    "EVFN_PY_SOURCE_DIR",
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pytest_addoption(parser):
    parser.addoption("--tap", action="store_true",
                     help="print TAP on stdout, pytest's report on stderr")


class TapReporter:
    def __init__(self, config):
        self.config = config
        self.number = 0
        self.failed = {}

    def _print(self, line):
        capman = self.config.pluginmanager.getplugin("capturemanager")
        with capman.global_and_fixture_disabled():
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        self._print(f"1..{len(items)}")

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed.setdefault(report.nodeid, []).append(report)
        if report.when != "teardown":
            return
        self.number += 1
        name = report.nodeid.split("::", 1)[-1]
        failures = self.failed.pop(report.nodeid, [])
        if not failures:
            self._print(f"ok {self.number} - {name}")
            return
        self._print(f"not ok {self.number} - {name}")
        for rep in failures:
            for line in str(rep.longrepr).splitlines():
                self._print("# " + line)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if not config.getoption("--tap"):
        return
    # Keep stdout for TAP: pytest's terminal report moves to stderr.
    from _pytest.terminal import TerminalReporter
    old = config.pluginmanager.getplugin("terminalreporter")
    if old is not None:
        config.pluginmanager.unregister(old)
        config.pluginmanager.register(TerminalReporter(config, sys.stderr),
                                      "terminalreporter")
    config.pluginmanager.register(TapReporter(config), "evfn-tap")


@pytest.fixture
def rt():
    """A started runtime with a small pool, closed after the test."""
    import evfn
    runtime = evfn.Runtime(workers=(2, 4))
    runtime.start()
    yield runtime
    runtime.close(grace=5.0)
