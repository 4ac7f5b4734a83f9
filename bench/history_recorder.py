"""The history recorder's throughput: email records per second written into the history.

A private Redis holds the events of `--emails` emails (an `email.queued` and an
`email.sent` each, in the stream's layout, with realistic data: two recipients, two
tags), read through the recorder's consumer group; a private PostgreSQL cluster
(postbox/dev/postgres_server.py) takes the history, or with `--database sqlite` a SQLite
file. Then one `postbox emails record` process starts (or `--recorders N`), and the clock
runs from the first email row written to the last. A record is one email: its row, its
recipients, its tags and both its events. CPU is read from /proc for the recorders, Redis
and the PostgreSQL server's processes (its backends; not the one this bench counts with);
on SQLite the database's work is in the recorder's own.

`--source DIR` runs the recorders from another checkout (`git worktree add /tmp/old
<commit>`), so two commits are compared in the same run, on the same load:

    .venv/bin/python -m bench.history_recorder [--emails 50000] [--recorders 1]
        [--database postgresql|sqlite] [--source DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis as sync_redis
import redis.asyncio as aioredis
from sqlalchemy import create_engine, text

from bench.proc_stats import cpu_seconds, tree
from bench.services import ROOT, BenchRedis
from postbox.dev.postgres_server import PostgresServer
from postbox.history.recorder import CONSUMER_GROUP
from postbox.queue.events import register_consumer
from postbox.queue.keys import PostboxKeys

KEYS = PostboxKeys("email")


def _data(index: int, sent: bool) -> str:
    to = [f"user{index % 997}@example.org", "audit@example.net"]
    data: dict[str, Any] = {
        "email_id": f"em_{index:064x}",
        "message_id": f"<{index:032x}@example.com>",
        "from": "orders@example.com",
        "to": to,
        "tags": ["receipt", f"shop-{index % 13}"],
        "attempt": 1 if sent else 0,
    }
    if sent:
        data["recipients"] = [
            {"address": address, "status": "accepted", "reply": "250 2.0.0 OK"} for address in to
        ]
        data["reply"] = "250 2.0.0 OK queued as 1234"
    else:
        data |= {"send_at": None, "subject": f"Your order {index}", "key_id": "3f2a9c01b7d4"}
    return json.dumps(data, separators=(",", ":"))


def _fill(client: sync_redis.Redis, emails: int) -> None:
    for start in range(0, emails, 500):
        with client.pipeline(transaction=False) as pipe:
            for index in range(start, min(emails, start + 500)):
                for offset, kind in ((0, "email.queued"), (1, "email.sent")):
                    fields = {
                        "type": kind,
                        "email": f"em_{index:064x}",
                        "domain": "example.com",
                        "data": _data(index, sent=bool(offset)),
                    }
                    pipe.xadd(KEYS.events(), fields)
            pipe.execute()


def _register(redis_url: str) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        await client.xgroup_create(KEYS.events(), CONSUMER_GROUP, id="0", mkstream=True)
        await register_consumer(client, "email", CONSUMER_GROUP)
        await client.aclose()

    asyncio.run(run())


def _recorders(
    count: int, redis_url: str, database_url: str, source: Path
) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "warning",
        "INSTANCE_ID": "bench",
        "PYTHONPATH": str(source),
    }
    command = [sys.executable, "-m", "postbox", "emails", "record"]
    return [subprocess.Popen(command, env=env, cwd=source) for _ in range(count)]


def _measure(
    database_url: str, emails: int, pids: dict[str, list[int]], postmaster: int | None
) -> dict[str, Any]:
    engine = create_engine(database_url)
    count = text("SELECT count(*) FROM history_emails")
    sent = text("SELECT count(*) FROM history_emails WHERE status = 'sent'")

    def rows(query: Any) -> int:
        try:
            with engine.connect() as connection:
                return int(connection.execute(query).scalar_one())
        except Exception:
            return 0

    while rows(count) == 0:
        time.sleep(0.02)
    started, first = time.monotonic(), rows(count)
    if postmaster is not None:
        with engine.connect() as connection:
            ours = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        pids = {**pids, "postgresql": [pid for pid in tree(postmaster) if pid != ours]}
    cpu_first = {name: sum(map(cpu_seconds, each)) for name, each in pids.items()}
    deadline = started + 600
    while (done := rows(sent)) < emails and time.monotonic() < deadline:
        time.sleep(0.1)
    span = time.monotonic() - started
    cpu = {name: sum(map(cpu_seconds, each)) - cpu_first[name] for name, each in pids.items()}
    size = _bytes_per_email(engine, done) if postmaster is not None else None
    engine.dispose()
    written = max(1, done - first)
    return {
        "recorded": done,
        "seconds": round(span, 2),
        "records_per_second": round(written / span) if span else None,
        "events_per_second": round(2 * written / span) if span else None,
        "cpu_ms_per_record": {name: round(v * 1000 / written, 3) for name, v in cpu.items()},
        "load_average": round(os.getloadavg()[0], 2),
        "bytes_per_email": size,
    }


def _bytes_per_email(engine: Any, emails: int) -> dict[str, int]:
    """PostgreSQL's bytes per email after VACUUM ANALYZE: each table's and its indexes'."""
    sizes = {}
    with engine.connect() as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        autocommit.exec_driver_sql("VACUUM ANALYZE")
        for table in ("history_emails", "history_recipients", "history_tags", "history_events"):
            query = text("SELECT pg_table_size(:t), pg_indexes_size(:t)")
            heap, indexes = connection.execute(query, {"t": table}).one()
            sizes[table] = round((heap + indexes) / emails)
            sizes["indexes"] = sizes.get("indexes", 0) + round(indexes / emails)
    sizes["total"] = sum(v for k, v in sizes.items() if k.startswith("history_"))
    return sizes


def _postmaster(postgres: PostgresServer) -> int:
    """The PostgreSQL server's pid (its backends are its children)."""
    return int((postgres.data_dir / "postmaster.pid").read_text().split()[0])


def run(emails: int, recorders: int, database: str, source: Path) -> dict[str, Any]:
    """One measurement; its figures."""
    with tempfile.TemporaryDirectory(prefix="postbox-bench-history-") as tmp:
        redis = BenchRedis(Path(tmp))
        redis.start()
        postgres = PostgresServer() if database == "postgresql" else None
        started: list[subprocess.Popen[bytes]] = []
        try:
            if postgres is None:
                database_url, postmaster = f"sqlite:///{tmp}/history.db", None
            else:
                postgres.init()
                postgres.start()
                database_url, postmaster = postgres.create_database("bench"), _postmaster(postgres)
            _register(redis.url)
            assert redis.client is not None
            _fill(redis.client, emails)
            started = _recorders(recorders, redis.url, database_url, source)
            pids = {"recorders": [p.pid for p in started], "redis": [redis.pid]}
            figures = _measure(database_url, emails, pids, postmaster)
        finally:
            for process in started:
                process.terminate()
                process.wait(timeout=30)
            if postgres is not None:
                postgres.remove()
            redis.stop()
    return {"emails": emails, "recorders": recorders, "database": database, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--emails", type=int, default=50_000)
    parser.add_argument("--recorders", type=int, default=1, help="Recorder processes.")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="The checkout the recorders run from."
    )
    args = parser.parse_args()
    figures = run(args.emails, args.recorders, args.database, args.source.resolve())
    print(json.dumps({"source": str(args.source), **figures}, indent=2))


if __name__ == "__main__":
    main()
