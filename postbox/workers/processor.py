"""Deliver one email job: journal first, lock and rate limit, SMTP send, journal the answer.

The order is what makes the guarantees: a re-run reads the journal and sends only to
recipients still pending; no transaction starts before the job's lock is confirmed in Redis
(so a worker cut off from Redis, whose jobs another worker may take over, sends nothing); the
relay's 250 is journalled in the same Redis transaction as the job's completion; recipients
refused with 5xx are never tried again, those refused with 4xx are retried alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from postbox.errors import (
    DeliveryError,
    LockLost,
    PermanentDeliveryError,
    Postponed,
    RelayUnavailable,
)
from postbox.errors import TemporaryDeliveryError as Deferred
from postbox.queue.consumer import Completion, EmailJob
from postbox.queue.contract import mail_options
from postbox.queue.journal import EMPTY, JournalEntry, SendJournal
from postbox.workers.circuit import retry_at_ms
from postbox.workers.delivery_events import failure_event, sent_event
from postbox.workers.failures import is_permanent
from postbox.workers.metrics import WorkerMetrics
from postbox.workers.rate_limit import SendRateLimiter
from postbox.workers.relays import Delivery, Relays, Route
from postbox.workers.smtp_pool import SendResult
from postbox.workers.suppression_gate import SuppressionGate
from postbox.workers.verp_sender import VerpSender

logger = logging.getLogger(__name__)

# How often a re-run looks again for the journal of an earlier run's unreported send.
UNREPORTED_SEND_RECHECK_MS = 2000


class EmailProcessor:
    """Sends each job's pre-rendered message to the recipients that still need it."""

    def __init__(
        self,
        relays: Relays,
        journal: SendJournal,
        limiter: SendRateLimiter,
        *,
        instance_id: str,
        metrics: WorkerMetrics,
        suppressions: SuppressionGate | None = None,
        verp: VerpSender | None = None,
    ) -> None:
        self._relays = relays
        self._suppressions = suppressions
        self._verp = verp
        self._journal = journal
        self._limiter = limiter
        self._instance_id = instance_id
        self._metrics = metrics
        # Job runs that ended sent, failed or retried (not postponed), for the registry.
        self.processed = 0

    async def process(self, job: EmailJob) -> Completion:
        """Deliver `job`; the completion's result becomes the job's result. Each run is
        counted by how it ended (postponements where their reason is known, in `_send`)."""
        self._metrics.in_progress.inc()
        try:
            result = await self._deliver(job)
        except Postponed:
            raise
        except LockLost:
            self._metrics.outcome("postponed", "lock_lost")
            raise
        except PermanentDeliveryError as exc:
            self._ended("failed", exc.error_class)
            raise
        except Exception as exc:
            error_class = exc.error_class if isinstance(exc, DeliveryError) else "internal"
            self._ended("failed" if job.attempt >= job.max_attempts else "retried", error_class)
            raise
        finally:
            self._metrics.in_progress.dec()
        self.processed += 1
        return result

    def _ended(self, outcome: str, reason: str) -> None:
        self.processed += 1
        self._metrics.outcome(outcome, reason)

    async def _deliver(self, job: EmailJob) -> Completion:
        entry = await self._journal.load(job.id) if job.ran_before else EMPTY
        pending = entry.pending(job.data["recipients"])
        if not pending:
            return self._journalled(job, entry)
        if entry.unreported_send_ms:
            self._metrics.outcome("postponed", "unreported_send")
            logger.warning(
                "Email %s: an earlier run may have sent it without reporting; waiting %d ms "
                "more for its journal",
                job.id,
                entry.unreported_send_ms,
            )
            raise Postponed(_recheck_at_ms(entry.unreported_send_ms), "an earlier run's send")
        suppressed = await self._suppressions.suppressed(job, pending) if self._suppressions else []
        if suppressed:
            pending = [r for r in pending if r not in suppressed]
            if not pending:
                return self._sent_to_nobody(job, entry, suppressed)
        if self._relays.routed:
            return await self._deliver_routed(job, entry, pending, suppressed)
        result = await self._send(job, pending)
        return await self._settle(job, entry, pending, result, suppressed=suppressed)

    def _sent_to_nobody(
        self, job: EmailJob, entry: JournalEntry, suppressed: list[str]
    ) -> Completion:
        """Every recipient still pending is now suppressed: no transaction. An email some
        of whose recipients an earlier run reached completes as that run's send."""
        if entry.accepted or entry.rejected or self._suppressions is None:
            return self._journalled(job, entry)
        logger.info("Email %s not sent: every recipient is suppressed", job.id)
        self._metrics.outcome("suppressed", "suppression_list")
        result = {**self._result(entry, None, None), "suppressed": suppressed}
        result["suppressed_all"] = True
        return Completion(result, (self._suppressions.sent_to_nobody(job, suppressed),))

    async def _deliver_routed(
        self, job: EmailJob, entry: JournalEntry, pending: list[str], suppressed: list[str]
    ) -> Completion:
        """SMTP_ROUTES: one transaction per route, each part's answers journalled before the
        next starts, so a crash between parts re-sends none that a relay accepted."""
        *parts, (route, last) = self._relays.split(job.data["envelope_from"], pending)
        earlier = EarlierParts()
        for relays, recipients in parts:
            delivery = await self._send(job, recipients, relays)
            accepted, rejected, deferred = _answers(recipients, delivery.result)
            attempt = self._attempt(job, "part_sent", None, reply=delivery.result.reply)
            attempt.update(relay=delivery.relay, recipients=recipients)
            await self._journal.record(job.id, accepted, rejected, attempt)
            entry = entry.merged(accepted, rejected, delivery.relay)
            earlier.deferred.update(deferred)
        delivery = await self._send(job, last, route)
        return await self._settle(job, entry, last, delivery, earlier, suppressed=suppressed)

    def _journalled(self, job: EmailJob, entry: JournalEntry) -> Completion:
        """A re-run of a job whose every recipient has the relay's final answer already."""
        if not entry.accepted:
            # The failed attempt wrote its `email.failed`; the run that got it died before
            # BullMQ recorded the dead letter.
            raise PermanentDeliveryError("All recipients refused: " + _listing(entry.rejected))
        logger.info("Email %s was already accepted by the relay; completing", job.id)
        self._metrics.outcome("sent", "journal")
        reply = next(iter(entry.accepted.values()), None)
        attempt = self._attempt(job, "sent", None, reply=reply)
        relay = entry.only_relay
        relay_of = None if relay else entry.relays
        sent = sent_event(job, entry.accepted, entry.rejected, reply, relay, relay_of=relay_of)
        settle = self._journal.settle_call(
            job.id, {}, {}, attempt, reply=reply, refused_total=len(entry.rejected), sent=sent
        )
        return Completion(self._result(entry, None, relay), (settle,))

    async def _send(
        self, job: EmailJob, pending: list[str], route: Route | None = None
    ) -> Delivery:
        data = job.data
        limiter = self._limiter

        async def ready() -> None:
            # Once a connection is in hand, right before the transaction. The lock first:
            # it waits out a Redis outage, which the rate limit's check would fail on.
            await job.confirm_lock()
            if limiter.enabled:
                await limiter.acquire(pending)

        try:
            if self._verp is not None:
                delivery = await self._verp.send(job, pending, ready, mail_options(data), route)
            else:
                delivery = await self._relays.send(
                    data["envelope_from"],
                    pending,
                    data["message"],
                    ready,
                    mail_options(data),
                    route=route,
                )
        except Postponed:
            self._metrics.outcome("postponed", "rate_limit")
            await self._journal.clear_mark(job.id)  # confirmed, then held back: not sent
            raise
        except RelayUnavailable as exc:
            # `relay_unavailable`, or `relay_auth` for a refused login (RelayAuthFailed).
            self._metrics.outcome("postponed", f"relay_{exc.error_class}")
            await self._journal.record_attempt(job.id, self._attempt(job, exc.error_class, exc))
            logger.warning("Email %s postponed: %s", job.id, exc)
            raise Postponed(retry_at_ms(), str(exc)) from exc
        except DeliveryError as exc:
            permanent = isinstance(exc, PermanentDeliveryError)
            if permanent and exc.smtp_code and len(pending) == 1:
                # A refusal of DATA speaks for the message's one recipient only then.
                await self._feed(job, {pending[0]: str(exc)})
            event = failure_event(job, exc.error_class, str(exc), permanent=permanent)
            attempt = self._attempt(job, exc.error_class, exc)
            await self._journal.record_attempt(job.id, attempt, event)
            logger.warning(
                "Email %s attempt %d/%d failed: %s", job.id, job.attempt, job.max_attempts, exc
            )
            raise
        return delivery

    async def _settle(
        self,
        job: EmailJob,
        entry: JournalEntry,
        pending: list[str],
        delivery: Delivery,
        earlier: EarlierParts | None = None,
        *,
        suppressed: list[str] | None = None,
    ) -> Completion:
        result, relay = delivery.result, delivery.relay
        reply = result.reply
        accepted, rejected, deferred = _answers(pending, result)
        if rejected:
            await self._feed(job, rejected)
        if earlier is not None:
            deferred = {**earlier.deferred, **deferred}
        outcome = "deferred" if deferred else "sent" if accepted else "rejected"
        attempt = self._attempt(job, outcome, None, reply=reply, refused={**rejected, **deferred})
        attempt["relay"] = relay
        entry = entry.merged(accepted, rejected, relay)
        # Each recipient's relay, when not all went through this one (a split email, or an
        # earlier run's acceptances through another relay).
        relay_of = None if entry.only_relay == relay else entry.relays
        if deferred or not entry.accepted:
            failure = (
                Deferred("Recipients deferred: " + _listing(deferred))
                if deferred
                else PermanentDeliveryError("All recipients refused: " + _listing(rejected))
            )
            event = failure_event(job, failure.error_class, str(failure), permanent=not deferred)
            await self._journal.record(job.id, accepted, rejected, attempt, event)
            raise failure
        logger.info("Email %s sent on attempt %d: %s", job.id, job.attempt, reply)
        self._metrics.sent()
        # Written in the completion's round trip, right after the completion (one MULTI).
        sent = sent_event(
            job,
            entry.accepted,
            entry.rejected,
            reply,
            relay,
            relay_of=relay_of,
            suppressed=suppressed,
        )
        settle = self._journal.settle_call(
            job.id,
            accepted,
            rejected,
            attempt,
            reply=reply,
            refused_total=len(entry.rejected),
            sent=sent,
        )
        done = self._result(entry, reply, relay)
        return Completion({**done, "suppressed": suppressed} if suppressed else done, (settle,))

    async def _feed(self, job: EmailJob, refusals: dict[str, str]) -> None:
        """Suppress the refused recipients whose mailbox does not exist. Best effort: the
        journal write that follows must happen, and the relay would refuse them again."""
        if self._suppressions is None:
            return
        try:
            await self._suppressions.refused(job, refusals)
        except (RedisError, OSError) as exc:
            logger.warning("Email %s: could not suppress refused recipients: %s", job.id, exc)

    def _result(self, entry: JournalEntry, reply: str | None, relay: str | None) -> dict[str, Any]:
        last_reply = reply or next(iter(entry.accepted.values()), None)
        result = {
            "smtp_reply": last_reply,
            "relay": relay,
            "accepted": sorted(entry.accepted),
            "refused": entry.rejected,
            "instance": self._instance_id,
        }
        if entry.only_relay != relay and entry.relays:
            result["relays"] = entry.relays  # not all through `relay`: each recipient's
        return result

    def _attempt(
        self,
        job: EmailJob,
        outcome: str,
        error: DeliveryError | None,
        reply: str | None = None,
        refused: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "attempt": job.attempt,
            "at": datetime.now(UTC).isoformat(),
            "instance": self._instance_id,
            "outcome": outcome,
        }
        if error is not None:
            record["smtp_code"] = error.smtp_code
            record["error"] = str(error)
        if reply is not None:
            record["smtp_reply"] = reply
        if refused:
            record["refused"] = refused
        return record


@dataclass
class EarlierParts:
    """What the parts before the last of a split email (SMTP_ROUTES) left to report: the
    recipients deferred (the journal entry has the relay of each accepted one)."""

    deferred: dict[str, str] = field(default_factory=dict)


def _answers(
    pending: list[str], result: SendResult
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The recipients the relay accepted, refused for good (5xx) and for now (4xx)."""
    reply = result.reply
    accepted = {r: reply for r in pending if r not in result.refused and reply is not None}
    rejected = {r: str(x) for r, x in result.refused.items() if is_permanent(x.code)}
    deferred = {r: str(x) for r, x in result.refused.items() if not is_permanent(x.code)}
    return accepted, rejected, deferred


def _listing(replies: dict[str, str]) -> str:
    return "; ".join(f"{rcpt}: {reply}" for rcpt, reply in replies.items())


def _recheck_at_ms(mark_left_ms: int) -> int:
    """When to look again for an earlier run's journal: soon (its worker may be back), and
    never later than its send mark ends."""
    return int(time.time() * 1000) + min(mark_left_ms, UNREPORTED_SEND_RECHECK_MS)
