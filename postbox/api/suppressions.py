"""`/v1/suppressions`: list, add and remove the addresses Postbox must not send to.

A key restricted to sender domains sees, adds and removes only entries scoped to its own
domains (an add makes one entry per domain); an unrestricted key adds global entries and
sees and removes every entry. Keys may add `manual` and `unsubscribe` entries; bounces and
complaints come from the feeds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from flask import Blueprint, request
from marshmallow import Schema, fields, validate

from postbox.api.auth import current_key
from postbox.api.body import read_json_object
from postbox.api.extension import state
from postbox.errors import AddressError, InvalidCursor, NotFound, ValidationFailed
from postbox.suppressions.entries import (
    USER_REASONS,
    Reason,
    new_entry,
    normalised,
    scopes_for,
)
from postbox.suppressions.store import SuppressionStore

bp = Blueprint("suppressions", __name__)
T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_NOTE_CHARS = 500


class SuppressionQuerySchema(Schema):
    """The query string of `GET /v1/suppressions`."""

    limit = fields.Integer(
        load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT)
    )
    cursor = fields.String(load_default=None, validate=validate.Length(min=1, max=1024))
    reason = fields.String(load_default=None, validate=validate.OneOf(list(Reason)))
    address = fields.String(load_default=None, validate=validate.Length(min=3, max=320))


class AddSuppressionSchema(Schema):
    """The body of `POST /v1/suppressions`."""

    address = fields.String(required=True, validate=validate.Length(min=3, max=320))
    reason = fields.String(load_default=Reason.MANUAL, validate=validate.OneOf(USER_REASONS))
    note = fields.String(load_default="", validate=validate.Length(max=MAX_NOTE_CHARS))


_list_query = SuppressionQuerySchema()
_add = AddSuppressionSchema()


@bp.get("/suppressions")
def list_suppressions() -> dict[str, Any]:
    """Entries in address order, a page at a time, filtered by reason or address."""
    query = _list_query.load(request.args.to_dict())
    address = _address(query["address"], "address") if query["address"] else None
    try:
        page = _store(
            lambda s: s.page(
                query["limit"],
                query["cursor"],
                scopes=_scopes(),
                reason=query["reason"],
                address=address,
            )
        )
    except InvalidCursor as exc:
        raise ValidationFailed("The cursor is not valid.", {"cursor": [str(exc)]}) from None
    return {"data": [e.to_json() for e in page.entries], "next_cursor": page.next_cursor}


@bp.post("/suppressions")
def add_suppression() -> tuple[dict[str, Any], int]:
    """Suppress an address in the key's scope: 201 when new, 200 when it was already."""
    body = _add.load(read_json_object())
    address = _address(body["address"], "address")
    ttl = state().settings.suppressions.ttl_seconds(body["reason"])
    entries = [
        new_entry(address, scope, body["reason"], ttl, note=body["note"])
        for scope in scopes_for(current_key().allowed_from)
    ]
    added = _store(lambda s: s.add(entries))
    current = _store(lambda s: s.entries_of(address))
    shown = [e.to_json() for e in current if e.scope in {x.scope for x in entries}]
    return {"data": shown}, 201 if any(added) else 200


@bp.delete("/suppressions/<path:address>")
def remove_suppression(address: str) -> tuple[str, int]:
    """Remove an address's entries in the key's scope: 204, or 404 when it had none."""
    normal = _address(address, "address")
    if not _store(lambda s: s.remove(normal, _scopes())):
        raise NotFound(
            f"{normal!r} is not on the suppression list.", {"address": ["Not suppressed."]}
        )
    return "", 204


def _store(make: Callable[[SuppressionStore], Awaitable[T]]) -> T:
    """Run one store call on the gateway's loop thread."""
    queue_name = state().settings.redis.queue_name
    return state().gateway.with_client(lambda client: make(SuppressionStore(client, queue_name)))


def _scopes() -> tuple[str, ...] | None:
    """The scopes the current key reaches: its domains, or every scope (None)."""
    return current_key().allowed_from or None


def _address(value: str, field: str) -> str:
    try:
        return normalised(value)
    except AddressError as exc:
        raise ValidationFailed("Not a usable email address.", {field: [str(exc)]}) from None
