"""Confirming a job's lock just before its email goes out, for many jobs in one call.

bullmq's lock manager renews the lock of every active job every lockDuration / 4, and says
nothing to the job when that fails. A worker cut off from Redis kept sending: once its locks
expired, the stalled-job check gave the jobs to another worker, which sent them again. So
right before each SMTP transaction the job's lock is extended by lockDuration with the job's
token, refused when the token no longer owns the lock (what bullmq's `extendLocks` script
does, written out in `_CONFIRM` because the same call also sets the send mark of
postbox/queue/journal.py, so that a re-run elsewhere can tell that this run may be sending).
Confirmations that arrive while one is in flight share the next call (postbox/group_commit.py):
under load that is one Redis call for many emails.

- Redis says the token no longer holds the lock, or the lock manager's renewal of it failed:
  `LockLost`.
- Redis unreachable: ask again (nothing is sent meanwhile) until it answers or the worker
  closes.
- Extended, but with less lock left than a transaction may take (the call itself was slow):
  `LockLost`. Redis sets the new expiry after the call left, so the lock holds at least until
  the call was sent plus lockDuration; that is what is measured against.

With REDIS_ACK_REPLICAS the confirmation returns only once that many replicas hold it
(replication.py): nothing is sent for a job that exists on the primary alone. Without this a
job whose add got `503` (no replica had it) could be sent from that primary, which a failover
then discards with the job and its journal, and the client's retry, a new job on the
promoted replica, sent it again (seen when the Sentinels failed over twice in a row).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

from postbox.config import ReplicaAck
from postbox.errors import LockLost
from postbox.group_commit import GroupCommit
from postbox.queue._engine.replication import until_replicated
from postbox.queue.connection import UNAVAILABLE_ERRORS
from postbox.queue.keys import PostboxKeys

logger = logging.getLogger(__name__)

# bullmq's extendLocks-1.lua (3.4.4) for each job, plus the send mark when the lock is held.
# KEYS: stalled set, then per job its lock key and its send-mark key.
# ARGV: lock duration (ms), mark lifetime (ms), then per job its id and its token.
# Returns per job 1 (held, extended, marked) or 0 (not this token's: a mark this token set
# on an earlier try whose answer was lost is removed, since this run will not send).
_CONFIRM = """
local held = {}
for i = 1, (#KEYS - 1) / 2 do
  local lock, mark = KEYS[2 * i], KEYS[2 * i + 1]
  local id, token = ARGV[2 * i + 1], ARGV[2 * i + 2]
  held[i] = 0
  if redis.call('GET', lock) == token and redis.call('SET', lock, token, 'PX', ARGV[1]) then
    redis.call('SREM', KEYS[1], id)
    redis.call('SET', mark, token, 'PX', ARGV[2])
    held[i] = 1
  elseif redis.call('GET', mark) == token then
    redis.call('DEL', mark)
  end
end
return held
"""
# KEYS: a send mark. ARGV: the token that must have set it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""
FIRST_RETRY_SECONDS = 0.05
# Redis back from an outage is seen within this (plus a connect).
MAX_RETRY_SECONDS = 0.5


def retry_delays() -> Iterator[float]:
    """Seconds between tries while Redis is unreachable: doubling from 50 ms to 0.5 s."""
    delay = FIRST_RETRY_SECONDS
    while True:
        yield delay
        delay = min(delay * 2, MAX_RETRY_SECONDS)


class LockConfirmations:
    """Extends jobs' locks on demand for one bullmq worker, in shared calls."""

    def __init__(
        self, worker: Any, needed_ms: int, mark_ms: int, ack: ReplicaAck | None = None
    ) -> None:
        self._worker = worker
        self._ack = ack or ReplicaAck()
        self._duration_ms: int = worker.opts["lockDuration"]
        self._needed = needed_ms / 1000
        self._mark_ms = mark_ms
        self._keys = PostboxKeys(worker.name)
        self._confirm = worker.client.register_script(_CONFIRM)
        self._release = worker.client.register_script(_RELEASE)
        self._lost: set[str] = set()
        self._commit: GroupCommit[tuple[str, str], bool] = GroupCommit(self._extend)
        worker.on("lockRenewalFailed", self._lost.update)

    async def confirm(self, job_id: str, token: str) -> None:
        """Return once the job's lock is held for long enough to send; raise `LockLost`
        when it is not (or the worker closes while Redis is unreachable)."""
        delays = retry_delays()
        unanswered = False
        while True:
            # Once a call went unanswered, it may have run and set the mark: only an answer
            # ends the wait then (one that finds the lock gone removes this token's mark;
            # left, it held the job's next run back for EMAIL_SEND_MARK_SECONDS).
            if job_id in self._lost and not unanswered:
                raise LockLost("the lock's renewal failed: another worker may own the job")
            sent = time.monotonic()
            try:
                held = await self._commit.submit((job_id, token))
                break
            except UNAVAILABLE_ERRORS as exc:
                unanswered = True
                if self._worker.closing:
                    raise LockLost(f"Redis unreachable while closing: {exc}") from exc
                delay = next(delays)
                if delay == FIRST_RETRY_SECONDS:
                    logger.warning("Redis unavailable before a send (%s); waiting for it", exc)
                await asyncio.sleep(delay)
        if not held:
            raise LockLost("the job's lock is no longer this worker's")
        left = sent + self._duration_ms / 1000 - time.monotonic()
        if left < self._needed:
            # This run will not send: its mark must not hold back the next run.
            await self._release(keys=[self._keys.sending(job_id)], args=[token])
            raise LockLost(f"only {left:.1f} s of lock left; a send may take {self._needed} s")

    def forget(self, job_id: str) -> None:
        """The job left this worker: a later run of it starts afresh."""
        self._lost.discard(job_id)

    async def _extend(self, jobs: list[tuple[str, str]]) -> list[bool]:
        keys = [self._worker.keys["stalled"]]
        args: list[str | int] = [self._duration_ms, self._mark_ms]
        for job_id, token in jobs:
            keys += (self._keys.bull(f"{job_id}:lock"), self._keys.sending(job_id))
            args += (job_id, token)
        held = await self._confirm(keys=keys, args=args)
        mark = self._keys.replication_mark()
        await until_replicated(self._worker.client, mark, self._ack)
        return [bool(flag) for flag in held]
