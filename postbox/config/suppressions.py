"""Suppression settings: how long each kind of entry lasts, and which refusals add one.

    SUPPRESSION_TTL_DAYS_HARD_BOUNCE=365     # per reason: HARD_BOUNCE, COMPLAINT, MANUAL,
    SUPPRESSION_TTL_DAYS_COMPLAINT=          # UNSUBSCRIBE; empty or unset: never expires
    SUPPRESS_ON_HARD_REFUSALS=true           # a relay's 5.1.1 (...) suppresses the address
    SUPPRESS_ON_POLICY_REFUSALS=false        # true: a 5.7.x refusal suppresses too

A relay's 5.7.x (policy, content, authentication) refusal says more about the message or
the sender than about the mailbox, so by default it does not suppress the address.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REASONS = ("hard_bounce", "complaint", "manual", "unsubscribe")
TTL_VARIABLE_PREFIX = "SUPPRESSION_TTL_DAYS_"


@dataclass(frozen=True)
class SuppressionSettings:
    """Expiry per reason (days; absent: never) and what the synchronous feed suppresses."""

    ttl_days: dict[str, int] = field(default_factory=dict)
    suppress_hard_refusals: bool = True
    suppress_policy_refusals: bool = False

    def ttl_seconds(self, reason: str) -> int | None:
        """How long an entry of `reason` lasts, or None for ever."""
        days = self.ttl_days.get(reason)
        return days * 86400 if days else None


def ttl_variable(reason: str) -> str:
    """The environment variable that sets the expiry of `reason`'s entries."""
    return TTL_VARIABLE_PREFIX + reason.upper()
