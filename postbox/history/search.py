"""Searching the history: newest first, one page at a time, with a keyset cursor.

A page is ordered by (created_ms, id) descending and the cursor is the last row's pair, so
a page never repeats or skips a row when newer emails arrive meanwhile (they sort before the
cursor). The query starts from the most selective index it has: the recipient's (`to`), the
tag's (with the status, when asked, from the tag row's copy: one index range however rare
the pair), or the emails' own (status, sender, time); each ends in (created_ms, id).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, exists, select, tuple_

from postbox.errors import InvalidCursor
from postbox.history import schema
from postbox.history.database import unavailable_as_error
from postbox.history.views import EmailRecord, load_records

MAX_LIMIT = 100


@dataclass(frozen=True)
class EmailQuery:
    """What GET /v1/emails filters by; None matches anything."""

    to: str | None = None
    sender: str | None = None
    status: str | None = None
    tag: str | None = None
    since_ms: int | None = None  # accepted at or after
    until_ms: int | None = None  # accepted before
    domains: tuple[str, ...] | None = None  # the API key's sender domains
    cursor: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class EmailPage:
    """One page of records and the cursor of the next (None on the last)."""

    records: list[EmailRecord]
    next_cursor: str | None


def encode_cursor(created_ms: int, email_id: str) -> str:
    """The opaque cursor after the row (created_ms, email_id)."""
    return base64.urlsafe_b64encode(f"{created_ms}:{email_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """(created_ms, email_id) of a cursor; `InvalidCursor` for one Postbox did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ms, sep, email_id = raw.partition(":")
        if not sep or not email_id:
            raise ValueError(raw)
        return int(ms), email_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("not a cursor of this search") from None


def normal_address(address: str) -> str:
    """An address as the queue writes it: the domain in lower case (the local part is the
    recipient's, case and all)."""
    local, at, domain = address.strip().rpartition("@")
    return f"{local}{at}{domain.lower()}" if at else address.strip()


def search(engine: Engine, query: EmailQuery) -> EmailPage:
    """One page of the emails matching `query`, newest first."""
    statement = _statement(query)
    with unavailable_as_error(), engine.connect() as connection:
        ids = [row[0] for row in connection.execute(statement)]
        page = ids[: query.limit]
        records = load_records(connection, page, with_events=False)
    more = len(ids) > query.limit
    last = records[-1] if more and records else None
    return EmailPage(records, encode_cursor(last.created_ms, last.id) if last else None)


def _statement(query: EmailQuery) -> Select[Any]:
    emails, recipients, tags = schema.emails, schema.recipients, schema.tags
    order: tuple[Any, Any] = (emails.c.created_ms, emails.c.id)
    status = emails.c.status
    statement = select(emails.c.id)
    if query.to is not None:
        order = (recipients.c.created_ms, recipients.c.email_id)
        statement = statement.join(recipients, recipients.c.email_id == emails.c.id)
        statement = statement.where(recipients.c.address == normal_address(query.to))
    elif query.tag is not None:
        order, status = (tags.c.created_ms, tags.c.email_id), tags.c.status
        statement = statement.join(tags, tags.c.email_id == emails.c.id)
        statement = statement.where(tags.c.tag == query.tag)
    if query.tag is not None and query.to is not None:
        tagged = (tags.c.email_id == emails.c.id) & (tags.c.tag == query.tag)
        statement = statement.where(exists().where(tagged))
    statement = _filters(statement, query, order[0], status)
    if query.cursor is not None:
        statement = statement.where(tuple_(*order) < tuple_(*decode_cursor(query.cursor)))
    return statement.order_by(order[0].desc(), order[1].desc()).limit(query.limit + 1)


def _filters(statement: Select[Any], query: EmailQuery, created: Any, status: Any) -> Select[Any]:
    emails = schema.emails
    if query.sender is not None:
        statement = statement.where(emails.c.sender == normal_address(query.sender))
    if query.status is not None:
        statement = statement.where(status == query.status)
    if query.since_ms is not None:
        statement = statement.where(created >= query.since_ms)
    if query.until_ms is not None:
        statement = statement.where(created < query.until_ms)
    if query.domains is not None:
        statement = statement.where(emails.c.domain.in_(query.domains))
    return statement
