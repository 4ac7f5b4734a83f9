"""The one way to the history database: a SQLAlchemy engine for PostgreSQL or SQLite.

PostgreSQL goes through psycopg 3 with SQLAlchemy's connection pool (DATABASE_POOL_SIZE
connections per process, checked before use so a restarted server costs one failed
statement, not a dead pool). SQLite runs in WAL mode, so the API reads while the recorder
writes, and waits up to 30 s for another process's write instead of failing at once.
Every database error leaves this package as `HistoryUnavailable`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import (
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
    TimeoutError,
)

from postbox.config.history import HistorySettings, sqlalchemy_url
from postbox.errors import HistoryRejected, HistoryUnavailable

SQLITE_BUSY_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 5


def create_history_engine(settings: HistorySettings) -> Engine:
    """An engine for DATABASE_URL (which must be set)."""
    if settings.database_url is None:
        raise ValueError("no DATABASE_URL")
    url = make_url(sqlalchemy_url(settings.database_url))
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url.render_as_string(hide_password=False))
    return create_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        pool_timeout=CONNECT_TIMEOUT_SECONDS,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def is_postgresql(connection: Connection) -> bool:
    """True on PostgreSQL, False on SQLite."""
    return connection.dialect.name == "postgresql"


@contextlib.contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Turn a database error into `HistoryUnavailable` (not reached, busy: try again) or
    `HistoryRejected` (the statement itself was refused). No message names a password."""
    try:
        yield
    except (OperationalError, InterfaceError, TimeoutError) as exc:
        raise HistoryUnavailable(f"history database: {_reason(exc)}") from exc
    except SQLAlchemyError as exc:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            raise HistoryUnavailable(f"history database: {_reason(exc)}") from exc
        raise HistoryRejected(f"history database: {_reason(exc)}") from exc


def _reason(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
