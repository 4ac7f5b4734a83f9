"""Intake's side of the suppression list: drop suppressed recipients before anything is queued.

One Redis call for a whole request finds every suppressed recipient (an HMGET for one email,
one script call for a batch: suppressions/store.py). A suppressed recipient leaves the
envelope only: the headers stay as written, and the job id, computed from the request, is
what it would have been. An email left with no recipient is not queued; its record and
`email.suppressed` event are written in one more round trip, only when there is such an
email.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import redis.asyncio as redis

from postbox.api.auth import current_key
from postbox.api.extension import state
from postbox.queue.events import sender_domain
from postbox.queue.producer import PreparedEmail
from postbox.queue.suppressed import SuppressedEmail, SuppressedRecords
from postbox.suppressions.store import SuppressionStore


@dataclass(frozen=True)
class Screened:
    """The emails still to enqueue (each without its suppressed recipients), and per job
    id the recipients left out; `sent_to_nobody` had every recipient left out."""

    to_enqueue: list[PreparedEmail]
    suppressed: dict[str, list[str]]
    sent_to_nobody: set[str] = field(default_factory=set)


def screen(emails: list[PreparedEmail]) -> Screened:
    """Leave suppressed recipients out of `emails`; record the emails that go to nobody."""
    current = state()
    queue_name = current.settings.redis.queue_name
    window = current.settings.dedup_window_seconds

    if current_key().allowed_from:
        emails = [_scoped(email) for email in emails]

    async def run(client: redis.Redis) -> Screened:
        store = SuppressionStore(client, queue_name)
        asked = [(sender_domain(e.data), e.data["recipients"]) for e in emails]
        found = await store.suppressed_many(asked)
        screened = _split(emails, found)
        nobody = [
            SuppressedEmail(e.job_id, e.data, found[i])
            for i, e in enumerate(emails)
            if e.job_id in screened.sent_to_nobody
        ]
        if nobody:
            await SuppressedRecords(client, queue_name, window).record_many(nobody)
        return screened

    return current.gateway.with_client(run)


def _scoped(email: PreparedEmail) -> PreparedEmail:
    """The email with the scope its automatic suppressions take (a restricted key's)."""
    data = {**email.data, "suppression_scope": sender_domain(email.data)}
    return dataclasses.replace(email, data=data)  # type: ignore[arg-type]


def _split(emails: list[PreparedEmail], found: list[list[str]]) -> Screened:
    kept: list[PreparedEmail] = []
    suppressed: dict[str, list[str]] = {}
    nobody: set[str] = set()
    for email, left_out in zip(emails, found, strict=True):
        suppressed[email.job_id] = left_out
        if not left_out:
            kept.append(email)
            continue
        rest = [r for r in email.data["recipients"] if r not in left_out]
        if rest:
            data = {**email.data, "recipients": rest}
            kept.append(dataclasses.replace(email, data=data))  # type: ignore[arg-type]
        else:
            nobody.add(email.job_id)
    return Screened(kept, suppressed, nobody)


def sent_to_nobody_body(email: PreparedEmail, left_out: list[str]) -> dict[str, object]:
    """The answer for an email every recipient of which is suppressed: accepted, not queued."""
    return {
        "id": email.job_id,
        "message_id": email.data["message_id"],
        "status": "suppressed",
        "duplicate": False,
        "suppressed": left_out,
    }
