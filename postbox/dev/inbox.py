"""The development SMTP inbox: an aiosmtpd server on loopback that keeps mail in a Maildir.

The API's `/dev/inbox` page reads the same Maildir, so every process sees what arrived.
"""

from __future__ import annotations

import mailbox
import re
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

from postbox.dev.ports import free_port

# Maildir keys as mailbox.Maildir makes them ("1764590000.M1P2Q3.host"): nothing else is read.
KEY_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,200}")


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


def list_messages(maildir: str, query: str = "") -> list[dict[str, Any]]:
    """Every message in `maildir`, newest first, as JSON-ready summaries; with `query`, only
    those whose sender, recipients or subject contain it (any case)."""
    box = _box(maildir)
    if box is None:
        return []
    entries = [_summary(key, message) for key, message in box.iteritems()]
    if query:
        entries = [entry for entry in entries if _matches(entry, query.casefold())]
    return sorted(entries, key=lambda entry: entry["received"], reverse=True)


def read_raw(maildir: str, key: str) -> bytes | None:
    """The message `key` as it arrived (with the server's X-MailFrom, X-RcptTo on top), or
    None when there is no such message."""
    box = _box(maildir)
    if box is None or not KEY_PATTERN.fullmatch(key):
        return None
    try:
        return box.get_bytes(key)
    except KeyError:
        return None


def clear(maildir: str) -> int:
    """Remove every message; how many there were."""
    box = _box(maildir)
    if box is None:
        return 0
    keys = list(box.keys())
    for key in keys:
        box.discard(key)
    return len(keys)


def _box(maildir: str) -> mailbox.Maildir | None:
    path = Path(maildir)
    return mailbox.Maildir(path, create=False) if path.exists() else None


def _matches(entry: dict[str, Any], folded: str) -> bool:
    fields = ("from", "to", "cc", "envelope_to", "subject")
    return any(folded in str(entry[name] or "").casefold() for name in fields)


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
