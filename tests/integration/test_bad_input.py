"""Bad requests to the send endpoints: the right status, error code and field, and nothing queued.

Each case is one request and what DESIGN.md promises for it: the JSON error envelope
`{"error": {"code", "message", "fields"}}` with the status of the problem, `fields` naming
what was wrong, and not a single key written under `bull:` or `postbox:` in Redis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from postbox.config import load_settings
from tests.support import API_KEY, email_payload

SEND = "/v1/emails"
BATCH = "/v1/emails/batch"
ATTACHMENT = "aGVsbG8="  # base64 of b"hello"
# The sentinel for "send this exact body" instead of JSON.
_NO_JSON: Any = object()


@dataclass(frozen=True)
class Bad:
    """One bad request and the error the API must answer it with."""

    status: int
    code: str
    field: str
    json: Any = _NO_JSON
    data: bytes | str | None = None
    content_type: str | None = None
    path: str = SEND
    headers: dict[str, str] = field(default_factory=dict)
    send_api_key: bool = True
    max_request_bytes: int | None = None


def _without(name: str) -> dict[str, Any]:
    payload = email_payload()
    del payload[name]
    return payload


def _raw(body: bytes | str, status: int, code: str, field_name: str, **kw: Any) -> Bad:
    return Bad(status, code, field_name, data=body, content_type="application/json", **kw)


def _invalid(field_name: str, **overrides: Any) -> Bad:
    return Bad(422, "validation_error", field_name, json=email_payload(**overrides))


def _batch(emails: Any, field_name: str = "emails") -> Bad:
    return Bad(422, "validation_error", field_name, json={"emails": emails}, path=BATCH)


def _unauthorized(headers: dict[str, str] | None = None) -> Bad:
    return Bad(
        401,
        "unauthorized",
        "Authorization",
        json=email_payload(),
        headers=headers or {},
        send_api_key=headers is not None,
    )


CASES = [
    # Required fields.
    pytest.param(Bad(422, "validation_error", "from", json=_without("from")), id="missing-from"),
    pytest.param(Bad(422, "validation_error", "to", json=_without("to")), id="missing-to"),
    pytest.param(
        Bad(422, "validation_error", "subject", json=_without("subject")), id="missing-subject"
    ),
    # Addresses of several wrong shapes.
    pytest.param(_invalid("to", to="not-an-address"), id="to-without-at"),
    pytest.param(_invalid("to", to=["a@b"]), id="to-domain-without-dot"),
    pytest.param(_invalid("to", to="@example.com"), id="to-without-local-part"),
    pytest.param(_invalid("to", to="a@@example.com"), id="to-with-two-ats"),
    pytest.param(_invalid("to", to="a@b.co, c@d.co"), id="to-two-addresses-in-one-string"),
    pytest.param(_invalid("to", to="Name <a@b.co> trailing"), id="to-text-after-angle-address"),
    pytest.param(_invalid("to", to="user@[127.0.0.1]"), id="to-address-literal"),
    pytest.param(_invalid("from", **{"from": "sender@"}), id="from-without-domain"),
    pytest.param(_invalid("cc", cc=["ok@example.com", "not valid@example.com"]), id="cc-space"),
    pytest.param(_invalid("bcc", bcc="x@-bad-.com"), id="bcc-bad-domain"),
    pytest.param(_invalid("reply_to", reply_to="nobody"), id="reply-to-without-at"),
    # Header injection.
    pytest.param(_invalid("subject", subject="Hi\r\nBcc: x@y.com"), id="crlf-in-subject"),
    pytest.param(_invalid("subject", subject="Hi\nX-Evil: 1"), id="lf-in-subject"),
    pytest.param(_invalid("subject", subject="Hi\x00there"), id="nul-in-subject"),
    pytest.param(
        _invalid("headers", headers={"X-Campaign": "a\r\nBcc: x@y.com"}),
        id="crlf-in-custom-header-value",
    ),
    pytest.param(_invalid("to", to="a@b.co\r\nBcc: x@y.com"), id="crlf-in-to-address"),
    pytest.param(_invalid("from", **{"from": "a@b.co\r\nBcc: x@y.com"}), id="crlf-in-from-address"),
    pytest.param(_invalid("to", to="Eve\r\nBcc: x@y.com <a@b.co>"), id="crlf-in-display-name"),
    pytest.param(
        _invalid("subject", subject="Hi\u2028Bcc: x@y.com"),
        id="unicode-line-separator-in-subject",
    ),
    pytest.param(
        _invalid("headers", headers={"X-Campaign": "a\x0bb"}),
        id="vertical-tab-in-custom-header-value",
    ),
    # Reserved or malformed custom headers.
    pytest.param(_invalid("headers", headers={"Bcc": "x@y.com"}), id="reserved-header-bcc"),
    pytest.param(
        _invalid("headers", headers={"Message-ID": "<x@y.com>"}), id="reserved-header-message-id"
    ),
    pytest.param(
        _invalid("headers", headers={"Content-Type": "text/html"}),
        id="reserved-header-content-type",
    ),
    pytest.param(_invalid("headers", headers={"X Bad": "v"}), id="header-name-with-space"),
    # Bodies.
    pytest.param(Bad(422, "validation_error", "text", json=_without("text")), id="no-body"),
    pytest.param(_invalid("text", text="", html=""), id="both-bodies-empty-strings"),
    pytest.param(_invalid("text", text=None, html=None), id="both-bodies-null"),
    # Batches.
    pytest.param(
        _batch([email_payload(subject=f"Item {i}") for i in range(501)]), id="batch-of-501"
    ),
    pytest.param(_batch([]), id="batch-empty"),
    pytest.param(Bad(422, "validation_error", "emails", json={}, path=BATCH), id="batch-no-emails"),
    pytest.param(_batch(email_payload()), id="batch-emails-not-a-list"),
    pytest.param(_batch([email_payload(), email_payload(to="nope")]), id="batch-one-bad-item"),
    pytest.param(_batch([email_payload(idempotency_key="")]), id="batch-empty-idempotency-key"),
    pytest.param(
        Bad(422, "validation_error", "body", json=[email_payload()], path=BATCH),
        id="batch-top-level-array",
    ),
    # The body as a whole.
    pytest.param(
        Bad(
            415,
            "unsupported_media_type",
            "Content-Type",
            data=json.dumps(email_payload()),
            content_type="text/plain",
        ),
        id="content-type-text-plain",
    ),
    pytest.param(
        Bad(415, "unsupported_media_type", "Content-Type", data=json.dumps(email_payload())),
        id="content-type-missing",
    ),
    pytest.param(_raw('{"from": "a@b.co",', 400, "bad_request", "body"), id="invalid-json"),
    pytest.param(_raw("", 400, "bad_request", "body"), id="empty-body"),
    pytest.param(
        Bad(422, "validation_error", "body", json=[email_payload()]), id="top-level-json-array"
    ),
    pytest.param(_raw('"hello"', 422, "validation_error", "body"), id="top-level-json-string"),
    pytest.param(
        _raw(
            b'{"from": "a@example.com", "to": "b@example.com", "subject": "\xff\xfe", "text": "t"}',
            400,
            "bad_request",
            "body",
        ),
        id="invalid-utf8-bytes",
    ),
    pytest.param(
        _raw(
            '{"from": "a@example.com", "to": "b@example.com", "subject": "x", "text": "\\ud800"}',
            400,
            "bad_request",
            "body",
        ),
        id="lone-surrogate-escape-in-text",
    ),
    pytest.param(
        _raw(
            '{"from": "a@example.com", "to": "b@example.com", "subject": "x", "text": "\\uDFFF"}',
            400,
            "bad_request",
            "body",
        ),
        id="lone-low-surrogate-escape-in-upper-case",
    ),
    pytest.param(
        _raw(
            '{"emails": [{"from": "a@example.com", "to": "b@example.com", "subject": "x",'
            ' "text": "t", "X\\ud83d": "y"}]}',
            400,
            "bad_request",
            "body",
            path="/v1/emails/batch",
        ),
        id="lone-surrogate-escape-in-a-batch-item-key",
    ),
    pytest.param(
        _raw(
            '{"from": "a@example.com", "to": "b@example.com",'
            ' "subject": "one", "subject": "two", "text": "t"}',
            400,
            "bad_request",
            "subject",
        ),
        id="duplicated-json-key",
    ),
    pytest.param(
        _raw("[" * 100_000 + "]" * 100_000, 400, "bad_request", "body"), id="json-nested-too-deep"
    ),
    pytest.param(
        Bad(
            413,
            "request_entity_too_large",
            "body",
            json=email_payload(text="x" * 4096),
            max_request_bytes=2048,
        ),
        id="body-over-size-limit",
    ),
    # Attachments.
    pytest.param(
        _invalid("attachments", attachments=[{"filename": "a.txt", "content": "not base64!"}]),
        id="attachment-invalid-base64",
    ),
    pytest.param(
        _invalid("attachments", attachments=[{"content": ATTACHMENT}]),
        id="attachment-without-filename",
    ),
    pytest.param(
        _invalid("attachments", attachments=[{"filename": "", "content": ATTACHMENT}]),
        id="attachment-empty-filename",
    ),
    pytest.param(
        _invalid("attachments", attachments=[{"filename": "a\r\n.txt", "content": ATTACHMENT}]),
        id="attachment-filename-with-crlf",
    ),
    pytest.param(
        _invalid(
            "attachments",
            attachments=[{"filename": "a.txt", "content": ATTACHMENT, "content_type": "text"}],
        ),
        id="attachment-content-type-without-subtype",
    ),
    # Scheduling.
    pytest.param(_invalid("send_at", send_at="tomorrow at noon"), id="send-at-not-iso"),
    pytest.param(_invalid("send_at", send_at="2030-01-01T09:00:00"), id="send-at-without-timezone"),
    pytest.param(_invalid("send_at", send_at=1_900_000_000), id="send-at-as-number"),
    pytest.param(
        _invalid("send_at", send_at=(datetime.now(UTC) + timedelta(days=400)).isoformat()),
        id="send-at-more-than-a-year-ahead",
    ),
    pytest.param(
        _invalid("send_at", send_at="9999-12-31T23:59:59-14:00"),
        id="send-at-beyond-year-9999-in-utc",
    ),
    # Unknown fields and wrong types.
    pytest.param(_invalid("priority", priority="high"), id="unknown-field"),
    pytest.param(_invalid("to", to=42), id="to-as-number"),
    pytest.param(_invalid("to", to=[7]), id="to-list-of-numbers"),
    pytest.param(_invalid("subject", subject=["Hello"]), id="subject-as-list"),
    pytest.param(_invalid("headers", headers=["X-Campaign: spring"]), id="headers-as-list"),
    pytest.param(_invalid("headers", headers={"X-Count": 3}), id="header-value-as-number"),
    pytest.param(_invalid("tags", tags="welcome"), id="tags-as-string"),
    # Recipient limits.
    pytest.param(
        _invalid("to", to=[f"r{i}@example.com" for i in range(51)]), id="to-over-50-addresses"
    ),
    pytest.param(
        _invalid(
            "to",
            to=[f"t{i}@example.com" for i in range(20)],
            cc=[f"c{i}@example.com" for i in range(20)],
            bcc=[f"b{i}@example.com" for i in range(11)],
        ),
        id="to-cc-bcc-over-50-in-all",
    ),
    pytest.param(
        _invalid("to", to=[]),
        id="to-empty-list",
    ),
    # Authentication.
    pytest.param(_unauthorized({"Authorization": "Bearer wrong-key-0123456789"}), id="wrong-key"),
    pytest.param(_unauthorized(), id="missing-key"),
    pytest.param(_unauthorized({"Authorization": "Basic dXNlcjpwYXNz"}), id="basic-scheme"),
    pytest.param(_unauthorized({"Authorization": API_KEY}), id="key-without-scheme"),
    pytest.param(_unauthorized({"Authorization": "Bearer "}), id="bearer-without-key"),
    # Idempotency-Key header.
    pytest.param(
        Bad(
            400,
            "bad_request",
            "Idempotency-Key",
            json=email_payload(),
            headers={"Idempotency-Key": "k" * 300},
        ),
        id="idempotency-key-300-characters",
    ),
    pytest.param(
        Bad(
            400,
            "bad_request",
            "Idempotency-Key",
            json=email_payload(),
            headers={"Idempotency-Key": "order\t42"},
        ),
        id="idempotency-key-with-tab",
    ),
]


def _send(case: Bad, api, api_factory, service_env) -> Any:
    client = api
    if case.max_request_bytes is not None:
        limit = str(case.max_request_bytes)
        client = api_factory(load_settings({**service_env, "MAX_REQUEST_BYTES": limit}))
    kwargs: dict[str, Any] = {"headers": case.headers}
    if case.json is not _NO_JSON:
        kwargs["json"] = case.json
    else:
        kwargs["data"] = case.data
        if case.content_type is not None:
            kwargs["content_type"] = case.content_type
    if case.send_api_key:
        return client.post(case.path, **kwargs)
    return client.client.post(case.path, **kwargs)


def _queue_keys(redis_client) -> list[str]:
    return redis_client.keys("bull:*") + redis_client.keys("postbox:*")


@pytest.mark.parametrize("case", CASES)
def test_bad_request_is_refused_with_a_named_field_and_nothing_is_queued(
    case: Bad, api, api_factory, service_env, redis_client
):
    response = _send(case, api, api_factory, service_env)

    body = response.get_json(silent=True)
    assert response.status_code == case.status, body
    assert response.mimetype == "application/json"
    error = body["error"]
    assert error["code"] == case.code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert case.field in error["fields"], error["fields"]
    if case.status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert _queue_keys(redis_client) == []


def test_server_keeps_serving_after_a_series_of_bad_requests(api, redis_client):
    bad_requests = [
        {"json": email_payload(subject="a\r\nb")},
        {"data": "{not json", "content_type": "application/json"},
        {"data": b"\xff", "content_type": "application/json"},
        {"data": "x", "content_type": "text/plain"},
        {"json": [1, 2, 3]},
        {"json": email_payload(to=42)},
        {"json": email_payload(headers={"Bcc": "x@y.com"})},
    ]
    for kwargs in bad_requests:
        assert 400 <= api.post(SEND, **kwargs).status_code < 500
    assert api.client.post(SEND, json=email_payload()).status_code == 401
    assert _queue_keys(redis_client) == []

    response = api.post(SEND, json=email_payload(subject="Still here"))

    assert response.status_code == 202
    assert response.json["status"] == "queued"
    assert redis_client.keys("bull:*")
