"""One long-lived asyncio loop on a background thread, for synchronous callers (Flask views).

The bullmq client is asyncio; Flask views are not. Each process owns one loop thread, made
lazily (so after gunicorn forks), and views submit coroutines to it and wait for the result.
This is the idea of anyio's blocking portal, without its dependency.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running forever on a daemon thread, owned by this object."""

    def __init__(self, name: str = "postbox-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the loop and return its result; `TimeoutError` past `timeout`."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def spawn(self, coro: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        """Start a long-running `coro` on the loop (a heartbeat); cancel it with the future."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def stop(self, cleanup: Coroutine[Any, Any, None] | None = None) -> None:
        """Run an optional clean-up coroutine, then stop the loop and join the thread."""
        if cleanup is not None:
            self.call(cleanup, timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
