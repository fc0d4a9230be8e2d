# SPDX-License-Identifier: MIT
"""Errors that keep their type and message: a handler's exception comes
back as an InvocationError whose type_name, message and traceback are the
exception's and whose __cause__ is the exception itself; the error text
starts with the exception, so a deep stack cannot push it past the
core's 1023 bytes; and an error text cut by the core (in any script)
decodes everywhere it surfaces: invoke, invoke_async, ainvoke,
dead_letters() and the event log."""
import asyncio

import pytest

import evfn
from helpers import wait_for


class TokenError(PermissionError):
    """A user-defined exception: its name is qualified by its module."""


def deep(n, exc):
    if n == 0:
        raise exc
    deep(n - 1, exc)


def test_exceptions_type_message_traceback_and_cause(rt):
    raised = []

    @rt.function("auth", attempts=2, backoff=0.001)
    def auth(event):
        exc = PermissionError("token expired")
        raised.append(exc)
        deep(12, exc)

    with pytest.raises(evfn.Exhausted) as info:
        rt.invoke("auth")
    e = info.value
    assert e.type_name == "PermissionError"
    assert e.message == "token expired"
    assert "in auth" in e.traceback and "in deep" in e.traceback
    assert e.__cause__ is raised[-1]
    # The text evfn keeps starts with the exception, not a file path.
    assert e.error.startswith("PermissionError: token expired\n")
    assert "last error: PermissionError: token expired" in str(e)

    fut = rt.invoke_async("auth")
    e = fut.exception(timeout=10)
    assert isinstance(e, evfn.Exhausted)
    assert e.type_name == "PermissionError" and e.message == "token expired"
    assert e.__cause__ is raised[-1]


def test_exceptions_user_class_and_long_message(rt):
    @rt.function("custom", attempts=1)
    def custom(event):
        deep(12, TokenError("x" * 3000))

    with pytest.raises(evfn.Exhausted) as info:
        rt.invoke("custom")
    e = info.value
    assert e.type_name == f"{__name__}.TokenError"
    assert e.message == "x" * 3000  # whole, from the exception itself
    assert isinstance(e.__cause__, TokenError)
    assert e.error.startswith(f"{__name__}.TokenError: xxx")
    assert len(e.error.encode()) <= 1023


def test_exceptions_text_only_errors_parse_without_cause(rt):
    # A dead letter has only the text: the fields come from it.
    @rt.function("dl", attempts=1)
    def dl(event):
        raise KeyError("missing")

    with pytest.raises(evfn.Exhausted):
        rt.invoke("dl")
    letter = rt.dead_letters()[0]
    e = evfn.Exhausted(evfn.EEXHAUSTED, letter.error, letter.attempts)
    assert e.type_name == "KeyError" and e.message == "'missing'"
    assert "in dl" in e.traceback
    assert e.__cause__ is None
    # Errors that are not Python exceptions keep their text as message.
    e = evfn.Failed(evfn.EFAILED, "deadline of 200 ms exceeded", 1)
    assert e.type_name is None and e.traceback is None
    assert e.message == "deadline of 200 ms exceeded"


@pytest.mark.parametrize("text, kept", [
    ("not today", "not today"),
    # A lone surrogate cannot be UTF-8: it is escaped, and the Fail still
    # fails at once (it must not turn into a retry).
    ("bad \udce9 text", "bad \\udce9 text"),
])
def test_exceptions_fail_keeps_its_message(rt, text, kept):
    @rt.function("no", attempts=3)
    def no(event):
        raise evfn.Fail(text)

    with pytest.raises(evfn.Failed) as info:
        rt.invoke("no")
    assert info.value.attempts == 1
    assert info.value.error == kept
    assert isinstance(info.value.__cause__, evfn.Fail)
    assert info.value.type_name == "evfn.Fail"


@pytest.mark.parametrize("prefix", ["", "a"])
def test_exceptions_text_cut_mid_character_decodes_everywhere(prefix):
    records = []
    rt = evfn.Runtime(workers=(1, 2), on_record=records.append).start()
    # 2-byte characters: one of the two prefixes makes the cut at 1023
    # bytes fall inside one.
    message = prefix + "\u00e9" * 2000

    @rt.function("accents", attempts=1)
    def accents(event):
        raise ValueError(message)

    try:
        with pytest.raises(evfn.Exhausted) as info:
            rt.invoke("accents")
        assert info.value.message == message
        assert "\ufffd" not in info.value.error
        fut = rt.invoke_async("accents")
        assert isinstance(fut.exception(timeout=10), evfn.Exhausted)

        async def main():
            with pytest.raises(evfn.Exhausted):
                await asyncio.wait_for(rt.ainvoke("accents"), 10)
        asyncio.run(main())
        letters = rt.dead_letters()
        assert len(letters) == 3
        for letter in letters:
            assert letter.error.startswith("ValueError: " + prefix + "\u00e9")
            assert "\ufffd" not in letter.error
            assert len(letter.error.encode()) <= 1023
        wait_for(lambda: sum(r.kind == "dead_letter" for r in records) == 3)
        for r in records:
            if r.kind == "dead_letter":
                assert r.error.startswith("ValueError: ")
    finally:
        rt.close()
