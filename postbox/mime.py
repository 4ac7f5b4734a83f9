"""Render a validated email into the RFC 5322 message a worker hands to the relay.

The result is ASCII text with CRLF line ends: non-ASCII headers become encoded words and
non-ASCII bodies quoted-printable or base64, so any relay takes it without 8BITMIME.
Bcc recipients go to the envelope only, never into a header.
"""

from __future__ import annotations

import base64
import email.policy
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from postbox.queue.contract import EmailRequest, Mailbox

# 7bit forces every non-ASCII body part into quoted-printable or base64.
_POLICY = email.policy.SMTP.clone(cte_type="7bit", max_line_length=998)


def message_id_for(job_id: str, sender: Mailbox) -> str:
    """A Message-ID fixed by the job id, so every attempt (and every replica) uses the same."""
    domain = sender["email"].rpartition("@")[2]
    return f"<{job_id.removeprefix('em_')[:40]}@{domain}>"


def envelope_recipients(request: EmailRequest) -> list[str]:
    """Every distinct recipient address (to, cc, bcc) in order of first appearance."""
    seen: dict[str, None] = {}
    for box in (*request["to"], *request["cc"], *request["bcc"]):
        seen.setdefault(box["email"], None)
    return list(seen)


def format_mailbox(box: Mailbox) -> str:
    """`Name <user@example.com>` (or the bare address), as a header shows it."""
    return str(_address(box))


def render_message(request: EmailRequest, message_id: str, date: datetime) -> str:
    """Build the full message text for `request`; `date` is the datetime of acceptance."""
    message = EmailMessage(policy=_POLICY)
    _set_headers(message, request, message_id, date)
    _set_body(message, request)
    for attachment in request["attachments"]:
        maintype, _, subtype = attachment["content_type"].partition("/")
        message.add_attachment(
            base64.b64decode(attachment["content"]),
            maintype=maintype,
            subtype=subtype,
            filename=attachment["filename"],
        )
    return message.as_string(policy=_POLICY)


def _address(box: Mailbox) -> Address:
    local, _, domain = box["email"].rpartition("@")
    return Address(display_name=box.get("name", ""), username=local, domain=domain)


def _set_headers(
    message: EmailMessage, request: EmailRequest, message_id: str, date: datetime
) -> None:
    message["From"] = _address(request["sender"])
    message["To"] = [_address(box) for box in request["to"]]
    if request["cc"]:
        message["Cc"] = [_address(box) for box in request["cc"]]
    if request["reply_to"]:
        message["Reply-To"] = [_address(box) for box in request["reply_to"]]
    message["Subject"] = request["subject"]
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    for name, value in request["headers"].items():
        message[name] = value


def _set_body(message: EmailMessage, request: EmailRequest) -> None:
    text, html = request["text"], request["html"]
    if text is not None:
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
    elif html is not None:
        message.set_content(html, subtype="html")
