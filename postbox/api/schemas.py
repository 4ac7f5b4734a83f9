"""marshmallow schemas for the email endpoints; loading one yields an `EmailRequest`.

Unknown fields are errors (marshmallow's default `RAISE`). The configurable limits
(`EmailLimits`: recipients, subject, body and attachment sizes, blocked attachment types)
reach the fields through a context variable set by `load_email` and `load_batch`, the way
marshmallow 4 recommends instead of schema context. Fixed limits below keep one request
from asking for more than a relay will take; lists and dicts are measured before a single
item is parsed, so a huge list costs nothing to refuse.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from postbox.api.fast_load import FastLoader
from postbox.config import EmailLimits
from postbox.errors import AddressError
from postbox.message.addresses import parse_mailbox
from postbox.message.attachments import attachment_problem, content_type_problem, decoded_size
from postbox.message.header_text import file_name_problem, line_problem
from postbox.message.types import EmailRequest, Mailbox

MAX_ATTACHMENTS = 20
MAX_HEADERS = 50
MAX_HEADER_VALUE_LENGTH = 998
MAX_TAGS = 10
MAX_BATCH = 500
MAX_SCHEDULE_DAYS = 365

# Headers Postbox writes itself, and those Python's email package parses as structured
# (dates, addresses): a custom header may not replace or imitate them.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "orig-date",
        "message-id",
        "mime-version",
        "sender",
        "return-path",
        "received",
        "delivered-to",
    }
)
RESERVED_PREFIXES = ("content-", "resent-")
_HEADER_NAME = validate.Regexp(r"^[!-9;-~]{1,76}$", error="Not a valid header name.")
_TAG = validate.Regexp(r"^[A-Za-z0-9_.:-]{1,64}$", error="Tags are 1-64 of A-Z a-z 0-9 _ . : -")

_DEFAULT_LIMITS = EmailLimits()
_limits: ContextVar[EmailLimits] = ContextVar("email_limits", default=_DEFAULT_LIMITS)


@contextmanager
def _limits_set(limits: EmailLimits) -> Iterator[None]:
    token = _limits.set(limits)
    try:
        yield
    finally:
        _limits.reset(token)


def load_email(payload: dict[str, Any], limits: EmailLimits) -> EmailRequest:
    """The `EmailRequest` of a `POST /v1/emails` body; `ValidationError` naming each field."""
    with _limits_set(limits):
        request: EmailRequest | None = _fast_email.load(payload)
        if request is None:
            request = _email_schema.load(payload)
    return request


def load_batch(payload: dict[str, Any], limits: EmailLimits) -> list[dict[str, Any]]:
    """The items (`request`, `idempotency_key`) of a `POST /v1/emails/batch` body."""
    with _limits_set(limits):
        items = _fast_batch(payload)
        if items is None:
            items = _batch_schema.load(payload)["emails"]
    return items


def _fast_batch(payload: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The items of a batch that is valid throughout, loaded by `FastLoader`; None if any
    item (or the batch itself) is not, so that `BatchSchema` names every problem."""
    emails = payload.get("emails")
    if payload.keys() != {"emails"} or type(emails) is not list:
        return None
    if not 1 <= len(emails) <= MAX_BATCH:
        return None
    items = []
    for email in emails:
        item = _fast_batch_item.load(email)
        if item is None:
            return None
        items.append(item)
    return items


def _check(problem: Callable[[str], str | None]) -> Callable[[str], None]:
    def validator(value: str) -> None:
        found = problem(value)
        if found:
            raise ValidationError(found)

    return validator


class HeaderText(fields.String):
    """One line of header text: no line breaks or control characters."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = line_problem(text)
        if problem:
            raise ValidationError(problem)
        return text


class Subject(HeaderText):
    """The subject, up to `EmailLimits.max_subject_chars`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        limit = _limits.get().max_subject_chars
        if len(text) > limit:
            raise ValidationError(f"Longer than {limit} characters.")
        return text


class Body(fields.String):
    """A text or HTML body: no NUL (SMTP cannot carry it), at most `max_body_bytes` of UTF-8."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Must not contain NUL characters.")
        limit = _limits.get().max_body_bytes
        if len(text) > limit or len(text.encode()) > limit:
            raise ValidationError(f"Larger than {limit} bytes.")
        return text


class BoundedList(fields.List[Any]):
    """A list measured before its items are parsed."""

    def __init__(self, inner: fields.Field[Any], max_items: int, **kwargs: Any) -> None:
        super().__init__(inner, **kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list) and len(value) > self.max_items:
            raise ValidationError(f"More than {self.max_items} items.")
        return super()._deserialize(value, attr, data, **kwargs)


class HeaderDict(fields.Dict):
    """Custom headers, measured before they are parsed; names are unique regardless of case."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, dict) and len(value) > MAX_HEADERS:
            raise ValidationError(f"More than {MAX_HEADERS} headers.")
        headers: dict[str, str] = super()._deserialize(  # type: ignore[no-untyped-call]
            value, attr, data, **kwargs
        )
        seen: set[str] = set()
        for name in headers:
            if name.lower() in seen:
                raise ValidationError({name: ["Given twice (header names ignore case)."]})
            seen.add(name.lower())
        return headers


def _mailbox(value: Any) -> Mailbox:
    """The mailbox `value` names; `ValidationError` saying why it cannot be used."""
    if not isinstance(value, str):
        raise ValidationError("Not a valid string.")
    try:
        return parse_mailbox(value)
    except AddressError as exc:
        raise ValidationError(str(exc)) from exc


class MailboxField(fields.Field[Mailbox]):
    """One address, `user@example.com` or `Name <user@example.com>`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Mailbox:
        return _mailbox(value)


class MailboxListField(fields.Field[list[Mailbox]]):
    """One address or a list of them."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Mailbox]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValidationError("Not a valid address or list of addresses.")
        if self.required and not items:
            raise ValidationError("Give at least one address.")
        limit = _limits.get().max_recipients
        if len(items) > limit:
            raise ValidationError(f"More than {limit} addresses.")
        errors: dict[int, list[str]] = {}
        boxes: list[Mailbox] = []
        for index, item in enumerate(items):
            try:
                boxes.append(_mailbox(item))
            except ValidationError as exc:
                errors[index] = [str(message) for message in exc.messages]
        if errors:
            raise ValidationError(errors)
        return boxes


class Base64Field(fields.String):
    """A string that must be valid standard base64."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("Not valid base64.") from None
        return text


class AttachmentSchema(Schema):
    """One attachment: a file name, base64 content and an optional MIME type."""

    filename = fields.String(
        required=True, validate=[validate.Length(min=1, max=255), _check(file_name_problem)]
    )
    content = Base64Field(required=True)
    content_type = fields.String(load_default=None, validate=_check(content_type_problem))

    @post_load
    def _fill_type(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        problem, data["content_type"] = attachment_problem(
            data["filename"], data["content_type"], _limits.get().blocked_attachment_types
        )
        if problem:
            raise ValidationError(problem, "filename")
        return data


def _header_name(name: str) -> None:
    _HEADER_NAME(name)
    lowered = name.lower()
    if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES):
        raise ValidationError(f"The {name} header is set by Postbox and cannot be given here.")


class EmailSchema(Schema):
    """The body of `POST /v1/emails`."""

    sender = MailboxField(data_key="from", required=True)
    to = MailboxListField(required=True)
    cc = MailboxListField(load_default=list)
    bcc = MailboxListField(load_default=list)
    reply_to = MailboxListField(load_default=list)
    subject = Subject(required=True)
    text = Body(load_default=None)
    html = Body(load_default=None)
    headers = HeaderDict(
        keys=fields.String(validate=_header_name),
        values=HeaderText(validate=validate.Length(max=MAX_HEADER_VALUE_LENGTH)),
        load_default=dict,
    )
    attachments = BoundedList(fields.Nested(AttachmentSchema), MAX_ATTACHMENTS, load_default=list)
    tags = BoundedList(fields.String(validate=_TAG), MAX_TAGS, load_default=list)
    send_at = fields.AwareDateTime(format="iso", load_default=None)

    @validates_schema
    def _check_message(self, data: dict[str, Any], **kwargs: Any) -> None:
        limits = _limits.get()
        if not data.get("text") and not data.get("html"):
            raise ValidationError("Give a non-empty text or html body.", "text")
        count = sum(len(data.get(name) or []) for name in ("to", "cc", "bcc"))
        if count > limits.max_recipients:
            raise ValidationError(f"More than {limits.max_recipients} recipients in all.", "to")
        size = sum(decoded_size(a["content"]) for a in data.get("attachments") or [])
        if size > limits.max_attachment_bytes:
            raise ValidationError(
                f"Attachments larger than {limits.max_attachment_bytes} bytes in all.",
                "attachments",
            )
        send_at = data.get("send_at")
        if send_at and send_at - datetime.now(UTC) > timedelta(days=MAX_SCHEDULE_DAYS):
            raise ValidationError(f"Must be within {MAX_SCHEDULE_DAYS} days.", "send_at")

    @post_load
    def _to_request(self, data: dict[str, Any], **kwargs: Any) -> Any:
        return to_email_request(data)


def to_email_request(data: dict[str, Any]) -> EmailRequest:
    """The canonical `EmailRequest` for loaded schema data."""
    send_at: datetime | None = data["send_at"]
    return {
        "sender": data["sender"],
        "to": data["to"],
        "cc": data["cc"],
        "bcc": data["bcc"],
        "reply_to": data["reply_to"],
        "subject": data["subject"],
        "text": data["text"] or None,
        "html": data["html"] or None,
        "headers": data["headers"],
        "attachments": data["attachments"],
        "tags": data["tags"],
        "send_at": send_at.astimezone(UTC).isoformat() if send_at else None,
    }


class BatchItemSchema(EmailSchema):
    """One email of a batch, with its own optional idempotency key."""

    idempotency_key = fields.String(
        load_default=None,
        validate=[validate.Length(min=1, max=255), _check(line_problem)],
    )

    @post_load
    def _to_request(self, data: dict[str, Any], **kwargs: Any) -> Any:
        key = data.pop("idempotency_key")
        return {"request": to_email_request(data), "idempotency_key": key}


class BatchSchema(Schema):
    """The body of `POST /v1/emails/batch`."""

    emails = BoundedList(
        fields.Nested(BatchItemSchema),
        MAX_BATCH,
        required=True,
        validate=validate.Length(min=1),
    )


_email_schema = EmailSchema()
_batch_schema = BatchSchema()
_fast_email = FastLoader(_email_schema)
_fast_batch_item = FastLoader(BatchItemSchema())
