"""The fan-out: stream entries become deliveries, one per endpoint that wants the event.

One script call writes a batch's deliveries and acknowledges its entries (XACK): Redis runs
it whole or not at all, so a dispatcher that dies before it leaves the entries pending (taken
over later, XAUTOCLAIM) and after it every delivery exists. The script first checks that the
endpoints' version is still the one the dispatcher read them at; if an endpoint was made,
changed or deleted meanwhile it writes nothing, and the dispatcher reloads and tries again.

Each body is the Standard Webhooks payload of `Event.payload()` (postbox/queue/events.py),
spliced from the entry's `data` JSON rather than parsed and serialised again: at thousands of
events per second that was a tenth of the dispatcher's CPU. A unit test keeps the two equal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as redis

from postbox.queue.events import sequence
from postbox.queue.keys import PostboxKeys
from postbox.webhooks.deliveries import Claimed, iso_ms
from postbox.webhooks.endpoints import CONSUMER_GROUP, Endpoint

logger = logging.getLogger(__name__)
Entry = tuple[str, dict[str, str]]

# KEYS[1]: version counter, KEYS[2]: stream. ARGV[1]: the endpoints' version as read; [2]:
# group; [3]: due ms; [4], [5]: due key prefix and suffix (around the endpoint id); [6]:
# delivery key prefix; [7]: lease token, [8]: lease end (ms); [9]: n; then n entry ids to
# acknowledge; then per event its id, type, email, body, the count of endpoints whose
# delivery is leased to this dispatcher right away and their ids, then the count and ids of
# those whose delivery is simply due. 0 (nothing written) if the version moved.
_FAN_OUT = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[9])
local i = 10 + n
while i <= #ARGV do
  local event, kind, email, body = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  i = i + 4
  for part = 1, 2 do
    local last = i + tonumber(ARGV[i])
    for j = i + 1, last do
      local id = ARGV[j] .. ':' .. event
      local due = ARGV[4] .. ARGV[j] .. ARGV[5]
      local lease = part == 1 and ARGV[7] or ''
      redis.call('HSET', ARGV[6] .. id, 'event', event, 'type', kind, 'email', email,
        'body', body, 'attempts', 0, 'lease', lease)
      if part == 1 then
        redis.call('ZADD', due, ARGV[8], id)
      else
        redis.call('ZADD', due, 'NX', ARGV[3], id)
      end
    end
    i = last + 1
  end
end
if n > 0 then redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, 10, 9 + n)) end
return 1
"""


def event_body(entry_id: str, kind: str, data: str) -> str:
    """`Event.payload()` as JSON, from the entry's id, type and `data` (a JSON object)."""
    inner = data.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        raise ValueError("data is not a JSON object")
    number = sequence(entry_id)
    spliced = (
        f'{{"sequence":{number}}}'
        if inner[1:-1].strip() == ""
        else f'{inner[:-1]},"sequence":{number}}}'
    )
    stamp = iso_ms(int(entry_id.partition("-")[0]))
    return f'{{"type":{orjson.dumps(kind).decode()},"timestamp":"{stamp}","data":{spliced}}}'


@dataclass(frozen=True)
class Lease:
    """Deliveries the fan-out leases to this dispatcher as it writes them: up to `room`
    per endpoint (its sender's free capacity), with `token`, until `until_ms`."""

    room: dict[str, int]
    token: str
    until_ms: int


@dataclass
class FanOutResult:
    """Endpoints with new due deliveries (their senders claim them), and the deliveries
    leased to this dispatcher, per endpoint (handed to its senders without a claim)."""

    due: set[str] = field(default_factory=set)
    handed: dict[str, list[Claimed]] = field(default_factory=dict)


class FanOut:
    """Writes the deliveries of batches of stream entries, for one queue."""

    def __init__(self, client: redis.Redis, queue_name: str) -> None:
        keys = PostboxKeys(queue_name)
        self._keys = keys
        self._script = client.register_script(_FAN_OUT)
        self._due_around = keys.webhook_due("\0").split("\0")
        self._delivery_prefix = keys.webhook_delivery("")

    async def write(
        self,
        entries: Sequence[Entry],
        endpoints: Sequence[Endpoint],
        version: int,
        now_ms: int,
        lease: Lease,
    ) -> FanOutResult | None:
        """Write the deliveries of `entries` to the `endpoints` that want them (due at
        `now_ms`, or leased per `lease`) and acknowledge the entries; None when the
        endpoints changed since `version` (then nothing was written)."""
        ids = [entry_id for entry_id, _ in entries]
        head: list[Any] = [version, CONSUMER_GROUP, now_ms, *self._due_around]
        head += [self._delivery_prefix, lease.token, lease.until_ms, len(ids), *ids]
        batch = _Batch(head, endpoints, lease)
        for entry_id, fields in entries:
            batch.add(entry_id, fields)
        keys = [self._keys.webhooks_version(), self._keys.events()]
        written = await self._script(keys=keys, args=batch.args)
        return batch.result if written else None


class _Batch:
    """The script arguments of one fan-out, and what becomes of its deliveries."""

    def __init__(self, head: list[Any], endpoints: Sequence[Endpoint], lease: Lease) -> None:
        self.args = head
        self.result = FanOutResult()
        self._endpoints = endpoints
        self._room = dict(lease.room)
        self._token = lease.token

    def add(self, entry_id: str, fields: dict[str, str]) -> None:
        """Add one event. An entry that is no readable event is logged and only
        acknowledged: it cannot block the stream."""
        try:
            kind, domain, email = fields["type"], fields["domain"], fields["email"]
            wanting = [e.id for e in self._endpoints if e.wants(kind, domain)]
            if not wanting:
                return
            body = event_body(entry_id, kind, fields["data"])
        except (KeyError, ValueError):
            logger.error("Skipped stream entry %s: not a readable event", entry_id)
            return
        event_id = f"evt_{entry_id}"
        leased = [ep for ep in wanting if self._room.get(ep, 0) > 0]
        due = [ep for ep in wanting if self._room.get(ep, 0) <= 0]
        for ep in leased:
            self._room[ep] -= 1
            handed = Claimed(f"{ep}:{event_id}", ep, event_id, kind, email, body, 0, self._token)
            self.result.handed.setdefault(ep, []).append(handed)
        self.result.due.update(due)
        self.args += [event_id, kind, email, body, len(leased), *leased, len(due), *due]
