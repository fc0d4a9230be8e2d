# SPDX-License-Identifier: MIT
# Stubs of the C extension evfn._evfn; users import evfn instead.
import datetime
from typing import Any, Callable, Optional

VERSION: str
ERRORS: tuple[tuple[str, int, str], ...]
STATS: tuple[str, ...]
OK: int
RETRY: int
FAIL: int
BACKOFF_FIXED: int
BACKOFF_LINEAR: int
BACKOFF_EXPONENTIAL: int
JITTER_NONE: int
JITTER_FULL: int
JITTER_EQUAL: int
JITTER_DECORRELATED: int

def strerror(code: int) -> str: ...
def err_name(code: int) -> str: ...
def _set_classes(by_code: dict[int, type], base: type, outcome: type,
                 timeout: type) -> None: ...
def _shutdown() -> None: ...

class Event:
    id: str
    source: str
    type: str
    subject: Optional[str]
    datacontenttype: Optional[str]
    time: datetime.datetime
    time_ns: int
    seq: int
    hops: int
    data: bytes
    def json(self) -> Any: ...
    def text(self) -> str: ...
    def extension(self, name: str) -> Optional[str]: ...

class Context:
    attempt: int
    remaining: float
    deadline: float
    cancelled: bool
    function: str
    def respond(self, data: Any) -> None: ...
    def set_error(self, message: str) -> None: ...
    def emit(self, topic: str, data: Any = ...) -> int: ...

class Runtime:
    closed: bool
    started: bool
    def __init__(self, workers: tuple[int, int] = ...,
                 idle_timeout: Optional[float] = ...,
                 source: Optional[str] = ...) -> None: ...
    def register(self, name: str, handler: Callable[[Event, Context], Any],
                 timeout: Optional[float] = ..., attempts: int = ...,
                 backoff: Optional[tuple[int, float, float, float, int]] = ...,
                 max_age: Optional[float] = ..., concurrency: int = ...,
                 queue: int = ...) -> None: ...
    def subscribe(self, pattern: str, name: str) -> None: ...
    def start(self) -> None: ...
    def drain(self, grace: float) -> tuple[list[tuple[str, Event]], bool]: ...
    def close(self, grace: float = ...) -> list[tuple[str, Event]]: ...
    def emit(self, topic: str, data: Any = ..., **attributes: Any) -> int: ...
    def invoke(self, name: str, data: Any = ..., **attributes: Any) -> bytes: ...
    def submit(self, name: str, data: Any,
               callback: Callable[[int, Optional[bytes], Optional[str], int],
                                  Any],
               **attributes: Any) -> int: ...
    def stats(self, name: Optional[str] = ...) -> dict[str, int]: ...
    def workers(self) -> int: ...

class Schedule:
    def __init__(self, expr: str, tz: Optional[str] = ...) -> None: ...
    def next_ns(self, after_ns: Optional[int] = ...) -> Optional[int]: ...
