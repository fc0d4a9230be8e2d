# SPDX-License-Identifier: MIT
"""evfn from Python: Lambda-style event processing inside the interpreter.

A thin layer over the C extension ``evfn._evfn``: the ``Runtime`` with its
``@rt.function`` decorator, events and contexts, ``emit``/``invoke``/
``invoke_async``, the exception classes (one per common evfn error code,
all generated constants from the C error table), flow control (batches,
ordering keys, rate limits, circuit breakers, delays, pause, cancel),
schedules, triggers (schedules, directory watches, signals, descriptors),
HTTP routes, dead letters and the event log.

Handlers are plain or ``async def`` functions taking ``(event)`` or
``(event, ctx)``. Returning a value responds with it; raising ``Retry`` or
``Fail`` chooses the outcome; any other exception retries or fails
according to ``retry_on=``/``fail_on=``, its type, message and traceback
becoming the attempt's error (and, for ``invoke``/``invoke_async``
callers, the ``__cause__`` of the ``InvocationError``). A handler past its
deadline gets ``Timeout`` raised inside it.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import dataclasses
import datetime as _dt
import inspect
import os
import threading
import traceback
import warnings
import weakref
from typing import (Any, Callable, Iterable, NamedTuple, Optional, Tuple,
                    Type, Union)

from . import _evfn
from ._evfn import Context, Event, HttpServer, Trigger

# The PostgreSQL sources exist where evfn was built with libpq.
PgSource = getattr(_evfn, "PgSource", None)

__version__ = _evfn.VERSION

# One constant per entry of the C error table (EVFN_ERRNO_MAP), never a
# hand-kept copy: evfn.EQUEUEFULL == -4003 and so on.
for _name, _code, _msg in _evfn.ERRORS:
    globals()[_name] = _code
del _name, _code, _msg

STATS: Tuple[str, ...] = _evfn.STATS


class Error(Exception):
    """An evfn call failed. ``code`` is the negative EVFN_E* value,
    ``name`` its name ("EVFN_EQUEUEFULL"), ``detail`` extra text or None."""

    def __init__(self, code: int, detail: Optional[str] = None) -> None:
        self.code = code
        self.name = _evfn.err_name(code)
        self.detail = detail
        text = _evfn.strerror(code)
        if detail:
            text += ": " + detail
        super().__init__(f"{text} [{self.name}]")


class InvalidArgument(Error, ValueError):
    """Bad input: EINVAL, ERANGE, ENAMETOOLONG, EPATTERN, EILSEQ, ESCHEDULE,
    ..."""


class NoFunction(Error, LookupError):
    """ENOFN: no function is registered under the name."""


class NoSubscriber(Error):
    """ENOSUB: no function subscribes to the topic."""


class QueueFull(Error):
    """EQUEUEFULL: the function's queue is full; the event was refused."""


class Unhealthy(Error):
    """EUNHEALTHY: too many of the function's handlers are stuck."""


class ShutDown(Error):
    """ESHUTDOWN: the runtime is draining or closed."""


class NotRunning(Error):
    """ENOTRUNNING: the runtime has not been started."""


class AlreadyExists(Error):
    """EEXIST: already exists (a function, route or group by that name)."""


class AlreadyDone(Error):
    """EALREADY: started or drained twice."""


class Deadlock(Error):
    """EDEADLK: the call would wait on the thread that must finish it."""


class Busy(Error):
    """EBUSY: still in use (work in flight, or live triggers or sources)."""


class CircuitOpen(Error):
    """ECIRCUITOPEN: the function's circuit breaker is open and its policy
    is "refuse"; the event was refused."""


class TimedOut(Error, TimeoutError):
    """ETIMEDOUT: drain's grace period ended with work in flight
    (``handed_back`` holds what was handed back anyway), or ``invoke``'s
    ``timeout=`` passed (the invocation was cancelled). Also a
    TimeoutError."""

    handed_back: list = []


# How a Python handler's error text separates the exception (type and
# message, first) from its traceback (after).
_TRACEBACK_MARK = "\n\nTraceback (most recent call last):\n"


def _error_text(exc: BaseException) -> str:
    """The attempt's error for an exception a handler raised: its type
    and message first (they survive the core's cut at 1023 bytes), then
    its traceback."""
    head = "".join(traceback.format_exception_only(type(exc), exc))
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return head.rstrip("\n") + (_TRACEBACK_MARK + frames if frames else "")


def _type_name(cls: type) -> str:
    """A class's name as tracebacks print it."""
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class InvocationError(Error):
    """An invoked event ended badly. ``error`` is the last attempt's error
    text, ``attempts`` how many attempts it took. When the last attempt
    raised a Python exception, ``type_name`` is its class
    ("PermissionError"), ``message`` its message and ``traceback`` its
    formatted frames; otherwise ``type_name`` and ``traceback`` are None
    and ``message`` is the error text. ``__cause__`` is the exception
    itself when it is still in this process (``invoke``,
    ``invoke_async``)."""

    def __init__(self, code: int, error: Optional[str] = None,
                 attempts: int = 0,
                 cause: Optional[BaseException] = None) -> None:
        self.error = error
        self.attempts = attempts
        self.type_name: Optional[str] = None
        self.message: Optional[str] = error
        self.traceback: Optional[str] = None
        if cause is not None:
            self.type_name = _type_name(type(cause))
            self.message = str(cause)
            self.traceback = "".join(
                traceback.format_tb(cause.__traceback__)) or None
        elif error and _TRACEBACK_MARK in error:
            head, _, self.traceback = error.partition(_TRACEBACK_MARK)
            self.type_name, sep, message = head.partition(": ")
            self.message = message if sep else ""
        detail = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        if self.type_name is not None:
            first = (self.message or "").strip().splitlines()
            detail += f"; last error: {self.type_name}" + (
                f": {first[0]}" if first else "")
        elif error and error.strip():
            # A whole traceback (as traceback.format_exc() gives it) ends
            # with the exception; other text starts with what matters.
            lines = error.strip().splitlines()
            detail += "; last error: " + (
                lines[-1] if lines[0].startswith("Traceback") else lines[0])
        super().__init__(code, detail)
        if cause is not None:
            self.__cause__ = cause


class Failed(InvocationError):
    """EFAILED: a handler failed permanently; dead-lettered."""


class Exhausted(InvocationError):
    """EEXHAUSTED: attempts exhausted; dead-lettered."""


class DeadlineExceeded(Exhausted):
    """ETIMEDOUT as an outcome: attempts exhausted, the last one by its
    deadline."""


class Expired(InvocationError):
    """EEXPIRED: the event outlived its maximum age."""


class HandedBack(InvocationError):
    """EHANDEDBACK: the event was handed back at drain."""


class LoopDetected(InvocationError):
    """ELOOPDETECTED: an event chain exceeded the hop limit."""


class Cancelled(InvocationError):
    """ECANCELED: the event was cancelled (``Runtime.cancel()``)."""


_CLASSES = {
    "EINVAL": InvalidArgument, "ERANGE": InvalidArgument,
    "ENAMETOOLONG": InvalidArgument, "EPATTERN": InvalidArgument,
    "EILSEQ": InvalidArgument,
    "ESCHEDULE": InvalidArgument, "ETIMEZONE": InvalidArgument,
    "EROUTE": InvalidArgument, "EURL": InvalidArgument,
    "ECONNINFO": InvalidArgument,
    "ECLOUDEVENT": InvalidArgument,
    "ENOFN": NoFunction, "ENOSUB": NoSubscriber, "EQUEUEFULL": QueueFull,
    "EUNHEALTHY": Unhealthy, "ESHUTDOWN": ShutDown,
    "ENOTRUNNING": NotRunning, "EEXIST": AlreadyExists,
    "EALREADY": AlreadyDone, "EDEADLK": Deadlock, "EBUSY": Busy,
    "ETIMEDOUT": TimedOut, "EFAILED": Failed, "EEXHAUSTED": Exhausted,
    "EEXPIRED": Expired, "EHANDEDBACK": HandedBack,
    "ELOOPDETECTED": LoopDetected, "ECANCELED": Cancelled,
    "ECIRCUITOPEN": CircuitOpen,
}
# An event's final outcome (invoke, invoke_async) has classes of its own:
# ETIMEDOUT there means "exhausted by deadlines", not a timed-out call.
_OUTCOME_CLASSES = {
    "EFAILED": Failed, "EEXHAUSTED": Exhausted, "ETIMEDOUT": DeadlineExceeded,
    "EEXPIRED": Expired, "EHANDEDBACK": HandedBack,
    "ELOOPDETECTED": LoopDetected, "ECANCELED": Cancelled,
}
_BY_CODE = {code: _CLASSES[name] for name, code, _ in _evfn.ERRORS
            if name in _CLASSES}
_OUTCOME_BY_CODE = {code: _OUTCOME_CLASSES[name]
                    for name, code, _ in _evfn.ERRORS
                    if name in _OUTCOME_CLASSES}


def error_class(code: int) -> Type[Error]:
    """The exception class evfn raises for an error code."""
    return _BY_CODE.get(code, Error)


class Retry(Exception):
    """Raise in a handler: transient failure, try again after the backoff
    while attempts remain. The message becomes the attempt's error."""


class Fail(Exception):
    """Raise in a handler: permanent failure, dead-letter the event now."""


class Timeout(BaseException):
    """Raised inside a handler whose deadline passed (or that
    ``Runtime.cancel()`` asked to stop); the attempt ends as RETRY with
    the error "Timeout" ("cancelled"). It derives from BaseException, like
    asyncio.CancelledError, so that ``except Exception`` does not swallow
    it. A synchronous ``invoke`` inside a handler raises it too when that
    handler's deadline passes while it waits."""


_evfn._set_classes(_BY_CODE, Error, _OUTCOME_BY_CODE, InvocationError,
                   Timeout, Retry, Fail, _error_text)

_KINDS = {"fixed": _evfn.BACKOFF_FIXED, "linear": _evfn.BACKOFF_LINEAR,
          "exponential": _evfn.BACKOFF_EXPONENTIAL}
_JITTERS = {"none": _evfn.JITTER_NONE, "full": _evfn.JITTER_FULL,
            "equal": _evfn.JITTER_EQUAL,
            "decorrelated": _evfn.JITTER_DECORRELATED}


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Delay between attempts: ``kind`` fixed, linear or exponential, from
    ``base`` seconds (times ``multiplier`` per attempt when exponential),
    at most ``cap`` seconds, randomised by ``jitter`` (none, full, equal,
    decorrelated)."""

    kind: str = "exponential"
    base: float = 0.1
    multiplier: float = 2.0
    cap: float = 30.0
    jitter: str = "full"

    def _as_tuple(self) -> tuple:
        if self.kind not in _KINDS or self.jitter not in _JITTERS:
            raise InvalidArgument(EINVAL,  # noqa: F821 (generated)
                                  f"backoff {self.kind!r}/{self.jitter!r}")
        # Numbers as given: the C side converts them, naming a bad one.
        return (_KINDS[self.kind], self.base, self.multiplier, self.cap,
                _JITTERS[self.jitter])


@dataclasses.dataclass(frozen=True)
class Batch:
    """Call the handler with up to ``max_items`` events at once (a list);
    a call starts when that many wait or the oldest has waited ``window``
    seconds (0: with whatever waits now). ``batch=10`` is Batch(10)."""

    max_items: int
    window: float = 0.0

    def _as_tuple(self) -> tuple:
        return (self.max_items, self.window)


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """At most ``per_second`` calls start a second (a batch counts once),
    ``burst`` of them at once after a quiet spell; events over the limit
    wait in the queue. ``rate_limit=50`` is RateLimit(50)."""

    per_second: float
    burst: int = 1

    def _as_tuple(self) -> tuple:
        return (self.per_second, self.burst)


_POLICIES = {"queue": _evfn.CIRCUIT_QUEUE, "refuse": _evfn.CIRCUIT_REFUSE}


@dataclasses.dataclass(frozen=True)
class CircuitBreaker:
    """Stop starting attempts after ``consecutive_failures`` failed calls
    in a row (0: no such trigger), or once at least ``min_calls`` calls
    ended within ``window`` seconds and the share that failed reached
    ``failure_rate`` (0: no such trigger). After ``cooldown`` seconds one
    probe call runs: success closes the breaker, failure opens it again.
    While open, new events queue (``policy`` "queue") or are refused with
    CircuitOpen ("refuse"). ``circuit_breaker=5`` is CircuitBreaker(5)."""

    consecutive_failures: int = 5
    failure_rate: float = 0.0
    min_calls: int = 10
    window: float = 60.0
    cooldown: float = 30.0
    policy: str = "queue"

    def _as_tuple(self) -> tuple:
        if self.policy not in _POLICIES:
            raise InvalidArgument(EINVAL,  # noqa: F821 (generated)
                                  f"circuit breaker policy {self.policy!r}")
        return (self.consecutive_failures, self.failure_rate,
                self.min_calls, self.window, self.cooldown,
                _POLICIES[self.policy])


def _flow_options(batch: Union[Batch, int, None],
                  rate_limit: Union[RateLimit, float, None],
                  circuit_breaker: Union[CircuitBreaker, int, None]
                  ) -> dict:
    """register()'s flow options as the C side takes them (tuples); a
    bare number is the first field of the dataclass."""
    opts = {}
    if batch is not None:
        if not isinstance(batch, Batch):
            batch = Batch(batch)
        opts["batch"] = batch._as_tuple()
    if rate_limit is not None:
        if not isinstance(rate_limit, RateLimit):
            rate_limit = RateLimit(rate_limit)
        opts["rate_limit"] = rate_limit._as_tuple()
    if circuit_breaker is not None:
        if not isinstance(circuit_breaker, CircuitBreaker):
            circuit_breaker = CircuitBreaker(circuit_breaker)
        opts["circuit_breaker"] = circuit_breaker._as_tuple()
    return opts


class Record(NamedTuple):
    """One event-log record (``Runtime(on_record=...)``): ``kind`` is
    "start", "success", "timeout", "late", "dead_letter", "expired",
    "handed_back", "cancelled", or for a circuit breaker "circuit_open",
    "circuit_half_open", "circuit_closed" (those have ``event`` None,
    ``attempt`` 0 and the reason in ``error``); ``attempt`` the attempt it
    is about (attempts made, for ends); ``code`` 0 or the reason code of
    an end (EFAILED, EEXHAUSTED, ETIMEDOUT, EEXPIRED, ELOOPDETECTED,
    ECANCELED); ``error`` the latest attempt's error; ``duration`` seconds
    since the latest attempt started."""

    kind: str
    function: str
    event: Optional[Event]
    attempt: int
    code: int
    error: Optional[str]
    duration: float


def _record_sink(on_record: Callable[[Record], Any]) -> Callable:
    kinds = _evfn.RECORD_KINDS  # from the C name table

    def sink(kind: int, function: str, event: Optional[Event],
             attempt: int, code: int, error: Optional[str],
             duration_ns: int) -> None:
        on_record(Record(kinds[kind], function, event, attempt, code, error,
                         duration_ns / 1e9))
    return sink


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """An event that ended without success, as the dead-letter store keeps
    it: ``reason`` "failed", "attempts_exhausted", "timeout", "expired",
    "loop_detected" or "destination_refused", ``code`` the matching
    EVFN_E* value, ``error`` the last attempt's error, attempt times as
    aware UTC datetimes (None when no attempt ran). A snapshot: replay()
    and delete() act on the store by ``id``."""

    id: int
    event: Event
    function: str
    reason: str
    code: int
    attempts: int
    error: Optional[str]
    first_attempt: Optional[_dt.datetime]
    last_attempt: Optional[_dt.datetime]
    _rt: Any = dataclasses.field(repr=False, compare=False, default=None)

    def replay(self) -> None:
        """Queue the event to its function again (same id and payload)
        and remove it from the store. Raises Error(ENOENT) if it is gone,
        or an admission error (QueueFull, ...) leaving it stored."""
        self._rt.dead_letter_op("replay", self.id)

    def delete(self) -> None:
        """Remove it from the store; Error(ENOENT) if it is gone."""
        self._rt.dead_letter_op("delete", self.id)


class Handback(NamedTuple):
    """An event handed back at drain, and the function it was meant for."""

    function: str
    event: Event


def _exception_classes(option: str, value: Any
                       ) -> Optional[Tuple[Type[BaseException], ...]]:
    """retry_on=/fail_on= as a tuple of exception classes (None stays
    None); anything else raises TypeError naming the option, rather than
    failing later inside every handler's error path."""
    if value is None:
        return None
    classes = (value,) if isinstance(value, type) else value
    if isinstance(classes, tuple) and all(
            isinstance(c, type) and issubclass(c, BaseException)
            for c in classes):
        return classes
    raise TypeError(f"{option} must be an exception class or a tuple of "
                    f"them, not {value!r}")


def _takes_context(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


class _AsyncLoop:
    """The asyncio loop ``async def`` handlers run on: one thread per
    runtime, started on first use. A handler's worker thread blocks until
    its coroutine is done (or its deadline passes), so the function's
    concurrency and the pool size keep meaning what they say."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    def _get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(target=self._main,
                                          args=(loop, ready),
                                          name="evfn-asyncio", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _main(loop: asyncio.AbstractEventLoop,
              ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
            tasks = asyncio.all_tasks(loop)
            for t in tasks:
                t.cancel()
            if tasks:
                loop.run_until_complete(
                    asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def run(self, awaitable: Any, ctx: Context) -> Any:
        """Runs an async handler's awaitable on the loop; called by the
        C handler on the worker thread, which waits (GIL released) until
        it is done or the deadline passes."""
        fut = asyncio.run_coroutine_threadsafe(
            _drive(_Steps(awaitable, ctx)), self._get())
        try:
            return fut.result(timeout=ctx.remaining)
        except concurrent.futures.TimeoutError:
            if fut.done():
                raise  # the coroutine's own TimeoutError
            # This wait may see the deadline before the core's watchdog:
            # stop a step still running on the loop now.
            ctx._interrupt()
            raise Timeout() from None
        finally:
            fut.cancel()

    def close(self, timeout: Optional[float] = None) -> bool:
        """Stops the loop (its tasks are cancelled) and waits up to
        ``timeout`` seconds (None: no limit) for its thread; False if it
        is still running then (a coroutine that ignores cancellation), in
        which case the daemon thread is left behind."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return True
        loop.call_soon_threadsafe(loop.stop)
        if thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def __del__(self) -> None:
        self.close(timeout=0)


class _Steps:
    """An async handler's awaitable, driven one step (send or throw) at a
    time, each step run by ``ctx._step`` under the attempt's deadline as
    a synchronous handler is: a coroutine busy past its deadline gets
    Timeout raised inside it, so it cannot hold the loop every other
    async handler runs on. Once the attempt is over a step that would
    resume the coroutine cancels it instead (CancelledError where it
    waits), and its cleanup runs unarmed."""

    __slots__ = ("_it", "_ctx")

    def __init__(self, awaitable: Any, ctx: Context) -> None:
        self._it = awaitable.__await__()
        self._ctx = ctx

    def __await__(self) -> "_Steps":
        return self

    def __iter__(self) -> "_Steps":
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        return self._ctx._step(self._it, value, False,
                               asyncio.CancelledError)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if val is None:
            val = typ() if isinstance(typ, type) else typ
        if tb is not None:
            val = val.with_traceback(tb)
        return self._ctx._step(self._it, val, True, None)

    def close(self) -> None:
        self._it.close()


async def _drive(steps: _Steps) -> Any:
    return await steps


_live: "weakref.WeakSet[Runtime]" = weakref.WeakSet()


class Runtime:
    """An evfn runtime: named functions, topics, a worker pool.

    ``workers`` is ``(min, max)`` threads (or one number for both);
    ``idle_timeout`` seconds before idle workers above min exit;
    ``source`` the CloudEvents source of emitted events; ``grace`` the
    default seconds drain/close wait for work in flight;
    ``dead_letter_capacity`` the size of the dead-letter store (0 keeps
    none); ``max_hops`` the hop limit of event chains; ``on_record`` a
    callable receiving every event-log Record (on the binding's completion
    thread, in batches); ``journal`` the path of a file that keeps
    accepted events across crashes and restarts, with ``journal_mode``
    "durable" (a publish returns once its event is on disk) or "fast"
    (written within 10 ms): start() re-admits what did not end for the
    functions registered by then, so register them before start(), not
    inside ``with`` (see the README's Durability section). Use it as a context manager (start on enter,
    drain and free on exit), or call ``start()`` and ``close()``; live
    runtimes are closed at exit. Closing closes its triggers and HTTP
    servers first.
    """

    def __init__(self, workers: Union[int, Tuple[int, int], None] = None, *,
                 idle_timeout: Optional[float] = None,
                 source: Optional[str] = None, grace: float = 5.0,
                 dead_letter_capacity: Optional[int] = None,
                 max_hops: Optional[int] = None,
                 on_record: Optional[Callable[[Record], Any]] = None,
                 journal: Optional[str] = None,
                 journal_mode: str = "durable"
                 ) -> None:
        kw: dict = {}
        if journal is not None:
            kw["journal"] = os.fspath(journal)
            kw["journal_mode"] = journal_mode
        if dead_letter_capacity is not None:
            kw["dead_letter_capacity"] = dead_letter_capacity
        if max_hops is not None:
            kw["max_hops"] = max_hops
        if on_record is not None:
            if not callable(on_record):
                raise TypeError("on_record must be callable")
            kw["on_record"] = _record_sink(on_record)
        if workers is not None:
            kw["workers"] = ((workers, workers) if isinstance(workers, int)
                             else tuple(workers))
        if idle_timeout is not None:
            kw["idle_timeout"] = idle_timeout
        if source is not None:
            kw["source"] = source
        self._rt = _evfn.Runtime(**kw)
        self._aloop = _AsyncLoop()
        self._stop = threading.Event()
        self._http: Optional[HttpServer] = None
        self.grace = grace
        _live.add(self)

    # Registration -----------------------------------------------------

    def function(self, name: Union[str, Callable, None] = None, *,
                 timeout: Optional[float] = None,
                 attempts: Optional[int] = None,
                 backoff: Union[Backoff, float, None] = None,
                 max_age: Optional[float] = None,
                 concurrency: Optional[int] = None,
                 queue: Optional[int] = None,
                 retry_on: Union[Type[BaseException],
                                 Tuple[Type[BaseException], ...],
                                 None] = None,
                 fail_on: Union[Type[BaseException],
                                Tuple[Type[BaseException], ...]] = (),
                 subscribe: Union[str, Tuple[str, ...], None] = None,
                 on_success: Optional[str] = None,
                 on_failure: Optional[str] = None,
                 idempotency: Optional[float] = None,
                 max_stuck: Optional[int] = None,
                 schedule: Optional[str] = None,
                 batch: Union[Batch, int, None] = None,
                 rate_limit: Union[RateLimit, float, None] = None,
                 circuit_breaker: Union[CircuitBreaker, int, None] = None
                 ) -> Callable:
        """Decorator registering a handler under ``name`` (default: the
        function's name). Times are in seconds; ``backoff`` is a Backoff
        or a number of seconds between attempts (fixed, no jitter);
        ``subscribe`` is one topic pattern or several; ``schedule`` an
        expression the function is then triggered on (see schedule()).
        See register() for the rest. Returns the function unchanged."""
        if callable(name):
            return self.function()(name)

        def decorate(fn: Callable) -> Callable:
            fn_name = name or fn.__name__
            self.register(fn_name, fn, timeout=timeout,
                          attempts=attempts, backoff=backoff,
                          max_age=max_age, concurrency=concurrency,
                          queue=queue, retry_on=retry_on, fail_on=fail_on,
                          subscribe=subscribe, on_success=on_success,
                          on_failure=on_failure, idempotency=idempotency,
                          max_stuck=max_stuck, batch=batch,
                          rate_limit=rate_limit,
                          circuit_breaker=circuit_breaker)
            if schedule is not None:
                self.schedule(schedule, function=fn_name)
            return fn
        return decorate

    def register(self, name: str, fn: Callable, *,
                 timeout: Optional[float] = None,
                 attempts: Optional[int] = None,
                 backoff: Union[Backoff, float, None] = None,
                 max_age: Optional[float] = None,
                 concurrency: Optional[int] = None,
                 queue: Optional[int] = None,
                 retry_on: Any = None, fail_on: Any = (),
                 subscribe: Union[str, Tuple[str, ...], None] = None,
                 on_success: Optional[str] = None,
                 on_failure: Optional[str] = None,
                 idempotency: Optional[float] = None,
                 max_stuck: Optional[int] = None,
                 batch: Union[Batch, int, None] = None,
                 rate_limit: Union[RateLimit, float, None] = None,
                 circuit_breaker: Union[CircuitBreaker, int, None] = None
                 ) -> None:
        """Register ``fn`` under ``name``; see function(). Destinations:
        on success the response goes as a new event to function
        ``on_success``; a dead-lettered or expired event goes to function
        ``on_failure`` (extensions evfnreason, evfnerror, ...).
        ``idempotency``: seconds during which an event whose id already
        succeeded is not run again (it succeeds at once with the stored
        response). ``max_stuck``: handlers fenced at their deadline but
        still running before admission fails with Unhealthy.
        Flow control: ``batch`` (a Batch or max_items) makes the handler
        take a list of events and report failed items with
        ``ctx.fail_item(i)``; ``rate_limit`` (a RateLimit or calls per
        second) and ``circuit_breaker`` (a CircuitBreaker or a number of
        consecutive failures) hold back calls."""
        if not callable(fn):
            raise TypeError("handler must be callable")
        if isinstance(backoff, (int, float)):
            backoff = Backoff("fixed", base=backoff, cap=backoff,
                              jitter="none")
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError("backoff must be an evfn.Backoff or a number "
                            f"of seconds, not {type(backoff).__name__}")
        retry_on = _exception_classes("retry_on", retry_on)
        fail_on = _exception_classes("fail_on", fail_on)
        opts = {k: v for k, v in (("timeout", timeout),
                                  ("attempts", attempts),
                                  ("max_age", max_age),
                                  ("concurrency", concurrency),
                                  ("queue", queue),
                                  ("on_success", on_success),
                                  ("on_failure", on_failure),
                                  ("idempotency", idempotency),
                                  ("max_stuck", max_stuck))
                if v is not None}
        if backoff is not None:
            opts["backoff"] = backoff._as_tuple()
        opts.update(_flow_options(batch, rate_limit, circuit_breaker))
        # How the C handler calls fn and judges what it raises. Nothing
        # here refers to the Runtime, so that a runtime nobody references
        # can still be collected.
        opts["call"] = (_takes_context(fn), batch is not None, retry_on,
                        fail_on or None, self._aloop)
        self._rt.register(name, fn, **opts)
        if isinstance(subscribe, str):
            subscribe = (subscribe,)
        for pattern in subscribe or ():
            self.subscribe(pattern, name)

    def subscribe(self, pattern: str, name: str) -> None:
        """Subscribe function ``name`` to a topic pattern ("orders.*",
        "orders.#")."""
        self._rt.subscribe(pattern, name)

    # Flow control -------------------------------------------------------

    def pause(self, name: str) -> None:
        """Start no new attempt of function ``name`` (running ones
        finish); its events are still accepted and wait in its queue.
        Raises NoFunction."""
        self._rt.pause(name)

    def resume(self, name: str) -> None:
        """Let a paused function start its waiting events again, in
        order."""
        self._rt.resume(name)

    def cancel(self, event_id: Union[str, int],
               function: Optional[str] = None) -> int:
        """Cancel an event by id (a str, or the int emit() and
        invoke_async returned) in ``function`` or in every function it
        went to. A waiting event (queued, delayed, behind its key, waiting
        for a retry) ends cancelled at once; a running attempt sees
        ``ctx.cancelled`` turn true and ends cancelled unless it succeeds.
        Returns how many invocations were cancelled or asked to stop (0:
        none waits or runs under that id)."""
        return self._rt.cancel(event_id, function)

    # Getting events in ------------------------------------------------

    def emit(self, topic: Union[str, Event], data: Any = None,
             **attributes: Any) -> int:
        """Emit an event to every function subscribed to ``topic``; returns
        its sequence number. ``data``: bytes as they are, str as UTF-8,
        anything else as JSON (datacontenttype application/json).
        ``attributes``: id, source, subject, datacontenttype, time_ns,
        extensions (a dict); and for flow control ``key`` (ordering key:
        events of one key run one at a time, in order), ``delay`` (seconds)
        or ``at`` (an aware datetime or seconds since the epoch) before
        the functions see it. ``emit(evfn.Event(...))`` publishes a built
        event (once). Raises NoSubscriber, QueueFull, CircuitOpen,
        ShutDown, ..."""
        if isinstance(topic, Event):
            if data is not None:
                raise TypeError("emit(event) takes no data")
            return self._rt.emit(topic, **attributes)
        return self._rt.emit(topic, data, **attributes)

    def emit_many(self, items: "Iterable[Union[Event, Tuple[str, Any]]]"
                  ) -> range:
        """Emit several events at once, all or none: each item an
        ``Event`` or a ``(topic, data)`` pair (data as for ``emit``). Up to
        1024 events (EVFN_BATCH_MAX) are admitted under one hold of the
        runtime's lock, the fast way in for a producer that has several at
        hand. Returns their sequence numbers, consecutive and in order, as
        a ``range``. If any event cannot be taken (QueueFull,
        NoSubscriber, ...) none is, and that error is raised."""
        return self._rt.emit_many(items)

    # Triggers ---------------------------------------------------------------

    def schedule(self, expr: str, *, tz: Optional[str] = None,
                 type: Optional[str] = None,
                 function: Optional[str] = None,
                 name: Optional[str] = None, missed: str = "fire_once",
                 tolerance: Optional[float] = None) -> Trigger:
        """Fire an event on a schedule (rate(5 minutes), @every 1s, at(),
        cron; ``tz`` an IANA zone): to the subscribers of ``type``
        (default "evfn.schedule") or to ``function``. ``missed``:
        "fire_once" (one event for instants the loop reached late, with
        extension "missed") or "skip"; ``tolerance`` seconds of lateness
        that still count as on time. The trigger lives until closed or
        the runtime closes."""
        return self._rt.schedule(expr, tz, type, function, name, missed,
                                 tolerance)

    def watch(self, directory: Union[str, "os.PathLike[str]"],
              glob: Optional[str] = None, *, type: Optional[str] = None,
              function: Optional[str] = None, name: Optional[str] = None,
              existing: bool = False) -> Trigger:
        """Fire an event for each file that arrives in ``directory``
        (written and closed, or renamed into it) whose name matches
        ``glob``: payload the full path, subject the name, extension
        "arrival". ``existing`` also emits the files already there."""
        return self._rt.watch(directory, glob, type, function, name,
                              existing)

    def on_signal(self, signo: int, *, type: Optional[str] = None,
                  function: Optional[str] = None,
                  name: Optional[str] = None) -> Trigger:
        """Fire an event each time signal ``signo`` (e.g.
        ``signal.SIGUSR1``) is delivered. While the trigger lives it
        replaces the signal's disposition, including a handler set with
        ``signal.signal()``, which is restored when it closes. Other
        signals (SIGINT and KeyboardInterrupt) are untouched."""
        return self._rt.on_signal(int(signo), type, function, name)

    def on_fd(self, fd: Any, *, read: bool = True, write: bool = False,
              edge: bool = False, type: Optional[str] = None,
              function: Optional[str] = None,
              name: Optional[str] = None) -> Trigger:
        """Fire an event each time ``fd`` (an int or an object with
        fileno(), such as a socket) is readable and/or writable
        (level-triggered unless ``edge``). evfn never reads, writes or
        closes it; the handler should, or it fires again."""
        return self._rt.on_fd(fd, read, write, edge, type, function, name)

    # PostgreSQL -------------------------------------------------------------

    def pg_changes(self, publication: str, function: str, *,
                   conninfo: Optional[str] = None,
                   slot: Optional[str] = None, create_slot: bool = True,
                   type_prefix: Optional[str] = None,
                   max_in_flight: Optional[int] = None,
                   feedback: Optional[float] = None,
                   reconnect: Optional[Tuple[float, float]] = None
                   ) -> "PgSource":
        """Deliver every committed insert, update and delete on the
        tables of ``publication`` to ``function``, at least once and in
        commit order, through a replication slot (``slot``, default
        "evfn_<publication>", created on first use unless
        ``create_slot`` is false). Event type
        "<type_prefix>.<schema>.<table>.<op>", subject the primary key,
        data the row as JSON ({"new": ..., "old": ...}); the slot moves
        only past changes whose events ended. ``conninfo`` is a libpq
        connection string (None: the PG* environment). ``feedback`` and
        ``reconnect`` are in seconds. See evfn/pg.h for the guarantee."""
        if not hasattr(self._rt, "pg_changes"):
            raise NotImplementedError("evfn was built without libpq")
        return self._rt.pg_changes(publication, function, conninfo, slot,
                                   create_slot, type_prefix, max_in_flight,
                                   feedback, reconnect)

    def pg_listen(self, channel: str, function: str, *,
                  conninfo: Optional[str] = None,
                  type_prefix: Optional[str] = None,
                  reconnect: Optional[Tuple[float, float]] = None
                  ) -> "PgSource":
        """Deliver each notification (NOTIFY) on ``channel`` to
        ``function`` as an event of type "<type_prefix>.<channel>" with
        the payload as data; at most once: notifications sent while the
        source reconnects are lost."""
        if not hasattr(self._rt, "pg_listen"):
            raise NotImplementedError("evfn was built without libpq")
        return self._rt.pg_listen(channel, function, conninfo, type_prefix,
                                  reconnect)

    # HTTP -------------------------------------------------------------------

    def http(self, address: str = "127.0.0.1", port: int = 0, *,
             max_body: Optional[int] = None,
             timeout: Optional[float] = None,
             max_connections: Optional[int] = None,
             health_path: Optional[str] = None) -> HttpServer:
        """Listen for HTTP on ``address``:``port`` (0: a free port, see
        ``.port``) on the runtime's loop. Routes are added with
        ``server.route(...)`` or the ``@rt.route`` decorator, which uses
        the server created last."""
        self._http = self._rt.http(address, port, max_body, timeout,
                                   max_connections, health_path)
        return self._http

    def route(self, route: str, function: Optional[str] = None, *,
              async_: bool = False, timeout: Optional[float] = None,
              stripe_secret: Optional[str] = None,
              stripe_tolerance: int = 300,
              github_secret: Optional[str] = None,
              bearer: Optional[str] = None) -> Callable:
        """Decorator: register the handler (as ``function``, default its
        name) and route "METHOD /path" requests to it on the server that
        http() created last. Synchronous routes answer with the response
        (``ctx.set_meta("status", "201")``, ``"header.<Name>"``);
        ``async_`` ones answer 202 with the event id at once. Requests may
        have to carry a Stripe or GitHub signature or a bearer token."""
        if self._http is None or self._http.closed:
            raise RuntimeError("call rt.http() before rt.route()")
        server = self._http

        def decorate(fn: Callable) -> Callable:
            fn_name = function or fn.__name__
            self.register(fn_name, fn)
            server.route(route, fn_name, async_=async_, timeout=timeout,
                         stripe_secret=stripe_secret,
                         stripe_tolerance=stripe_tolerance,
                         github_secret=github_secret, bearer=bearer)
            return fn
        return decorate

    # Dead letters ---------------------------------------------------------

    def dead_letters(self, limit: Optional[int] = None, offset: int = 0
                     ) -> "list[DeadLetter]":
        """The dead letters in the store, oldest first (at most ``limit``,
        skipping ``offset``)."""
        return [DeadLetter(*t, _rt=self._rt)
                for t in self._rt.dead_letters(limit, offset)]

    def replay_dead_letters(self) -> int:
        """Replay every dead letter, oldest first, stopping at the first
        refusal; returns how many were replayed."""
        return self._rt.dead_letter_op("replay_all")

    def purge_dead_letters(self) -> int:
        """Remove every dead letter; returns how many."""
        return self._rt.dead_letter_op("purge")

    @property
    def dead_letter_count(self) -> int:
        """Dead letters in the store now."""
        return self._rt.dead_letter_op("count")

    @property
    def dead_letters_evicted(self) -> int:
        """Dead letters dropped because the store was full."""
        return self._rt.dead_letter_op("evicted")

    def invoke(self, name: str, data: Any = None, *,
               timeout: Optional[float] = None, **attributes: Any
               ) -> bytes:
        """Invoke function ``name`` and wait (without the GIL) for its
        final outcome, retries included; returns the response bytes (b""
        if none) or raises an InvocationError (Failed, Exhausted, ...).
        ``timeout`` bounds the wait in seconds: past it the invocation is
        cancelled and TimedOut (a TimeoutError) raised. Ctrl-C interrupts
        the wait the same way (KeyboardInterrupt). Inside a handler the
        wait also ends at that handler's deadline (Timeout)."""
        return self._rt.invoke(name, data, timeout=timeout, **attributes)

    def invoke_async(self, name: str, data: Any = None, **attributes: Any
                     ) -> "concurrent.futures.Future[bytes]":
        """Invoke function ``name`` without waiting: a Future (an
        ``evfn._evfn.Future``, a concurrent.futures.Future) resolved with
        the response bytes or an InvocationError. Its ``seq`` is the
        event's sequence number (its id unless ``id=`` is given, so
        ``rt.cancel(fut.seq)`` cancels it); ``cancel()`` cancels the event
        while it waits, ``running()`` is true while an attempt runs. Its
        callbacks run on the runtime's completion thread (never on evfn's
        loop thread, which does not take the GIL). In asyncio: ``await
        rt.ainvoke(...)`` or ``asyncio.wrap_future(rt.invoke_async(...))``.
        """
        return self._rt.submit(name, data, **attributes)

    async def ainvoke(self, name: str, data: Any = None,
                      **attributes: Any) -> bytes:
        """invoke_async() awaited from asyncio. Cancelling the awaiting
        task cancels the invocation: a waiting event at once, a running
        attempt as ``cancel()`` asks it to stop."""
        fut = self.invoke_async(name, data, **attributes)
        try:
            return await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            # wrap_future cancelled fut, which cancels a waiting event;
            # an attempt that runs is asked to stop.
            if not fut.done() and not self.closed:
                self._rt.cancel(attributes.get("id") or fut.seq, name)
            raise

    # Life cycle ----------------------------------------------------------

    def start(self) -> "Runtime":
        """Start the workers (and evfn's loop thread). Raises ShutDown
        once the runtime is closed."""
        if self._rt.closed:
            raise ShutDown(ESHUTDOWN,  # noqa: F821 (generated)
                           "start() after close()")
        if not self._rt.started:
            self._rt.start()
        return self

    def drain(self, grace: Optional[float] = None) -> list:
        """Stop intake, hand back queued and retry-waiting events, and wait
        up to ``grace`` seconds for work in flight. Returns the handed-back
        events as Handback(function, event); raises TimedOut (with
        ``handed_back``) if work was still in flight at the end."""
        items, finished = self._rt.drain(self.grace if grace is None
                                         else grace)
        handed = [Handback(n, e) for n, e in items]
        if not finished:
            err = TimedOut(ETIMEDOUT)  # noqa: F821 (generated)
            err.handed_back = handed
            raise err
        return handed

    def close(self, grace: Optional[float] = None) -> list:
        """Drain (if not drained yet) and free the runtime, waiting at
        most ``grace`` seconds in all (default: the runtime's ``grace``)
        for work in flight. Returns the events handed back meanwhile.
        Raises Busy if a handler still runs after that (one blocked in C
        past its deadline): the runtime stays open, and a later close()
        may succeed. Idempotent."""
        grace = self.grace if grace is None else grace
        items = self._rt.close(grace)
        # An idle loop stops at once; a busy one gets the grace, but at
        # least a moment even with grace=0.
        if not self._aloop.close(timeout=max(grace, 1.0)):
            warnings.warn("evfn: the asyncio loop of async handlers did "
                          "not stop: a coroutine ignores cancellation",
                          RuntimeWarning, stacklevel=2)
        _live.discard(self)
        return [Handback(n, e) for n, e in items]

    def _close_under(self, exc: BaseException,
                     grace: Optional[float] = None) -> None:
        """Closes while exc propagates: a failure to close is added to exc
        as a note, never raised in its place."""
        try:
            self.close(grace)
        except Exception as e:  # noqa: BLE001 (reported on exc)
            exc.add_note(f"evfn: the runtime was not closed: {e}")

    def run(self, grace: Optional[float] = None) -> list:
        """Start, block until stop() is called (from a handler or another
        thread), then close; returns the handed-back events. Ctrl-C
        closes the runtime too, then KeyboardInterrupt goes on (a failure
        to close becomes a note on it)."""
        self.start()
        try:
            self._stop.wait()
        except BaseException as exc:  # noqa: B902 (re-raised)
            self._close_under(exc, grace)
            raise
        return self.close(grace)

    def stop(self) -> None:
        """Make run() return."""
        self._stop.set()

    @property
    def closed(self) -> bool:
        return self._rt.closed

    def __enter__(self) -> "Runtime":
        return self.start()

    def __exit__(self, exc_type: Any, exc: Optional[BaseException],
                 tb: Any) -> None:
        """Closes the runtime. An exception leaving the block goes on
        whatever happens: if closing fails too (Busy), that is added to
        it as a note instead of replacing it."""
        if exc is None:
            self.close()
        else:
            self._close_under(exc)

    # Observing ------------------------------------------------------------

    def stats(self, name: Optional[str] = None) -> dict:
        """A consistent snapshot of the counters of one function (or the
        sum over all) as {stat name: value}; see evfn.STATS."""
        return self._rt.stats(name)

    @property
    def workers(self) -> int:
        """Worker threads alive now."""
        return self._rt.workers()

    def __repr__(self) -> str:
        state = ("closed" if self.closed else
                 "started" if self._rt.started else "new")
        return f"<evfn.Runtime {state}>"


class Schedule(_evfn.Schedule):
    """A schedule expression: rate(5 minutes), @every 1m30s, at(...),
    cron(...) (EventBridge) or 5-field Vixie cron, with an optional IANA
    time zone. Malformed expressions raise InvalidArgument."""

    def next(self, after: Optional[_dt.datetime] = None
             ) -> Optional[_dt.datetime]:
        """First fire time strictly after ``after`` (default: now) as an
        aware UTC datetime, or None if it never fires again."""
        after_ns = None
        if after is not None:
            if after.tzinfo is None:
                raise ValueError("after must be timezone-aware")
            delta = after - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
            after_ns = ((delta.days * 86400 + delta.seconds) * 10**9 +
                        delta.microseconds * 1000)
        ns = self.next_ns(after_ns)
        if ns is None:
            return None
        return (_dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) +
                _dt.timedelta(microseconds=ns // 1000))


def _shutdown() -> None:
    """At exit: close every live runtime, then keep evfn threads away from
    the interpreter while it finalizes."""
    for rt in list(_live):
        try:
            rt.close()
        except Exception:  # noqa: BLE001 (exit must go on)
            pass
    _evfn._shutdown()


atexit.register(_shutdown)

__all__ = [
    "AlreadyDone", "AlreadyExists", "Backoff", "Batch", "Busy", "Cancelled",
    "CircuitBreaker", "CircuitOpen", "Context",
    "DeadLetter", "DeadlineExceeded", "Deadlock", "Error", "Event",
    "Exhausted", "Expired", "Fail", "Failed", "HandedBack", "Handback",
    "HttpServer", "InvalidArgument", "InvocationError", "LoopDetected",
    "NoFunction", "NoSubscriber", "NotRunning", "PgSource", "QueueFull",
    "RateLimit",
    "Record",
    "Retry", "Runtime", "STATS", "Schedule", "ShutDown", "TimedOut",
    "Timeout", "Trigger", "Unhealthy", "error_class",
] + [name for name, _, _ in _evfn.ERRORS]
