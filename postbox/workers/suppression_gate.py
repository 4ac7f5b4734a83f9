"""The worker's side of the suppression list: the last look before a transaction.

An address suppressed after its email was accepted (a bounce or a complaint about an
earlier email, an unsubscribe) must not get it: right before the send, one HMGET says which
pending recipients are now suppressed; they are left out, and an email left with nobody
completes without a transaction, with its record and `email.suppressed` event written in
the completion's own transaction.
"""

from __future__ import annotations

import redis.asyncio as redis

from postbox.queue.consumer import EmailJob
from postbox.queue.events import sender_domain
from postbox.queue.suppressed import RecordWrite, SuppressedEmail, SuppressedRecords
from postbox.suppressions.store import SuppressionStore


class SuppressionGate:
    """Finds the suppressed recipients of a job and records a job sent to nobody."""

    def __init__(self, client: redis.Redis, queue_name: str, record_ttl_seconds: int) -> None:
        self._store = SuppressionStore(client, queue_name)
        self._records = SuppressedRecords(client, queue_name, record_ttl_seconds)

    async def suppressed(self, job: EmailJob, pending: list[str]) -> list[str]:
        """The recipients of `pending` that are on the list for this job's sender domain."""
        return await self._store.suppressed(sender_domain(job.data), pending)

    def sent_to_nobody(self, job: EmailJob, suppressed: list[str]) -> RecordWrite:
        """The write that goes with the completion of a job sent to nobody."""
        data = {**job.data, "recipients": suppressed}
        email = SuppressedEmail(job.id, data, suppressed)  # type: ignore[arg-type]
        return self._records.record_call(email, job.attempt)
