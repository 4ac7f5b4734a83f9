"""What intake checks in the same round trip as its idempotency claims, before anything is
queued: the suppression list (postbox/api/suppression_screen.py screens with it).

A screen stages its reads on the claims' pipeline, then says from their replies which
recipients each email keeps. A recipient left out leaves the envelope only: the job id and
fingerprint, computed from the request, stay what they were, so the claims made in that
round trip hold for the emails that are queued; those of an email left with no recipient
are released (the producer does it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import redis.asyncio as redis
from redis.asyncio.client import Pipeline

if TYPE_CHECKING:  # the producer uses this module
    from postbox.queue.producer import PreparedEmail


@dataclass(frozen=True)
class Screened:
    """Per email screened, in order: what is left of it to enqueue (None: every recipient
    was left out), and the recipients left out."""

    kept: list[PreparedEmail | None]
    left_out: list[list[str]]


class IntakeScreen(Protocol):
    """Reads sent with the claims, and what they leave of the emails."""

    async def stage(self, client: redis.Redis, pipe: Pipeline) -> None:
        """Queue the reads on `pipe` (scripts registered on `client`)."""

    def screened(self, replies: list[Any]) -> Screened:
        """The emails as the staged reads' replies (in order) leave them."""


def leave_out(emails: list[PreparedEmail], found: list[list[str]]) -> Screened:
    """`emails` without, each, the recipients `found` for it."""
    kept: list[PreparedEmail | None] = []
    for email, left_out in zip(emails, found, strict=True):
        if not left_out:
            kept.append(email)
            continue
        rest = [r for r in email.data["recipients"] if r not in left_out]
        data = {**email.data, "recipients": rest}
        kept.append(dataclasses.replace(email, data=data) if rest else None)  # type: ignore[arg-type]
    return Screened(kept, found)


def unscreened(emails: Sequence[PreparedEmail]) -> Screened:
    """Every email as it is (no screen)."""
    return Screened(list(emails), [[] for _ in emails])
