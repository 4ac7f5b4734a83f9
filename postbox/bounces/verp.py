"""VERP addresses: `bounces+<token>@BOUNCE_DOMAIN`, one per email and recipient.

The token is the first 120 bits of an HMAC-SHA256, keyed from ENCRYPTION_KEY, of the email id
and the recipient, in lower-case base32 (24 characters: MTAs that fold the case of a local
part do not break it, and the address stays far within the 64 octets a local part may hold).
It names an entry in Redis (tokens.py) that holds the email and recipient; the listener
recomputes the HMAC from that entry, so a bounce whose token was not made here, or made for
another pair, changes nothing. A forger would need ENCRYPTION_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

TOKEN_BYTES = 15
_PREFIX = "bounces+"
_TOKEN = re.compile(r"[a-z2-7]{24}")
# Derivation label: the VERP key is not the key that encrypts webhook secrets.
_LABEL = b"postbox verp token v1"


class VerpSigner:
    """Makes and checks the VERP addresses of one deployment."""

    def __init__(self, encryption_key_hex: str, domain: str) -> None:
        self._key = hmac.new(bytes.fromhex(encryption_key_hex), _LABEL, hashlib.sha256).digest()
        self.domain = domain

    def token(self, email_id: str, recipient: str) -> str:
        """The token of (email, recipient)."""
        mac = hmac.new(self._key, f"{email_id}\n{recipient}".encode(), hashlib.sha256).digest()
        return base64.b32encode(mac[:TOKEN_BYTES]).decode("ascii").lower()

    def address(self, email_id: str, recipient: str) -> str:
        """The envelope sender of the transaction to `recipient`."""
        return f"{_PREFIX}{self.token(email_id, recipient)}@{self.domain}"

    def verify(self, token: str, email_id: str, recipient: str) -> bool:
        """True when `token` is the one this deployment made for (email, recipient)."""
        return hmac.compare_digest(token, self.token(email_id, recipient))

    def token_in(self, address: str) -> str | None:
        """The token of a VERP address of this domain (any case), or None."""
        local, _, domain = address.strip().strip("<>").rpartition("@")
        local = local.lower()
        if domain.lower().rstrip(".") != self.domain or not local.startswith(_PREFIX):
            return None
        token = local.removeprefix(_PREFIX)
        return token if _TOKEN.fullmatch(token) else None
