"""A corpus of bounce and complaint reports as real MTAs write them (tests/bounce_corpus):
each parsed to the right recipient, status and hard/soft class; garbage says nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from postbox.bounces.reports import parse_report

CORPUS = Path(__file__).resolve().parent.parent / "bounce_corpus"
EXPECTED = {
    "postfix_user_unknown.eml": ("bounce", "nobody@example.org", "5.1.1", "hard", "User unknown"),
    "postfix_delayed.eml": ("bounce", "slow@example.net", "4.4.1", "soft", "timed out"),
    "exim_dsn_no_such_user.eml": ("bounce", "ghost@example.net", "5.1.1", "hard", "No such user"),
    "exim_plain_text.eml": ("bounce", "olduser@legacy.example", "5.0.0", "hard", ""),
    "sendmail_user_unknown.eml": ("bounce", "jdoe@example.edu", "5.1.1", "hard", "User unknown"),
    "sendmail_warning.eml": ("bounce", "busy@example.edu", "4.4.7", "soft", "4.4.7"),
    "exchange_recipient_not_found.eml": (
        "bounce",
        "pat@contoso.example",
        "5.1.10",
        "hard",
        "RecipientNotFound",
    ),
    "exchange_quota.eml": ("bounce", "full@fabrikam.example", "5.2.2", "hard", "mailbox full"),
    "gmail_no_such_user.eml": (
        "bounce",
        "does.not.exist@gmail.com",
        "5.1.1",
        "hard",
        "does not exist",
    ),
    "gmail_over_quota_soft.eml": ("bounce", "inbox.full@gmail.com", "4.2.2", "soft", "storage"),
    "ses_dsn_bounce.eml": ("bounce", "nosuchuser@example.co.uk", "5.1.1", "hard", "user unknown"),
    "qmail_plain_text.eml": ("bounce", "gone@qmail.example.org", "5.0.0", "hard", ""),
    "arf_complaint.eml": ("complaint", "angry@mailbox.example", "5.7.0", "hard", "abuse"),
}


def test_the_corpus_has_every_file_expected() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 12


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_report_names_its_recipient_status_and_class(name: str) -> None:
    kind, recipient, status, bounce_type, diagnostic = EXPECTED[name]

    report = parse_report((CORPUS / name).read_bytes())

    assert report is not None
    assert report.kind == kind
    [found] = report.recipients
    assert (found.recipient, found.status, found.bounce_type) == (recipient, status, bounce_type)
    assert diagnostic in found.diagnostic


def test_a_complaint_names_the_verp_sender_of_the_original() -> None:
    report = parse_report((CORPUS / "arf_complaint.eml").read_bytes())

    assert report is not None
    assert "bounces+TOKEN@bounces.example.com" in report.senders


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"Subject: hi\r\n\r\njust a note, nothing bounced",
        (CORPUS / "postfix_user_unknown.eml").read_bytes()[:900],  # truncated mid-part
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n"
        b"Content-Type: message/delivery-status\r\n\r\nAction: failed\r\n",
    ],
)
def test_garbage_and_truncated_reports_say_nothing(raw: bytes) -> None:
    report = parse_report(raw)

    assert report is None or report.recipients == []
