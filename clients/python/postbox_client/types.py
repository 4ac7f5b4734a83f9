"""The shapes of Postbox's answers, as typed dicts (the JSON as it comes, typed).

Fields Postbox may add later arrive too; only those listed here are typed.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class Accepted(TypedDict):
    """An accepted email (`202`), or a duplicate of one already accepted (`200`)."""

    id: str
    message_id: str
    status: str
    duplicate: bool


class BatchResult(TypedDict):
    """One item of a batch's answer: accepted, or `error` (a reused idempotency key)."""

    index: int
    id: str
    message_id: NotRequired[str]
    status: NotRequired[str]
    duplicate: NotRequired[bool]
    error: NotRequired[dict[str, str]]


class Delivery(TypedDict):
    """What the relay answered: `accepted` recipients, `refused` ones with the reply, and
    `relays`: the relay (SMTP_RELAYS' name) that accepted each accepted recipient."""

    smtp_reply: str | None
    accepted: list[str]
    refused: dict[str, str]
    relay: NotRequired[str | None]
    relays: NotRequired[dict[str, str]]


class EmailStatus(TypedDict):
    """`GET /v1/emails/{id}`: status (queued, scheduled, sending, retrying, sent, failed)."""

    id: str
    status: str
    attempts: int
    message_id: str | None
    accepted_at: str | None
    finished_at: str | None
    last_error: str | None
    error_class: str | None
    delivery: Delivery
    history: list[dict[str, Any]]
    subject: NotRequired[str]
    to: NotRequired[list[str]]
    tags: NotRequired[list[str]]
    send_at: NotRequired[str | None]


class DeadLetter(TypedDict):
    """An email that failed for good, with the relay's reason."""

    id: str
    failed_at: str
    error_class: str
    reason: str
    attempts: int
    message_id: str | None
    to: list[str]
    subject: str | None


class DeadLetterPage(TypedDict):
    """One page of dead letters; pass `next_cursor` for the next (None: the last page)."""

    data: list[DeadLetter]
    next_cursor: str | None


class Requeued(TypedDict):
    """A dead letter sent back to the queue."""

    id: str
    status: str


class Webhook(TypedDict):
    """A webhook endpoint; `secret` only in the answer that made it."""

    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    domains: list[str]
    created_at: str
    secret: NotRequired[str]


# The reasons a key may give; bounces and complaints come from Postbox's own feeds.
UserReason = Literal["manual", "unsubscribe"]


class Suppression(TypedDict):
    """An address Postbox does not send to: everywhere (`scope` `*`) or from one sender
    domain; `reason` is `hard_bounce`, `complaint`, `manual` or `unsubscribe`."""

    address: str
    scope: str
    reason: str
    created_at: str
    email_id: str | None
    evidence: str | None
    note: str
    expires_at: str | None


class SuppressionPage(TypedDict):
    """One page of the suppression list; pass `next_cursor` for the next (None: the last)."""

    data: list[Suppression]
    next_cursor: str | None
