# SPDX-License-Identifier: MIT
# Type stubs of the evfn package. tests/test_errors.py checks that the
# error constants below are exactly those of the C error table and that
# every public name of the package is declared here.
import asyncio
import concurrent.futures
import datetime
from typing import (Any, Callable, Iterable, NamedTuple, Optional, Tuple,
                    Type, TypeVar, Union, overload)

import os
from ._evfn import (Context as Context, Event as Event,
                    HttpServer as HttpServer, PgSource as PgSource,
                    Trigger as Trigger)

_F = TypeVar("_F", bound=Callable[..., Any])

# What invoke_async returns: a Future with the event's sequence number.
class _InvokeFuture(concurrent.futures.Future[bytes]):
    seq: int
_Exc = Union[Type[BaseException], Tuple[Type[BaseException], ...]]

__version__: str
STATS: Tuple[str, ...]

EPERM: int
ENOENT: int
EACCES: int
ENOTDIR: int
ENOSPC: int
ENOMEM: int
EBUSY: int
EEXIST: int
EINVAL: int
ERANGE: int
EDEADLK: int
ENAMETOOLONG: int
EILSEQ: int
EADDRINUSE: int
ESHUTDOWN: int
ETIMEDOUT: int
ECONNREFUSED: int
EALREADY: int
ECANCELED: int
ENOFN: int
ENOSUB: int
EQUEUEFULL: int
EPATTERN: int
EFAILED: int
EEXHAUSTED: int
EHANDEDBACK: int
ENOTRUNNING: int
EEXPIRED: int
ESCHEDULE: int
ETIMEZONE: int
EROUTE: int
ESIGNATURE: int
ECLOUDEVENT: int
EUNHEALTHY: int
EURL: int
EWRONGTYPE: int
EAUTH: int
ELOOPDETECTED: int
ECIRCUITOPEN: int
EPROTO: int
EMEDIATYPE: int
ECONNINFO: int
ENOPUBLICATION: int
ENOSLOT: int
EJOURNAL: int
ECORRUPT: int
ECRASHED: int

class Error(Exception):
    code: int
    name: str
    detail: Optional[str]
    def __init__(self, code: int, detail: Optional[str] = ...) -> None: ...

class InvalidArgument(Error, ValueError): ...
class NoFunction(Error, LookupError): ...
class NoSubscriber(Error): ...
class QueueFull(Error): ...
class Unhealthy(Error): ...
class ShutDown(Error): ...
class NotRunning(Error): ...
class AlreadyExists(Error): ...
class AlreadyDone(Error): ...
class Deadlock(Error): ...
class Busy(Error): ...
class CircuitOpen(Error): ...

class TimedOut(Error, TimeoutError):
    handed_back: list[Handback]

class InvocationError(Error):
    error: Optional[str]
    attempts: int
    type_name: Optional[str]
    message: Optional[str]
    traceback: Optional[str]
    def __init__(self, code: int, error: Optional[str] = ...,
                 attempts: int = ...,
                 cause: Optional[BaseException] = ...) -> None: ...

class Failed(InvocationError): ...
class Exhausted(InvocationError): ...
class DeadlineExceeded(Exhausted): ...
class Expired(InvocationError): ...
class HandedBack(InvocationError): ...
class LoopDetected(InvocationError): ...
class Cancelled(InvocationError): ...

class Retry(Exception): ...
class Fail(Exception): ...
class Timeout(BaseException): ...

def error_class(code: int) -> Type[Error]: ...

class Backoff:
    kind: str
    base: float
    multiplier: float
    cap: float
    jitter: str
    def __init__(self, kind: str = ..., base: float = ...,
                 multiplier: float = ..., cap: float = ...,
                 jitter: str = ...) -> None: ...

class Batch:
    max_items: int
    window: float
    def __init__(self, max_items: int, window: float = ...) -> None: ...

class RateLimit:
    per_second: float
    burst: int
    def __init__(self, per_second: float, burst: int = ...) -> None: ...

class CircuitBreaker:
    consecutive_failures: int
    failure_rate: float
    min_calls: int
    window: float
    cooldown: float
    policy: str
    def __init__(self, consecutive_failures: int = ...,
                 failure_rate: float = ..., min_calls: int = ...,
                 window: float = ..., cooldown: float = ...,
                 policy: str = ...) -> None: ...

class Record(NamedTuple):
    kind: str
    function: str
    event: Optional[Event]
    attempt: int
    code: int
    error: Optional[str]
    duration: float

class DeadLetter:
    id: int
    event: Event
    function: str
    reason: str
    code: int
    attempts: int
    error: Optional[str]
    first_attempt: Optional[datetime.datetime]
    last_attempt: Optional[datetime.datetime]
    def replay(self) -> None: ...
    def delete(self) -> None: ...

class Handback(NamedTuple):
    function: str
    event: Event

class Runtime:
    grace: float
    def __init__(self, workers: Union[int, Tuple[int, int], None] = ...,
                 *, idle_timeout: Optional[float] = ...,
                 source: Optional[str] = ..., grace: float = ...,
                 dead_letter_capacity: Optional[int] = ...,
                 max_hops: Optional[int] = ...,
                 on_record: Optional[Callable[[Record], Any]] = ...,
                 journal: Optional[str] = ...,
                 journal_mode: str = ...
                 ) -> None: ...
    @overload
    def function(self, name: _F) -> _F: ...
    @overload
    def function(self, name: Optional[str] = ..., *,
                 timeout: Optional[float] = ...,
                 attempts: Optional[int] = ...,
                 backoff: Union[Backoff, float, None] = ...,
                 max_age: Optional[float] = ...,
                 concurrency: Optional[int] = ...,
                 queue: Optional[int] = ...,
                 retry_on: Optional[_Exc] = ...,
                 fail_on: _Exc = ...,
                 subscribe: Union[str, Tuple[str, ...], None] = ...,
                 on_success: Optional[str] = ...,
                 on_failure: Optional[str] = ...,
                 idempotency: Optional[float] = ...,
                 max_stuck: Optional[int] = ...,
                 schedule: Optional[str] = ...,
                 batch: Union[Batch, int, None] = ...,
                 rate_limit: Union[RateLimit, float, None] = ...,
                 circuit_breaker: Union[CircuitBreaker, int, None] = ...
                 ) -> Callable[[_F], _F]: ...
    def register(self, name: str, fn: Callable[..., Any], *,
                 timeout: Optional[float] = ...,
                 attempts: Optional[int] = ...,
                 backoff: Union[Backoff, float, None] = ...,
                 max_age: Optional[float] = ...,
                 concurrency: Optional[int] = ...,
                 queue: Optional[int] = ...,
                 retry_on: Optional[_Exc] = ...,
                 fail_on: _Exc = ...,
                 subscribe: Union[str, Tuple[str, ...], None] = ...,
                 on_success: Optional[str] = ...,
                 on_failure: Optional[str] = ...,
                 idempotency: Optional[float] = ...,
                 max_stuck: Optional[int] = ...,
                 batch: Union[Batch, int, None] = ...,
                 rate_limit: Union[RateLimit, float, None] = ...,
                 circuit_breaker: Union[CircuitBreaker, int, None] = ...
                 ) -> None: ...
    def subscribe(self, pattern: str, name: str) -> None: ...
    def pause(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...
    def cancel(self, event_id: Union[str, int],
               function: Optional[str] = ...) -> int: ...
    @overload
    def emit(self, topic: Event) -> int: ...
    @overload
    def emit(self, topic: str, data: Any = ..., *, id: Optional[str] = ...,
             source: Optional[str] = ..., subject: Optional[str] = ...,
             datacontenttype: Optional[str] = ...,
             time_ns: Optional[int] = ...,
             extensions: Optional[dict[str, Optional[str]]] = ...,
             key: Optional[str] = ..., delay: Optional[float] = ...,
             at: Union[datetime.datetime, float, None] = ...) -> int: ...
    def emit_many(self, items: Iterable[Union[Event, Tuple[str, Any]]]
                  ) -> range: ...
    def schedule(self, expr: str, *, tz: Optional[str] = ...,
                 type: Optional[str] = ..., function: Optional[str] = ...,
                 name: Optional[str] = ..., missed: str = ...,
                 tolerance: Optional[float] = ...) -> Trigger: ...
    def watch(self, directory: Union[str, os.PathLike[str]],
              glob: Optional[str] = ..., *, type: Optional[str] = ...,
              function: Optional[str] = ..., name: Optional[str] = ...,
              existing: bool = ...) -> Trigger: ...
    def on_signal(self, signo: int, *, type: Optional[str] = ...,
                  function: Optional[str] = ...,
                  name: Optional[str] = ...) -> Trigger: ...
    def on_fd(self, fd: Any, *, read: bool = ..., write: bool = ...,
              edge: bool = ..., type: Optional[str] = ...,
              function: Optional[str] = ...,
              name: Optional[str] = ...) -> Trigger: ...
    def pg_changes(self, publication: str, function: str, *,
                   conninfo: Optional[str] = ...,
                   slot: Optional[str] = ..., create_slot: bool = ...,
                   type_prefix: Optional[str] = ...,
                   max_in_flight: Optional[int] = ...,
                   feedback: Optional[float] = ...,
                   reconnect: Optional[Tuple[float, float]] = ...
                   ) -> PgSource: ...
    def pg_listen(self, channel: str, function: str, *,
                  conninfo: Optional[str] = ...,
                  type_prefix: Optional[str] = ...,
                  reconnect: Optional[Tuple[float, float]] = ...
                  ) -> PgSource: ...
    def http(self, address: str = ..., port: int = ..., *,
             max_body: Optional[int] = ...,
             timeout: Optional[float] = ...,
             max_connections: Optional[int] = ...,
             health_path: Optional[str] = ...) -> HttpServer: ...
    def route(self, route: str, function: Optional[str] = ..., *,
              async_: bool = ..., timeout: Optional[float] = ...,
              stripe_secret: Optional[str] = ...,
              stripe_tolerance: int = ...,
              github_secret: Optional[str] = ...,
              bearer: Optional[str] = ...) -> Callable[[_F], _F]: ...
    def dead_letters(self, limit: Optional[int] = ..., offset: int = ...
                     ) -> list[DeadLetter]: ...
    def replay_dead_letters(self) -> int: ...
    def purge_dead_letters(self) -> int: ...
    @property
    def dead_letter_count(self) -> int: ...
    @property
    def dead_letters_evicted(self) -> int: ...
    def invoke(self, name: str, data: Any = ..., *,
               timeout: Optional[float] = ..., **attributes: Any
               ) -> bytes: ...
    def invoke_async(self, name: str, data: Any = ..., **attributes: Any
                     ) -> _InvokeFuture: ...
    async def ainvoke(self, name: str, data: Any = ...,
                      **attributes: Any) -> bytes: ...
    def start(self) -> Runtime: ...
    def drain(self, grace: Optional[float] = ...) -> list[Handback]: ...
    def close(self, grace: Optional[float] = ...) -> list[Handback]: ...
    def run(self, grace: Optional[float] = ...) -> list[Handback]: ...
    def stop(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Runtime: ...
    def __exit__(self, exc_type: Any, exc: Optional[BaseException],
                 tb: Any) -> None: ...
    def stats(self, name: Optional[str] = ...) -> dict[str, int]: ...
    @property
    def workers(self) -> int: ...

class Schedule:
    def __init__(self, expr: str, tz: Optional[str] = ...) -> None: ...
    def next_ns(self, after_ns: Optional[int] = ...) -> Optional[int]: ...
    def next(self, after: Optional[datetime.datetime] = ...
             ) -> Optional[datetime.datetime]: ...
