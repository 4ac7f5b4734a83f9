"""`GET /v1/emails` (search the history), `DELETE /v1/emails?to=` (erase an address), and the
history's answer to `GET /v1/emails/{id}` once the queue has forgotten the email.

A key restricted to sender domains sees and erases only the emails sent from them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, current_app, request
from marshmallow import Schema, fields, validate

from postbox.api.auth import current_key
from postbox.api.extension import state
from postbox.config.history import HistorySettings
from postbox.errors import (
    HistoryDisabled,
    HistoryDown,
    HistoryRejected,
    HistoryUnavailable,
    InvalidCursor,
    NotFound,
    ValidationFailed,
)
from postbox.history.access import HistoryAccess
from postbox.history.erasure import erase_address
from postbox.history.search import MAX_LIMIT, EmailQuery, search
from postbox.history.views import find_record

bp = Blueprint("history", __name__)
STATUSES = ("queued", "scheduled", "retrying", "sent", "failed", "canceled")
EXTENSION = "postbox_history"


class SearchQuerySchema(Schema):
    """The query string of `GET /v1/emails`."""

    to = fields.String(load_default=None, validate=validate.Length(min=1, max=320))
    sender = fields.String(
        data_key="from", load_default=None, validate=validate.Length(min=1, max=320)
    )
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))
    tag = fields.String(load_default=None, validate=validate.Length(min=1, max=256))
    since = fields.AwareDateTime(load_default=None)
    until = fields.AwareDateTime(load_default=None)
    cursor = fields.String(load_default=None, validate=validate.Length(min=1, max=512))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_LIMIT))


class EraseQuerySchema(Schema):
    """The query string of `DELETE /v1/emails`."""

    to = fields.Email(required=True)


_search_query = SearchQuerySchema()
_erase_query = EraseQuerySchema()


def init_history(app: Flask, settings: HistorySettings) -> None:
    """Keep this app's history access (none without DATABASE_URL)."""
    app.extensions[EXTENSION] = HistoryAccess(settings) if settings.enabled else None


def history_status() -> dict[str, Any]:
    """What GET /v1/queue/stats says of the history."""
    settings = state().settings.history
    if not settings.enabled:
        return {
            "enabled": False,
            "note": "No DATABASE_URL: nothing is kept beyond the dedup window.",
        }
    return {"enabled": True, "days": settings.days, "bodies": settings.store_bodies}


@contextlib.contextmanager
def _history() -> Iterator[HistoryAccess]:
    access: HistoryAccess | None = current_app.extensions.get(EXTENSION)
    if access is None:
        raise HistoryDisabled
    try:
        yield access
    except (HistoryUnavailable, HistoryRejected):
        raise HistoryDown from None


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def _scope() -> tuple[str, ...] | None:
    allowed = current_key().allowed_from
    return tuple(allowed) if allowed else None


@bp.get("/emails")
def search_emails() -> dict[str, Any]:
    """The emails of the history matching the filters, newest first, a page at a time."""
    args = _search_query.load(request.args.to_dict())
    since, until = args.pop("since"), args.pop("until")
    query = EmailQuery(**args, since_ms=_ms(since), until_ms=_ms(until), domains=_scope())
    with _history() as access:
        try:
            page = search(access.engine(), query)
        except InvalidCursor as exc:
            raise ValidationFailed("The cursor is not valid.", {"cursor": [str(exc)]}) from None
    return {"data": [r.to_json() for r in page.records], "next_cursor": page.next_cursor}


@bp.delete("/emails")
def erase_emails() -> dict[str, Any]:
    """Erase every record of emails to an address (a privacy request); how many."""
    address = _erase_query.load(request.args.to_dict())["to"]
    with _history() as access:
        deleted = erase_address(access.engine(), address, _scope())
    return {"to": address, "deleted": deleted}


def history_view(email_id: str) -> dict[str, Any]:
    """`GET /v1/emails/{id}` from the history (the queue no longer has the email); 404
    without a history, or without a record the key may see."""
    unknown = NotFound(f"No email with id {email_id!r}.", {"id": ["Unknown email id."]})
    if current_app.extensions.get(EXTENSION) is None:
        raise unknown
    with _history() as access:
        record = find_record(access.engine(), email_id)
    scope = _scope()
    if record is None or (scope is not None and record.row["domain"] not in scope):
        raise unknown
    return record.to_json(with_events=True)
