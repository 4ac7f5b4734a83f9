"""The history database on its own, in a real PostgreSQL and in SQLite: idempotent writes in
any order, exact searches with stable pagination, retention, and the schema migrations."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from sqlalchemy import Engine, create_engine, func, inspect, select, text

from postbox.config.history import HistorySettings
from postbox.errors import InvalidCursor
from postbox.history import schema
from postbox.history.database import create_history_engine
from postbox.history.migrations import ADVISORY_LOCK_KEY, migrate, migration_files, statements
from postbox.history.records import Batch
from postbox.history.retention import RetentionLease, delete_before
from postbox.history.search import EmailQuery, search
from postbox.history.views import find_record
from postbox.history.writer import write_batch
from postbox.queue.events import Event
from postbox.queue.keys import PostboxKeys
from tests.support import run_postbox, wait_until

BASE_MS = 1_760_000_000_000


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = create_history_engine(HistorySettings(database_url=database_url))
    migrate(made)
    yield made
    made.dispose()


def _event(n: int, kind: str, ms: int, seq: int = 0, **extra: object) -> tuple[Event, str]:
    data = {
        "email_id": f"e{n:05d}",
        "message_id": f"<m{n}@example.com>",
        "from": "sender@example.com" if n % 2 else "other@example.net",
        "to": [f"user{n % 7}@example.org", "copy@example.org"],
        "tags": ["odd" if n % 2 else "even", f"t{n % 3}"],
        "attempt": extra.pop("attempt", 0),
        **extra,
    }
    domain = data["from"].rpartition("@")[2]  # type: ignore[union-attr]
    event = Event(f"{ms}-{seq}", kind, f"e{n:05d}", domain, data)
    return event, json.dumps(data)


def _write(engine: Engine, items: list[tuple[Event, str]]) -> None:
    batch = Batch()
    for event, raw in items:
        batch.add(event, raw)
    write_batch(engine, batch)


def _lifecycle(n: int) -> list[tuple[Event, str]]:
    """Queued, then sent (even n) or deferred then failed (odd n)."""
    ms = BASE_MS + n * 1000
    queued = _event(n, "email.queued", ms, subject=f"Subject {n}", key_id="k1")
    if n % 2 == 0:
        recipients = [
            {"address": f"user{n % 7}@example.org", "status": "accepted", "reply": "250 ok"},
            {"address": "copy@example.org", "status": "refused", "reply": "550 no"},
        ]
        sent = _event(
            n, "email.sent", ms + 10, attempt=1, recipients=recipients, reply="250", relay="bulk"
        )
        # A bounce report after the 250: it names no relay, the recipient keeps its own.
        bounced = _event(n, "email.bounced", ms + 30, to=[f"user{n % 7}@example.org"])
        return [queued, sent, bounced]
    deferred = _event(n, "email.deferred", ms + 10, attempt=1, reply="451 later")
    failed = _event(n, "email.failed", ms + 20, attempt=2, reply="550 gone")
    return [queued, deferred, failed]


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in schema.ALL
        }


def test_rows_are_the_same_written_twice_and_in_any_order(engine) -> None:
    events = [item for n in range(40) for item in _lifecycle(n)]
    _write(engine, events)
    expected = {n: find_record(engine, f"e{n:05d}") for n in range(40)}
    counts = _counts(engine)

    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    for start in range(0, len(shuffled), 13):  # older batches after newer ones, and again
        _write(engine, shuffled[start : start + 13])
    assert _counts(engine) == counts
    for n in range(40):
        assert find_record(engine, f"e{n:05d}") == expected[n]
    assert _tags_off_status(engine) == 0

    sent, failed = expected[0], expected[1]
    assert sent is not None and failed is not None
    assert sent.row["status"] == "sent" and sent.row["subject"] == "Subject 0"
    assert sent.recipients == [
        {"address": "copy@example.org", "status": "refused", "reply": "550 no", "relay": None},
        {"address": "user0@example.org", "status": "bounced", "reply": None, "relay": "bulk"},
    ]
    assert [e["type"] for e in sent.events] == ["email.queued", "email.sent", "email.bounced"]
    assert failed.row["status"] == "failed" and failed.row["attempts"] == 2
    assert {r["status"] for r in failed.recipients} == {"failed"}
    assert failed.to_json()["accepted_at"] == "2025-10-09T08:53:21.000Z"


def _tags_off_status(engine: Engine) -> int:
    """How many tag rows disagree with their email's status."""
    emails, tags = schema.emails, schema.tags
    joined = tags.join(emails, emails.c.id == tags.c.email_id)
    query = (
        select(func.count())
        .select_from(joined)
        .where((tags.c.status != emails.c.status) | (tags.c.status_seq != emails.c.status_seq))
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def _all_pages(engine: Engine, cursor: str | None = None, **filters: object) -> list[str]:
    found: list[str] = []
    while True:
        page = search(engine, EmailQuery(cursor=cursor, limit=7, **filters))  # type: ignore[arg-type]
        found += [record.id for record in page.records]
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def test_search_returns_exact_sets_newest_first(engine) -> None:
    _write(engine, [item for n in range(60) for item in _lifecycle(n)])
    ids = [f"e{n:05d}" for n in reversed(range(60))]
    assert _all_pages(engine) == ids
    assert _all_pages(engine, to="user3@example.org") == [i for i in ids if int(i[1:]) % 7 == 3]
    assert _all_pages(engine, to="user3@EXAMPLE.org", tag="odd") == [
        i for i in ids if int(i[1:]) % 7 == 3 and int(i[1:]) % 2
    ]
    assert _all_pages(engine, tag="t2") == [i for i in ids if int(i[1:]) % 3 == 2]
    assert _all_pages(engine, tag="t2", status="failed") == [
        i for i in ids if int(i[1:]) % 3 == 2 and int(i[1:]) % 2
    ]
    assert _all_pages(engine, tag="even", status="failed") == []
    assert _all_pages(engine, status="failed") == [i for i in ids if int(i[1:]) % 2]
    assert _all_pages(engine, sender="other@example.net", status="sent") == [
        i for i in ids if int(i[1:]) % 2 == 0
    ]
    window = {"since_ms": BASE_MS + 10_000, "until_ms": BASE_MS + 20_000}
    assert _all_pages(engine, **window) == [f"e{n:05d}" for n in reversed(range(10, 20))]
    assert _all_pages(engine, domains=("example.com",), tag="even") == []
    with pytest.raises(InvalidCursor):
        search(engine, EmailQuery(cursor="bm9wZQ"))


def test_pagination_is_stable_while_new_emails_arrive(engine) -> None:
    _write(engine, [item for n in range(30) for item in _lifecycle(n)])
    first = search(engine, EmailQuery(limit=10))
    _write(engine, [item for n in range(30, 45) for item in _lifecycle(n)])  # newer
    rest = _all_pages(engine, first.next_cursor)
    assert [r.id for r in first.records] + rest == [f"e{n:05d}" for n in reversed(range(30))]


def test_retention_deletes_old_records_only(engine) -> None:
    _write(engine, [item for n in range(50) for item in _lifecycle(n)])
    assert delete_before(engine, BASE_MS + 20_000, batch=7) == 20
    left = _all_pages(engine)
    assert left == [f"e{n:05d}" for n in reversed(range(20, 50))]
    counts = _counts(engine)
    assert counts["history_emails"] == 30
    assert counts["history_recipients"] == 60
    assert counts["history_tags"] == 60
    assert counts["history_events"] == sum(len(_lifecycle(n)) for n in range(20, 50))


def test_declared_tables_match_the_migrations(engine) -> None:
    found = inspect(engine)
    for table in schema.ALL:
        columns = {column["name"] for column in found.get_columns(table.name)}
        assert columns == {column.name for column in table.columns}


def test_the_tag_status_migration_fills_the_tags_already_written(database_url) -> None:
    """0004 gives the tag rows written before it their email's status."""
    made = create_history_engine(HistorySettings(database_url=database_url))
    with made.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE history_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
        )
        for version, name, sql in migration_files()[:3]:
            for statement in statements(sql):
                connection.exec_driver_sql(statement)
            connection.execute(
                text("INSERT INTO history_migrations VALUES (:v, :n, 0)"), {"v": version, "n": name}
            )
        connection.exec_driver_sql(
            "INSERT INTO history_emails VALUES ('e1', NULL, 'a@example.com', 'example.com', "
            "NULL, '[\"x\"]', NULL, 'failed', 42, 2, 1, NULL, 0, NULL, 5, NULL, '550')"
        )
        connection.exec_driver_sql("INSERT INTO history_tags VALUES ('e1', 'x', 1)")
    assert migrate(made) == ["0004_search.sql"]
    assert _tags_off_status(made) == 0
    assert _all_pages(made, tag="x", status="failed") == ["e1"]
    made.dispose()


def test_two_instances_migrating_at_once_one_applies(postgres_url) -> None:
    """Both start while a third party holds the lock; both wait, one applies, both succeed."""
    holder = create_engine(postgres_url)
    with holder.connect() as connection:
        connection.execute(text(f"SELECT pg_advisory_lock({ADVISORY_LOCK_KEY})"))
        results: list[object] = []
        env = {"DATABASE_URL": postgres_url, "LOG_LEVEL": "info"}
        threads = [
            threading.Thread(target=lambda: results.append(run_postbox(env, "emails", "migrate")))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        wait_until(lambda: connection.execute(text(waiting)).scalar_one() == 2, timeout=30)
        assert not results, "a migration ran while the lock was held"
        connection.execute(text(f"SELECT pg_advisory_unlock({ADVISORY_LOCK_KEY})"))
    for thread in threads:
        thread.join(60)
    holder.dispose()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]  # type: ignore[attr-defined]
    logs = "".join(r.stderr for r in results)  # type: ignore[attr-defined]
    assert logs.count("applied 0001_history.sql") == 1
    assert logs.count("up to date") == 1


def test_a_moved_email_keeps_its_newest_send_at_in_any_order(engine) -> None:
    first = _event(1, "email.scheduled", BASE_MS, send_at="2030-01-01T00:00:00+00:00")
    moved = _event(1, "email.scheduled", BASE_MS + 5, send_at="2030-02-01T00:00:00+00:00")
    sent = _event(1, "email.sent", BASE_MS + 9, attempt=1, recipients=[], reply="250")
    for order in ([first, moved, sent], [sent, moved, first], [moved, sent], [sent, first]):
        _write(engine, order[:1])
        _write(engine, order[1:])
        record = find_record(engine, "e00001")
        assert record is not None
        expected = "2030-02-01T00:00:00+00:00" if moved in order else "2030-01-01T00:00:00+00:00"
        assert (record.row["status"], record.row["send_at"]) == ("sent", expected), order
        with engine.begin() as connection:
            for table in schema.ALL:
                connection.execute(table.delete())


def test_one_instance_at_a_time_holds_the_retention_lease(redis_url) -> None:
    async def run() -> list[bool]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            first, second = RetentionLease(client, "email"), RetentionLease(client, "email")
            taken = [await first.acquire(), await second.acquire(), await first.acquire()]
            await client.delete(PostboxKeys("email").history_retention_lease())  # it expired
            return [*taken, await second.acquire(), await first.acquire()]
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [True, False, True, True, False]
