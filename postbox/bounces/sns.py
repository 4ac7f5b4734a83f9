"""Amazon SNS message signatures: the only proof that a notification came from AWS.

SNS signs a canonical string of the message's fields (Signature version 1: SHA1withRSA,
version 2: SHA256withRSA) with the key of the certificate at `SigningCertURL`. The
certificate is fetched only over HTTPS from an SNS host (`sns.<region>.amazonaws.com`), so a
forger cannot point the check at a certificate of their own; a deployment's tests give the
certificate by configuration instead (SES_SNS_CERT_FILE).
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.request
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
FETCH_TIMEOUT_SECONDS = 5
MAX_CERT_BYTES = 16 * 1024


def canonical(message: dict[str, Any]) -> bytes:
    """The string SNS signs: each present field's name and value, a line each."""
    names = _NOTIFICATION_FIELDS if message.get("Type") == "Notification" else _SUBSCRIPTION_FIELDS
    lines = [f"{name}\n{message[name]}\n" for name in names if message.get(name) is not None]
    return "".join(lines).encode()


def is_sns_url(url: str) -> bool:
    """True for an HTTPS URL on an SNS host (where certificates and confirmations live)."""
    parts = urlsplit(url)
    return parts.scheme == "https" and _SNS_HOST.fullmatch(parts.hostname or "") is not None


def verify(message: dict[str, Any], cert_pem: bytes) -> bool:
    """True when `message` carries a valid signature by the certificate `cert_pem`."""
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        key = x509.load_pem_x509_certificate(cert_pem).public_key()
    except (binascii.Error, ValueError):
        return False
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    digest = hashes.SHA256() if message.get("SignatureVersion") == "2" else hashes.SHA1()  # noqa: S303
    try:
        key.verify(signature, canonical(message), padding.PKCS1v15(), digest)
    except InvalidSignature:
        return False
    return True


@lru_cache(maxsize=8)
def fetch_certificate(url: str) -> bytes:
    """The certificate at an SNS URL (kept: SNS rotates them rarely); `ValueError` for any
    other URL."""
    if not is_sns_url(url) or not url.endswith(".pem"):
        raise ValueError("not an SNS signing certificate URL")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as answer:  # noqa: S310
        return bytes(answer.read(MAX_CERT_BYTES))
