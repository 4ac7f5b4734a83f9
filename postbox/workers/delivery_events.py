"""The events a delivery attempt writes (postbox/queue/events.py), built from its job.

An attempt ends as `email.sent` (the relay accepted the message for some or all recipients),
`email.deferred` (it failed and BullMQ will try again: when, from the job's backoff) or
`email.failed` (it failed for good: a permanent refusal, or the last attempt).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postbox.queue import events
from postbox.queue.consumer import EmailJob, retry_delay_ms
from postbox.queue.events import NewEvent


def sent_event(
    job: EmailJob,
    accepted: dict[str, str],
    refused: dict[str, str],
    reply: str | None,
    relay: str | None = None,
    *,
    relay_of: dict[str, str] | None = None,
) -> NewEvent:
    """`email.sent`, with each recipient's answer and the relay that accepted the email (None
    when an earlier run's journal said so: that run's attempt line names it); for an email
    split over several routes, `relay_of` gives each accepted recipient's."""
    recipients: list[dict[str, str | None]] = [
        {"address": address, "status": "accepted", "reply": answer}
        for address, answer in accepted.items()
    ]
    if relay_of:
        for recipient in recipients:
            recipient["relay"] = relay_of.get(str(recipient["address"]), relay)
    recipients += [
        {"address": address, "status": "refused", "reply": answer}
        for address, answer in refused.items()
    ]
    return events.email_event(
        events.SENT,
        job.data,
        job.id,
        job.attempt,
        recipients=recipients,
        reply=reply,
        relay=relay,
    )


def failure_event(job: EmailJob, error_class: str, reply: str, *, permanent: bool) -> NewEvent:
    """`email.failed` when this failure ends the email, else `email.deferred` with the time
    of the next attempt."""
    if permanent or job.attempt >= job.max_attempts:
        return events.email_event(
            events.FAILED, job.data, job.id, job.attempt, error_class=error_class, reply=reply
        )
    delay = timedelta(milliseconds=retry_delay_ms(job.id, job.attempt, job.backoff_ms))
    next_at = (datetime.now(UTC) + delay).isoformat(timespec="milliseconds")
    return events.email_event(
        events.DEFERRED,
        job.data,
        job.id,
        job.attempt,
        error_class=error_class,
        reply=reply,
        next_attempt_at=next_at.replace("+00:00", "Z"),
    )
