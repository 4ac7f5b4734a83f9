"""Property tests of the path from a posted email to the message a worker sends.

For any payload, loading it through the API schema either fails with a `ValidationError`
(a 422 naming the field) or yields a request whose rendered message parses back, with the
standard library's parser, to exactly what was asked: the same recipients, subject, custom
headers, bodies and attachments, no header the caller did not ask for, no Bcc, CRLF line
ends only and no line over 998 octets. The generators lean hostile: any Unicode in names,
subjects and header values, IDN domains and non-ASCII local parts, long unbreakable words,
and CR/LF/NUL in bodies.
"""

from __future__ import annotations

import base64
import string
from collections import Counter
from datetime import UTC, datetime
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from postbox.api.schemas import load_email
from postbox.config import EmailLimits
from postbox.message.mime import needs_smtputf8
from postbox.message.types import EmailRequest, Mailbox
from postbox.queue.producer import prepare_email

ACCEPTED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LIMITS = EmailLimits()
MAX_LINE_OCTETS = 998
# Headers Postbox writes on every message, besides the custom ones and Cc / Reply-To.
ALWAYS = ("from", "to", "subject", "date", "message-id", "mime-version", "content-type")

_ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
_atom = st.text(alphabet=_ATEXT, min_size=1, max_size=8)
_ascii_local = st.lists(_atom, min_size=1, max_size=3).map(".".join)
_intl_local = st.text(alphabet=st.characters(categories=("L", "N", "M")), min_size=1, max_size=6)
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True) | st.sampled_from(
    ["bücher", "пример", "例子", "faß", "XN--BCHER-KVA", "Straße"]
)
_domain = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_label, min_size=1, max_size=3),
    st.sampled_from(["com", "org", "de", "рф", "COM"]),
)
_address = st.builds("{}@{}".format, st.one_of(_ascii_local, _ascii_local, _intl_local), _domain)
# Printable text of every script, with the punctuation and symbols parsers care about; any
# text at all (controls included) now and then, to check those are refused, not rendered.
_printable = st.characters(categories=("L", "M", "N", "P", "S"), include_characters=" \t")
_anything = st.text(max_size=30)


def _mostly(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`valid` 19 times in 20, any text at all otherwise (one_of would dedupe copies)."""
    return st.integers(0, 19).flatmap(lambda roll: valid if roll else _anything)


_name = _mostly(
    st.text(_printable.filter(lambda c: c not in '"<>\t'), max_size=30)
    | st.sampled_from(
        [
            *["Doe, Jane", "Zoë", "a\\b", "=?utf-8?q?hi?=", "  spaced  ", "x  y", "O'Brien"],
            *["é" * 200, "𐀀" * 150, "𐀀" * 151],  # at and over the 600-octet cap
        ]
    )
)
_mailbox = st.one_of(
    _address,
    st.builds("{} <{}>".format, _name, _address),
    st.builds('"{}" <{}>'.format, _name, _address),
)
_text = _mostly(
    st.text(_printable, max_size=200)
    | st.sampled_from(["=?utf-8?q?hi?=", " lead", "trail ", "a  b", "\t", "é" * 500, "é " * 400])
)
_long_word = st.text(alphabet="ab", min_size=900, max_size=998)
_body = st.one_of(
    st.text(min_size=1, max_size=300),
    st.builds("".join, st.lists(st.sampled_from(["a", "\r", "\n", "\r\n", ".", " ", "é"]))),
    _long_word,
)
_header_name = st.from_regex(r"X-[A-Za-z0-9-]{1,12}", fullmatch=True) | st.sampled_from(
    ["List-Unsubscribe", "In-Reply-To", "References", "Keywords", "Comments"]
)
_attachment = st.fixed_dictionaries(
    {
        "filename": _mostly(
            st.text(_printable, min_size=1, max_size=30)
            | st.sampled_from(['a"b.txt', "a\\b.txt", "=?utf-8?q?x?=.pdf", "résumé.pdf"])
        ),
        "content": st.binary(max_size=120).map(lambda b: base64.b64encode(b).decode()),
    },
    optional={
        "content_type": st.sampled_from(["application/pdf", "text/plain", "image/png", "x/y"])
    },
)


def _addresses(minimum: int) -> st.SearchStrategy[Any]:
    return st.lists(_mailbox, min_size=minimum, max_size=3) | (_mailbox if minimum else st.just([]))


_payloads = st.fixed_dictionaries(
    {
        "from": _mailbox,
        "to": _addresses(1),
        "subject": _text | _long_word,
        "text": _body,
    },
    optional={
        "cc": _addresses(0),
        "bcc": _addresses(0),
        "reply_to": _addresses(0),
        "html": st.none() | _body,
        "headers": st.dictionaries(_header_name, _text | _long_word, max_size=3),
        "attachments": st.lists(_attachment, max_size=2),
    },
)


def _load(payload: dict[str, Any]) -> EmailRequest | None:
    try:
        return load_email(payload, LIMITS)
    except ValidationError:
        return None


def _parse(text: str) -> EmailMessage:
    parsed = message_from_string(text, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _as_parsed(boxes: list[Mailbox]) -> list[tuple[str, str]]:
    return [(box.get("name", ""), box["email"]) for box in boxes]


def _parsed_addresses(message: EmailMessage, name: str) -> list[tuple[str, str]]:
    return [(a.display_name, a.addr_spec) for a in message[name].addresses]


def _on_the_wire(body: str) -> str:
    """A body as a text part carries it: line ends made LF, ending with one."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    return body if body.endswith("\n") else body + "\n"


def _check_lines(text: str) -> None:
    assert "\x00" not in text
    lines = text.split("\r\n")
    assert not any("\r" in line or "\n" in line for line in lines), "bare CR or LF"
    assert max(len(line.encode()) for line in lines) <= MAX_LINE_OCTETS


def _check_headers(message: EmailMessage, request: EmailRequest) -> None:
    expected = Counter(ALWAYS)
    expected.update(name.lower() for name in request["headers"])
    expected.update(["cc"] if request["cc"] else [])
    expected.update(["reply-to"] if request["reply_to"] else [])
    if message.get_content_type().startswith("text/"):
        expected.update(["content-transfer-encoding"])
    assert Counter(name.lower() for name in message) == expected
    assert _parsed_addresses(message, "From") == _as_parsed([request["sender"]])
    assert _parsed_addresses(message, "To") == _as_parsed(request["to"])
    if request["cc"]:
        assert _parsed_addresses(message, "Cc") == _as_parsed(request["cc"])
    if request["reply_to"]:
        assert _parsed_addresses(message, "Reply-To") == _as_parsed(request["reply_to"])
    assert message["Subject"] == request["subject"]
    for name, value in request["headers"].items():
        assert message[name] == value, name


def _check_bodies(message: EmailMessage, request: EmailRequest) -> None:
    for subtype in ("plain", "html"):
        posted = request["text" if subtype == "plain" else "html"]
        part = message.get_body((subtype,))
        if posted is None:
            assert part is None
            continue
        assert part is not None
        assert part.get_content().replace("\r\n", "\n") == _on_the_wire(posted)
    attachments = [
        (a.get_filename(), a.get_content_type(), a.get_payload(decode=True))
        for a in message.iter_attachments()
    ]
    assert attachments == [
        (a["filename"], a["content_type"], base64.b64decode(a["content"]))
        for a in request["attachments"]
    ]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_payloads)
def test_any_accepted_email_renders_to_exactly_what_was_asked(payload: dict[str, Any]):
    request = _load(payload)
    event("accepted" if request else "refused with a ValidationError")
    if request is not None:
        check_rendering(request)


def check_rendering(request: EmailRequest) -> None:
    """Every property of the message rendered for an accepted `request`."""
    prepared = prepare_email(request, None, ACCEPTED_AT)
    text = prepared.data["message"]

    _check_lines(text)
    message = _parse(text)
    _check_headers(message, request)
    _check_bodies(message, request)
    assert "bcc" not in {name.lower() for name in message}
    assert prepared.data["envelope_from"] == request["sender"]["email"]
    everyone = [box["email"] for box in (*request["to"], *request["cc"], *request["bcc"])]
    assert prepared.data["recipients"] == list(dict.fromkeys(everyone))
    assert text.isascii() or needs_smtputf8(request)
