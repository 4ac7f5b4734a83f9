"""Webhook settings: the key that encrypts endpoint secrets, and which URLs may be called.

    ENCRYPTION_KEY=<64 hex characters>        # openssl rand -hex 32; the same on every instance
    WEBHOOK_ALLOW_PRIVATE_NETWORKS=false      # true: http:// and private addresses (dev, tests)

Without ENCRYPTION_KEY everything else runs; creating a webhook answers 503
`encryption_key_missing`, since a signing secret is never kept in clear.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENCRYPTION_KEY_HEX_CHARS = 64
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class WebhookSettings:
    """How webhook endpoints are kept and which receivers they may name."""

    # AES-256-GCM key for the signing secrets at rest, as 64 hex characters (32 bytes).
    encryption_key: str | None = field(default=None, repr=False)
    # Off in production: a webhook URL could otherwise make Postbox call the metadata service
    # or an internal admin port (SSRF). On, `http://` and any address are allowed.
    allow_private_networks: bool = False


def parse_encryption_key(value: str) -> str:
    """The key in lower case; `ValueError` (never showing the value) unless 64 hex digits."""
    key = value.strip().lower()
    if len(key) != ENCRYPTION_KEY_HEX_CHARS or not set(key) <= _HEX:
        raise ValueError(
            f"must be {ENCRYPTION_KEY_HEX_CHARS} hex characters (make one with"
            " `openssl rand -hex 32`)"
        )
    return key
