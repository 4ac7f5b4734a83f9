"""What Redis keeps of an email once it is sent: one short string, for the dedup window.

BullMQ keeps only the newest completed jobs whole (EMAIL_KEEP_COMPLETED_JOBS, 1,000): a
sent job's rendered message, data, logs and journal would otherwise stay for the whole dedup
window, ~3,100 bytes per email (measured over 200,000 emails), which made the window, not
the queue, size the Redis a user must buy. What stays of every sent email is the value of
its idempotency claim
(`postbox:<queue>:idem:<id>`, which lives for the window anyway):

    <claim>                                           while the email is queued or sending
    <claim>|s|<attempts>|<finished>|<refused>|<reply>    once it was sent
    <claim>|s|<attempts>|<finished>|<refused>|<reply>|<relay>    the same, through a relay
                                                      named in SMTP_RELAYS
    <claim>|c|<canceled>                              once it was canceled (cancel.py)

(`<finished>`: Unix seconds in base 36; `<refused>`: recipients refused for good; `<reply>`:
the enhanced status code of the relay's 250, such as `2.0.0`, or `250` without one.)

`<claim>` is 22 characters: the first 128 bits of the payload's SHA-256 fingerprint in
URL-safe base64, enough to tell a retry (same payload) from a conflict (same key, another
payload). The whole value stays within 44 bytes, which Redis keeps inline with its object
header: key, value and expiry measured 257 bytes per email, against 290 for the 64-digit
fingerprint alone. The relay's name is there only for a relay other than `default` (the one
the SMTP_* settings make), so a single-relay deployment keeps the 44 bytes. Dead letters
keep their full job, as before.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from postbox.queue.contract import EmailStatus

CLAIM_BYTES = 16
SEPARATOR = "|"
_SENT = "s"
_CANCELED = "c"
_LEGACY_CLAIM_LENGTH = 64  # claims made before records: the fingerprint in hex
ACCEPTED_CODE = "250"
DEFAULT_RELAY = "default"  # the relay of SMTP_HOST and friends (config/relays.py)
# RFC 3463: class.subject.detail, as relays put it first in their reply text.
_ENHANCED_CODE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


@dataclass(frozen=True)
class SentRecord:
    """A sent email as its record keeps it."""

    attempts: int
    finished_s: int
    refused: int
    # The enhanced status code of the relay's 250 (`2.0.0`), or `250`.
    reply_code: str
    relay: str = DEFAULT_RELAY  # the relay that accepted it (SMTP_RELAYS)

    @property
    def status(self) -> EmailStatus:
        """The record's status: only sent emails are compacted."""
        return EmailStatus.SENT


def claim_value(fingerprint: str) -> str:
    """The claim stored for a payload with this hex fingerprint."""
    raw = bytes.fromhex(fingerprint)[:CLAIM_BYTES]
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def same_payload(found: str, fingerprint: str) -> bool:
    """True when the stored value `found` was claimed for the payload of `fingerprint`."""
    claim = found.partition(SEPARATOR)[0]
    if len(claim) == _LEGACY_CLAIM_LENGTH:
        return claim == fingerprint
    return claim == claim_value(fingerprint)


def sent_suffix(
    attempts: int, refused: int, reply: str | None, relay: str | None = None
) -> tuple[str, str]:
    """The record's parts before and after its finish time (which Redis' clock adds)."""
    first = (reply or "").split(" ", 1)[0]
    code = first if _ENHANCED_CODE.fullmatch(first) else ACCEPTED_CODE
    tail = f"{SEPARATOR}{refused}|{code}"
    if relay and relay != DEFAULT_RELAY:
        tail += SEPARATOR + relay
    return f"{SEPARATOR}{_SENT}{SEPARATOR}{attempts}{SEPARATOR}", tail


def parse_record(found: str | None) -> SentRecord | None:
    """The sent record in a stored value; None for a bare claim (or nothing)."""
    if not found:
        return None
    parts = found.split(SEPARATOR)
    if len(parts) not in {6, 7} or parts[1] != _SENT:
        return None
    relay = parts[6] if len(parts) == 7 else DEFAULT_RELAY
    try:
        return SentRecord(int(parts[2]), int(parts[3], 36), int(parts[4]), parts[5], relay)
    except ValueError:
        return None


def canceled_at(found: str | None) -> int | None:
    """When (Unix seconds) the email of a stored value was canceled; None if it was not."""
    parts = (found or "").split(SEPARATOR)
    if len(parts) != 3 or parts[1] != _CANCELED or not parts[2].isdigit():
        return None
    return int(parts[2])
