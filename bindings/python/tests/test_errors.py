# SPDX-License-Identifier: MIT
"""Error mapping: one constant per entry of the C error table, a class per
common code carrying the C message, code and name, outcome classes for
invocations, and stubs that declare exactly what the package exports."""
import ast
import os

import pytest

import evfn
from conftest import SOURCE_DIR


def test_errors_constants_come_from_the_c_table():
    names = [name for name, _, _ in evfn._evfn.ERRORS]
    assert len(names) == len(set(names)) > 20
    for name, code, msg in evfn._evfn.ERRORS:
        assert getattr(evfn, name) == code < 0
        assert evfn._evfn.strerror(code) == msg
        assert evfn._evfn.err_name(code) == "EVFN_" + name
    assert evfn.EQUEUEFULL == -4003 and evfn.EINVAL == -22


def test_errors_every_code_builds_an_exception():
    for name, code, msg in evfn._evfn.ERRORS:
        cls = evfn.error_class(code)
        assert issubclass(cls, evfn.Error)
        e = cls(code) if not issubclass(cls, evfn.InvocationError) else \
            cls(code, "detail", 2)
        assert e.code == code and e.name == "EVFN_" + name
        assert msg in str(e) and e.name in str(e)


def test_errors_common_codes_have_classes():
    expect = {
        evfn.EQUEUEFULL: evfn.QueueFull, evfn.ENOFN: evfn.NoFunction,
        evfn.ENOSUB: evfn.NoSubscriber, evfn.ESHUTDOWN: evfn.ShutDown,
        evfn.EINVAL: evfn.InvalidArgument, evfn.ERANGE: evfn.InvalidArgument,
        evfn.EPATTERN: evfn.InvalidArgument, evfn.EEXIST: evfn.AlreadyExists,
        evfn.EFAILED: evfn.Failed, evfn.EEXHAUSTED: evfn.Exhausted,
        evfn.EDEADLK: evfn.Deadlock, evfn.EUNHEALTHY: evfn.Unhealthy,
    }
    for code, cls in expect.items():
        assert evfn.error_class(code) is cls
    assert evfn.error_class(evfn.EACCES) is evfn.Error
    assert issubclass(evfn.NoFunction, LookupError)
    assert issubclass(evfn.Timeout, BaseException)
    assert not issubclass(evfn.Timeout, Exception)


def test_errors_raised_from_c_carry_code_and_message(rt):
    with pytest.raises(evfn.NoFunction) as info:
        rt.invoke("missing")
    e = info.value
    assert e.code == evfn.ENOFN and e.name == "EVFN_ENOFN"
    assert "no function registered under this name" in str(e)
    with pytest.raises(evfn.InvalidArgument) as info:
        rt.emit("x" * 300, b"")
    assert info.value.code == evfn.ENAMETOOLONG


def test_errors_outcome_classes():
    # ETIMEDOUT as an event's outcome means exhausted by deadlines.
    assert evfn._OUTCOME_BY_CODE[evfn.ETIMEDOUT] is evfn.DeadlineExceeded
    assert issubclass(evfn.DeadlineExceeded, evfn.Exhausted)
    e = evfn.Exhausted(evfn.EEXHAUSTED, "Traceback...\nValueError: x", 3)
    assert e.attempts == 3 and str(e).count("ValueError: x") == 1


def _stub_names(path):
    tree = ast.parse(open(path).read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef,
                             ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


def test_errors_stubs_declare_the_package():
    names = _stub_names(os.path.join(SOURCE_DIR, "evfn", "__init__.pyi"))
    assert set(evfn.__all__) <= names
    constants = {n for n in names if n.startswith("E") and n.isupper()}
    assert constants == {name for name, _, _ in evfn._evfn.ERRORS}
    c_names = _stub_names(os.path.join(SOURCE_DIR, "evfn", "_evfn.pyi"))
    public = {n for n in dir(evfn._evfn) if not n.startswith("__")}
    assert public <= c_names
