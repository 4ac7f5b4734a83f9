"""Which refusals say that a mailbox is gone for good (RFC 3463 enhanced status codes).

A relay's 5xx with one of these codes, or a DSN whose status is one, means the address will
never take mail: it is suppressed as a hard bounce. Policy and content refusals (5.7.x: spam,
DMARC, a blocked sender) say more about the message or the sender than about the mailbox,
so they suppress only where the operator asked for it (SUPPRESS_ON_POLICY_REFUSALS).
"""

from __future__ import annotations

import re

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# X.1.1 bad mailbox, X.1.2 bad destination system, X.1.3 bad mailbox syntax, X.1.6 mailbox
# moved, X.1.10 null MX (RFC 7505), X.2.1 mailbox disabled.
MAILBOX_GONE = frozenset({"1.1", "1.2", "1.3", "1.6", "1.10", "2.1"})


def enhanced_code(text: str) -> str | None:
    """The first enhanced status code in a reply or a DSN field (`5.1.1`), or None."""
    match = _ENHANCED.search(text)
    return ".".join(match.groups()) if match else None


def is_hard_bounce(text: str, *, policy_suppresses: bool = False) -> bool:
    """True when `text` (a reply, or a DSN's status or diagnostic) carries a permanent
    code that says the mailbox does not exist, or a policy code when those suppress."""
    code = enhanced_code(text)
    if code is None or not code.startswith("5."):
        return False
    detail = code[2:]
    return detail in MAILBOX_GONE or (policy_suppresses and detail.startswith("7."))
