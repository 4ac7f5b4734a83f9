"""`POST /v1/inbound/ses`: Amazon SES bounce and complaint notifications, delivered by SNS.

SNS cannot send an API key, so this route is outside the key check: the message's SNS
signature is its authentication (postbox/bounces/sns.py), and a topic allow-list
(SES_SNS_TOPIC_ARNS) narrows it further. A verified notification goes through the same
intake as a DSN to the bounce listener, matched by the VERP envelope sender SES reports, so
it needs BOUNCE_DOMAIN too. A subscription confirmation is confirmed (by a GET of its
SubscribeURL, an SNS URL only).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path
from typing import Any

from flask import Blueprint, request

from postbox.api.extension import state
from postbox.bounces.intake import BounceIntake
from postbox.bounces.ses import ses_report, source
from postbox.bounces.sns import FETCH_TIMEOUT_SECONDS, fetch_certificate, is_sns_url, verify
from postbox.bounces.verp import VerpSigner
from postbox.errors import BadRequest, Forbidden

logger = logging.getLogger(__name__)
bp = Blueprint("inbound_ses", __name__, url_prefix="/v1/inbound")
_REQUIRED = ("Type", "MessageId", "Timestamp", "TopicArn", "Signature", "SigningCertURL")


@bp.post("/ses")
def ses_notification() -> tuple[dict[str, Any], int]:
    """Verify an SNS message and act on the SES notification it carries."""
    message = _message()
    _check_topic(message)
    if not verify(message, _certificate(message["SigningCertURL"])):
        raise Forbidden("The SNS signature does not verify.", {"Signature": ["Does not verify."]})
    if message["Type"] == "SubscriptionConfirmation":
        return {"outcome": _confirm(str(message.get("SubscribeURL", "")))}, 200
    if message["Type"] != "Notification":
        return {"outcome": f"ignored: {message['Type']}"}, 200
    return {"outcome": _take(message.get("Message"))}, 200


def _message() -> dict[str, Any]:
    """The SNS message (SNS posts JSON as text/plain)."""
    try:
        message = json.loads(request.get_data(cache=True))
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body is not JSON.", {"body": ["Not JSON."]}) from None
    if not isinstance(message, dict):
        raise BadRequest("The body is not an SNS message.", {"body": ["Not an object."]})
    missing = {name: ["Missing."] for name in _REQUIRED if not isinstance(message.get(name), str)}
    if missing:
        raise BadRequest("The body is not an SNS message.", missing)
    return message


def _check_topic(message: dict[str, Any]) -> None:
    topics = state().settings.ses.topic_arns
    if topics and message["TopicArn"] not in topics:
        raise Forbidden("This topic is not one Postbox takes.", {"TopicArn": ["Not allowed."]})


def _certificate(url: str) -> bytes:
    configured = state().settings.ses.cert_file
    if configured:
        return Path(configured).read_bytes()
    try:
        return fetch_certificate(url)
    except (ValueError, OSError):
        raise Forbidden(
            "The signing certificate cannot be used.",
            {"SigningCertURL": ["Not an SNS certificate Postbox could fetch."]},
        ) from None


def _confirm(url: str) -> str:
    if not is_sns_url(url):
        logger.warning("SNS subscription confirmation with a non-SNS SubscribeURL: ignored")
        return "ignored: not an SNS SubscribeURL"
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS):  # noqa: S310
        return "subscription confirmed"


def _take(body: object) -> str:
    try:
        notification = json.loads(str(body))
    except ValueError:
        return "ignored: the Message is not JSON"
    report = ses_report(notification) if isinstance(notification, dict) else None
    settings = state().settings
    domain, key = settings.bounces.domain, settings.webhooks.encryption_key
    if report is None or not isinstance(notification, dict):
        return "ignored: not a bounce or complaint"
    if domain is None or key is None:
        return "ignored: BOUNCE_DOMAIN is not set, so no email can be matched"
    signer = VerpSigner(key, domain)
    found: str = state().gateway.with_client(
        lambda client: BounceIntake(client, settings, signer).take_report(
            [source(notification)], report
        )
    )
    logger.info("SES notification: %s", found)
    return found
