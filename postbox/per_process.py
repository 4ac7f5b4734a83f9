"""An object made once per process (or per thread), on first use: safe across gunicorn's fork.

gunicorn builds the app in its arbiter, then forks. A Redis pool or an event-loop thread
made before the fork would be shared by every child (or be dead in it), so such objects are
made lazily, in the process that uses them, and made again if the process changed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """Holds the value `make()` returned in this process; makes it on first `get`."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._value: T | None = None

    def get(self) -> T:
        """This process's value, made now if it has none yet."""
        with self._lock:
            if self._value is None or self._pid != os.getpid():
                self._value = self._make()
                self._pid = os.getpid()
            return self._value

    def take(self) -> T | None:
        """Forget and return this process's value (None if it has none), to close it."""
        with self._lock:
            value, self._value = self._value, None
            return value if self._pid == os.getpid() else None


class PerThread(Generic[T]):
    """Holds the value `make()` returned in this thread of this process; makes it on first
    `get`. Every value made in this process is kept for `take_all` (to close them)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._made: list[T] = []

    def get(self) -> T:
        """This thread's value, made now if it has none yet."""
        held: tuple[int, T] | None = getattr(self._local, "held", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        value = self._make()
        self._local.held = (os.getpid(), value)
        with self._lock:
            if self._pid != os.getpid():
                self._made, self._pid = [], os.getpid()
            self._made.append(value)
        return value

    def take_all(self) -> list[T]:
        """Forget and return every value made in this process, to close them."""
        with self._lock:
            made, self._made = self._made, []
            return made if self._pid == os.getpid() else []
