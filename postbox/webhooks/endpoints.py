"""Webhook endpoints, kept in Redis: where events go, which ones, and the signing secrets.

Layout (keys.py): the sorted set `webhooks` holds every endpoint id scored by its creation
time (ms); the hash `webhook:<id>` holds one endpoint (`url`, `events` and `domains` as JSON
lists, `owner`, `description`, `created_at`, `enabled`, `disabled_reason`, `version`, and
the signing secrets encrypted by `SecretBox`: `secret`, and `previous_secret` beside it until
`previous_until_ms` after a rotation). Every change bumps `webhooks:version`, so dispatchers
reload the endpoints only when something changed.

An endpoint belongs to the API key that made it (`owner`, the key id) and takes only the
events of emails from that key's sender domains (`domains`; empty for an unrestricted key,
which may take every event). The domains are copied so the dispatcher, which may run
without API_KEYS, can scope events; `sync_owners` keeps the copy true when a key's domains
change or the key goes (each API process runs it at start).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as redis

from postbox.errors import EncryptionKeyMissing
from postbox.queue.events import EVENT_TYPES, register_consumer
from postbox.queue.keys import PostboxKeys
from postbox.webhooks.secret_box import SecretBox, new_signing_secret

ALL_EVENTS = "*"
SUBSCRIBABLE_EVENTS = (*EVENT_TYPES, ALL_EVENTS)
CONSUMER_GROUP = "webhooks"
ID_PREFIX = "wh_"
# After a rotation the old secret signs beside the new one this long, so receivers can
# switch over without losing a delivery (Standard Webhooks allows several signatures).
PREVIOUS_SECRET_SECONDS = 24 * 3600
_CHUNK = 500  # deliveries deleted per round trip when an endpoint goes
_ENDPOINT_ID = re.compile(r"wh_[A-Za-z0-9_-]{22}")
# Why an endpoint was disabled when its owner key left API_KEYS; only an endpoint disabled
# for this reason comes back by itself when the key does.
OWNER_KEY_GONE = "its API key is no longer configured"

# KEYS[1]: the endpoint's hash, KEYS[2]: the version counter; ARGV: field, value, ...
# Changes an endpoint only if it still exists (a concurrent delete wins).
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('INCR', KEYS[2])
return 1
"""

# KEYS as for _UPDATE; ARGV[1]: the new encrypted secret, ARGV[2]: until when (ms) the
# current one keeps signing. A second rotation within that time drops the oldest secret.
_ROTATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = redis.call('HGET', KEYS[1], 'secret')
redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'previous_secret', current,
  'previous_until_ms', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('INCR', KEYS[2])
return 1
"""


@dataclass(frozen=True)
class Endpoint:
    """One webhook endpoint, as the API shows it and the dispatcher uses it (no secret)."""

    id: str
    url: str
    events: tuple[str, ...]  # ("*",) or event types
    description: str
    owner: str  # the id of the API key that made it, or "" (made on the command line)
    domains: tuple[str, ...]  # the sender domains whose events it takes; () = all
    enabled: bool
    disabled_reason: str | None
    created_at: str

    def wants(self, event_type: str, sender_domain: str) -> bool:
        """True when this endpoint is enabled, subscribed to `event_type`, and may see the
        events of emails sent from `sender_domain` (ASCII, lower case)."""
        subscribed = ALL_EVENTS in self.events or event_type in self.events
        in_scope = not self.domains or sender_domain in self.domains
        return self.enabled and subscribed and in_scope

    def as_json(self) -> dict[str, Any]:
        """The endpoint as the API and the CLI show it."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "description": self.description,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "domains": list(self.domains),
            "created_at": self.created_at,
        }


def new_endpoint_id() -> str:
    """`wh_` + 22 URL-safe random characters (128 bits)."""
    return ID_PREFIX + secrets.token_urlsafe(16)


def is_endpoint_id(value: str) -> bool:
    """True when `value` has the shape of an endpoint id (so it may name a Redis key)."""
    return _ENDPOINT_ID.fullmatch(value) is not None


def normalized_events(events: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The subscription as stored: `("*",)` when it names `*`, else the types in order,
    each once."""
    return (ALL_EVENTS,) if ALL_EVENTS in events else tuple(dict.fromkeys(events))


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _endpoint(endpoint_id: str, fields: dict[str, str]) -> Endpoint:
    return Endpoint(
        id=endpoint_id,
        url=fields["url"],
        events=tuple(json.loads(fields["events"])),
        description=fields.get("description", ""),
        owner=fields.get("owner", ""),
        domains=tuple(json.loads(fields.get("domains") or "[]")),
        enabled=fields.get("enabled", "1") == "1",
        disabled_reason=fields.get("disabled_reason") or None,
        created_at=fields.get("created_at", ""),
    )


def _owner_changes(endpoint: Endpoint, owners: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """The fields to change so `endpoint` matches its owner key in `owners` (none for an
    endpoint made on the command line, which has no owner)."""
    if not endpoint.owner:
        return {}
    domains = owners.get(endpoint.owner)
    if domains is None:
        return {"enabled": "0", "disabled_reason": OWNER_KEY_GONE} if endpoint.enabled else {}
    changes = {"domains": json.dumps(list(domains))} if domains != endpoint.domains else {}
    if not endpoint.enabled and endpoint.disabled_reason == OWNER_KEY_GONE:
        changes.update(enabled="1", disabled_reason="")
    return changes


class EndpointStore:
    """Reads and changes the endpoints of one queue; `box` is None without ENCRYPTION_KEY,
    and then nothing that makes or reads a secret can be done (`EncryptionKeyMissing`)."""

    def __init__(self, client: redis.Redis, queue_name: str, box: SecretBox | None) -> None:
        self._client = client
        self._queue_name = queue_name
        self._keys = PostboxKeys(queue_name)
        self._box = box
        self._update = client.register_script(_UPDATE)
        self._rotate = client.register_script(_ROTATE)

    def _require_box(self) -> SecretBox:
        if self._box is None:
            raise EncryptionKeyMissing()
        return self._box

    async def all(self) -> list[Endpoint]:
        """Every endpoint, oldest first."""
        ids = cast(list[str], await self._client.zrange(self._keys.webhooks(), 0, -1))
        async with self._client.pipeline(transaction=False) as pipe:
            for endpoint_id in ids:
                pipe.hgetall(self._keys.webhook(endpoint_id))
            found: list[dict[str, str]] = await pipe.execute() if ids else []
        return [_endpoint(i, fields) for i, fields in zip(ids, found, strict=True) if fields]

    async def get(self, endpoint_id: str) -> Endpoint | None:
        """One endpoint, or None if there is none with that id."""
        if not is_endpoint_id(endpoint_id):
            return None
        key = self._keys.webhook(endpoint_id)
        fields = cast(dict[str, str], await self._client.hgetall(key))  # decode_responses
        return _endpoint(endpoint_id, fields) if fields else None

    async def version(self) -> int:
        """The change counter: it moves whenever any endpoint is made, changed or deleted."""
        return int(await self._client.get(self._keys.webhooks_version()) or 0)

    async def create(
        self,
        url: str,
        events: tuple[str, ...],
        description: str = "",
        owner: str = "",
        domains: tuple[str, ...] = (),
    ) -> tuple[Endpoint, str]:
        """Make an endpoint (its URL already checked by `urls.check_url`); the endpoint and
        its signing secret, which is never returned again."""
        box = self._require_box()
        endpoint_id = new_endpoint_id()
        secret = new_signing_secret()
        now_ms = int(time.time() * 1000)
        fields = {
            "url": url,
            "events": json.dumps(list(normalized_events(events))),
            "description": description,
            "owner": owner,
            "domains": json.dumps(list(domains)),
            "created_at": _iso(now_ms),
            "enabled": "1",
            "disabled_reason": "",
            "secret": box.encrypt(secret, endpoint_id),
            "previous_secret": "",
            "previous_until_ms": "0",
            "version": "1",
        }
        # The group first: an endpoint that exists must not miss the events written while
        # its group is being made.
        await register_consumer(self._client, self._queue_name, CONSUMER_GROUP)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.webhook(endpoint_id), mapping=cast(dict[Any, Any], fields))
            pipe.zadd(self._keys.webhooks(), {endpoint_id: now_ms})
            pipe.incr(self._keys.webhooks_version())
            await pipe.execute()
        return _endpoint(endpoint_id, fields), secret

    async def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: tuple[str, ...] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> Endpoint | None:
        """Change the given fields; enabling clears the reason it was disabled. The endpoint
        as it is now, or None if it does not exist."""
        changes: dict[str, str] = {}
        if url is not None:
            changes["url"] = url
        if events is not None:
            changes["events"] = json.dumps(list(normalized_events(events)))
        if description is not None:
            changes["description"] = description
        if enabled is not None:
            changes["enabled"] = "1" if enabled else "0"
            changes["disabled_reason"] = "" if enabled else "disabled through the API"
        if changes and not await self._change(endpoint_id, changes):
            return None
        return await self.get(endpoint_id)

    async def sync_owners(self, owners: Mapping[str, tuple[str, ...]]) -> int:
        """Align every endpoint made by an API key with that key as configured now
        (`owners`: key id -> its sender domains, () for an unrestricted key): new domains
        are copied, an endpoint whose key is gone is disabled, and enabled again when the
        key returns. The number of endpoints changed."""
        changed = 0
        for endpoint in await self.all():
            changes = _owner_changes(endpoint, owners)
            if changes and await self._change(endpoint.id, changes):
                changed += 1
        return changed

    async def disable(self, endpoint_id: str, reason: str) -> None:
        """Stop deliveries to an endpoint (its receiver answered 410 Gone, say), with why."""
        await self._change(endpoint_id, {"enabled": "0", "disabled_reason": reason})

    async def _change(self, endpoint_id: str, changes: dict[str, str]) -> bool:
        if not is_endpoint_id(endpoint_id):
            return False
        args = [part for pair in changes.items() for part in pair]
        keys = [self._keys.webhook(endpoint_id), self._keys.webhooks_version()]
        return bool(await self._update(keys=keys, args=args))

    async def rotate_secret(self, endpoint_id: str) -> tuple[str, str] | None:
        """Give an endpoint a new signing secret; the old one signs beside it for 24 h.
        The new secret and when the old one stops (ISO), or None if there is no endpoint."""
        box = self._require_box()
        if not is_endpoint_id(endpoint_id):
            return None
        secret = new_signing_secret()
        until_ms = int(time.time() * 1000) + PREVIOUS_SECRET_SECONDS * 1000
        keys = [self._keys.webhook(endpoint_id), self._keys.webhooks_version()]
        args = [box.encrypt(secret, endpoint_id), str(until_ms)]
        if not await self._rotate(keys=keys, args=args):
            return None
        return secret, _iso(until_ms)

    async def signing_secrets(self, endpoint_id: str) -> list[str]:
        """The secrets to sign a delivery with: the current one, then the previous one while
        it is still valid. Empty if the endpoint does not exist."""
        box = self._require_box()
        names = ["secret", "previous_secret", "previous_until_ms"]
        stored = await self._client.hmget(self._keys.webhook(endpoint_id), names)
        current, previous, until_ms = cast(list[str | None], stored)
        if not current:
            return []
        found = [box.decrypt(current, endpoint_id)]
        if previous and int(until_ms or 0) > time.time() * 1000:
            found.append(box.decrypt(previous, endpoint_id))
        return found

    async def delete(self, endpoint_id: str) -> bool:
        """Delete an endpoint with its delivery queues and log; False if there was none."""
        if not is_endpoint_id(endpoint_id):
            return False
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.webhook(endpoint_id))
            pipe.zrem(self._keys.webhooks(), endpoint_id)
            pipe.delete(self._keys.webhook_log(endpoint_id))
            pipe.incr(self._keys.webhooks_version())
            deleted, *_ = await pipe.execute()
        await self._drop_deliveries(endpoint_id)
        return bool(deleted)

    async def _drop_deliveries(self, endpoint_id: str) -> None:
        """Delete the deliveries still queued or failed for a deleted endpoint, a chunk at a
        time (a backlog may be large); a crash part-way leaves only unreferenced keys."""
        for queue_key in (
            self._keys.webhook_due(endpoint_id),
            self._keys.webhook_failed(endpoint_id),
        ):
            while ids := cast(list[str], await self._client.zrange(queue_key, 0, _CHUNK - 1)):
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.delete(*(self._keys.webhook_delivery(i) for i in ids))
                    pipe.zrem(queue_key, *ids)
                    await pipe.execute()
            await self._client.delete(queue_key)
