"""Moving a waiting email to another time (or making it due now): one Lua call over the
BullMQ keys, atomic with respect to a worker taking it, like cancel.py.

A job still in `delayed` or `wait` is taken out and put back: in `delayed` with the new
time as BullMQ scores it (ms * 0x1000), the worker's marker moved to the earliest delayed
job so a sleeping worker wakes for it; or, due now, at the tail of `wait` with the marker
BullMQ sets for a waiting job. Its data gets the new `send_at` (the status view and the
event read it there), its idempotency record lives long enough for the new time, and
`email.scheduled` (or `email.queued`) says so. A job in neither set is taken or done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import redis.asyncio as redis

from postbox.queue import events
from postbox.queue.contract import EmailJobData
from postbox.queue.keys import PostboxKeys

# KEYS: job hash, wait, delayed, marker, idempotency record, event stream, its consumers.
# ARGV[1]: job id, [2]: due (ms; 0 for now), [3]: the new job data, [4]: the dedup window
# (s), then the event (type, email, domain, data). Returns `moved`, `taken` or `missing`.
_RESCHEDULE = (
    events.EMIT_EVENT_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local id = ARGV[1]
if redis.call('ZREM', KEYS[3], id) == 0 and redis.call('LREM', KEYS[2], 1, id) == 0 then
  return 'taken'
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = tonumber(ARGV[2])
local ahead = 0
if due > now_ms then
  ahead = due - now_ms
  redis.call('ZADD', KEYS[3], due * 0x1000, id)
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[4], math.floor(tonumber(first[2]) / 0x1000), '1')
else
  redis.call('LPUSH', KEYS[2], id)
  redis.call('ZADD', KEYS[4], 0, '0')
end
local timestamp = tonumber(redis.call('HGET', KEYS[1], 'timestamp') or now_ms)
redis.call('HSET', KEYS[1], 'data', ARGV[3], 'delay', math.max(0, due - timestamp))
local keep = tonumber(ARGV[4]) + math.ceil(ahead / 1000)
if redis.call('TTL', KEYS[5]) < keep then redis.call('EXPIRE', KEYS[5], keep) end
emit_event(KEYS[6], KEYS[7], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
return 'moved'
"""
)


@dataclass(frozen=True)
class RescheduleOutcome:
    """What a reschedule did: `moved`, `taken` (too late) or `missing` (no such job)."""

    result: str
    send_at: str | None = None


class EmailRescheduler:
    """Moves waiting emails of one queue to another time."""

    def __init__(self, client: redis.Redis, queue_name: str, dedup_window_seconds: int) -> None:
        self._client = client
        self._keys = PostboxKeys(queue_name)
        self._window = dedup_window_seconds
        self._script = client.register_script(_RESCHEDULE)

    async def move(self, job_id: str, send_at: datetime | None) -> RescheduleOutcome:
        """Make `job_id` due at `send_at` (None or past: now) unless a worker took it."""
        job = self._keys.bull(job_id)
        raw = await self._client.hget(job, "data")
        if raw is None:
            return RescheduleOutcome("missing")
        data = cast(EmailJobData, json.loads(raw))
        later = send_at is not None and send_at > datetime.now(UTC)
        new_send_at = send_at.astimezone(UTC).isoformat() if later and send_at else None
        data["summary"]["send_at"] = new_send_at
        kind = events.SCHEDULED if later else events.QUEUED
        event = events.email_event(
            kind, data, job_id, 0, send_at=new_send_at, subject=data["summary"]["subject"]
        )
        due_ms = int(send_at.timestamp() * 1000) if later and send_at else 0
        keys = self._keys
        found = await self._script(
            keys=[
                job,
                keys.bull("wait"),
                keys.bull("delayed"),
                keys.bull("marker"),
                keys.idempotency(job_id),
                keys.events(),
                keys.event_consumers(),
            ],
            args=[job_id, due_ms, json.dumps(data), self._window, *event.args()],
        )
        result = found.decode() if isinstance(found, bytes) else str(found)
        return RescheduleOutcome(result, new_send_at)
