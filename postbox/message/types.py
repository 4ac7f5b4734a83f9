"""The shapes of a validated email, shared by the message rules, the renderer and the queue."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class Mailbox(TypedDict):
    """One address with an optional display name, as validated by the API."""

    email: str
    name: NotRequired[str]


class Attachment(TypedDict):
    """A file to attach; `content` is base64 as posted."""

    filename: str
    content: str
    content_type: str


class EmailRequest(TypedDict):
    """A validated, normalised email as the API accepted it (the canonical message)."""

    sender: Mailbox
    to: list[Mailbox]
    cc: list[Mailbox]
    bcc: list[Mailbox]
    reply_to: list[Mailbox]
    subject: str
    text: str | None
    html: str | None
    headers: dict[str, str]
    attachments: list[Attachment]
    tags: list[str]
    send_at: str | None
