"""The emails every measurement sends: distinct, about 1 KB of text each, like a receipt.

Drain jobs are made the way the API makes them: the request is validated by the API's
schema and rendered by `prepare_email`, in a process pool because rendering costs about
half a millisecond of CPU per email (20,000 would take ten seconds on one core).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from postbox.api.schemas import EmailSchema
from postbox.queue.producer import PreparedEmail, prepare_email

SENDER = "Postbox Bench <bench@example.com>"
TEXT = (
    "Thank you for your order. This is a benchmark message of about one kilobyte, the size "
    "of a typical transactional email: a greeting, a few lines about the order, a link and "
    "a signature. "
) * 6
CHUNK = 1000
# Distinct recipient addresses of the drains (the realistic relay's rows use one per email).
RECIPIENTS = 1000


def payload(tag: str, index: int, recipients: int = RECIPIENTS) -> dict[str, Any]:
    """The JSON body of one email; `tag` and `index` make it distinct from every other; it
    goes to one of `recipients` addresses."""
    return {
        "from": SENDER,
        "to": [f"rcpt{index % recipients}@example.org"],
        "subject": f"{tag} {index}",
        "text": TEXT,
    }


def payload_bytes(tag: str, index: int) -> bytes:
    """`payload` encoded as a request body."""
    return json.dumps(payload(tag, index), separators=(",", ":")).encode()


def batch_bytes(tag: str, start: int, size: int) -> bytes:
    """A `POST /v1/emails/batch` body of `size` distinct emails."""
    items = [payload(tag, index) for index in range(start, start + size)]
    return json.dumps({"emails": items}, separators=(",", ":")).encode()


def _prepare_chunk(tag: str, start: int, stop: int, recipients: int) -> list[PreparedEmail]:
    schema = EmailSchema()
    return [
        prepare_email(schema.load(payload(tag, i, recipients)), None) for i in range(start, stop)
    ]


def prepare_many(tag: str, count: int, recipients: int = RECIPIENTS) -> list[PreparedEmail]:
    """`count` distinct emails validated and rendered as the API would, on every core."""
    bounds = [(start, min(start + CHUNK, count)) for start in range(0, count, CHUNK)]
    args = [(tag, a, b, recipients) for a, b in bounds]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        chunks = pool.map(_prepare_chunk, *zip(*args, strict=True))
        return [email for chunk in chunks for email in chunk]


def peer_job(tag: str, index: int, recipients: int = RECIPIENTS) -> dict[str, str]:
    """The plain job the Node peer sends: nodemailer builds the message from these fields."""
    return {
        "from": SENDER,
        "to": f"rcpt{index % recipients}@example.org",
        "subject": f"{tag} {index}",
        "text": TEXT,
    }
