"""Completing sent jobs in shared transactions, riding out Redis outages.

A completion is a group of script calls: bullmq's `moveToFinished` (which also takes the next
job), then the processor's writes (the send journal's settle: the email's compact record
when the completion went through, the journal otherwise). Groups that come while one is in
flight share the next (`postbox/group_commit.py`), in one MULTI/EXEC: Redis runs all of it
or, if the connection drops first, none of it, so a completed job always has its record and
an uncompleted one its journal. Each group gets its own outcome.

By the time a job completes, its email has gone out, so nothing here may fail it:
- a write that Redis refused does not undo a completion that went through (the job is done,
  which is what the write was for); it is logged;
- a transport error is retried with backoff (up to 0.5 s apart) for as long as Redis stays
  unreachable: replaying a group is safe, since a `moveToFinished` that already went
  through, or whose lock expired meanwhile, answers with an error code, not a second
  completion, and the writes then find the job completed (or not) as before. Giving up
  instead (after ~9 s, once) dropped the journal write with it, and the stalled-job check's
  re-run sent the email again; only the worker closing by force (cancelling) ends the retries.
- a script Redis did not know (first use, or after a restart) runs again on its own, which
  loads it; when that was the completion, the writes run again after it, so they see it.

With REDIS_ACK_REPLICAS each shared transaction then waits for that many replicas (one WAIT
per transaction, on its connection: replication.py), and its callers are answered only once
they hold it, waiting again as long as they do not: a primary lost before its replicas had
the journal breaks the connection, and the retry above replays the group on the promoted
replica, so the journal is written there before the job can run again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError

from postbox.config import ReplicaAck
from postbox.group_commit import GroupCommit
from postbox.queue._engine.locks import FIRST_RETRY_SECONDS, retry_delays
from postbox.queue._engine.replication import ReplicatedTransaction, until_replicated
from postbox.queue._engine.script_call import ScriptCall
from postbox.queue.connection import UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)


class Completions:
    """Runs completion groups for one worker process."""

    def __init__(
        self, client: redis.Redis, mark_key: str = "", ack: ReplicaAck | None = None
    ) -> None:
        self._client = client
        self._mark_key = mark_key
        self._ack = ack or ReplicaAck()
        self._commit: GroupCommit[Sequence[ScriptCall], Any] = GroupCommit(self._run_all)

    async def complete(self, calls: Sequence[ScriptCall]) -> Any:
        """The result of the group's first call (the completion), once Redis has answered;
        raises what that call raised."""
        delays = retry_delays()
        while True:
            try:
                return await self._commit.submit(calls)
            except UNAVAILABLE_ERRORS as exc:
                delay = next(delays)
                if delay == FIRST_RETRY_SECONDS:
                    logger.warning("Redis unavailable while completing a job (%s); retrying", exc)
                await asyncio.sleep(delay)

    async def _run_all(self, groups: list[Sequence[ScriptCall]]) -> list[Any]:
        """Every group's calls, in order, in one transaction; an outcome per group."""
        pipe = ReplicatedTransaction(self._client, self._mark_key, self._ack)
        for calls in groups:
            for call in calls:
                call.queue(pipe)
        results = await pipe.execute(raise_on_error=False)
        await until_replicated(self._client, self._mark_key, self._ack, pipe.replicas_acked)
        outcomes, start = [], 0
        for calls in groups:
            outcomes.append(await _outcome(calls, results[start : start + len(calls)]))
            start += len(calls)
        return outcomes


async def _outcome(calls: Sequence[ScriptCall], results: Sequence[Any]) -> Any:
    """The completion's result. A call whose script Redis did not know (first use, or after
    a restart) runs again on its own, which loads it; after a completion that did, every
    write runs again too, since it ran before the completion did."""
    finish, *writes = calls
    finish_result, *write_results = results
    rerun_all = isinstance(finish_result, NoScriptError)
    if rerun_all:
        finish_result = await _alone(finish)
    for call, result in zip(writes, write_results, strict=True):
        redo = rerun_all or isinstance(result, NoScriptError)
        outcome = await _alone(call) if redo else result
        if isinstance(outcome, Exception):
            logger.warning("Redis refused a write made with a job's completion: %s", outcome)
    return finish_result


async def _alone(call: ScriptCall) -> Any:
    try:
        return await call.run()
    except Exception as exc:
        return exc
