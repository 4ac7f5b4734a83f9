"""Bounce intake settings: the VERP domain and the SMTP listener that takes its mail.

    BOUNCE_DOMAIN=bounces.example.com   # set: envelope senders become bounces+<token>@it
    BOUNCE_SMTP_HOST=0.0.0.0            # where `postbox bounces` listens
    BOUNCE_SMTP_PORT=2525
    BOUNCE_MAX_MESSAGE_BYTES=1048576    # larger reports are refused (552)
    BOUNCE_TOKEN_TTL_DAYS=7             # how long a sent email's tokens can be matched

The tokens carry an HMAC keyed from ENCRYPTION_KEY, which BOUNCE_DOMAIN therefore needs.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PORT = 2525


@dataclass(frozen=True)
class BounceSettings:
    """VERP and the bounce listener; `domain` None turns both off."""

    domain: str | None = None
    smtp_host: str = "0.0.0.0"
    smtp_port: int = DEFAULT_PORT
    max_message_bytes: int = 1024 * 1024
    token_ttl_days: int = 7


def parse_bounce_domain(value: str) -> str:
    """The domain in lower case; `ValueError` unless it looks like a host name."""
    domain = value.strip().lower().rstrip(".")
    labels = domain.split(".")
    if len(labels) < 2 or not all(label and label.replace("-", "").isalnum() for label in labels):
        raise ValueError("must be a domain name such as bounces.example.com")
    return domain
