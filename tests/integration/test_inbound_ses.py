"""`POST /v1/inbound/ses`: SNS-signed SES notifications, verified against a certificate of
the test's own (SES_SNS_CERT_FILE), become the same records, events and suppressions as a
DSN; a forged or altered one changes nothing. Real Redis, worker and SMTP server."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from postbox.bounces.sns import canonical
from postbox.config import load_settings
from tests.support import email_payload, wait_until

DOMAIN = "bounces.example.com"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-notifications"
GONE = "gone@example.org"
PATH = "/v1/inbound/ses"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def cert_file(signing_key: rsa.RSAPrivateKey, tmp_path: Path) -> Path:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signing_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(signing_key, hashes.SHA256())
    )
    path = tmp_path / "sns.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _signed(key: rsa.RSAPrivateKey, version: str = "1", **fields: Any) -> dict[str, Any]:
    message = {
        "Type": "Notification",
        "MessageId": "5a1b2c3d-0000-1111-2222-333344445555",
        "TopicArn": TOPIC,
        "Timestamp": "2026-12-01T14:00:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
        **fields,
    }
    digest = hashes.SHA256() if version == "2" else hashes.SHA1()
    signature = key.sign(canonical(message), padding.PKCS1v15(), digest)
    return {**message, "Signature": base64.b64encode(signature).decode()}


def _bounce(verp: str, recipient: str) -> str:
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": recipient,
                        "action": "failed",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
            },
            "mail": {"source": verp, "destination": [recipient], "messageId": "0102018c-ses"},
        }
    )


def _post(api: Any, message: dict[str, Any]) -> Any:
    # As SNS posts: JSON as text/plain, and no API key.
    return api.client.post(PATH, data=json.dumps(message), content_type="text/plain")


@pytest.fixture
def ses_api(api_factory, service_env, cert_file):
    env = {**service_env, "BOUNCE_DOMAIN": DOMAIN, "SES_SNS_CERT_FILE": str(cert_file)}
    return api_factory(load_settings(env)), env


def _sent(api: Any, env: dict[str, str], smtp_server: Any, worker_factory: Any) -> tuple[str, str]:
    email = api.post("/v1/emails", json=email_payload(to=[GONE])).json
    worker_factory(**env)
    wait_until(lambda: smtp_server.received)
    return email["id"], smtp_server.received[0].mail_from


def test_a_signed_bounce_suppresses_and_is_recorded(
    ses_api, signing_key, smtp_server, worker_factory
):
    api, env = ses_api
    email_id, verp = _sent(api, env, smtp_server, worker_factory)
    assert verp.startswith("bounces+")

    answer = _post(api, _signed(signing_key, "2", Message=_bounce(verp, GONE)))

    assert answer.status_code == 200, answer.json
    assert answer.json["outcome"].startswith("hard bounce")
    [entry] = api.get("/v1/suppressions").json["data"]
    assert (entry["address"], entry["reason"], entry["email_id"]) == (GONE, "hard_bounce", email_id)
    view = api.get(f"/v1/emails/{email_id}").json
    assert view["delivery"]["bounced"][GONE]["status"] == "5.1.1"


def test_a_forged_or_altered_notification_changes_nothing(
    ses_api, signing_key, smtp_server, worker_factory
):
    api, env = ses_api
    _, verp = _sent(api, env, smtp_server, worker_factory)
    good = _signed(signing_key, Message=_bounce(verp, GONE))
    altered = {**good, "Message": _bounce(verp, "victim@example.net")}
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = _signed(other_key, Message=_bounce(verp, GONE))

    for message in (altered, forged, {**good, "Signature": "not base64!"}):
        answer = _post(api, message)
        assert answer.status_code == 403
        assert answer.json["error"]["fields"] == {"Signature": ["Does not verify."]}
    assert _post(api, {"Type": "Notification"}).status_code == 400
    assert api.client.post(PATH, data=b"\xff", content_type="text/plain").status_code == 400
    assert api.get("/v1/suppressions").json["data"] == []


def test_a_subscription_confirmation_goes_only_to_sns(ses_api, signing_key):
    api, _ = ses_api
    message = _signed(
        signing_key,
        Type="SubscriptionConfirmation",
        Message="You have chosen to subscribe",
        Token="abc",
        SubscribeURL="https://attacker.example/confirm",
    )

    answer = _post(api, message)

    assert answer.status_code == 200
    assert answer.json["outcome"] == "ignored: not an SNS SubscribeURL"


def test_only_the_configured_topics_are_taken(api_factory, service_env, cert_file, signing_key):
    env = {
        **service_env,
        "SES_SNS_CERT_FILE": str(cert_file),
        "SES_SNS_TOPIC_ARNS": "arn:aws:sns:eu-west-1:123456789012:other",
    }
    api = api_factory(load_settings(env))

    answer = _post(api, _signed(signing_key, Message="{}"))

    assert answer.status_code == 403
    assert "TopicArn" in answer.json["error"]["fields"]
