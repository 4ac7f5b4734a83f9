"""The development SMTP inbox: an aiosmtpd server on loopback that keeps mail in a Maildir.

The API's `/dev/inbox` page reads the same Maildir, so every process sees what arrived.
"""

from __future__ import annotations

import mailbox
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

from postbox.dev.ports import free_port


class DevInbox:
    """An SMTP server on 127.0.0.1 that stores every message it accepts."""

    def __init__(self, maildir: Path, port: int | None = None) -> None:
        self.maildir = maildir
        self.port = port or free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        """Listen on `port` (in a thread of this process)."""
        self.maildir.parent.mkdir(parents=True, exist_ok=True)
        handler = Mailbox(self.maildir)
        self._controller = Controller(handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        """Stop listening."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def list_messages(maildir: str) -> list[dict[str, Any]]:
    """Every message in `maildir`, newest first, as JSON-ready summaries."""
    path = Path(maildir)
    if not path.exists():
        return []
    box = mailbox.Maildir(path, create=False)
    entries = [_summary(key, message) for key, message in box.iteritems()]
    return sorted(entries, key=lambda entry: entry["received"], reverse=True)


def _summary(key: str, message: Message) -> dict[str, Any]:
    return {
        "key": key,
        "received": message.get_date() if hasattr(message, "get_date") else 0,
        "envelope_from": message.get("X-MailFrom"),
        "envelope_to": message.get("X-RcptTo"),
        "from": message.get("From"),
        "to": message.get("To"),
        "cc": message.get("Cc"),
        "subject": str(message.get("Subject", "")),
        "message_id": message.get("Message-ID"),
        "text": _text_part(message),
    }


def _text_part(message: Message) -> str | None:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return None
