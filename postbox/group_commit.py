"""Group commit: callers that arrive while a round trip is in flight share the next one.

A worker's job slots finish emails, and pass rate limits, many at a time. Giving each its
own Redis round trip costs a connection and a request per email; here the first caller
starts a flush, everyone who arrives while it runs waits for the next one, and each flush
takes all of them at once. Under load the batches grow by themselves; a lone caller pays
one round trip, as it would alone. One flush runs at a time, on one connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Answers the items of one flush, in order: a result, or the exception that item raises.
Flush = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]


class GroupCommit(Generic[T, R]):
    """Hands the items submitted while a flush runs to the next flush, together."""

    def __init__(self, flush: Flush[T, R]) -> None:
        self._flush = flush
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """The result of `item` (or its exception), once a flush has taken it."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_while_waiting())
        return await answer

    async def _flush_while_waiting(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await self._flush([item for item, _ in batch])
                except Exception as exc:  # the whole round trip failed: so did each item
                    results = [exc] * len(batch)
                _answer(batch, results)
        finally:
            # Cancelled itself (the loop is shutting down): no caller may wait forever.
            for _, answer in [*batch, *self._waiting]:
                answer.cancel()


def _answer(batch: list[tuple[T, asyncio.Future[R]]], results: Sequence[R | Exception]) -> None:
    for (_, answer), result in zip(batch, results, strict=True):
        if answer.done():  # its caller was cancelled meanwhile
            continue
        if isinstance(result, Exception):
            answer.set_exception(result)
        else:
            answer.set_result(result)
