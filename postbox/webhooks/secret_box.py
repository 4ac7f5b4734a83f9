"""Webhook signing secrets at rest: AES-256-GCM under ENCRYPTION_KEY.

A stored value is `v1.` + base64url(12-byte nonce + ciphertext + tag). The endpoint id is
bound in as associated data, so a ciphertext copied onto another endpoint does not decrypt
there. A fresh random nonce per encryption is safe for far more secrets than Postbox keeps.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from postbox.config.webhooks import parse_encryption_key
from postbox.errors import ConfigError, SecretUnreadable

FORMAT_PREFIX = "v1."
NONCE_BYTES = 12
SECRET_PREFIX = "whsec_"  # noqa: S105  (the prefix, not a secret)
SECRET_BYTES = 24


def new_signing_secret() -> str:
    """A fresh Standard Webhooks secret: `whsec_` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


class SecretBox:
    """Encrypts and decrypts short strings with one AES-256-GCM key."""

    def __init__(self, key_hex: str) -> None:
        try:
            key = bytes.fromhex(parse_encryption_key(key_hex))
        except ValueError as exc:
            raise ConfigError(f"ENCRYPTION_KEY has value (hidden): {exc}") from None
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(***)"

    def encrypt(self, clear: str, associated: str = "") -> str:
        """`clear` encrypted under a fresh nonce, bound to `associated` (an endpoint id)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, clear.encode(), associated.encode())
        return FORMAT_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, stored: str, associated: str = "") -> str:
        """The clear text of `stored`; `SecretUnreadable` when the key or the data differ."""
        if not stored.startswith(FORMAT_PREFIX):
            raise SecretUnreadable("The stored secret is not in a known format.")
        try:
            raw = base64.urlsafe_b64decode(stored.removeprefix(FORMAT_PREFIX))
            clear = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretUnreadable(
                "A stored webhook secret does not decrypt: ENCRYPTION_KEY differs from the key"
                " it was stored with."
            ) from None
        return clear.decode()
