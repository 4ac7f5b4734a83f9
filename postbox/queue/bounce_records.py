"""What bounce and complaint reports said about an email's recipients, with their events.

A report accepted by the bounce listener (postbox/bounces/) is kept in the hash
`postbox:<queue>:bounces:<email id>` (recipient -> the latest report, JSON) for the dedup
window, where `GET /v1/emails/{id}` finds it, and the same call writes its `email.bounced`
or `email.complained` event (postbox/queue/events.py). A report delivered twice writes its
event twice: receivers deduplicate by recipient and status, as for any at-least-once event.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as redis

from postbox.queue.events import EMIT_EVENT_LUA
from postbox.queue.keys import PostboxKeys

# KEYS: the email's bounce hash, the stream, its consumers. ARGV: ttl, recipient, record,
# then the event: type, email id, sender domain, data.
_RECORD = (
    EMIT_EVENT_LUA
    + """
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[1])
emit_event(KEYS[2], KEYS[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
"""
)


class BounceRecords:
    """Writes reports about recipients, each with its event, and reads an email's."""

    def __init__(self, client: redis.Redis, queue_name: str, ttl_seconds: int) -> None:
        self._client = client
        self._keys = PostboxKeys(queue_name)
        self._ttl = ttl_seconds
        self._script = client.register_script(_RECORD)

    async def record(
        self, event_type: str, email_id: str, sender_domain: str, recipient: str, **about: str
    ) -> None:
        """Keep what a report said about `recipient` and write its event, in one call."""
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record = {"event": event_type, "at": at, **about}
        data = {"email_id": email_id, "to": [recipient], "recipient": recipient, **about}
        keys = [self._keys.bounces(email_id), self._keys.events(), self._keys.event_consumers()]
        args: list[str | int] = [
            self._ttl,
            recipient,
            _json(record),
            event_type,
            email_id,
            sender_domain,
            _json(data),
        ]
        await self._script(keys=keys, args=args)


async def load_reports(client: Any, queue_name: str, email_id: str) -> dict[str, Any]:
    """Per recipient, the latest report about it (empty when none came)."""
    found = cast(dict[str, str], await client.hgetall(PostboxKeys(queue_name).bounces(email_id)))
    return {recipient: json.loads(value) for recipient, value in found.items()}


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))
