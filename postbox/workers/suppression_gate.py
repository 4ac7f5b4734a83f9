"""The worker's side of the suppression list: the last look before a transaction.

An address suppressed after its email was accepted (a bounce or a complaint about an
earlier email, an unsubscribe) must not get it: right before the send, an HMGET says which
pending recipients are now suppressed; they are left out, and an email left with nobody
completes without a transaction, with its record and `email.suppressed` event written in
the completion's own transaction. The jobs of a worker that come to this check while one
HMGET is in flight share the next (group commit): one HMGET per job was ~16 % of a
draining worker's busy time (bench.profile, 20,000 jobs).
"""

from __future__ import annotations

import logging

import redis.asyncio as redis

from postbox.config.suppressions import SuppressionSettings
from postbox.group_commit import GroupCommit
from postbox.queue.connection import UNAVAILABLE_ERRORS
from postbox.queue.consumer import EmailJob
from postbox.queue.events import sender_domain
from postbox.queue.suppressed import RecordWrite, SuppressedEmail, SuppressedRecords
from postbox.suppressions.entries import GLOBAL, Reason, new_entry
from postbox.suppressions.status_codes import is_hard_bounce
from postbox.suppressions.store import SuppressionStore

logger = logging.getLogger(__name__)
# Reads retried after the lock's confirmation said Redis answers again; then the error stands.
_OUTAGE_RETRIES = 3


class SuppressionGate:
    """Finds the suppressed recipients of a job and records a job sent to nobody."""

    def __init__(
        self,
        client: redis.Redis,
        queue_name: str,
        record_ttl_seconds: int,
        settings: SuppressionSettings,
    ) -> None:
        self._store = SuppressionStore(client, queue_name)
        self._lookups: GroupCommit[tuple[str, list[str]], list[str]] = GroupCommit(
            self._store.suppressed_each
        )
        self._records = SuppressedRecords(client, queue_name, record_ttl_seconds)
        self._settings = settings

    async def suppressed(self, job: EmailJob, pending: list[str]) -> list[str]:
        """The recipients of `pending` that are on the list for this job's sender domain.

        Redis unreachable is waited out, not failed on: an outage must not spend an attempt
        (in a 15 s cut, failing here spent attempts on 15 of 1,500 emails and turned some
        into dead letters). The lock's confirmation is what waits (it retries until Redis
        answers, and raises `LockLost` if the lock went meanwhile)."""
        asked = (sender_domain(job.data), pending)
        for _ in range(_OUTAGE_RETRIES):
            try:
                return await self._lookups.submit(asked)
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("Email %s: suppression list unreadable (%s); waiting", job.id, exc)
                await job.confirm_lock()
        return await self._lookups.submit(asked)

    def sent_to_nobody(self, job: EmailJob, suppressed: list[str]) -> RecordWrite:
        """The write that goes with the completion of a job sent to nobody."""
        data = {**job.data, "recipients": suppressed}
        email = SuppressedEmail(job.id, data, suppressed)  # type: ignore[arg-type]
        return self._records.record_call(email, job.attempt)

    async def refused(self, job: EmailJob, replies: dict[str, str]) -> list[str]:
        """Suppress (hard_bounce) the recipients whose 5xx says their mailbox does not
        exist; the addresses suppressed. Only on refusals: a send costs nothing here."""
        if not self._settings.suppress_hard_refusals:
            return []
        policy = self._settings.suppress_policy_refusals
        gone = {
            r: reply
            for r, reply in replies.items()
            if is_hard_bounce(reply, policy_suppresses=policy)
        }
        if not gone:
            return []
        scope = job.data.get("suppression_scope", GLOBAL)
        ttl = self._settings.ttl_seconds(Reason.HARD_BOUNCE)
        entries = [
            new_entry(r, scope, Reason.HARD_BOUNCE, ttl, email_id=job.id, evidence=reply)
            for r, reply in gone.items()
        ]
        await self._store.add(entries)
        logger.info("Email %s: suppressed %d recipient(s) as hard bounces", job.id, len(gone))
        return list(gone)
