"""Intake's side of the suppression list: drop suppressed recipients before anything is queued.

The lookup for a whole request (an HMGET for one email, one script call for a batch:
suppressions/store.py) rides in the same round trip as the idempotency claims
(queue/screening.py). A suppressed recipient leaves the envelope only: the headers stay as
written, and the job id, computed from the request, is what it would have been. An email
left with no recipient is not queued: its claim is released, and its record and
`email.suppressed` event written, in two more round trips only when there is such an email.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import Pipeline

from postbox.api.auth import current_key
from postbox.api.extension import state
from postbox.queue.events import sender_domain
from postbox.queue.producer import Enqueued, PreparedEmail
from postbox.queue.screening import Screened, leave_out
from postbox.suppressions.store import Lookup, SuppressionStore


class SuppressionScreen:
    """Leaves out of each email the recipients the suppression list holds for it."""

    def __init__(self, queue_name: str, emails: list[PreparedEmail]) -> None:
        self._queue_name = queue_name
        self._emails = emails
        self._read: Lookup | None = None

    async def stage(self, client: redis.Redis, pipe: Pipeline) -> None:
        asked = [(sender_domain(e.data), e.data["recipients"]) for e in self._emails]
        self._read = await SuppressionStore(client, self._queue_name).stage_lookup(pipe, asked)

    def screened(self, replies: list[Any]) -> Screened:
        assert self._read is not None, "stage first"
        return leave_out(self._emails, self._read(replies[0]))


def screen_and_enqueue(emails: list[PreparedEmail]) -> Enqueued:
    """Enqueue `emails` without their suppressed recipients; those left with none are
    recorded instead."""
    current = state()
    if current_key().allowed_from:
        emails = [_scoped(email) for email in emails]
    screen = SuppressionScreen(current.settings.redis.queue_name, emails)
    return current.gateway.enqueue(emails, screen)


def _scoped(email: PreparedEmail) -> PreparedEmail:
    """The email with the scope its automatic suppressions take (a restricted key's)."""
    data = {**email.data, "suppression_scope": sender_domain(email.data)}
    return dataclasses.replace(email, data=data)  # type: ignore[arg-type]


def sent_to_nobody_body(email: PreparedEmail, left_out: list[str]) -> dict[str, object]:
    """The answer for an email every recipient of which is suppressed: accepted, not queued."""
    return {
        "id": email.job_id,
        "message_id": email.data["message_id"],
        "status": "suppressed",
        "duplicate": False,
        "suppressed": left_out,
    }
