"""Canceling an email that no worker has taken yet: one Lua call over the BullMQ keys.

A worker takes a job with BullMQ's moveToActive script, which moves it from `wait` (or
`prioritized`, or `delayed` once due) to `active`. The cancel script runs whole, before or
after any such call, never in between: it finds the job still waiting (queued, scheduled,
retrying, or postponed by a rate limit) and removes it, or finds it gone from those sets (a
worker has it, or it is done) and changes nothing. So under any race an email ends either
canceled and never sent, or sent with its cancel refused.

With the job, the script removes its logs and journal, turns the idempotency record into a
canceled one (`<claim>|c|<unix seconds>`, records.py, its expiry kept) so a retried POST of
the same email answers `canceled` and sends nothing, and writes `email.canceled`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

import redis.asyncio as redis

from postbox.queue import events
from postbox.queue.contract import EmailJobData
from postbox.queue.keys import PostboxKeys

# KEYS: job hash, wait, paused, delayed, prioritized, idempotency record, journal, event
# stream, its consumers. ARGV[1]: job id, then the event (type, email, domain, data).
# Returns `canceled`, `taken` (in no waiting set: active or finished) or `missing`.
_CANCEL = (
    events.EMIT_EVENT_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local id = ARGV[1]
if redis.call('ZREM', KEYS[4], id) == 0 and redis.call('ZREM', KEYS[5], id) == 0
    and redis.call('LREM', KEYS[2], 1, id) == 0 and redis.call('LREM', KEYS[3], 1, id) == 0 then
  return 'taken'
end
redis.call('DEL', KEYS[1], KEYS[1] .. ':logs', KEYS[7])
local record = redis.call('GET', KEYS[6])
if record then
  local claim = string.match(record, '^[^|]*')
  redis.call('SET', KEYS[6], claim .. '|c|' .. redis.call('TIME')[1], 'KEEPTTL')
end
emit_event(KEYS[8], KEYS[9], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return 'canceled'
"""
)


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel did: `canceled`, `taken` (too late) or `missing` (no such job)."""

    result: str


class EmailCanceler:
    """Cancels emails of one queue."""

    def __init__(self, client: redis.Redis, queue_name: str) -> None:
        self._client = client
        self._keys = PostboxKeys(queue_name)
        self._script = client.register_script(_CANCEL)

    async def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel `job_id` unless a worker took it or it is done."""
        keys = self._keys
        job = keys.bull(job_id)
        raw = await self._client.hmget(job, ["data", "attemptsMade"])
        if raw[0] is None:
            return CancelOutcome("missing")
        data = cast(EmailJobData, json.loads(raw[0]))
        event = events.email_event(events.CANCELED, data, job_id, int(raw[1] or 0))
        found = await self._script(
            keys=[
                job,
                keys.bull("wait"),
                keys.bull("paused"),
                keys.bull("delayed"),
                keys.bull("prioritized"),
                keys.idempotency(job_id),
                keys.journal(job_id),
                keys.events(),
                keys.event_consumers(),
            ],
            args=[job_id, *event.args()],
        )
        return CancelOutcome(found.decode() if isinstance(found, bytes) else str(found))
