"""Sending with VERP: one SMTP transaction per recipient, each from its own envelope sender.

A bounce goes to the envelope sender (Return-Path), so with `bounces+<token>@BOUNCE_DOMAIN`
per recipient the listener knows which email and recipient bounced without trusting what
the report says. The cost: an email to N recipients is N transactions (N MAIL, RCPT and
DATA, the message streamed N times) instead of one, and one Redis round trip first, for the
tokens. An email to one recipient, the usual case, costs the same as without.

A later transaction that fails after an earlier one was accepted must not lose that
acceptance (the journal would not know it, and a retry would send again): a refusal for good
(5xx) is that recipient's answer and the others are still sent to; any other failure reports
the recipients not yet sent deferred (retried alone) instead of failing the whole send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeGuard

import redis.asyncio as redis

from postbox.bounces.tokens import TokenTarget, VerpTokens
from postbox.bounces.verp import VerpSigner
from postbox.config import Settings
from postbox.errors import DeliveryError, LockLost, PermanentDeliveryError, RelayMisconfigured
from postbox.queue.consumer import EmailJob
from postbox.queue.events import sender_domain
from postbox.workers.relays import Delivery, Relays, Route
from postbox.workers.smtp_pool import Reply, SendResult

NOT_TRIED = 451


class VerpSender:
    """Sends a job's message to each recipient apart, with its VERP envelope sender."""

    def __init__(self, relays: Relays, signer: VerpSigner, tokens: VerpTokens) -> None:
        self._relays = relays
        self._signer = signer
        self._tokens = tokens

    async def send(
        self,
        job: EmailJob,
        recipients: list[str],
        ready: Callable[[], Awaitable[None]],
        mail_options: Sequence[str],
        route: Route | None = None,
    ) -> Delivery:
        """Deliver to every recipient; raises like `Relays.send` only while nothing was
        accepted yet. The relay named is the last one that answered."""
        await self._remember(job, recipients)
        relay = ""
        reply: str | None = None
        refused: dict[str, Reply] = {}
        for index, recipient in enumerate(recipients):
            sender = self._signer.address(job.id, recipient)
            # The first transaction takes the rate limit for every recipient; the others
            # only confirm the lock.
            check = ready if index == 0 else job.confirm_lock
            try:
                one = await self._relays.send(
                    sender, [recipient], job.data["message"], check, mail_options, route=route
                )
            except (DeliveryError, LockLost) as exc:
                last = index == len(recipients) - 1
                if _refusal(exc) and (reply is not None or not last):
                    # This recipient's own answer, final: the others are still sent to.
                    refused[recipient] = Reply(exc.smtp_code or 550, str(exc))
                    continue
                if reply is None:
                    raise
                for rest in recipients[index:]:
                    refused[rest] = Reply(NOT_TRIED, f"not tried yet: {exc}")
                break
            relay = one.relay
            refused.update(one.result.refused)
            reply = one.result.reply or reply
        return Delivery(relay, SendResult(reply, refused))

    async def _remember(self, job: EmailJob, recipients: list[str]) -> None:
        scope = job.data.get("suppression_scope", "*")
        domain = sender_domain(job.data)
        await self._tokens.remember(
            [
                (self._signer.token(job.id, r), TokenTarget(job.id, r, scope, domain))
                for r in recipients
            ]
        )


def _refusal(exc: Exception) -> TypeGuard[PermanentDeliveryError]:
    """A relay's refusal for good of one transaction, not of the relay as configured."""
    return isinstance(exc, PermanentDeliveryError) and not isinstance(exc, RelayMisconfigured)


def verp_sender(settings: Settings, client: redis.Redis, relays: Relays) -> VerpSender | None:
    """The VERP sender when BOUNCE_DOMAIN is set (the settings then hold ENCRYPTION_KEY)."""
    domain, key = settings.bounces.domain, settings.webhooks.encryption_key
    if domain is None or key is None:
        return None
    tokens = VerpTokens(client, settings.redis.queue_name, settings.bounces.token_ttl_days)
    return VerpSender(relays, VerpSigner(key, domain), tokens)
