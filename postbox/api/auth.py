"""Bearer API keys: configured as SHA-256 digests, compared in constant time, never logged."""

from __future__ import annotations

import hmac

from flask import request

from postbox.api.errors import Unauthorized
from postbox.config import key_digest


def check_api_key(allowed_digests: tuple[str, ...]) -> None:
    """Raise `Unauthorized` unless the request carries one of the configured keys."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send an API key as 'Authorization: Bearer <key>'.",
            {"Authorization": ["Missing or not a Bearer token."]},
        )
    presented = key_digest(token.strip())
    # Compare against every key, without stopping early, so timing says nothing about which.
    matched = False
    for digest in allowed_digests:
        matched |= hmac.compare_digest(presented, digest)
    if not matched:
        raise Unauthorized("The API key is not valid.", {"Authorization": ["Unknown API key."]})
