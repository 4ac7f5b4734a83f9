"""Writes a batch of history rows in one transaction, idempotently.

Each table takes an `INSERT ... ON CONFLICT` (PostgreSQL and SQLite both have it, through
SQLAlchemy's dialect inserts): events by their id, doing nothing when one is there already;
emails and recipients merged with what is stored by the rules of records.py, so a batch
written twice, or an older batch written after a newer one, leaves the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Table, case, func
from sqlalchemy.dialects import postgresql, sqlite

from postbox.history import schema
from postbox.history.database import is_postgresql, unavailable_as_error
from postbox.history.records import FIRST_WRITTEN, Batch


def write_batch(engine: Engine, batch: Batch) -> None:
    """Store every row of `batch` in one transaction (`HistoryUnavailable` if it failed)."""
    if not len(batch):
        return
    with unavailable_as_error(), engine.begin() as connection:
        insert = _insert_for(connection)
        _upsert_emails(connection, insert, list(batch.emails.values()))
        _upsert_recipients(connection, insert, list(batch.recipients.values()))
        _upsert_tags(connection, insert, list(batch.tags.values()))
        _insert_new(connection, insert, schema.events, list(batch.events.values()))
        _insert_new(connection, insert, schema.bodies, list(batch.bodies.values()))


def _insert_for(connection: Connection) -> Callable[[Table], Any]:
    return postgresql.insert if is_postgresql(connection) else sqlite.insert


def _newer(stored: Table, excluded: Any, name: str) -> ColumnElement[Any]:
    """The new value of `name` when the new row's status is newer, else the stored one."""
    return case((excluded.status_seq > stored.c.status_seq, excluded[name]), else_=stored.c[name])


def _upsert_emails(connection: Connection, insert: Callable[[Table], Any], rows: list[Any]) -> None:
    if not rows:
        return
    table = schema.emails
    statement = insert(table)
    new = statement.excluded
    merged: dict[str, Any] = {name: _newer(table, new, name) for name in ("status", "reply")}
    merged["status_seq"] = _newer(table, new, "status_seq")
    for name in ("send_at", "send_at_seq"):
        merged[name] = case((new.send_at_seq > table.c.send_at_seq, new[name]), else_=table.c[name])
    merged["created_ms"] = case(
        (new.created_ms < table.c.created_ms, new.created_ms), else_=table.c.created_ms
    )
    merged["attempts"] = case(
        (new.attempts > table.c.attempts, new.attempts), else_=table.c.attempts
    )
    for name in FIRST_WRITTEN:
        merged[name] = func.coalesce(table.c[name], new[name])
    connection.execute(statement.on_conflict_do_update(index_elements=["id"], set_=merged), rows)


def _upsert_recipients(
    connection: Connection, insert: Callable[[Table], Any], rows: list[Any]
) -> None:
    if not rows:
        return
    table = schema.recipients
    statement = insert(table)
    new = statement.excluded
    merged: dict[str, Any] = {
        name: _newer(table, new, name) for name in ("status", "reply", "status_seq")
    }
    merged["created_ms"] = case(
        (new.created_ms < table.c.created_ms, new.created_ms), else_=table.c.created_ms
    )
    merged["relay"] = func.coalesce(table.c.relay, new.relay)  # as records.merge_recipient
    upsert = statement.on_conflict_do_update(index_elements=["email_id", "address"], set_=merged)
    connection.execute(upsert, rows)


def _upsert_tags(connection: Connection, insert: Callable[[Table], Any], rows: list[Any]) -> None:
    if not rows:
        return
    table = schema.tags
    statement = insert(table)
    new = statement.excluded
    earliest = case((new.created_ms < table.c.created_ms, new.created_ms), else_=table.c.created_ms)
    upsert = statement.on_conflict_do_update(
        index_elements=["email_id", "tag"], set_={"created_ms": earliest}
    )
    connection.execute(upsert, rows)


def _insert_new(
    connection: Connection, insert: Callable[[Table], Any], table: Table, rows: list[Any]
) -> None:
    if rows:
        connection.execute(insert(table).on_conflict_do_nothing(), rows)
