"""Amazon SES notifications by SNS (`POST /v1/inbound/ses`).

    SES_SNS_CERT_FILE=/path/signing-cert.pem   # tests: verify with this certificate instead
                                               # of fetching the one the message names
    SES_SNS_TOPIC_ARNS=arn:aws:sns:...,...     # only these topics (empty: any topic)

Without SES_SNS_CERT_FILE the signing certificate is fetched, over HTTPS, only from an SNS
host (`sns.<region>.amazonaws.com`), and kept for the process's life.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SesSettings:
    """How SNS messages are verified, and which topics are taken."""

    cert_file: str | None = None
    topic_arns: tuple[str, ...] = ()


def parse_topic_arns(value: str) -> tuple[str, ...]:
    """The comma-separated ARNs; `ValueError` for one that is not an SNS topic ARN."""
    arns = tuple(part.strip() for part in value.split(",") if part.strip())
    for arn in arns:
        if not arn.startswith("arn:aws") or arn.count(":") != 5:
            raise ValueError(f"{arn!r} is not an SNS topic ARN")
    return arns
