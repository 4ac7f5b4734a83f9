"""`prepare_email` and `render_message` on requests loaded through the API schema.

The rendered message must read back to what was posted, keep Bcc out of its text, be plain
ASCII, and carry a Message-ID and job id fixed by the content (or by the idempotency key).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postbox.api.schemas import EmailSchema
from postbox.message.mime import render_message
from postbox.message.types import EmailRequest
from postbox.queue.producer import PreparedEmail, prepare_email
from tests.support import email_payload

# Real time, whole seconds: the schema only takes send_at values within a year of now.
ACCEPTED_AT = datetime.now(UTC).replace(microsecond=0)
SOME_DAY = ACCEPTED_AT + timedelta(days=30)
PDF = base64.b64encode(b"%PDF-1.4 not really").decode()


def _load(**overrides: Any) -> EmailRequest:
    request: EmailRequest = EmailSchema().load(email_payload(**overrides))
    return request


def _prepare(
    key: str | None = None, now: datetime = ACCEPTED_AT, **overrides: Any
) -> PreparedEmail:
    return prepare_email(_load(**overrides), key, now)


def _parse(text: str) -> EmailMessage:
    parsed = message_from_string(text, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _content(part: Any) -> str:
    """A text part's content with the wire's CRLF line ends made plain."""
    return str(part.get_content()).replace("\r\n", "\n")


def _addresses(message: EmailMessage, name: str) -> list[tuple[str, str]]:
    return [(a.display_name, a.addr_spec) for a in message[name].addresses]


RICH = {
    "from": "Zoë Sender <zoe@Bücher.de>",
    "to": ["Jörg Müller <joerg@example.org>", "plain@EXAMPLE.org"],
    "cc": '"Doe, Jane" <jane@example.net>',
    "bcc": ["hidden-one@secret.example", "Hidden Two <hidden-two@secret.example>"],
    "reply_to": "replies@example.com",
    "subject": "Grüße aus Köln — ✓ your order",
    "text": "Héllo ✓\nSecond line.",
    "html": "<p>Héllo ✓</p>",
    "headers": {"X-Campaign": "spring ☀", "List-Unsubscribe": "<mailto:unsub@example.com>"},
    "attachments": [{"filename": "résumé.pdf", "content": PDF}],
    "tags": ["welcome"],
}


def test_rendered_message_reads_back_to_the_posted_fields():
    prepared = _prepare(**RICH)

    message = _parse(prepared.data["message"])

    assert _addresses(message, "From") == [("Zoë Sender", "zoe@xn--bcher-kva.de")]
    assert _addresses(message, "To") == [
        ("Jörg Müller", "joerg@example.org"),
        ("", "plain@example.org"),
    ]
    assert _addresses(message, "Cc") == [("Doe, Jane", "jane@example.net")]
    assert _addresses(message, "Reply-To") == [("", "replies@example.com")]
    assert message["Subject"] == "Grüße aus Köln — ✓ your order"
    assert message["X-Campaign"] == "spring ☀"
    assert message["List-Unsubscribe"] == "<mailto:unsub@example.com>"
    assert message["Message-ID"] == prepared.data["message_id"]
    assert _content(message.get_body(("plain",))) == "Héllo ✓\nSecond line.\n"
    assert _content(message.get_body(("html",))) == "<p>Héllo ✓</p>\n"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "résumé.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == b"%PDF-1.4 not really"


def test_html_only_email_has_a_single_html_body():
    message = _parse(_prepare(text=None, html="<b>Only HTML</b>").data["message"])

    assert message.get_content_type() == "text/html"
    assert message.get_body(("plain",)) is None
    assert _content(message.get_body(("html",))) == "<b>Only HTML</b>\n"


def test_envelope_lists_every_recipient_once_and_the_sender_address():
    prepared = _prepare(**RICH)

    assert prepared.data["envelope_from"] == "zoe@xn--bcher-kva.de"
    assert prepared.data["recipients"] == [
        "joerg@example.org",
        "plain@example.org",
        "jane@example.net",
        "hidden-one@secret.example",
        "hidden-two@secret.example",
    ]


def test_recipient_given_twice_is_in_the_envelope_once():
    prepared = _prepare(to=["a@example.com"], cc=["a@EXAMPLE.com"], bcc=["Name <a@Example.Com>"])

    assert prepared.data["recipients"] == ["a@example.com"]


def test_bcc_is_in_the_envelope_and_nowhere_in_the_message_text():
    prepared = _prepare(**RICH)
    text = prepared.data["message"]

    assert "hidden-one@secret.example" in prepared.data["recipients"]
    assert "hidden-two@secret.example" in prepared.data["recipients"]
    assert "secret.example" not in text
    assert "Hidden Two" not in text
    assert _parse(text)["Bcc"] is None


def test_rendered_text_is_ascii_with_crlf_line_ends_and_short_lines():
    text = _prepare(**RICH).data["message"]

    assert text.isascii()
    assert "\n" not in text.replace("\r\n", "")
    assert max(len(line) for line in text.split("\r\n")) <= 998


def test_long_unbroken_lines_are_kept_under_998_characters():
    text = _prepare(text="x" * 5000, headers={"X-Long": "y" * 998}, subject="é" * 998).data[
        "message"
    ]

    assert text.isascii()
    assert max(len(line) for line in text.split("\r\n")) <= 998
    message = _parse(text)
    assert message["X-Long"] == "y" * 998
    assert message["Subject"] == "é" * 998
    assert _content(message.get_body(("plain",))) == "x" * 5000 + "\n"


def test_message_id_is_the_same_when_the_same_payload_is_prepared_later():
    first = _prepare(now=ACCEPTED_AT)
    later = _prepare(now=ACCEPTED_AT + timedelta(hours=3))

    assert first.data["message_id"] == later.data["message_id"]
    assert _parse(later.data["message"])["Message-ID"] == first.data["message_id"]
    # The Date header does follow the time of acceptance.
    assert _parse(first.data["message"])["Date"] != _parse(later.data["message"])["Date"]


def test_message_id_uses_the_sender_domain():
    prepared = _prepare(**{"from": "news@Mail.Example.COM"})

    assert prepared.data["message_id"].startswith("<")
    assert prepared.data["message_id"].endswith("@mail.example.com>")


def test_equal_payloads_get_the_same_job_id():
    first = _prepare(now=ACCEPTED_AT)
    second = _prepare(now=ACCEPTED_AT + timedelta(minutes=5))

    assert first.job_id == second.job_id
    assert first.job_id.startswith("em_")


def test_equivalent_spellings_get_the_same_job_id():
    in_utc = SOME_DAY.isoformat()
    in_paris_summer = SOME_DAY.astimezone(timezone(timedelta(hours=2))).isoformat()
    first = _prepare(to="Rcpt@EXAMPLE.org", send_at=in_paris_summer)
    second = _prepare(to=["  Rcpt@example.ORG "], send_at=in_utc)

    assert in_utc != in_paris_summer

    assert first.job_id == second.job_id


@pytest.mark.parametrize(
    "change",
    [
        {"from": "other@example.com"},
        {"from": "Another Name <sender@example.com>"},
        {"to": ["someone-else@example.org"]},
        {"to": ["Named <rcpt@example.org>"]},
        {"cc": ["cc@example.org"]},
        {"bcc": ["bcc@example.org"]},
        {"reply_to": ["reply@example.org"]},
        {"subject": "Hello!"},
        {"text": "Hello there!"},
        {"html": "<p>Hello there.</p>"},
        {"headers": {"X-Campaign": "spring"}},
        {"attachments": [{"filename": "a.pdf", "content": PDF}]},
        {"tags": ["welcome"]},
        {"send_at": SOME_DAY.isoformat()},
    ],
    ids=lambda change: next(iter(change)),
)
def test_any_changed_field_changes_the_job_id_and_message_id(change):
    base = _prepare()
    changed = _prepare(**change)

    assert changed.job_id != base.job_id
    assert changed.data["message_id"] != base.data["message_id"]


def test_with_an_idempotency_key_the_job_id_depends_only_on_the_key():
    first = _prepare(key="order-42", subject="First")
    second = _prepare(key="order-42", subject="Second", to="other@example.org")
    other_key = _prepare(key="order-43", subject="First")

    assert first.job_id == second.job_id
    assert first.job_id != other_key.job_id
    assert first.job_id != _prepare(subject="First").job_id
    # The fingerprint still tells the two payloads apart (a reused key is a conflict).
    assert first.fingerprint != second.fingerprint


def test_send_at_in_the_future_gives_the_delay_until_then():
    send_at = ACCEPTED_AT + timedelta(seconds=90)

    prepared = _prepare(send_at=send_at.isoformat())

    assert prepared.delay_ms == 90_000
    assert prepared.data["summary"]["send_at"] == send_at.isoformat()


def test_send_at_in_another_time_zone_gives_the_same_delay():
    one_minute_on = ACCEPTED_AT + timedelta(minutes=1)
    send_at = one_minute_on.astimezone(timezone(timedelta(hours=-5))).isoformat()

    prepared = _prepare(send_at=send_at)

    assert prepared.delay_ms == 60_000


def test_send_at_now_or_in_the_past_gives_no_delay():
    assert _prepare().delay_ms == 0
    assert _prepare(send_at=(ACCEPTED_AT - timedelta(days=1)).isoformat()).delay_ms == 0


def test_render_message_uses_the_given_message_id_and_date():
    text = render_message(_load(), "<fixed@example.com>", ACCEPTED_AT)

    message = _parse(text)
    assert message["Message-ID"] == "<fixed@example.com>"
    assert message["Date"].datetime == ACCEPTED_AT


def test_the_same_moment_in_two_time_zones_keeps_each_zone_in_the_date_header():
    # Equal datetimes (the Date header is cached per moment) in other zones.
    in_utc = render_message(_load(), "<a@example.com>", ACCEPTED_AT)
    in_paris = render_message(
        _load(), "<a@example.com>", ACCEPTED_AT.astimezone(timezone(timedelta(hours=1)))
    )

    assert _parse(in_utc)["Date"].datetime.utcoffset() == timedelta(0)
    assert _parse(in_paris)["Date"].datetime.utcoffset() == timedelta(hours=1)


# Text of long lines, most of it of what quoted-printable carries as it is, with the cases it
# must escape now and then: white space ending a line, "=", a lone ".", controls, non-ASCII.
_qp_text = st.builds(
    "".join,
    st.lists(
        st.text("ab ", min_size=300, max_size=700)
        | st.sampled_from([" ", "\t", "\n", "\r\n", "\n.\n", "=", "\x01", "é", "  \n"]),
        min_size=1,
        max_size=6,
    ),
)


@settings(max_examples=400, deadline=None)
@given(_qp_text)
def test_a_quoted_printable_body_reads_back_exactly_in_lines_of_76_at_most(text: str):
    message = _parse(_prepare(text=text).data["message"])
    part = message.get_body(("plain",))
    assert part is not None
    assert _content(part) == _on_the_wire(text)
    if part["Content-Transfer-Encoding"] == "quoted-printable" and set(text) <= set("ab \t\r\n"):
        # Written by Postbox itself, not by binascii (which makes a line of 77 or 78 when
        # it escapes white space just before a soft break).
        assert max(len(line) for line in part.get_payload().split("\r\n")) <= 76


def _on_the_wire(body: str) -> str:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    return body if body.endswith("\n") else body + "\n"
