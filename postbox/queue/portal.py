"""Event loops for synchronous callers (Flask views): the bullmq client is asyncio, views are not.

`ThreadLoop` is the calling thread's own loop, run only while that thread waits on a call:
each request thread drives its own coroutines, with no hand-off to another thread. Handing
each call to one shared loop thread cost two thread wake-ups per call, and on the 2-core
test VM a wake-up across cores is dear: the loop's self-pipe `send` alone took 1.40 s for
2,000 calls in cProfile (in-process POSTs, load average ~7), ~0.7 ms each.

`LoopThread` is one long-lived loop on a background thread, for what must run between
requests (the registry heartbeat). This is the idea of anyio's blocking portal, without its
dependency.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class ThreadLoop:
    """An event loop owned by the thread that made it, run while that thread waits."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` here and return its result; `TimeoutError` (cancelling it) past
        `timeout`."""
        return self._loop.run_until_complete(_bounded(coro, timeout))

    def close(self, cleanup: Coroutine[Any, Any, None]) -> None:
        """Run a clean-up coroutine, then close the loop (from any thread, once the owner
        no longer uses it)."""
        self.call(cleanup, timeout=5)
        self._loop.close()


async def _bounded(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """`coro` under a deadline, in the caller's task: `asyncio.wait_for` would wrap it in a
    second task, ~30 µs more per call (of a POST's one) on the 2-core test machine."""
    async with asyncio.timeout(timeout):
        return await coro


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
