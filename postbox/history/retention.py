"""Retention: records older than EMAIL_HISTORY_DAYS are deleted, a few hundred at a time.

Whichever instance holds the Redis lease (SET NX PX) does the deleting, so two recorders
never delete the same rows at once; each small transaction holds its row locks for a few
milliseconds, so searches and the recorder's writes never wait long behind it.
"""

from __future__ import annotations

import secrets
import time

import redis.asyncio as redis
from sqlalchemy import Connection, Engine, delete, select

from postbox.history import schema
from postbox.history.database import unavailable_as_error
from postbox.queue.keys import PostboxKeys

BATCH = 500
LEASE_MS = 60_000


def delete_before(engine: Engine, cutoff_ms: int, batch: int = BATCH) -> int:
    """Delete the records of emails accepted before `cutoff_ms`, `batch` emails per
    transaction; how many emails went."""
    deleted = 0
    while True:
        with unavailable_as_error(), engine.begin() as connection:
            query = select(schema.emails.c.id).where(schema.emails.c.created_ms < cutoff_ms)
            ids = list(connection.scalars(query.limit(batch)))
            delete_emails(connection, ids)
        deleted += len(ids)
        if len(ids) < batch:
            return deleted


def delete_emails(connection: Connection, ids: list[str]) -> None:
    """Delete every row of the emails `ids` (inside the caller's transaction)."""
    if not ids:
        return
    for table, column in (
        (schema.events, schema.events.c.email_id),
        (schema.bodies, schema.bodies.c.email_id),
        (schema.tags, schema.tags.c.email_id),
        (schema.recipients, schema.recipients.c.email_id),
        (schema.emails, schema.emails.c.id),
    ):
        connection.execute(delete(table).where(column.in_(ids)))


class RetentionLease:
    """The lease that makes one instance at a time the deleter."""

    def __init__(self, client: redis.Redis, queue_name: str) -> None:
        self._client = client
        self._key = PostboxKeys(queue_name).history_retention_lease()
        self._token = secrets.token_hex(8)

    async def acquire(self) -> bool:
        """True when this instance holds the lease now (taken, or renewed)."""
        if await self._client.set(self._key, self._token, nx=True, px=LEASE_MS):
            return True
        if await self._client.get(self._key) == self._token:
            await self._client.pexpire(self._key, LEASE_MS)
            return True
        return False


def cutoff_ms(days: int, now: float | None = None) -> int:
    """The acceptance time (ms) before which records are expired."""
    return int(((now or time.time()) - days * 86400) * 1000)
