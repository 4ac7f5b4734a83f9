"""One message of the development inbox, taken apart for its page: headers, text, HTML
and attachments (parsed with the standard library's modern `email` policy)."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass(frozen=True)
class Attachment:
    """One attachment: its place among the message's attachments, name, type and bytes."""

    index: int
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class InboxMessage:
    """What the message page shows."""

    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[Attachment]

    @property
    def subject(self) -> str:
        return next((value for name, value in self.headers if name.lower() == "subject"), "")


def parse_message(raw: bytes) -> InboxMessage:
    """`raw` (one message as received) taken apart."""
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)  # what policy.default makes
    return InboxMessage(
        headers=[(name, str(value)) for name, value in message.items()],
        text=_body(message, "plain"),
        html=_body(message, "html"),
        attachments=[
            Attachment(
                index,
                part.get_filename() or f"attachment-{index}",
                part.get_content_type(),
                _decoded(part),
            )
            for index, part in enumerate(message.iter_attachments())
        ],
    )


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


def _decoded(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""
