"""Read a bounce or complaint report: RFC 3464 DSNs, RFC 5965 ARF, and the rest by heuristics.

A DSN is a `multipart/report; report-type=delivery-status` whose `message/delivery-status`
part holds one block of per-message fields and a block per recipient (`Final-Recipient`,
`Action`, `Status`, `Diagnostic-Code`). An ARF report (`report-type=feedback-report`) holds a
`message/feedback-report` part (`Feedback-Type: abuse`, `Original-Mail-From`, ...) and the
original message or its headers. Bounces in neither form (old qmail, Exchange and Yahoo
formats) go to `flufl.bounce`, which finds the addresses that failed for good or for now.

Nothing here trusts a report to say which email it is about: the VERP token the report was
sent to says that (verp.py). The report only says how it ended and why.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message

from flufl.bounce import all_failures

from postbox.suppressions.status_codes import enhanced_code

HARD = "hard"
SOFT = "soft"
_FAILED_ACTIONS = frozenset({"failed", "delayed"})
_ADDRESS_TYPE = re.compile(r"^\s*[A-Za-z0-9-]+\s*;\s*")
_SPACES = re.compile(r"\s+")
MAX_DIAGNOSTIC_CHARS = 500


@dataclass(frozen=True)
class RecipientReport:
    """What a report says about one recipient."""

    recipient: str
    status: str  # an enhanced status code: 5.1.1, 4.2.2, ...
    action: str  # failed or delayed (a DSN's Action); complaint for ARF
    diagnostic: str

    @property
    def bounce_type(self) -> str:
        """`hard` (5.x.x: it failed for good) or `soft` (4.x.x: the MTA still tries)."""
        return HARD if self.status.startswith("5") else SOFT


@dataclass(frozen=True)
class Report:
    """A parsed report: a bounce (DSN or heuristic) or a complaint (ARF)."""

    kind: str  # "bounce" or "complaint"
    recipients: list[RecipientReport]
    # Envelope senders the report names (ARF's Original-Mail-From, the original's
    # Return-Path): where a complaint sent to a fixed address finds its VERP token.
    senders: list[str] = field(default_factory=list)


def parse_report(raw: bytes) -> Report | None:
    """The report in `raw`, or None when it is not one (or says nothing usable)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/feedback-report":
            return _complaint(message, part)
        if kind == "message/delivery-status":
            found = _delivery_status(part)
            return Report("bounce", found) if found else None
    return _heuristic(message)


def _delivery_status(part: Message) -> list[RecipientReport]:
    blocks = part.get_payload()
    if not isinstance(blocks, list):
        return []
    found = []
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        if not isinstance(block, Message):
            continue
        action = _clean(block.get("Action", "")).lower()
        recipient = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
        status = enhanced_code(block.get("Status", "")) or ""
        if action in _FAILED_ACTIONS and recipient and status[:1] in ("4", "5"):
            found.append(RecipientReport(recipient, status, action, _diagnostic(block, status)))
    return found


def _complaint(message: Message, part: Message) -> Report | None:
    blocks = part.get_payload()
    fields = blocks[0] if isinstance(blocks, list) and blocks else part
    if not isinstance(fields, Message):
        return None
    kind = _clean(fields.get("Feedback-Type", "abuse")).lower()
    recipient = _address(fields.get("Original-Rcpt-To")) or ""
    senders = [_address(fields.get("Original-Mail-From")) or ""]
    senders += [_address(v) or "" for v in _original_headers(message).get_all("Return-Path", [])]
    diagnostic = f"feedback-type: {kind}"
    report = RecipientReport(recipient, "5.7.0", "complaint", diagnostic)
    return Report("complaint", [report], [s for s in senders if s])


def _original_headers(message: Message) -> Message:
    """The original message (or its headers) that an ARF report carries."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        if kind == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                return email.message_from_bytes(text, policy=email.policy.compat32)
    return Message()


def _heuristic(message: Message) -> Report | None:
    try:
        temporary, permanent = all_failures(message)
    except Exception:
        return None
    found = [
        RecipientReport(address.decode(errors="replace"), status, "failed", "")
        for addresses, status in ((permanent, "5.0.0"), (temporary, "4.0.0"))
        for address in sorted(addresses)
    ]
    return Report("bounce", found) if found else None


def _diagnostic(block: Message, status: str) -> str:
    text = _clean(block.get("Diagnostic-Code", ""))
    text = _ADDRESS_TYPE.sub("", text) if text else status
    return text[:MAX_DIAGNOSTIC_CHARS]


def _address(value: str | None) -> str | None:
    """The address of a DSN field (`rfc822; bob@example.org`, `<bob@example.org>`)."""
    if not value:
        return None
    address = _ADDRESS_TYPE.sub("", _clean(value)).strip().strip("<>").strip()
    return address if "@" in address else None


def _clean(value: object) -> str:
    return _SPACES.sub(" ", str(value)).strip()
