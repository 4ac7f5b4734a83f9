"""marshmallow schemas for the email endpoints; loading one yields an `EmailRequest`.

Unknown fields are errors (marshmallow's default `RAISE`). Limits below keep one request
from asking for more than a relay will take.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from postbox.api.addresses import AddressError, parse_mailbox
from postbox.queue.contract import EmailRequest, Mailbox

MAX_RECIPIENTS = 50
MAX_SUBJECT_LENGTH = 998
MAX_BODY_CHARS = 5 * 1024 * 1024
MAX_ATTACHMENTS = 20
MAX_HEADERS = 50
MAX_TAGS = 10
MAX_BATCH = 500

# Headers Postbox writes itself; a custom header may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "sender",
        "return-path",
        "received",
    }
)
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}$")
_TAG = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_NO_LINE_BREAKS = "Must not contain line breaks or control characters."
# C0 controls but tab, DEL, C1 controls, and the Unicode line and paragraph separators:
# anything a mail parser (or Python's email package) could take for the end of a line.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
MAX_SCHEDULE_DAYS = 365


def _single_line(value: str) -> None:
    if _CONTROL.search(value):
        raise ValidationError(_NO_LINE_BREAKS)


class MailboxField(fields.Field[Mailbox]):
    """One address, `user@example.com` or `Name <user@example.com>`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Mailbox:
        if not isinstance(value, str):
            raise ValidationError("Not a valid string.")
        try:
            return parse_mailbox(value)
        except AddressError as exc:
            raise ValidationError(str(exc)) from exc


class MailboxListField(fields.Field[list[Mailbox]]):
    """One address or a list of them."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Mailbox]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValidationError("Not a valid address or list of addresses.")
        if self.required and not items:
            raise ValidationError("Give at least one address.")
        if len(items) > MAX_RECIPIENTS:
            raise ValidationError(f"More than {MAX_RECIPIENTS} addresses.")
        errors: dict[int, list[str]] = {}
        boxes: list[Mailbox] = []
        for index, item in enumerate(items):
            try:
                boxes.append(MailboxField()._deserialize(item, attr, data))
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
        required=True, validate=[validate.Length(min=1, max=255), _single_line]
    )
    content = Base64Field(required=True)
    content_type = fields.String(load_default=None, validate=validate.Regexp(_CONTENT_TYPE))

    @post_load
    def _fill_type(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data["content_type"] is None:
            guessed, _ = mimetypes.guess_type(data["filename"])
            data["content_type"] = guessed or "application/octet-stream"
        return data


def _header_name(name: str) -> None:
    if not _HEADER_NAME.match(name):
        raise ValidationError("Not a valid header name.")
    if name.lower() in RESERVED_HEADERS or name.lower().startswith("content-"):
        raise ValidationError(f"The {name} header is set by Postbox and cannot be given here.")


class EmailSchema(Schema):
    """The body of `POST /v1/emails`."""

    sender = MailboxField(data_key="from", required=True)
    to = MailboxListField(required=True)
    cc = MailboxListField(load_default=list)
    bcc = MailboxListField(load_default=list)
    reply_to = MailboxListField(load_default=list)
    subject = fields.String(
        required=True, validate=[validate.Length(max=MAX_SUBJECT_LENGTH), _single_line]
    )
    text = fields.String(load_default=None, validate=validate.Length(max=MAX_BODY_CHARS))
    html = fields.String(load_default=None, validate=validate.Length(max=MAX_BODY_CHARS))
    headers = fields.Dict(
        keys=fields.String(validate=_header_name),
        values=fields.String(validate=[validate.Length(max=998), _single_line]),
        load_default=dict,
        validate=validate.Length(max=MAX_HEADERS),
    )
    attachments = fields.List(
        fields.Nested(AttachmentSchema),
        load_default=list,
        validate=validate.Length(max=MAX_ATTACHMENTS),
    )
    tags = fields.List(
        fields.String(validate=validate.Regexp(_TAG, error="Tags are 1-64 of A-Z a-z 0-9 _ . : -")),
        load_default=list,
        validate=validate.Length(max=MAX_TAGS),
    )
    send_at = fields.AwareDateTime(format="iso", load_default=None)

    @validates_schema
    def _check_message(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("text") and not data.get("html"):
            raise ValidationError("Give a non-empty text or html body.", "text")
        count = sum(len(data.get(name) or []) for name in ("to", "cc", "bcc"))
        if count > MAX_RECIPIENTS:
            raise ValidationError(f"More than {MAX_RECIPIENTS} recipients in all.", "to")
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
        load_default=None, validate=[validate.Length(min=1, max=255), _single_line]
    )

    @post_load
    def _to_request(self, data: dict[str, Any], **kwargs: Any) -> Any:
        key = data.pop("idempotency_key")
        return {"request": to_email_request(data), "idempotency_key": key}


class BatchSchema(Schema):
    """The body of `POST /v1/emails/batch`."""

    emails = fields.List(
        fields.Nested(BatchItemSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH),
    )
