"""The queue contract shared by the API and the workers: job name, job data, statuses, options.

The API renders the MIME message once, at enqueue time, so a job carries the exact bytes to
send and its SMTP envelope; a worker only streams them. Job data is plain JSON (Node BullMQ
tools can read it) and holds no secret.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NotRequired, TypedDict

from postbox.errors import error_classes

JOB_NAME = "send-email"
JOB_DATA_VERSION = 1
# A custom BullMQ backoff type, computed by the worker's strategy (exponential with jitter).
BACKOFF_TYPE = "postbox-jittered-exponential"


class EmailSummary(TypedDict):
    """What the status view shows about a message without parsing it again."""

    sender: str
    to: list[str]
    cc: list[str]
    subject: str
    tags: list[str]
    send_at: str | None


class EmailJobData(TypedDict):
    """The data of one `send-email` job."""

    v: int
    envelope_from: str
    recipients: list[str]
    message: str
    message_id: str
    accepted_at: str
    summary: EmailSummary
    # True when an address is not ASCII: the relay must offer SMTPUTF8 (RFC 6531).
    smtputf8: NotRequired[bool]


class EmailStatus(StrEnum):
    """The status of an email as the API reports it."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    CANCELED = "canceled"


def status_from_state(state: str, attempts_made: int, send_at_ahead: bool) -> EmailStatus | None:
    """Map a BullMQ job state to an email status; None for an unknown job.

    A delayed job is `scheduled` while its `send_at` is ahead, `retrying` after a failed
    attempt, and otherwise `queued` (postponed by a rate limit or a relay outage).
    """
    if state == "delayed":
        if attempts_made > 0:
            return EmailStatus.RETRYING
        return EmailStatus.SCHEDULED if send_at_ahead else EmailStatus.QUEUED
    return _STATE_STATUS.get(state)


_STATE_STATUS = {
    "waiting": EmailStatus.QUEUED,
    "wait": EmailStatus.QUEUED,
    "prioritized": EmailStatus.QUEUED,
    "paused": EmailStatus.QUEUED,
    "active": EmailStatus.SENDING,
    "completed": EmailStatus.SENT,
    "failed": EmailStatus.FAILED,
}


def default_job_options(max_attempts: int, backoff_ms: int, keep_completed: int) -> dict[str, Any]:
    """BullMQ options for every email job.

    Only the newest `keep_completed` completed jobs stay whole (for Bull Board, and the full
    status of what was just sent): what the dedup window keeps of every sent email is its
    compact record (records.py). Failed jobs stay until someone retries or discards them,
    since they are the dead-letter view.
    """
    return {
        "attempts": max_attempts,
        "backoff": {"type": BACKOFF_TYPE, "delay": backoff_ms},
        "removeOnComplete": {"count": keep_completed} if keep_completed else True,
        "removeOnFail": False,
    }


# The first word of a failed job's reason: why it is a dead letter. `stalled` is BullMQ's
# own: a job whose worker died too often.
DEAD_LETTER_CLASSES = (*error_classes(), "stalled")


def mail_options(data: EmailJobData) -> list[str]:
    """The options of the MAIL command the job needs (SMTPUTF8 for non-ASCII addresses)."""
    return ["SMTPUTF8"] if data.get("smtputf8") else []


def failure_reason(error_class: str, text: str) -> str:
    """The reason stored on a failed attempt: `rejected: 550 5.1.1 no such user`."""
    return f"{error_class}: {text}"


def split_failure_reason(reason: str | None) -> tuple[str, str]:
    """The (error class, text) of a stored reason; BullMQ's own reasons (a job that stalled
    too often) get the class `stalled`, anything else unknown `internal`."""
    reason = reason or ""
    head, sep, text = reason.partition(": ")
    if sep and head in DEAD_LETTER_CLASSES:
        return head, text
    if "stalled" in reason:
        return "stalled", reason
    return "internal", reason
