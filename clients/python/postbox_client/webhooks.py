"""Verifying Postbox's webhook deliveries (Standard Webhooks signatures), with no
dependency beyond the standard library.

A delivery carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
`webhook-signature`: space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
one per secret (two for the 24 hours after a rotation). Verify the raw body, before
parsing it: re-serialised JSON would not have the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from postbox_client.errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
# How far a delivery's timestamp may be from now: a captured delivery replayed later fails.
DEFAULT_TOLERANCE_SECONDS = 300


def verify_webhook(
    secret: str,
    body: bytes | str,
    headers: Mapping[str, str],
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """The delivery's event (`type`, `timestamp`, `data`) once its signature checks out;
    `WebhookVerificationError` otherwise. `headers` may be any case (a Flask, Django or
    plain dict of the request's headers)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    event_id, stamp, signatures = (
        lowered.get(name) for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not (event_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, -timestamp or -signature header")
    _check_timestamp(stamp, time.time() if now is None else now, tolerance)
    raw = body.encode() if isinstance(body, str) else body
    expected = _sign(_key(secret), f"{event_id}.{stamp}.".encode() + raw)
    if not any(hmac.compare_digest(expected, given) for given in _v1_signatures(signatures)):
        raise WebhookVerificationError("no signature matches")
    try:
        event: dict[str, Any] = json.loads(raw)
    except ValueError as exc:
        raise WebhookVerificationError("the body is not JSON") from exc
    return event


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise WebhookVerificationError("the secret is not whsec_ and base64") from exc


def _sign(key: bytes, content: bytes) -> bytes:
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())


def _v1_signatures(header: str) -> list[bytes]:
    found = []
    for part in header.split():
        version, _, signature = part.partition(",")
        if version == "v1":
            found.append(signature.encode())
    return found


def _check_timestamp(stamp: str, now: float, tolerance: float) -> None:
    try:
        sent = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not a number") from exc
    if abs(now - sent) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is too far from now")
