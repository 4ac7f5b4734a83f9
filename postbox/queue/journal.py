"""The send journal: what the relay already accepted for a job, written right after its 250.

A job re-run after a worker crash (BullMQ's stalled-job check) or a retry reads it and sends
only to recipients the relay has not accepted or refused for good, so a crash between the
relay's answer and the job's completion sends nothing twice. Each accepted recipient is
journalled with the relay that accepted it (SMTP_RELAYS), so the email's result, its
`email.sent` event and `GET /v1/emails/{id}` name it even when a re-run finishes the email,
or when a split email's parts went through different relays. The same write appends the
attempt to the job's BullMQ log (`bull:<queue>:<id>:logs`, shown by Bull Board too). After a
successful send the write (`settle_call`) travels in the job's completion transaction, right
after the completion itself: one round trip for the completion, the next job's fetch and the
journal, which Redis runs whole or not at all.

The journal cannot speak for a send whose worker got the relay's 250 and then lost Redis (a
network partition, or Redis away longer than the job's lock): the stalled-job check gives
the job to another worker, whose re-run finds no journal. So right before each transaction
the lock confirmation also sets a *send mark* (`postbox:<queue>:sending:<id>`, expiring after
EMAIL_SEND_MARK_SECONDS), and every journal write removes it. A re-run that finds another
run's mark waits (postponed, no attempt spent) until the mark's journal write arrives, which
says what the relay accepted, or the mark expires: then the outcome is unknown and it sends.

With REDIS_ACK_REPLICAS a journal write made outside a completion (an attempt that failed,
or reached only some recipients) returns once the replicas hold it, as a completion does
(postbox/queue/_engine/replication.py): a failover must not lose what the relay accepted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import redis.asyncio as redis

from postbox.config import ReplicaAck
from postbox.queue._engine.replication import until_replicated
from postbox.queue._engine.script_call import ScriptCall
from postbox.queue.events import EMIT_EVENT_LUA, NewEvent, event_args
from postbox.queue.keys import PostboxKeys
from postbox.queue.records import DEFAULT_RELAY, sent_suffix

_ACCEPTED = "a:"
_REJECTED = "r:"
# The relay that accepted a recipient, written only for a relay other than `default` (the
# one of SMTP_HOST and friends): a single-relay deployment's journal stays as it was.
_RELAY = "v:"
MAX_LOGGED_ATTEMPTS = 50

# The journal write of one attempt, shared by both scripts below (a Lua function, since a
# script cannot call another). KEYS[1..3]: journal hash, attempt log, send mark. ARGV[1..3]:
# journal ttl, attempt line, attempts kept; the journal's fields and values from ARGV[first].
_WRITE_JOURNAL = """
local function write_journal(first)
  if #ARGV >= first then
    redis.call('HSET', KEYS[1], unpack(ARGV, first))
    redis.call('EXPIRE', KEYS[1], ARGV[1])
  end
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
  redis.call('DEL', KEYS[3])
end
"""

# An event (postbox/queue/events.py) that goes with a write, or none. KEYS[first], then the
# consumers' key; ARGV[first...]: type ('' for none), email id, sender domain, data.
_WRITE_EVENT = (
    EMIT_EVENT_LUA
    + """
local function write_event(key, arg)
  if ARGV[arg] ~= '' then
    emit_event(KEYS[key], KEYS[key + 1], ARGV[arg], ARGV[arg + 1], ARGV[arg + 2], ARGV[arg + 3])
  end
end
"""
)

# One call instead of a MULTI of five commands: the journal write is on every send's path.
# KEYS[4..5]: the event stream and its consumers. ARGV[4..7]: the event (or ''), ARGV[8...]:
# the journal's fields and values.
_RECORD = _WRITE_JOURNAL + _WRITE_EVENT + "write_journal(8)\nwrite_event(4, 4)\n"

# Runs right after the job's completion, in the same MULTI (postbox/queue/_engine/
# completions.py). Completed (in BullMQ's completed set, or its hash already removed): the
# journal and the send mark go (a job kept whole gets its attempt line), and the claim
# becomes the email's compact record (records.py; Redis' clock in base 36 gives its finish
# time), with the sent counters; a claim that is a record already means a replayed
# completion (its answer was lost), which changes nothing.
# Not completed (the lock had gone to another run): the journal write of any attempt, so
# that run finds what the relay accepted.
# A completion that went through also writes its `email.sent` event.
# KEYS[4...]: job hash, claim, sent bucket, sent total, completed set, event stream, its
# consumers. ARGV[4...]: record head, record tail, bucket ttl, job id, then the event (type,
# email id, sender domain, data), then the journal's fields.
_SETTLE = (
    _WRITE_JOURNAL
    + _WRITE_EVENT
    + """
local kept = redis.call('EXISTS', KEYS[4]) == 1
if kept and not redis.call('ZSCORE', KEYS[8], ARGV[7]) then
  write_journal(12)
  return 0
end
local claim = redis.call('GET', KEYS[5])
if claim and string.find(claim, '|', 1, true) then
  return 1
end
redis.call('DEL', KEYS[1], KEYS[3])
if kept then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
end
if claim then
  local digits = '0123456789abcdefghijklmnopqrstuvwxyz'
  local n, finished = tonumber(redis.call('TIME')[1]), ''
  repeat
    finished = string.sub(digits, n % 36 + 1, n % 36 + 1) .. finished
    n = math.floor(n / 36)
  until n == 0
  claim = string.match(claim, '^[^|]*') .. ARGV[4] .. finished .. ARGV[5]
  redis.call('SET', KEYS[5], claim, 'KEEPTTL')
end
redis.call('INCR', KEYS[6])
redis.call('EXPIRE', KEYS[6], ARGV[6])
redis.call('INCR', KEYS[7])
write_event(9, 8)
return 1
"""
)
# Sent counters live for the stats' 10 minutes of throughput, and a little more.
SENT_BUCKET_SECONDS = 10
SENT_BUCKET_TTL_SECONDS = 11 * 60


@dataclass(frozen=True)
class JournalEntry:
    """Per recipient, the relay's final answer so far: accepted (250) or rejected (5xx),
    and for each accepted recipient the relay that accepted it (SMTP_RELAYS' name)."""

    accepted: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    # Milliseconds left on another run's send mark: that run may have sent and not reported.
    unreported_send_ms: int = 0
    relays: dict[str, str] = field(default_factory=dict)

    @property
    def only_relay(self) -> str | None:
        """The relay that accepted every accepted recipient; None when there were several
        (an email split over SMTP_ROUTES) or none."""
        found = set(self.relays.values())
        return found.pop() if len(found) == 1 else None

    def pending(self, recipients: Iterable[str]) -> list[str]:
        """The recipients that still need a send."""
        return [r for r in recipients if r not in self.accepted and r not in self.rejected]

    def merged(
        self, accepted: dict[str, str], rejected: dict[str, str], relay: str = DEFAULT_RELAY
    ) -> JournalEntry:
        """This entry with a new attempt's answers added, `accepted` by `relay`."""
        return JournalEntry(
            {**self.accepted, **accepted},
            {**self.rejected, **rejected},
            self.unreported_send_ms,
            {**self.relays, **dict.fromkeys(accepted, relay)},
        )


EMPTY = JournalEntry()


class SendJournal:
    """Reads and writes journal entries and attempt logs in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        queue_name: str,
        ttl_seconds: int,
        ack: ReplicaAck | None = None,
    ) -> None:
        self._client = client
        self._keys = PostboxKeys(queue_name)
        self._ttl = ttl_seconds
        self._ack = ack or ReplicaAck()
        self._record = client.register_script(_RECORD)
        self._settle = client.register_script(_SETTLE)

    async def load(self, job_id: str) -> JournalEntry:
        """The entry of `job_id` (empty if nothing was recorded), with the time left on a
        send mark an earlier run left (one round trip)."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._keys.journal(job_id))
            pipe.pttl(self._keys.sending(job_id))
            fields, mark_ms = await pipe.execute()
        entry = parse_entry(cast(dict[str, str], fields))  # decode_responses=True
        return replace(entry, unreported_send_ms=max(0, int(mark_ms)))

    async def clear_mark(self, job_id: str) -> None:
        """Remove this run's send mark: it will not send (postponed before the transaction)."""
        await self._client.delete(self._keys.sending(job_id))

    def record_call(
        self,
        job_id: str,
        accepted: dict[str, str],
        rejected: dict[str, str],
        attempt: dict[str, Any],
        event: NewEvent | None = None,
    ) -> ScriptCall:
        """The write that stores the relay's answers (`accepted` by the attempt's relay),
        the attempt and its event (if any), atomically, in one call."""
        fields = _fields(accepted, rejected, attempt.get("relay"))
        keys = [
            self._keys.journal(job_id),
            self._keys.attempt_log(job_id),
            self._keys.sending(job_id),
            self._keys.events(),
            self._keys.event_consumers(),
        ]
        line = json.dumps(attempt, separators=(",", ":"))
        args = [self._ttl, line, MAX_LOGGED_ATTEMPTS, *event_args(event), *fields]
        return ScriptCall(self._record, keys, args)

    def settle_call(
        self,
        job_id: str,
        accepted: dict[str, str],
        rejected: dict[str, str],
        attempt: dict[str, Any],
        *,
        reply: str | None,
        refused_total: int,
        sent: NewEvent,
    ) -> ScriptCall:
        """The write that goes right after a sent job's completion, in its round trip: the
        email's compact record and its `sent` event if the completion went through, else
        the journal write."""
        keys = self._keys
        head, tail = sent_suffix(attempt["attempt"], refused_total, reply, attempt.get("relay"))
        bucket = int(time.time()) // SENT_BUCKET_SECONDS
        return ScriptCall(
            self._settle,
            [
                keys.journal(job_id),
                keys.attempt_log(job_id),
                keys.sending(job_id),
                keys.bull(job_id),
                keys.idempotency(job_id),
                keys.sent_bucket(bucket),
                keys.sent_total(),
                keys.bull("completed"),
                keys.events(),
                keys.event_consumers(),
            ],
            [
                self._ttl,
                json.dumps(attempt, separators=(",", ":")),
                MAX_LOGGED_ATTEMPTS,
                head,
                tail,
                SENT_BUCKET_TTL_SECONDS,
                job_id,
                *sent.args(),
                *_fields(accepted, rejected, attempt.get("relay")),
            ],
        )

    async def record(
        self,
        job_id: str,
        accepted: dict[str, str],
        rejected: dict[str, str],
        attempt: dict[str, Any],
        event: NewEvent | None = None,
    ) -> None:
        """Run `record_call` now, returning once the replicas asked for hold it."""
        await self.record_call(job_id, accepted, rejected, attempt, event).run()
        await until_replicated(self._client, self._keys.replication_mark(), self._ack)

    async def record_attempt(
        self, job_id: str, attempt: dict[str, Any], event: NewEvent | None = None
    ) -> None:
        """Append an attempt that changed no recipient's state (a failure), with its event."""
        await self.record(job_id, {}, {}, attempt, event)


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
    relays = {r: fields.get(_RELAY + r, DEFAULT_RELAY) for r in accepted}
    return JournalEntry(accepted, rejected, relays=relays)


def _fields(accepted: dict[str, str], rejected: dict[str, str], relay: str | None) -> list[str]:
    """The journal hash's fields and values for these answers, `accepted` by `relay`."""
    fields: list[str] = []
    for prefix, replies in ((_ACCEPTED, accepted), (_REJECTED, rejected)):
        for recipient, reply in replies.items():
            fields += (prefix + recipient, reply)
    if relay and relay != DEFAULT_RELAY:
        for recipient in accepted:
            fields += (_RELAY + recipient, relay)
    return fields
