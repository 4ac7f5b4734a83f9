"""Bearer API keys: configured as SHA-256 digests, compared in constant time, never logged.

The matched key is kept on `flask.g` for the request: the rate limit counts per key, and a
key restricted to sender domains (`sha256:<hex>@example.com`) may only send from them.
Logs name a key by its `key_id`, a prefix of its digest, never by the key.
"""

from __future__ import annotations

import logging

from flask import g, request

from postbox.config import ApiKey, find_key, key_digest
from postbox.errors import Forbidden, Unauthorized
from postbox.message.types import EmailRequest

logger = logging.getLogger(__name__)


def check_api_key(keys: tuple[ApiKey, ...]) -> None:
    """Set `g.api_key`, or raise `Unauthorized` unless the request carries a configured key."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send an API key as 'Authorization: Bearer <key>'.",
            {"Authorization": ["Missing or not a Bearer token."]},
        )
    found = find_key(keys, key_digest(token.strip()))
    if found is None:
        raise Unauthorized("The API key is not valid.", {"Authorization": ["Unknown API key."]})
    g.api_key = found


def current_key() -> ApiKey:
    """The key that authenticated the current request."""
    key: ApiKey = g.api_key
    return key


def sender_problem(email: EmailRequest) -> str | None:
    """Why the current key may not send `email` (its From domain is not one of the key's)."""
    key = current_key()
    domain = email["sender"]["email"].rpartition("@")[2]
    if key.may_send_from(domain):
        return None
    logger.warning("API key %s may not send from %s", key.key_id, domain)
    return f"This API key may only send from {', '.join(key.allowed_from)}."


def check_sender(email: EmailRequest) -> None:
    """Raise `Forbidden` naming `from` unless the current key may send `email`."""
    problem = sender_problem(email)
    if problem:
        raise Forbidden("The API key may not send from this address.", {"from": [problem]})
