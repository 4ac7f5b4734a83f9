"""The send journal: what the relay already accepted for a job, written right after its 250.

A job re-run after a worker crash (BullMQ's stalled-job check) or a retry reads it and sends
only to recipients the relay has not accepted or refused for good, so a crash between the
relay's answer and the job's completion sends nothing twice. The same write appends the
attempt to the job's BullMQ log (`bull:<queue>:<id>:logs`, shown by Bull Board too). After a
successful send the write travels in the job's completion pipeline, ahead of the completion
itself: one round trip for the journal, the completion and the next job's fetch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as redis

from postbox.queue._engine.script_call import ScriptCall
from postbox.queue.keys import PostboxKeys

_ACCEPTED = "a:"
_REJECTED = "r:"
MAX_LOGGED_ATTEMPTS = 50

# One call instead of a MULTI of four commands: the journal write is on every send's path.
# KEYS: journal hash, attempt log. ARGV: ttl, attempt, max attempts kept, field, value, ...
_RECORD = """
if #ARGV > 3 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
"""


@dataclass(frozen=True)
class JournalEntry:
    """Per recipient, the relay's final answer so far: accepted (250) or rejected (5xx)."""

    accepted: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

    def pending(self, recipients: Iterable[str]) -> list[str]:
        """The recipients that still need a send."""
        return [r for r in recipients if r not in self.accepted and r not in self.rejected]

    def merged(self, accepted: dict[str, str], rejected: dict[str, str]) -> JournalEntry:
        """This entry with a new attempt's answers added."""
        return JournalEntry({**self.accepted, **accepted}, {**self.rejected, **rejected})


EMPTY = JournalEntry()


class SendJournal:
    """Reads and writes journal entries and attempt logs in Redis."""

    def __init__(self, client: redis.Redis, queue_name: str, ttl_seconds: int) -> None:
        self._client = client
        self._keys = PostboxKeys(queue_name)
        self._ttl = ttl_seconds
        self._record = client.register_script(_RECORD)

    async def load(self, job_id: str) -> JournalEntry:
        """The entry of `job_id` (empty if nothing was recorded)."""
        fields = await self._client.hgetall(self._keys.journal(job_id))
        return parse_entry(cast(dict[str, str], fields))  # decode_responses=True

    def record_call(
        self,
        job_id: str,
        accepted: dict[str, str],
        rejected: dict[str, str],
        attempt: dict[str, Any],
    ) -> ScriptCall:
        """The write that stores the relay's answers and the attempt, atomically, in one
        call: to run now, or in the job's completion round trip."""
        fields: list[str] = []
        for prefix, replies in ((_ACCEPTED, accepted), (_REJECTED, rejected)):
            for recipient, reply in replies.items():
                fields += (prefix + recipient, reply)
        keys = [self._keys.journal(job_id), self._keys.attempt_log(job_id)]
        line = json.dumps(attempt, separators=(",", ":"))
        return ScriptCall(self._record, keys, [self._ttl, line, MAX_LOGGED_ATTEMPTS, *fields])

    async def record_attempt(self, job_id: str, attempt: dict[str, Any]) -> None:
        """Append an attempt that changed no recipient's state (a failure)."""
        await self.record_call(job_id, {}, {}, attempt).run()


async def forget_rejections(client: redis.Redis, queue_name: str, job_id: str) -> None:
    """Let a requeued dead letter try its refused recipients again; acceptances stay, so
    nobody who already got the message gets it twice."""
    key = PostboxKeys(queue_name).journal(job_id)
    names = cast(list[str], await client.hkeys(key))  # decode_responses=True
    fields = [name for name in names if name.startswith(_REJECTED)]
    if fields:
        await client.hdel(key, *fields)


def parse_entry(fields: dict[str, str]) -> JournalEntry:
    """A journal entry from its Redis hash fields."""
    accepted = {k.removeprefix(_ACCEPTED): v for k, v in fields.items() if k.startswith(_ACCEPTED)}
    rejected = {k.removeprefix(_REJECTED): v for k, v in fields.items() if k.startswith(_REJECTED)}
    return JournalEntry(accepted, rejected)
