"""Versioned schema migrations: plain SQL files (migrations/NNNN_name.sql), applied at start.

Every instance calls `migrate` when it starts; several starting at once are safe. On
PostgreSQL the whole run is one transaction holding an advisory lock (DDL is transactional
there): the first instance applies what is missing, the others wait on the lock, then find
nothing to do. On SQLite `BEGIN IMMEDIATE` takes the database's write lock for the same
effect. `history_migrations` lists what was applied.

Plain SQL rather than Alembic: the schema is a handful of tables in the SQL both databases
share, the files are what an operator reviews, and the lock is ours to take (Alembic has no
lock of its own and would need one around it anyway); one dependency less.
"""

from __future__ import annotations

import logging
import re
import time
from importlib import resources

from sqlalchemy import Connection, Engine, text

from postbox.history.database import is_postgresql, unavailable_as_error

logger = logging.getLogger(__name__)

# Any 64-bit number other applications are unlikely to pick: "postbox" in ASCII.
ADVISORY_LOCK_KEY = 0x706F7374626F78
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_CREATE_LOG = (
    "CREATE TABLE IF NOT EXISTS history_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
)


def migration_files() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration, in order."""
    found = []
    for item in resources.files("postbox.history").joinpath("migrations").iterdir():
        match = _FILE.match(item.name)
        if match:
            found.append((int(match.group(1)), item.name, item.read_text()))
    return sorted(found)


def statements(sql: str) -> list[str]:
    """The statements of a migration file (no `;` inside a statement, comments dropped)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def migrate(engine: Engine) -> list[str]:
    """Apply every migration the database lacks, under the lock; the files applied."""
    with unavailable_as_error(), engine.connect() as raw:
        connection = raw.execution_options(isolation_level="AUTOCOMMIT")
        _begin_locked(connection)
        try:
            applied = _apply_missing(connection)
        except BaseException:
            connection.exec_driver_sql("ROLLBACK")
            raise
        connection.exec_driver_sql("COMMIT")
    if applied:
        logger.info("History schema: applied %s", ", ".join(applied))
    else:
        logger.info("History schema up to date (version %d)", migration_files()[-1][0])
    return applied


def _begin_locked(connection: Connection) -> None:
    if is_postgresql(connection):
        connection.exec_driver_sql("BEGIN")
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _apply_missing(connection: Connection) -> list[str]:
    connection.exec_driver_sql(_CREATE_LOG)
    done = {row[0] for row in connection.exec_driver_sql("SELECT version FROM history_migrations")}
    applied = []
    for version, name, sql in migration_files():
        if version in done:
            continue
        for statement in statements(sql):
            connection.exec_driver_sql(statement)
        connection.execute(
            text("INSERT INTO history_migrations VALUES (:version, :name, :at)"),
            {"version": version, "name": name, "at": int(time.time() * 1000)},
        )
        applied.append(name)
    return applied
