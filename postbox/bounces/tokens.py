"""What each VERP token names, in Redis: written by the worker before the transaction, read
by the bounce listener when a report comes back.

    postbox:<queue>:verp:<token> = <email id> \\n <recipient> \\n <scope> \\n <sender domain>

kept BOUNCE_TOKEN_TTL_DAYS (7 by default: MTAs give up on a message after 5 days at most, and
then bounce it). Each entry is about 200 bytes of Redis per recipient sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis

from postbox.queue.keys import PostboxKeys


@dataclass(frozen=True)
class TokenTarget:
    """The email and recipient a token names."""

    email_id: str
    recipient: str
    scope: str
    sender_domain: str


class VerpTokens:
    """Remembers and looks up what VERP tokens name."""

    def __init__(self, client: redis.Redis, queue_name: str, ttl_days: int) -> None:
        self._client = client
        self._keys = PostboxKeys(queue_name)
        self._ttl = ttl_days * 86400

    async def remember(self, pairs: list[tuple[str, TokenTarget]]) -> None:
        """Store (token, target) pairs, in one round trip."""
        async with self._client.pipeline(transaction=False) as pipe:
            for token, t in pairs:
                value = f"{t.email_id}\n{t.recipient}\n{t.scope}\n{t.sender_domain}"
                pipe.set(self._keys.verp_token(token), value, ex=self._ttl)
            await pipe.execute()

    async def find(self, token: str) -> TokenTarget | None:
        """What `token` names, or None (never made here, or expired)."""
        value = await self._client.get(self._keys.verp_token(token))
        if not value:
            return None
        parts = str(value).split("\n")
        return TokenTarget(*parts) if len(parts) == 4 else None
