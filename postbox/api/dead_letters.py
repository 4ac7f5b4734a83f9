"""`/v1/dead-letters`: list failed emails, requeue them, or discard them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from postbox.api.body import read_json_object
from postbox.api.extension import state
from postbox.errors import InvalidCursor, NotFound, ValidationFailed
from postbox.queue.contract import DEAD_LETTER_CLASSES
from postbox.queue.job_ids import is_job_id

bp = Blueprint("dead_letters", __name__)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Offsets are walked entry by entry; past this, page with the cursor instead.
MAX_OFFSET = 10_000


def _error_class_field() -> fields.String:
    return fields.String(load_default=None, validate=validate.OneOf(DEAD_LETTER_CLASSES))


class ListQuerySchema(Schema):
    """The query string of `GET /v1/dead-letters`."""

    limit = fields.Integer(
        load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT)
    )
    cursor = fields.String(load_default=None, validate=validate.Length(min=1, max=512))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
    error_class = _error_class_field()

    @validates_schema
    def _cursor_or_offset(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("cursor") and data.get("offset"):
            raise ValidationError("Give a cursor or an offset, not both.", "offset")


class RetryFilterSchema(Schema):
    """The optional body of `POST /v1/dead-letters/retry`."""

    error_class = _error_class_field()


_list_query = ListQuerySchema()
_retry_filter = RetryFilterSchema()


@bp.get("/dead-letters")
def list_dead_letters() -> dict[str, Any]:
    """Failed emails, newest first, a page at a time."""
    query = _list_query.load(request.args.to_dict())
    try:
        page = state().gateway.list_dead_letters(
            query["limit"], query["cursor"], query["offset"], query["error_class"]
        )
    except InvalidCursor as exc:
        raise ValidationFailed("The cursor is not valid.", {"cursor": [str(exc)]}) from None
    return page.to_json()


@bp.post("/dead-letters/<email_id>/retry")
def retry_dead_letter(email_id: str) -> tuple[dict[str, Any], int]:
    """Requeue one failed email with a full attempt budget, same id and Message-ID."""
    return requeue(email_id), 202


@bp.post("/dead-letters/retry")
def retry_dead_letters() -> tuple[dict[str, Any], int]:
    """Requeue every failed email, or those of one error class."""
    body = _retry_filter.load(read_json_object()) if request.get_data(cache=True) else {}
    retried = state().gateway.retry_dead_letters(body.get("error_class"))
    return {"retried": retried}, 202


@bp.delete("/dead-letters/<email_id>")
def discard_dead_letter(email_id: str) -> tuple[str, int]:
    """Delete one failed email for good."""
    discard(email_id)
    return "", 204


def requeue(email_id: str) -> dict[str, Any]:
    """Requeue one dead letter (the API's and the dashboard's retry); 404 if it is none."""
    if not (is_job_id(email_id) and state().gateway.retry_dead_letter(email_id)):
        raise _not_a_dead_letter(email_id)
    return {"id": email_id, "status": "queued"}


def discard(email_id: str) -> None:
    """Discard one dead letter (the API's and the dashboard's delete); 404 if it is none."""
    if not (is_job_id(email_id) and state().gateway.discard_dead_letter(email_id)):
        raise _not_a_dead_letter(email_id)


def _not_a_dead_letter(email_id: str) -> NotFound:
    return NotFound(f"No dead letter with id {email_id!r}.", {"id": ["Not a dead letter."]})
