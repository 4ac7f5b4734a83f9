"""The suppression list in Redis: one hash of entries, and two sorted sets beside it.

Layout (keys.py): the hash `suppressions` maps each member (`<address> <scope>`) to its
entry's JSON; `suppressions:index` holds the same members, all scored 0, so a list pages in
address order (ZRANGEBYLEX) with a cursor that stays valid while entries come and go;
`suppressions:expiry` holds only the entries that expire, scored by when (ms). Expired
entries no longer suppress (the lookups check the time) and are removed by the next change
to the list.

The hot path is one call for a whole batch: `suppressed_each` in the worker and
`stage_lookup` at intake (which rides in the idempotency claims' round trip). A batch's is
a script: per recipient, an HGET of its global entry and of its sender domain's; only what
was found comes back, which is almost nothing, however long the list is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as redis
from redis.asyncio.client import Pipeline

from postbox.errors import InvalidCursor
from postbox.queue.keys import PostboxKeys
from postbox.suppressions.entries import GLOBAL, Suppression, loads, member

# Removes what has expired (a bounded number per call), then adds each entry not already
# there. KEYS: entries, index, expiry. ARGV[1]: now (ms); then per entry: member, JSON,
# expiry (ms, or '' for never). Returns 1 per entry added, 0 per entry already there.
_ADD = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, name in ipairs(gone) do
  redis.call('HDEL', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
  redis.call('ZREM', KEYS[3], name)
end
local added, names, expiring = {}, {}, {}
for i = 2, #ARGV, 3 do
  local new = redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  added[#added + 1] = new
  if new == 1 then
    names[#names + 1] = 0
    names[#names + 1] = ARGV[i]
    if ARGV[i + 2] ~= '' then
      expiring[#expiring + 1] = ARGV[i + 2]
      expiring[#expiring + 1] = ARGV[i]
    end
  end
end
-- One ZADD per set for the whole chunk: a call per entry was a third of an import's time.
if #names > 0 then redis.call('ZADD', KEYS[2], unpack(names)) end
if #expiring > 0 then redis.call('ZADD', KEYS[3], unpack(expiring)) end
return added
"""

# KEYS as for _ADD; ARGV: the members to remove. Returns how many there were.
_REMOVE = """
local removed = 0
for _, name in ipairs(ARGV) do
  removed = removed + redis.call('HDEL', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
  redis.call('ZREM', KEYS[3], name)
end
return removed
"""

# KEYS[1]: the entries. ARGV[1]: `<sender domain>\t<recipient>\n` per recipient. Returns
# (position from 1, entry) for each global or domain entry found.
_LOOKUP = """
local hits, i = {}, 0
for domain, rcpt in string.gmatch(ARGV[1], '([^\\t\\n]*)\\t([^\\n]*)\\n') do
  i = i + 1
  local global = redis.call('HGET', KEYS[1], rcpt .. ' *')
  if global then hits[#hits + 1] = i; hits[#hits + 1] = global end
  local scoped = redis.call('HGET', KEYS[1], rcpt .. ' ' .. domain)
  if scoped then hits[#hits + 1] = i; hits[#hits + 1] = scoped end
end
return hits
"""

PAGE_SCAN_CHUNK = 500
# A filtered page reads at most this many members; a short page then still has a cursor.
MAX_SCANNED_PER_PAGE = 20_000
ADD_CHUNK = 2000


@dataclass(frozen=True)
class SuppressionPage:
    """One page of entries in address order, and the cursor of the next (None: the last)."""

    entries: list[Suppression]
    next_cursor: str | None


class SuppressionStore:
    """Reads and changes the suppression list of one queue."""

    def __init__(self, client: redis.Redis, queue_name: str) -> None:
        self._client = client
        keys = PostboxKeys(queue_name)
        self._keys = [keys.suppressions(), keys.suppressions_index(), keys.suppressions_expiry()]
        self._add = client.register_script(_ADD)
        self._remove = client.register_script(_REMOVE)
        self._lookup = client.register_script(_LOOKUP)

    async def add(self, entries: Sequence[Suppression]) -> list[bool]:
        """Add entries, keeping any already there (True per entry that was new); large
        imports go in chunks, pipelined: one round trip for all of them."""
        now = str(_ms(datetime.now(UTC)))
        async with self._client.pipeline(transaction=False) as pipe:
            for start in range(0, len(entries), ADD_CHUNK):
                args: list[str | int] = [now]
                for entry in entries[start : start + ADD_CHUNK]:
                    expiry = entry.expires_at
                    args += (entry.member, entry.dumps(), _expiry_ms(expiry) if expiry else "")
                await self._add(keys=self._keys, args=args, client=pipe)
            replies = await pipe.execute() if entries else []
        return [bool(flag) for reply in replies for flag in reply]

    async def remove(self, address: str, scopes: tuple[str, ...] | None) -> int:
        """Remove `address`'s entries in `scopes` (None: every scope); how many there were."""
        names = [e.member for e in await self.entries_of(address) if _visible(e, scopes)]
        if not names:
            return 0
        return int(await self._remove(keys=self._keys, args=names))

    async def entries_of(self, address: str) -> list[Suppression]:
        """Every entry of one (normalised) address, expired ones left out."""
        names = await self._client.zrangebylex(self._keys[1], f"[{address} ", f"({address}!")
        return await self._load(cast(list[str], names))

    async def suppressed_each(self, emails: Sequence[tuple[str, list[str]]]) -> list[list[str]]:
        """Per (sender domain, recipients), the recipients suppressed: one HMGET of two
        fields per recipient for all of them (the worker's check of the jobs it is about to
        send: a few recipients each, and no script call, the worker's costliest kind of
        Redis call)."""
        names = _fields(emails)
        if not names:
            return [[] for _ in emails]
        found = cast(list[str | None], await self._client.hmget(self._keys[0], names))
        return _field_hits(emails, found)

    async def stage_lookup(self, pipe: Pipeline, emails: Sequence[tuple[str, list[str]]]) -> Lookup:
        """Queue on `pipe` the lookup of every (sender domain, recipients), so that a
        caller's own round trip carries it (intake sends it with its idempotency claims);
        what reads its reply. One email: an HMGET of its few fields; several: one call."""
        if len(emails) == 1 and (names := _fields(emails)):
            pipe.hmget(self._keys[0], names)
            return lambda found: _field_hits(emails, found)
        # One string, not two fields per recipient: packing a 1,000-field HMGET and reading
        # its 1,000 nils cost the API 2-3 times this call (measured on batches of 500).
        lines = "".join(f"{domain}\t{r}\n" for domain, rcpts in emails for r in rcpts)
        await self._lookup(keys=self._keys[:1], args=[lines], client=pipe)
        return lambda found: _line_hits(emails, found)

    async def page(
        self,
        limit: int,
        cursor: str | None,
        *,
        scopes: tuple[str, ...] | None = None,
        reason: str | None = None,
        address: str | None = None,
    ) -> SuppressionPage:
        """Up to `limit` entries after `cursor`, in address order, those in `scopes` (None:
        all) of `reason` and `address` if given; `InvalidCursor` for a foreign cursor."""
        first = f"[{address} " if address is not None else "-"
        start = "(" + decode_cursor(cursor) if cursor else first
        end = f"({address}!" if address is not None else "+"
        found: list[Suppression] = []
        scanned = 0
        while scanned < MAX_SCANNED_PER_PAGE:
            names = cast(
                list[str],
                await self._client.zrangebylex(
                    self._keys[1], start, end, start=0, num=PAGE_SCAN_CHUNK
                ),
            )
            scanned += len(names)
            for name, entry in zip(names, await self._raw(names), strict=True):
                if entry is not None and _visible(entry, scopes) and reason in (None, entry.reason):
                    found.append(entry)
                    if len(found) == limit:
                        return SuppressionPage(found, _next(names, name))
            if len(names) < PAGE_SCAN_CHUNK:
                return SuppressionPage(found, None)
            start = "(" + names[-1]
        return SuppressionPage(found, encode_cursor(start[1:]))

    async def every(self, scopes: tuple[str, ...] | None = None) -> AsyncIterator[Suppression]:
        """Every live entry in `scopes` (None: all), in address order (for an export)."""
        cursor: str | None = None
        while True:
            page = await self.page(PAGE_SCAN_CHUNK, cursor, scopes=scopes)
            for entry in page.entries:
                yield entry
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def _raw(self, names: list[str]) -> list[Suppression | None]:
        if not names:
            return []
        values = cast(list[str | None], await self._client.hmget(self._keys[0], names))
        now = datetime.now(UTC)
        entries = [loads(v) if v is not None else None for v in values]
        return [e if e is not None and not e.expired(now) else None for e in entries]

    async def _load(self, names: list[str]) -> list[Suppression]:
        return [entry for entry in await self._raw(names) if entry is not None]


def _visible(entry: Suppression, scopes: tuple[str, ...] | None) -> bool:
    return scopes is None or entry.scope in scopes


def _next(names: list[str], last: str) -> str | None:
    """The cursor after `last`: None only when it ended the scan and the list."""
    at_end = last == names[-1] and len(names) < PAGE_SCAN_CHUNK
    return None if at_end else encode_cursor(last)


def encode_cursor(last_member: str) -> str:
    """An opaque cursor naming the last member a page showed."""
    return base64.urlsafe_b64encode(last_member.encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The member a cursor names; `InvalidCursor` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor("Not a cursor returned by this API.") from None
    if " " not in name:
        raise InvalidCursor("Not a cursor returned by this API.")
    return name


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _expiry_ms(expires_at: str) -> int:
    return _ms(datetime.fromisoformat(expires_at))


# Turns a staged lookup's reply into, per email, the recipients suppressed.
Lookup = Callable[[Any], list[list[str]]]


def _fields(emails: Sequence[tuple[str, list[str]]]) -> list[str]:
    """The two hash fields of each recipient: its global entry and its sender domain's."""
    return [
        member(r, scope) for domain, rcpts in emails for r in rcpts for scope in (GLOBAL, domain)
    ]


def _field_hits(
    emails: Sequence[tuple[str, list[str]]], found: list[str | None]
) -> list[list[str]]:
    """Per email, its recipients one of whose two fields holds an entry still in force."""
    now = datetime.now(UTC)
    hit = [value is not None and not loads(value).expired(now) for value in found]
    result: list[list[str]] = []
    position = 0
    for _, rcpts in emails:
        result.append(
            [r for n, r in enumerate(rcpts) if any(hit[position + 2 * n : position + 2 * n + 2])]
        )
        position += 2 * len(rcpts)
    return result


def _line_hits(emails: Sequence[tuple[str, list[str]]], found: list[Any]) -> list[list[str]]:
    """Per email, its recipients the lookup script found (position, entry) in force for."""
    now = datetime.now(UTC)
    hits = {
        int(found[i]) - 1 for i in range(0, len(found), 2) if not loads(found[i + 1]).expired(now)
    }
    result: list[list[str]] = []
    position = 0
    for _, rcpts in emails:
        result.append([r for n, r in enumerate(rcpts, position) if n in hits])
        position += len(rcpts)
    return result
