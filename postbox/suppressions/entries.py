"""One suppression entry: an address Postbox must not send to, why, since when, and for whom.

An entry is global (scope `*`: no email goes to the address) or limited to one sender domain
(only emails from that domain skip it). A domain-restricted API key adds one entry per domain
it may send from; an automatic entry (a hard bounce, a complaint) takes the scope of the
email that caused it. Addresses are kept normalised (domain in lower case and in its ASCII
IDNA form), as the API normalises recipients, so a lookup is an exact match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from postbox.message.addresses import normalise_address

GLOBAL = "*"
_encode = json.JSONEncoder(separators=(",", ":")).encode
# Between address and scope in a member name: no normalised address holds a space.
_SEPARATOR = " "


class Reason(StrEnum):
    """Why an address is suppressed."""

    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    UNSUBSCRIBE = "unsubscribe"


# What an API key may add itself; bounces and complaints come from the feeds (and imports).
USER_REASONS = (Reason.MANUAL, Reason.UNSUBSCRIBE)


@dataclass(frozen=True)
class Suppression:
    """One entry, as stored (JSON) and shown by the API and the command line."""

    address: str
    scope: str  # GLOBAL or a sender domain (ASCII, lower case)
    reason: str
    created_at: str
    email_id: str | None = None
    evidence: str | None = None
    note: str = ""
    expires_at: str | None = None

    @property
    def member(self) -> str:
        """Its name in Redis: address and scope."""
        return member(self.address, self.scope)

    def to_json(self) -> dict[str, Any]:
        """The entry as the API shows it (not `dataclasses.asdict`: its deep copy made a
        100,000-line import spend 5 s here)."""
        return {
            "address": self.address,
            "scope": self.scope,
            "reason": self.reason,
            "created_at": self.created_at,
            "email_id": self.email_id,
            "evidence": self.evidence,
            "note": self.note,
            "expires_at": self.expires_at,
        }

    def dumps(self) -> str:
        """The stored form."""
        return _encode(self.to_json())

    def expired(self, now: datetime) -> bool:
        """True once its expiry has passed (expired entries are purged lazily)."""
        return self.expires_at is not None and datetime.fromisoformat(self.expires_at) <= now


def member(address: str, scope: str) -> str:
    """The Redis member name of (address, scope)."""
    return f"{address}{_SEPARATOR}{scope}"


def loads(value: str) -> Suppression:
    """An entry from its stored form."""
    return Suppression(**json.loads(value))


def normalised(address: str) -> str:
    """`address` as entries hold it; `AddressError` saying why it is not an address."""
    return normalise_address(address.strip())


def new_entry(
    address: str,
    scope: str,
    reason: str,
    ttl_seconds: int | None,
    *,
    email_id: str | None = None,
    evidence: str | None = None,
    note: str = "",
    now: datetime | None = None,
) -> Suppression:
    """An entry made now; `address` must be normalised already."""
    created, expires = _times(now or datetime.now(UTC), ttl_seconds)
    return Suppression(address, scope, reason, created, email_id, evidence, note, expires)


@lru_cache(maxsize=16)
def _times(now: datetime, ttl_seconds: int | None) -> tuple[str, str | None]:
    """When an entry made at `now` was made and expires, as text: an import makes all its
    entries at one moment, and formatting it per entry was a third of its time."""
    if not ttl_seconds:
        return now.isoformat(), None
    return now.isoformat(), datetime.fromtimestamp(now.timestamp() + ttl_seconds, UTC).isoformat()


def scopes_for(allowed_from: tuple[str, ...]) -> tuple[str, ...]:
    """The scopes of an entry added by a key with these sender domains (none: global)."""
    return allowed_from or (GLOBAL,)
