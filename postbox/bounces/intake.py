"""What a report received by the bounce listener changes: the email's record, an event, and
for a hard bounce or a complaint, the suppression list.

The email and recipient come from the VERP token the report was sent to (for a complaint
sent to a fixed address, the token in the original's envelope sender), never from the
report's own words, and only once the token's HMAC checks out: a forged report, or one for
a token made elsewhere, changes nothing. A hard bounce suppresses its recipient in the scope
of the email, except a policy refusal (5.7.x) unless SUPPRESS_ON_POLICY_REFUSALS is set.
"""

from __future__ import annotations

import logging

import redis.asyncio as redis

from postbox.bounces.reports import HARD, RecipientReport, Report, parse_report
from postbox.bounces.tokens import TokenTarget, VerpTokens
from postbox.bounces.verp import VerpSigner
from postbox.config import Settings
from postbox.queue.bounce_records import BounceRecords
from postbox.queue.events import BOUNCED, COMPLAINED
from postbox.suppressions.entries import Reason, new_entry
from postbox.suppressions.store import SuppressionStore

logger = logging.getLogger(__name__)


class BounceIntake:
    """Turns received reports into records, events and suppressions."""

    def __init__(self, client: redis.Redis, settings: Settings, signer: VerpSigner) -> None:
        queue = settings.redis.queue_name
        self._signer = signer
        self._tokens = VerpTokens(client, queue, settings.bounces.token_ttl_days)
        self._records = BounceRecords(client, queue, settings.bounces.token_ttl_days * 86400)
        self._store = SuppressionStore(client, queue)
        self._suppressions = settings.suppressions

    async def take(self, rcpt_tos: list[str], raw: bytes) -> str:
        """Act on one received message; what was done, for the log."""
        report = parse_report(raw)
        if report is None or not report.recipients:
            return "ignored: not a bounce or complaint report"
        return await self.take_report(rcpt_tos, report)

    async def take_report(self, addresses: list[str], report: Report) -> str:
        """Act on a report sent to one of `addresses` (or naming them as its senders)."""
        target = await self._target(addresses + report.senders)
        if target is None:
            return "ignored: no valid VERP token"
        about = _about(report, target.recipient)
        if report.kind == "complaint":
            await self._complaint(target, about)
            return f"complaint about {target.email_id} from {target.recipient}"
        await self._bounce(target, about)
        return f"{about.bounce_type} bounce of {target.email_id} for {target.recipient}"

    async def _target(self, addresses: list[str]) -> TokenTarget | None:
        for address in addresses:
            token = self._signer.token_in(address)
            if token is None:
                continue
            found = await self._tokens.find(token)
            if found and self._signer.verify(token, found.email_id, found.recipient):
                return found
        return None

    async def _bounce(self, target: TokenTarget, about: RecipientReport) -> None:
        await self._records.record(
            BOUNCED,
            target.email_id,
            target.sender_domain,
            target.recipient,
            bounce_type=about.bounce_type,
            status=about.status,
            diagnostic=about.diagnostic,
        )
        policy = about.status.startswith("5.7.")
        if about.bounce_type == HARD and (
            not policy or self._suppressions.suppress_policy_refusals
        ):
            await self._suppress(target, Reason.HARD_BOUNCE, about.diagnostic or about.status)

    async def _complaint(self, target: TokenTarget, about: RecipientReport) -> None:
        kind = about.diagnostic.removeprefix("feedback-type: ")
        await self._records.record(
            COMPLAINED, target.email_id, target.sender_domain, target.recipient, feedback_type=kind
        )
        await self._suppress(target, Reason.COMPLAINT, about.diagnostic)

    async def _suppress(self, target: TokenTarget, reason: Reason, evidence: str) -> None:
        ttl = self._suppressions.ttl_seconds(reason)
        entry = new_entry(
            target.recipient, target.scope, reason, ttl, email_id=target.email_id, evidence=evidence
        )
        await self._store.add([entry])
        logger.info("Suppressed %s (%s, email %s)", target.recipient, reason, target.email_id)


def _about(report: Report, recipient: str) -> RecipientReport:
    """The report's part about `recipient` (a VERP transaction had only that one), or its
    first part when it names the recipient otherwise (a forwarding address)."""
    for found in report.recipients:
        if found.recipient.lower() == recipient.lower():
            return found
    return report.recipients[0]
