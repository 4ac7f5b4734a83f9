"""Writes a batch of history rows in one transaction, idempotently, one statement a table.

Each table takes an `INSERT ... ON CONFLICT` (PostgreSQL and SQLite both have it, through
SQLAlchemy's dialect inserts): events by their id, doing nothing when one is there already;
emails and recipients merged with what is stored by the rules of records.py, so a batch
written twice, or an older batch written after a newer one, leaves the same rows.

On PostgreSQL a table's rows go as one statement and one parameter: the rows as a JSON
array, turned back into rows of the table's own type by `json_populate_recordset`. The
server plans and runs one statement for the batch instead of one per row (an executemany,
even pipelined, made PostgreSQL's per-statement work most of the recorder's time), and the
rows are encoded by the json module's C encoder (psycopg dumps arrays, as for `unnest`,
element by element in Python, which cost more than it saved). A batch never holds one key
twice (records.Batch merges them), which `ON CONFLICT DO UPDATE` requires of a single
statement. SQLite runs in-process, so its executemany costs no round trip: it stays one,
handed to the driver as tuples in the compiled statement's order (SQLAlchemy's own
per-row parameter processing cost a quarter of the write; these columns need none).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    bindparam,
    case,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from postbox.history import schema
from postbox.history.database import is_postgresql, unavailable_as_error
from postbox.history.records import FIRST_WRITTEN, Batch, Row

Merge = Callable[[Table, Any], dict[str, Any]]


def write_batch(engine: Engine, batch: Batch) -> None:
    """Store every row of `batch` in one transaction (`HistoryUnavailable` if it failed)."""
    if not len(batch):
        return
    with unavailable_as_error(), engine.begin() as connection:
        write = _write_json if is_postgresql(connection) else _write_rows
        write(connection, schema.emails, list(batch.emails.values()))
        write(connection, schema.recipients, list(batch.recipients.values()))
        write(connection, schema.tags, list(batch.tags.values()))
        write(connection, schema.events, list(batch.events.values()))
        write(connection, schema.bodies, list(batch.bodies.values()))


def _write_json(connection: Connection, table: Table, rows: list[Row]) -> None:
    if rows:
        connection.execute(_statement("postgresql", table.name), {"rows": rows})


def _write_rows(connection: Connection, table: Table, rows: list[Row]) -> None:
    if rows:
        sql, names = _positional(table.name)
        connection.exec_driver_sql(sql, [tuple(row[name] for name in names) for row in rows])


@functools.cache
def _positional(table_name: str) -> tuple[str, tuple[str, ...]]:
    """The SQLite upsert's SQL and the columns its `?` stand for, in order."""
    compiled = _statement("sqlite", table_name).compile(dialect=sqlite.dialect())
    names = tuple(compiled.positiontup or ())
    if set(names) != set(schema.metadata.tables[table_name].c.keys()):
        raise AssertionError(f"{table_name}: the upsert binds {names}, not its columns")
    return compiled.string, names


@functools.cache
def _statement(dialect: str, table_name: str) -> Any:
    """The table's upsert for a batch (built once: SQLAlchemy then reuses its compiled form)."""
    table = schema.metadata.tables[table_name]
    statement: Any
    if dialect == "postgresql":
        names = table.c.keys()
        rows = bindparam("rows", type_=postgresql.JSON)
        typed: ColumnElement[Any] = literal_column(f"NULL::{table.name}")
        source = func.json_populate_recordset(typed, rows).table_valued(*names)
        statement = postgresql.insert(table).from_select(names, select(*source.c))
    else:
        statement = sqlite.insert(table)
    if table_name not in _MERGES:
        return statement.on_conflict_do_nothing()
    keys = [c.name for c in table.primary_key]
    merged = _MERGES[table_name](table, statement.excluded)
    return statement.on_conflict_do_update(index_elements=keys, set_=merged)


def _newer(stored: Table, excluded: Any, name: str) -> ColumnElement[Any]:
    """The new value of `name` when the new row's status is newer, else the stored one."""
    return case((excluded.status_seq > stored.c.status_seq, excluded[name]), else_=stored.c[name])


def _earliest(stored: Table, new: Any) -> ColumnElement[Any]:
    return case((new.created_ms < stored.c.created_ms, new.created_ms), else_=stored.c.created_ms)


def _email_merge(table: Table, new: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {name: _newer(table, new, name) for name in ("status", "reply")}
    merged["status_seq"] = _newer(table, new, "status_seq")
    for name in ("send_at", "send_at_seq"):
        merged[name] = case((new.send_at_seq > table.c.send_at_seq, new[name]), else_=table.c[name])
    merged["created_ms"] = _earliest(table, new)
    merged["attempts"] = case(
        (new.attempts > table.c.attempts, new.attempts), else_=table.c.attempts
    )
    for name in FIRST_WRITTEN:
        merged[name] = func.coalesce(table.c[name], new[name])
    return merged


def _recipient_merge(table: Table, new: Any) -> dict[str, Any]:
    merged = {name: _newer(table, new, name) for name in ("status", "reply", "status_seq")}
    relay = func.coalesce(table.c.relay, new.relay)  # as records.merge_recipient
    return {**merged, "created_ms": _earliest(table, new), "relay": relay}


def _tag_merge(table: Table, new: Any) -> dict[str, Any]:
    merged = {name: _newer(table, new, name) for name in ("status", "status_seq")}
    return {**merged, "created_ms": _earliest(table, new)}


# How a row meets the stored one of its key; the tables not here keep the stored row.
_MERGES: dict[str, Merge] = {
    schema.emails.name: _email_merge,
    schema.recipients.name: _recipient_merge,
    schema.tags.name: _tag_merge,
}
