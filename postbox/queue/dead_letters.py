"""The dead-letter view: failed email jobs, listed, retried or discarded.

Email jobs are never removed on failure, so BullMQ's `failed` sorted set (scored by the time
each job failed) is the view itself. Pages go newest first, ordered by (failed time, id),
both descending, which is also how Redis orders equal scores in a reverse range. A cursor
names the last position a page consumed, not an index, so a dead letter added (it is newer
than every cursor) or removed while someone pages never makes a page skip or repeat one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bullmq import Job, Queue
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from postbox.config import RedisSettings
from postbox.errors import InvalidCursor
from postbox.queue import events
from postbox.queue.connection import api_client
from postbox.queue.contract import split_failure_reason
from postbox.queue.journal import forget_rejections
from postbox.queue.keys import PostboxKeys

logger = logging.getLogger(__name__)

# Members read from the failed set per round trip while paging or filtering.
SCAN_CHUNK = 200

# Runs right after bullmq's reprocessJob, in its transaction: the `email.retried` event when
# the job left the failed set and is no longer finished (requeued, by this call or another).
# KEYS: job hash, failed set, event stream, its consumers. ARGV: job id, domain, data.
_RETRIED = (
    events.EMIT_EVENT_LUA
    + """
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) and redis.call('EXISTS', KEYS[1]) == 1
   and redis.call('HEXISTS', KEYS[1], 'finishedOn') == 0 then
  emit_event(KEYS[3], KEYS[4], '"""
    + events.RETRIED
    + """', ARGV[1], ARGV[2], ARGV[3])
end
"""
)
# Jobs retried or discarded concurrently by the bulk operations.
BATCH_SIZE = 50


@dataclass(frozen=True)
class Position:
    """Where a dead letter sits in the view: its failed time (ms) and its id."""

    score: int
    id: str


def encode_cursor(position: Position) -> str:
    """An opaque, URL-safe token for `position`."""
    raw = json.dumps([position.score, position.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; `InvalidCursor` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, job_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor("Not a cursor returned by this API.") from None
    if type(score) is not int or score < 0 or not isinstance(job_id, str) or not job_id:
        raise InvalidCursor("Not a cursor returned by this API.")
    return Position(score, job_id)


@dataclass(frozen=True)
class DeadLetter:
    """One failed email as the view shows it."""

    id: str
    failed_at: str
    error_class: str
    reason: str
    attempts: int
    message_id: str | None
    sender: str | None
    to: list[str]
    subject: str | None

    def to_json(self) -> dict[str, Any]:
        """The entry in API and CLI output."""
        return {
            "id": self.id,
            "failed_at": self.failed_at,
            "error_class": self.error_class,
            "reason": self.reason,
            "attempts": self.attempts,
            "message_id": self.message_id,
            "from": self.sender,
            "to": self.to,
            "subject": self.subject,
        }


@dataclass(frozen=True)
class DeadLetterPage:
    """One page of the view, and the cursor of the next one (None on the last page)."""

    entries: list[DeadLetter]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        """The body of `GET /v1/dead-letters`."""
        return {
            "data": [entry.to_json() for entry in self.entries],
            "next_cursor": self.next_cursor,
        }


async def list_dead_letters(
    queue: Queue,
    limit: int,
    cursor: str | None = None,
    offset: int = 0,
    error_class: str | None = None,
) -> DeadLetterPage:
    """Up to `limit` dead letters after `cursor` (or the newest), skipping `offset` of them.

    With a filter, `next_cursor` is set whenever the set goes on past a full page, so the
    last page of a filtered listing can come back empty.
    """
    after = decode_cursor(cursor) if cursor else None
    picked: list[Position] = []
    async with aclosing(_matching(queue, after, error_class)) as positions:
        async for position in positions:
            if offset:
                offset -= 1
                continue
            picked.append(position)
            if len(picked) == limit:
                break
    entries = await _load(queue, picked)
    if not picked or len(picked) < limit or not await _positions_after(queue, picked[-1], 1):
        return DeadLetterPage(entries, None)
    return DeadLetterPage(entries, encode_cursor(picked[-1]))


async def retry_dead_letter(queue: Queue, job_id: str) -> bool:
    """Requeue a dead letter with a full attempt budget; False if `job_id` is not one.

    The job keeps its id and data (so its Message-ID) and its `attemptsStarted`, which tells
    the worker it ran before and must read the send journal: recipients the relay accepted
    are not sent to again, while the refused ones are tried again.
    """
    if await queue.client.zscore(queue.keys["failed"], job_id) is None:
        return False
    job = await Job.fromId(queue, job_id)
    if job is None:
        return False
    await forget_rejections(queue.client, queue.name, job_id)
    if not await _requeue(queue, job):
        # bullmq's reprocessJob: the job left the failed set since we looked (retried or
        # discarded by someone else).
        return False
    logger.info("Dead letter %s requeued", job_id)
    return True


async def _requeue(queue: Queue, job: Job) -> bool:
    """bullmq's `job.retry("failed", {"resetAttemptsMade": True})` and the `email.retried`
    event, in one transaction; False if the job was not in the failed set."""
    scripts = queue.backend.scripts
    keys = [scripts.toKey(job.id)] + [
        scripts.keys[name]
        for name in ("events", "failed", "wait", "meta", "active", "marker", "prioritized", "pc")
    ]
    args = [job.id, "RPUSH" if job.opts.get("lifo") else "LPUSH", "failedReason", "failed"]
    postbox_keys = PostboxKeys(queue.name)
    data = events.event_data(job.data, job.id, 0)
    retried = queue.client.register_script(_RETRIED)
    async with queue.client.pipeline(transaction=True) as pipe:
        await scripts.commands["reprocessJob"](keys=keys, args=[*args, "1", "0"], client=pipe)
        event_keys = [keys[0], keys[2], postbox_keys.events(), postbox_keys.event_consumers()]
        domain = events.sender_domain(job.data)
        await retried(keys=event_keys, args=[job.id, domain, data], client=pipe)
        result, _ = await pipe.execute()
    return bool(result == 1)


async def retry_dead_letters(queue: Queue, error_class: str | None = None) -> int:
    """Requeue every dead letter (of `error_class`, if given); the number requeued."""
    return await _for_each(queue, error_class, retry_dead_letter)


async def discard_dead_letter(queue: Queue, job_id: str) -> bool:
    """Delete a dead letter with its send journal; False if `job_id` is not a dead letter.

    The check and the removal run in one transaction that watches the job's hash, so a job
    retried meanwhile (which changes the hash) is never removed from the wait list.
    """
    job_key = queue.toKey(job_id)
    async with queue.client.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(job_key)
                if await pipe.zscore(queue.keys["failed"], job_id) is None:
                    return False
                pipe.multi()
                await _remove_job(queue, pipe, job_id)
                pipe.delete(PostboxKeys(queue.name).journal(job_id))
                removed, _ = await pipe.execute()
            except WatchError:
                continue
            logger.info("Dead letter %s discarded", job_id)
            return bool(removed == 1)


async def discard_dead_letters(queue: Queue, error_class: str | None = None) -> int:
    """Discard every dead letter (of `error_class`, if given); the number discarded."""
    return await _for_each(queue, error_class, discard_dead_letter)


@asynccontextmanager
async def open_queue(settings: RedisSettings) -> AsyncIterator[Queue]:
    """A queue handle for one-off commands (the CLI), closed on exit."""
    client = api_client(settings)
    try:
        yield Queue(settings.queue_name, {"connection": client})
    finally:
        await client.aclose(close_connection_pool=True)


async def _remove_job(queue: Queue, pipe: Pipeline, job_id: str) -> None:
    """Queue bullmq's removeJob script on `pipe` (what `Queue.remove` runs, inside our
    transaction); it deletes the job's hash and logs from whatever state holds it."""
    remove = queue.scripts.commands["removeJob"]
    await remove(
        keys=[queue.toKey(job_id), queue.keys["repeat"]],
        args=[job_id, 1, queue.keys[""]],
        client=pipe,
    )


async def _for_each(
    queue: Queue, error_class: str | None, action: Callable[[Queue, str], Awaitable[bool]]
) -> int:
    """Apply `action` to the dead letters of `error_class`, newest first, a batch at a time.

    Jobs that fail again meanwhile are newer than the scan's position, so none is seen twice.
    """
    done = 0
    batch: list[str] = []
    async with aclosing(_matching(queue, None, error_class)) as positions:
        async for position in positions:
            batch.append(position.id)
            if len(batch) == BATCH_SIZE:
                done += await _apply(queue, batch, action)
                batch = []
    return done + await _apply(queue, batch, action)


async def _apply(
    queue: Queue, job_ids: list[str], action: Callable[[Queue, str], Awaitable[bool]]
) -> int:
    results = await asyncio.gather(*(action(queue, job_id) for job_id in job_ids))
    return sum(results)


async def _matching(
    queue: Queue, after: Position | None, error_class: str | None
) -> AsyncGenerator[Position, None]:
    """Positions after `after`, newest first, of dead letters of `error_class` (or all)."""
    while chunk := await _positions_after(queue, after, SCAN_CHUNK):
        for position in await _of_class(queue, chunk, error_class):
            yield position
        after = chunk[-1]


async def _positions_after(queue: Queue, after: Position | None, count: int) -> list[Position]:
    """Up to `count` positions that follow `after` in (score, id) descending order."""
    client, key = queue.client, queue.keys["failed"]
    if after is None:
        found = await client.zrevrangebyscore(key, "+inf", "-inf", 0, count, withscores=True)
        return _positions(found)
    # Members with the cursor's own score come in descending id order; keep those below it.
    same = await client.zrevrangebyscore(key, after.score, after.score, withscores=True)
    tied = [position for position in _positions(same) if position.id < after.id][:count]
    if len(tied) == count:
        return tied
    older = await client.zrevrangebyscore(
        key, f"({after.score}", "-inf", 0, count - len(tied), withscores=True
    )
    return tied + _positions(older)


def _positions(members: list[tuple[str, float]]) -> list[Position]:
    return [Position(int(score), member) for member, score in members]


async def _of_class(
    queue: Queue, positions: list[Position], error_class: str | None
) -> list[Position]:
    if error_class is None:
        return positions
    async with queue.client.pipeline(transaction=False) as pipe:
        for position in positions:
            pipe.hget(queue.toKey(position.id), "failedReason")
        reasons = await pipe.execute()
    return [
        position
        for position, reason in zip(positions, reasons, strict=True)
        if split_failure_reason(reason)[0] == error_class
    ]


async def _load(queue: Queue, positions: list[Position]) -> list[DeadLetter]:
    """The entries at `positions`, skipping jobs removed since they were listed."""
    async with queue.client.pipeline(transaction=False) as pipe:
        for position in positions:
            pipe.hmget(queue.toKey(position.id), ["failedReason", "atm", "data"])
        rows = await pipe.execute()
    return [
        _dead_letter(position, *row)
        for position, row in zip(positions, rows, strict=True)
        if row[2] is not None
    ]


def _dead_letter(
    position: Position, reason: str | None, attempts: str | None, raw_data: str
) -> DeadLetter:
    error_class, text = split_failure_reason(reason)
    data = json.loads(raw_data)
    data = data if isinstance(data, dict) else {}
    summary = data.get("summary") or {}
    return DeadLetter(
        id=position.id,
        failed_at=datetime.fromtimestamp(position.score / 1000, UTC).isoformat(),
        error_class=error_class,
        reason=text,
        attempts=int(attempts or 0),
        message_id=data.get("message_id"),
        sender=summary.get("sender"),
        to=list(summary.get("to") or []),
        subject=summary.get("subject"),
    )
