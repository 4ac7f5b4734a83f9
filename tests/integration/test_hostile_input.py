"""A corpus of hostile requests, beyond the malformed ones of test_bad_input.py.

Injection in every field, Unicode tricks, huge values, deep nesting, wrong types, repeated
JSON keys, invalid UTF-8, smuggled MIME types, a restricted key sending for someone else.
Each request must get a 4xx JSON error naming the field, leave nothing in Redis but the
rate-limit counters, and leave the API serving: a good request right after it is accepted.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from postbox.config import key_digest, load_settings
from tests.support import API_KEY, email_payload

SEND = "/v1/emails"
BATCH = "/v1/emails/batch"
PDF = base64.b64encode(b"%PDF-1.4").decode()
GOOD_TO = "rcpt@example.org"
# Every case runs with a per-key limit, so its counters exist and must be told apart.
RATE_LIMITED = {"API_RATE_LIMIT": "10000/minute"}


@dataclass(frozen=True)
class Hostile:
    """One hostile request and the status and field of the error it must get."""

    status: int
    field: str
    json: Any = None
    raw: bytes | None = None
    path: str = SEND
    headers: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def _field(name: str, **overrides: Any) -> Hostile:
    return Hostile(422, name, json=email_payload(**overrides))


def _attachment(name: str = "a.pdf", **extra: Any) -> list[dict[str, Any]]:
    return [{"filename": name, "content": PDF, **extra}]


def _raw(body: str | bytes, status: int = 400, name: str = "body", **kw: Any) -> Hostile:
    return Hostile(status, name, raw=body.encode() if isinstance(body, str) else body, **kw)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"x": "y"}
    for _ in range(depth):
        value = {"x": value}
    return value


_GOOD = json.dumps(email_payload())
_RESTRICTED = {"API_KEYS": f"sha256:{key_digest(API_KEY)}@mail.example.net"}

CASES = [
    # Header injection, one field after another.
    pytest.param(
        _field("from", **{"from": "Eve\r\nBcc: x@y.com <e@example.com>"}), id="from-name-crlf"
    ),
    pytest.param(_field("cc", cc=["a@example.com\nBcc: x@y.com"]), id="cc-lf"),
    pytest.param(_field("bcc", bcc="x@example.com\rX-Evil: 1"), id="bcc-cr"),
    pytest.param(_field("reply_to", reply_to="r@example.com\x00"), id="reply-to-nul"),
    pytest.param(_field("headers", headers={"X-A: 1\r\nBcc": "v"}), id="header-name-crlf"),
    pytest.param(_field("headers", headers={"X-Ümlaut": "v"}), id="header-name-non-ascii"),
    pytest.param(_field("headers", headers={"X-A": "a\x00b"}), id="header-value-nul"),
    pytest.param(
        _field("headers", headers={"X-A": "a\u2029Bcc: x@y.com"}), id="header-value-u2029"
    ),
    pytest.param(_field("headers", headers={"X-A": "a\x85Bcc: x@y.com"}), id="header-value-nel"),
    pytest.param(_field("subject", subject="Hi\x1b[2J"), id="subject-escape-sequence"),
    pytest.param(_field("subject", subject="Hi\x9bX"), id="subject-c1-control"),
    pytest.param(_field("text", text="Hello\x00world"), id="text-nul"),
    pytest.param(_field("html", html="<p>Hi\x00</p>"), id="html-nul"),
    pytest.param(_field("tags", tags=["a\nb"]), id="tag-lf"),
    pytest.param(_field("attachments", attachments=_attachment("a\x00.pdf")), id="filename-nul"),
    pytest.param(
        _field("attachments", attachments=_attachment(content_type="text/plain\r\nBcc: x@y.com")),
        id="content-type-crlf",
    ),
    pytest.param(
        _field("attachments", attachments=_attachment(content_type='text/plain; name="x.exe"')),
        id="content-type-with-parameters",
    ),
    pytest.param(
        Hostile(
            422, "emails", json={"emails": [email_payload(idempotency_key="k\r\nX: 1")]}, path=BATCH
        ),
        id="batch-idempotency-key-crlf",
    ),
    # Headers Postbox owns, under other spellings.
    pytest.param(_field("headers", headers={"bCC": "x@y.com"}), id="reserved-bcc-mixed-case"),
    pytest.param(_field("headers", headers={"Resent-To": "x@y.com"}), id="reserved-resent-to"),
    pytest.param(_field("headers", headers={"Orig-Date": "tomorrow"}), id="reserved-orig-date"),
    pytest.param(
        _field("headers", headers={"Date": "Mon, 1 Jan 2001 00:00:00 +0000"}), id="reserved-date"
    ),
    pytest.param(
        _field("headers", headers={"Content-Transfer-Encoding": "8bit"}), id="reserved-cte"
    ),
    pytest.param(_field("headers", headers={"X-A": "1", "x-a": "2"}), id="header-twice-by-case"),
    # MIME structure smuggled in as an attachment type.
    pytest.param(
        _field("attachments", attachments=_attachment(content_type="multipart/mixed")),
        id="attachment-multipart",
    ),
    pytest.param(
        _field("attachments", attachments=_attachment("m.eml", content_type="message/rfc822")),
        id="attachment-message-rfc822",
    ),
    # Unicode tricks.
    pytest.param(
        _field("attachments", attachments=_attachment("invoice\u202efdp.exe")), id="filename-rlo"
    ),
    pytest.param(
        _field("attachments", attachments=_attachment("report.pdf ")), id="filename-trailing-space"
    ),
    pytest.param(_field("to", to="a\u200bb@example.com"), id="local-part-zero-width-space"),
    pytest.param(_field("to", to="a\u202eb@example.com"), id="local-part-bidi-override"),
    pytest.param(_field("to", to="user\uff20example.com"), id="fullwidth-at-sign"),
    pytest.param(_field("to", to="user@xn--.com"), id="broken-punycode-domain"),
    pytest.param(
        _field("from", **{"from": "\u2066Admin\u2069 <a@example.com>"}), id="name-bidi-isolate"
    ),
    pytest.param(
        _field("to", to="\U00010000" * 151 + " <a@example.com>"), id="name-over-600-octets"
    ),
    # Huge values: refused by size, before the items are parsed.
    pytest.param(_field("subject", subject="s" * 999), id="subject-999-chars"),
    pytest.param(_field("to", to=["a@example.com"] * 100_000), id="to-100k-addresses"),
    pytest.param(
        _field("headers", headers={f"X-H{i}": "v" for i in range(100_000)}), id="headers-100k"
    ),
    pytest.param(_field("tags", tags=["t"] * 1_000_000), id="tags-1m"),
    pytest.param(_field("attachments", attachments=_attachment() * 21), id="attachments-21"),
    pytest.param(
        Hostile(422, "emails", json={"emails": [{}] * 100_000}, path=BATCH), id="batch-100k"
    ),
    pytest.param(
        Hostile(
            422, "text", json=email_payload(text="é" * 600), env={"EMAIL_MAX_BODY_BYTES": "1000"}
        ),
        id="text-over-byte-limit-in-utf8",
    ),
    pytest.param(
        Hostile(
            422,
            "attachments",
            json=email_payload(attachments=_attachment() * 2),
            env={"EMAIL_MAX_ATTACHMENT_BYTES": "10"},
        ),
        id="attachments-over-total-size",
    ),
    pytest.param(
        Hostile(
            422,
            "to",
            json=email_payload(to=[f"r{i}@example.com" for i in range(6)]),
            env={"EMAIL_MAX_RECIPIENTS": "5"},
        ),
        id="recipients-over-configured-cap",
    ),
    # Dangerous attachment types, once an operator blocks them.
    pytest.param(
        Hostile(
            422,
            "attachments",
            json=email_payload(attachments=_attachment("setup.EXE. ")),
            env={"EMAIL_BLOCKED_ATTACHMENT_TYPES": "exe,js"},
        ),
        id="blocked-extension-disguised",
    ),
    pytest.param(
        Hostile(
            422,
            "attachments",
            json=email_payload(
                attachments=_attachment("notes.txt", content_type="application/javascript")
            ),
            env={"EMAIL_BLOCKED_ATTACHMENT_TYPES": "exe,application/javascript"},
        ),
        id="blocked-declared-type",
    ),
    # Deep nesting and wrong types.
    pytest.param(_field("headers", headers={"X-A": _nested(200)}), id="nested-object-in-header"),
    pytest.param(
        _raw(_GOOD[:-1] + ', "tags": ' + "[" * 5000 + "]" * 5000 + "}"), id="nested-arrays-in-tags"
    ),
    pytest.param(_field("from", **{"from": ["a@example.com"]}), id="from-as-list"),
    pytest.param(_field("from", **{"from": {"email": "a@example.com"}}), id="from-as-object"),
    pytest.param(_field("to", to={"email": GOOD_TO}), id="to-as-object"),
    pytest.param(_field("text", text=42), id="text-as-number"),
    pytest.param(_field("html", html=True), id="html-as-bool"),
    pytest.param(_field("subject", subject=None), id="subject-null"),
    pytest.param(_field("send_at", send_at={"at": "2030-01-01"}), id="send-at-object"),
    pytest.param(_field("attachments", attachments={"filename": "a.pdf"}), id="attachments-object"),
    pytest.param(
        _field("attachments", attachments=[{"filename": "a", "content": 7}]), id="content-number"
    ),
    pytest.param(_field("tags", tags=[{"a": 1}]), id="tags-objects"),
    pytest.param(
        Hostile(422, "emails", json={"emails": ["x"]}, path=BATCH), id="batch-item-string"
    ),
    pytest.param(_raw(_GOOD.replace('"rcpt@example.org"', "NaN"), 422, "to"), id="nan-literal"),
    pytest.param(_raw(_GOOD[:-1] + ', "send_at": 1e400}', 422, "send_at"), id="infinite-number"),
    pytest.param(_raw(_GOOD[:-1] + ', "send_at": ' + "9" * 5000 + "}"), id="5000-digit-integer"),
    # Repeated keys, named by their path.
    pytest.param(
        _raw(_GOOD[:-1] + ', "headers": {"X-A": "1", "X-A": "2"}}', name="headers"),
        id="repeated-key-in-headers",
    ),
    pytest.param(
        _raw('{"emails": [' + _GOOD[:-1] + ', "subject": "again"}]}', name="emails", path=BATCH),
        id="repeated-key-in-batch-item",
    ),
    # Bytes that are not UTF-8 (or not only).
    pytest.param(_raw(b'{"from": "\xc0\xaf@example.com"}'), id="overlong-utf8"),
    pytest.param(_raw(b'{"subject": "\xed\xa0\x80"}'), id="utf8-encoded-surrogate"),
    pytest.param(_raw(_GOOD.encode()[:-3] + b"\xe2\x82"), id="truncated-multibyte"),
    pytest.param(_raw(b"\xef\xbb\xbf" + _GOOD.encode()), id="utf8-bom"),
    pytest.param(_raw(_GOOD.encode("utf-16")), id="utf16-body"),
    pytest.param(
        _raw(
            _GOOD.replace("Hello there.", "Caf\xe9").encode("latin-1"),
            content_type="application/json; charset=latin-1",
        ),
        id="latin1-body",
    ),
    # Headers of the request.
    pytest.param(
        Hostile(
            400,
            "Idempotency-Key",
            json={"emails": [email_payload()]},
            path=BATCH,
            headers={"Idempotency-Key": "k1"},
        ),
        id="idempotency-key-header-on-batch",
    ),
    pytest.param(
        Hostile(400, "Idempotency-Key", json=email_payload(), headers={"Idempotency-Key": "ключ"}),
        id="idempotency-key-non-ascii",
    ),
    pytest.param(
        Hostile(
            401,
            "Authorization",
            json=email_payload(),
            headers={"Authorization": "Bearer " + "k" * 100_000},
        ),
        id="huge-api-key",
    ),
    # A key restricted to one sender domain, used for another.
    pytest.param(
        Hostile(403, "from", json=email_payload(), env=_RESTRICTED), id="sender-not-allowed"
    ),
    pytest.param(
        Hostile(
            403,
            "emails",
            json={"emails": [email_payload(**{"from": "ok@mail.example.net"}), email_payload()]},
            path=BATCH,
            env=_RESTRICTED,
        ),
        id="batch-sender-not-allowed",
    ),
]


def _post(api, case: Hostile) -> Any:
    if case.raw is None:
        return api.post(case.path, json=case.json, headers=case.headers)
    return api.post(case.path, data=case.raw, content_type=case.content_type, headers=case.headers)


def _stored_keys(redis_client) -> list[str]:
    keys = redis_client.keys("bull:*") + redis_client.keys("postbox:*")
    return [key for key in keys if ":api-rate:" not in key]


@pytest.mark.parametrize("case", CASES)
def test_hostile_request_is_refused_and_the_api_keeps_serving(
    case: Hostile, api_factory, service_env, redis_client
):
    api = api_factory(load_settings({**service_env, **RATE_LIMITED, **case.env}))
    started = time.monotonic()

    response = _post(api, case)

    body = response.get_json(silent=True)
    assert response.status_code == case.status, body
    assert time.monotonic() - started < 3
    assert response.mimetype == "application/json"
    assert body["error"]["message"]
    assert case.field in body["error"]["fields"], body["error"]["fields"]
    assert _stored_keys(redis_client) == []
    good = email_payload(**{"from": "ok@mail.example.net"})
    assert api.post(SEND, json=good).status_code == 202


def test_a_repeated_key_is_named_by_its_whole_path(api):
    raw = '{"emails": [' + _GOOD + ", " + _GOOD[:-1] + ', "subject": "again"}]}'

    error = api.post(BATCH, data=raw, content_type="application/json").json["error"]

    assert error["fields"] == {"emails": {"1": {"subject": ["Key given twice."]}}}
    assert "emails[1].subject" in error["message"]


def test_the_corpus_has_at_least_forty_cases():
    assert len(CASES) >= 40
