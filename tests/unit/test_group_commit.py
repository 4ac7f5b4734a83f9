"""Group commit: who shares a flush, and what each caller gets back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from postbox.group_commit import GroupCommit


class Recorder:
    """A flush that doubles each item, records each batch, and can be held open."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()

    async def flush(self, items: list[int]) -> Sequence[int | Exception]:
        self.batches.append(items)
        await self.release.wait()
        return [ValueError(f"bad {i}") if i < 0 else i * 2 for i in items]


def test_items_that_arrive_during_a_flush_share_the_next_one() -> None:
    async def run() -> tuple[list[int], list[list[int]]]:
        recorder = Recorder()
        commit: GroupCommit[int, int] = GroupCommit(recorder.flush)
        first = asyncio.create_task(commit.submit(1))
        await asyncio.sleep(0)  # the first flush starts and waits
        later = [asyncio.create_task(commit.submit(n)) for n in (2, 3, 4)]
        await asyncio.sleep(0)
        recorder.release.set()
        results = await asyncio.gather(first, *later)
        return results, recorder.batches

    results, batches = asyncio.run(run())
    assert results == [2, 4, 6, 8]
    assert batches == [[1], [2, 3, 4]]


def test_each_item_gets_its_own_result_or_error() -> None:
    async def run() -> list[int | BaseException]:
        recorder = Recorder()
        recorder.release.set()
        commit: GroupCommit[int, int] = GroupCommit(recorder.flush)
        return await asyncio.gather(commit.submit(5), commit.submit(-1), return_exceptions=True)

    ok, error = asyncio.run(run())
    assert ok == 10
    assert isinstance(error, ValueError)
    assert str(error) == "bad -1"


def test_a_failed_flush_fails_every_item_of_it_and_the_next_flush_still_runs() -> None:
    calls: list[list[str]] = []

    async def flush(items: list[str]) -> Sequence[str | Exception]:
        calls.append(items)
        if len(calls) == 1:
            raise ConnectionError("redis went away")
        return [item.upper() for item in items]

    async def run() -> tuple[list[str | BaseException], str]:
        commit: GroupCommit[str, str] = GroupCommit(flush)
        both = (commit.submit("a"), commit.submit("b"))
        failed = await asyncio.gather(*both, return_exceptions=True)
        return failed, await commit.submit("c")

    failed, after = asyncio.run(run())
    assert all(isinstance(f, ConnectionError) for f in failed)
    assert after == "C"


def test_a_cancelled_caller_leaves_the_others_their_results() -> None:
    async def run() -> int:
        recorder = Recorder()
        commit: GroupCommit[int, int] = GroupCommit(recorder.flush)
        gone = asyncio.create_task(commit.submit(1))
        kept = asyncio.create_task(commit.submit(2))
        await asyncio.sleep(0)
        gone.cancel()
        recorder.release.set()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    assert asyncio.run(run()) == 4
