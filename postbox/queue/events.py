"""The delivery-event stream: one Redis Stream entry per change in an email's state.

Each event is written by the same Redis call (or transaction) that makes its change true, so
no event announces a change that did not happen, and none is lost to a crash between the two:
- `email.queued` / `email.scheduled`: in the API's add transaction, right after each job's add,
  for a job that add created (producer.py);
- `email.sent`: in the worker's completion transaction, by the settle script (journal.py);
- `email.deferred` / `email.failed`: with the failed attempt's journal write, a moment before
  BullMQ records the retry or the dead letter (a worker killed between the two re-runs the
  attempt, which writes the event again: at least once);
- `email.retried`: with a dead letter's requeue (dead_letters.py);
- `email.canceled`: by the cancel script, with the job's removal (cancel.py).

Consumers (the webhook dispatcher; later the history and suppression lists) each read the
stream through their own consumer group, so they read at their own pace and a dead consumer's
entries are claimed by another (XAUTOCLAIM). Events are written only while some group is
registered (`register_consumer`): with no consumer they cost nothing. The stream is never
capped by length (MAXLEN would drop events no group has read); `trim_acknowledged` removes
what every group has read and acknowledged once it is older than EVENTS_RETENTION_SECONDS
(kept for replays), and a full Redis stops intake (issue 13) before it could drop anything.

An entry's id gives the event its identity (`evt_<id>`, the `webhook-id` of every delivery),
its time, and its `sequence`: `ms * 1000 + seq`, which increases with every event, so a
receiver can order an email's events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as redis
from redis.exceptions import ResponseError

from postbox.queue.contract import EmailJobData
from postbox.queue.keys import PostboxKeys

QUEUED = "email.queued"
SCHEDULED = "email.scheduled"
SENT = "email.sent"
DEFERRED = "email.deferred"
FAILED = "email.failed"
RETRIED = "email.retried"
CANCELED = "email.canceled"
EVENT_TYPES = (QUEUED, SCHEDULED, SENT, DEFERRED, FAILED, RETRIED, CANCELED)

# A Lua function the writing scripts include: appends one event while a consumer exists.
EMIT_EVENT_LUA = """
local function emit_event(stream, consumers, kind, email, domain, data)
  if redis.call('EXISTS', consumers) == 1 then
    redis.call('XADD', stream, '*', 'type', kind, 'email', email, 'domain', domain, 'data', data)
  end
end
"""

# KEYS[1]: the stream. ARGV[1]: how long to keep an entry every group has read (ms), for
# replays. Trims to the oldest id any group still needs (the first pending entry of each
# group, or the entry after the last one delivered to it, whichever is older), or to the
# retention's start, whichever is older; returns that id.
_OLDEST_NEEDED = """
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then return false end
local oldest = false
local function older(a, b)
  if not b then return a end
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if tonumber(am) ~= tonumber(bm) then
    if tonumber(am) < tonumber(bm) then return a else return b end
  end
  if tonumber(as) < tonumber(bs) then return a else return b end
end
for _, group in ipairs(groups) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  local pending = redis.call('XPENDING', KEYS[1], info['name'])
  if pending[2] then
    oldest = older(pending[2], oldest)
  end
  local ms, seq = string.match(info['last-delivered-id'], '^(%d+)-(%d+)$')
  oldest = older(ms .. '-' .. (tonumber(seq) + 1), oldest)
end
if oldest then
  local now = redis.call('TIME')
  local kept = (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) - tonumber(ARGV[1])
  oldest = older(string.format('%d-0', kept), oldest)
  redis.call('XTRIM', KEYS[1], 'MINID', oldest)
end
return oldest
"""


@dataclass(frozen=True)
class Event:
    """One event as read from the stream."""

    id: str  # the stream entry id, "ms-seq"
    type: str
    email_id: str
    domain: str
    data: dict[str, Any]

    @property
    def event_id(self) -> str:
        """The event's identity: the same on every delivery and retry, to any endpoint."""
        return f"evt_{self.id}"

    @property
    def sequence(self) -> int:
        """A number that increases with every event (of an email, and of the stream)."""
        return sequence(self.id)

    @property
    def timestamp(self) -> str:
        """When the event was written, ISO 8601 UTC with milliseconds."""
        ms = int(self.id.partition("-")[0])
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def payload(self) -> dict[str, Any]:
        """The Standard Webhooks payload: type, timestamp and data (with the sequence)."""
        return {
            "type": self.type,
            "timestamp": self.timestamp,
            "data": {**self.data, "sequence": self.sequence},
        }


def sequence(entry_id: str) -> int:
    """`ms * 1000 + seq` of a stream entry id `ms-seq` (seq stays far below 1,000 per ms)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms) * 1000 + int(seq or 0)


def parse_entry(entry_id: str, fields: dict[str, str]) -> Event:
    """An event from a stream entry's id and fields (decode_responses=True)."""
    return Event(
        entry_id, fields["type"], fields["email"], fields["domain"], json.loads(fields["data"])
    )


@dataclass(frozen=True)
class NewEvent:
    """An event to write, as the writing scripts take it."""

    type: str
    email_id: str
    domain: str
    data: str  # JSON

    def args(self) -> list[str]:
        """Its script arguments."""
        return [self.type, self.email_id, self.domain, self.data]


def event_args(event: NewEvent | None) -> list[str]:
    """Script arguments for an optional event: an empty type writes none."""
    return event.args() if event else ["", "", "", ""]


def email_event(kind: str, data: EmailJobData, job_id: str, attempt: int, **extra: Any) -> NewEvent:
    """An event of an email, from its job data."""
    return NewEvent(kind, job_id, sender_domain(data), event_data(data, job_id, attempt, **extra))


def sender_domain(data: EmailJobData) -> str:
    """The sender's domain as API keys name theirs (the envelope sender is normalised)."""
    return data["envelope_from"].rpartition("@")[2]


def event_data(data: EmailJobData, job_id: str, attempt: int, **extra: Any) -> str:
    """The JSON `data` of an email's event: what every event carries, plus `extra`."""
    summary = data["summary"]
    common = {
        "email_id": job_id,
        "message_id": data["message_id"],
        "from": data["envelope_from"],
        "to": data["recipients"],
        "tags": summary["tags"],
        "attempt": attempt,
    }
    return json.dumps({**common, **extra}, separators=(",", ":"))


async def register_consumer(client: redis.Redis, queue_name: str, group: str) -> None:
    """Create `group` on the stream (reading from now on) and start writing events."""
    keys = PostboxKeys(queue_name)
    try:
        await client.xgroup_create(keys.events(), group, id="$", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    await client.sadd(keys.event_consumers(), group)


async def trim_acknowledged(
    client: redis.Redis, queue_name: str, keep_seconds: float = 0
) -> str | None:
    """Drop the entries every group has read and acknowledged and that are older than
    `keep_seconds` (EVENTS_RETENTION_SECONDS: what a replay can reach); the oldest id kept."""
    script = client.register_script(_OLDEST_NEEDED)
    keep_ms = int(keep_seconds * 1000)
    oldest = await script(keys=[PostboxKeys(queue_name).events()], args=[keep_ms])
    return cast(str | None, oldest or None)
