"""Standard Webhooks signatures, made with the `standardwebhooks` package so that a receiver
verifies with the same library (or Svix's, or Resend's) unchanged.

The headers are `webhook-id` (the event id: the same on every retry, for deduplication),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: `v1,<base64
HMAC-SHA256 of "id.timestamp.body">`, one per secret, space-separated. After a secret's
rotation the previous one signs beside the new one until it expires, as the specification
allows, so receivers can switch secrets without losing a delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook


class Signer:
    """Signs request bodies with one endpoint's secrets, current first."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("an endpoint needs a signing secret")
        # Webhook() decodes the secret's base64: once per endpoint, not once per delivery.
        self._hooks = [Webhook(secret) for secret in secrets]
        self._second = -1
        self._stamp = datetime.fromtimestamp(0, tz=UTC)

    def headers(self, event_id: str, body: str, at: float) -> dict[str, str]:
        """The three Standard Webhooks headers of `body` sent at Unix time `at`."""
        second = int(at)
        if second != self._second:  # thousands of deliveries share each second
            self._second, self._stamp = second, datetime.fromtimestamp(second, tz=UTC)
        signatures = [hook.sign(event_id, self._stamp, body) for hook in self._hooks]
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(second),
            "webhook-signature": " ".join(signatures),
        }
