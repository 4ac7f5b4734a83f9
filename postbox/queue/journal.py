"""The send journal: what the relay already accepted for a job, written right after its 250.

A job re-run after a worker crash (BullMQ's stalled-job check) or a retry reads it and sends
only to recipients the relay has not accepted or refused for good, so a crash between the
relay's answer and the job's completion sends nothing twice. The same write appends the
attempt to the job's BullMQ log (`bull:<queue>:<id>:logs`, shown by Bull Board too). After a
successful send the write travels in the job's completion pipeline, ahead of the completion
itself: one round trip for the journal, the completion and the next job's fetch.

The journal cannot speak for a send whose worker got the relay's 250 and then lost Redis (a
network partition, or Redis away longer than the job's lock): the stalled-job check gives
the job to another worker, whose re-run finds no journal. So right before each transaction
the lock confirmation also sets a *send mark* (`postbox:<queue>:sending:<id>`, expiring after
EMAIL_SEND_MARK_SECONDS), and every journal write removes it. A re-run that finds another
run's mark waits (postponed, no attempt spent) until the mark's journal write arrives, which
says what the relay accepted, or the mark expires: then the outcome is unknown and it sends.
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

# One call instead of a MULTI of five commands: the journal write is on every send's path.
# KEYS: journal hash, attempt log, send mark. ARGV: ttl, attempt, attempts kept, field, value...
_RECORD = """
if #ARGV > 3 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('DEL', KEYS[3])
"""


@dataclass(frozen=True)
class JournalEntry:
    """Per recipient, the relay's final answer so far: accepted (250) or rejected (5xx)."""

    accepted: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    # Milliseconds left on another run's send mark: that run may have sent and not reported.
    unreported_send_ms: int = 0

    def pending(self, recipients: Iterable[str]) -> list[str]:
        """The recipients that still need a send."""
        return [r for r in recipients if r not in self.accepted and r not in self.rejected]

    def merged(self, accepted: dict[str, str], rejected: dict[str, str]) -> JournalEntry:
        """This entry with a new attempt's answers added."""
        return JournalEntry(
            {**self.accepted, **accepted}, {**self.rejected, **rejected}, self.unreported_send_ms
        )


EMPTY = JournalEntry()


class SendJournal:
    """Reads and writes journal entries and attempt logs in Redis."""

    def __init__(self, client: redis.Redis, queue_name: str, ttl_seconds: int) -> None:
        self._client = client
        self._keys = PostboxKeys(queue_name)
        self._ttl = ttl_seconds
        self._record = client.register_script(_RECORD)

    async def load(self, job_id: str) -> JournalEntry:
        """The entry of `job_id` (empty if nothing was recorded), with the time left on a
        send mark an earlier run left (one round trip)."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._keys.journal(job_id))
            pipe.pttl(self._keys.sending(job_id))
            fields, mark_ms = await pipe.execute()
        entry = parse_entry(cast(dict[str, str], fields))  # decode_responses=True
        return JournalEntry(entry.accepted, entry.rejected, max(0, int(mark_ms)))

    async def clear_mark(self, job_id: str) -> None:
        """Remove this run's send mark: it will not send (postponed before the transaction)."""
        await self._client.delete(self._keys.sending(job_id))

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
        keys = [
            self._keys.journal(job_id),
            self._keys.attempt_log(job_id),
            self._keys.sending(job_id),
        ]
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
