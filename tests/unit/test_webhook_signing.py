"""Standard Webhooks headers: each secret's signature verifies with `standardwebhooks` itself."""

from __future__ import annotations

import base64
import secrets
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from postbox.webhooks.signing import Signer

BODY = '{"type":"email.sent","timestamp":"2025-12-01T10:00:00.000Z","data":{"sequence":1}}'


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def test_headers_verify_with_the_standardwebhooks_package():
    secret = new_secret()
    headers = Signer([secret]).headers("evt_1764590000123-0", BODY, time.time())

    assert headers["webhook-id"] == "evt_1764590000123-0"
    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "email.sent",
        "timestamp": "2025-12-01T10:00:00.000Z",
        "data": {"sequence": 1},
    }


def test_after_a_rotation_both_secrets_verify_and_a_stranger_does_not():
    current, previous = new_secret(), new_secret()
    headers = Signer([current, previous]).headers("evt_1-0", BODY, time.time())

    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(current).verify(BODY, headers)
    Webhook(previous).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_a_changed_body_or_id_does_not_verify():
    secret = new_secret()
    headers = Signer([secret]).headers("evt_1-0", BODY, time.time())

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("sent", "failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "evt_2-0"})


def test_timestamp_is_whole_seconds_of_the_attempt():
    headers = Signer([new_secret()]).headers("evt_1-0", BODY, 1764590000.987)

    assert headers["webhook-timestamp"] == "1764590000"


def test_no_secret_is_refused():
    with pytest.raises(ValueError, match="signing secret"):
        Signer([])
