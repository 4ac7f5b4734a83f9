"""`verify_webhook` checks what Postbox's own signer (postbox/webhooks/signing.py) signs."""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest
from postbox_client import WebhookVerificationError, verify_webhook

from postbox.webhooks.signing import Signer

BODY = json.dumps({"type": "email.sent", "timestamp": "2026-01-05T09:30:12Z", "data": {}})


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def test_a_signed_delivery_verifies_and_gives_the_event() -> None:
    secret = new_secret()
    headers = Signer([secret]).headers("evt_1", BODY, time.time())
    assert verify_webhook(secret, BODY.encode(), headers)["type"] == "email.sent"
    upper = {name.upper(): value for name, value in headers.items()}
    assert verify_webhook(secret, BODY, upper)["type"] == "email.sent"


def test_either_secret_verifies_during_a_rotation() -> None:
    old, new = new_secret(), new_secret()
    headers = Signer([new, old]).headers("evt_2", BODY, time.time())
    assert verify_webhook(old, BODY, headers) == verify_webhook(new, BODY, headers)


@pytest.mark.parametrize(
    "tamper",
    ["body", "id", "secret", "old", "missing"],
)
def test_a_forged_or_stale_delivery_is_refused(tamper: str) -> None:
    secret = new_secret()
    sent_at = time.time() - (600 if tamper == "old" else 0)
    headers = Signer([secret]).headers("evt_3", BODY, sent_at)
    body = BODY
    if tamper == "body":
        body = BODY.replace("email.sent", "email.failed")
    elif tamper == "id":
        headers["webhook-id"] = "evt_4"
    elif tamper == "secret":
        secret = new_secret()
    elif tamper == "missing":
        del headers["webhook-signature"]
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, body, headers)
