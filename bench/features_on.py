"""The drain with every feature of issue 21 on: the send journal (always on), delivery events
with one webhook endpoint subscribed to `*` on a local receiver, the history recorded into
SQLite and (when Debian's PostgreSQL is installed) PostgreSQL, and a suppression list of
100,000 entries.

`postbox worker` runs with its defaults, so its supervisor also runs the webhook dispatcher
and the history recorder: the CPU of that whole tree is counted, with Redis', from the
resume of the queue until the last job finished *and* the event consumers caught up (every
`email.sent` delivered to the receiver, every consumer group of the stream read and
acknowledged up to the end), so the per-email CPU is all in. The rate is the jobs' alone, as
for every drain. The queue is filled before the endpoint exists and before the recorder
starts, so the drain's events are its `email.sent`s (an `email.queued` belongs to intake).
The list's entries are other addresses than the emails', so every lookup is the usual miss.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from typing import Any

from bench import webhook_receiver
from bench.drain import DrainHooks, DrainResult, Setup, drain_postbox_hooked
from bench.emails import prepare_many
from bench.processes import postbox_env
from bench.services import ROOT, BenchRedis
from bench.webhook_drain import subscribe_all
from bench.webhooks import _count
from postbox.dev.ports import free_port
from postbox.dev.postgres_server import PG_BIN, PostgresServer
from postbox.queue.keys import PostboxKeys

KEY = secrets.token_hex(32)
SETTLE_TIMEOUT_SECONDS = 180
# As the main drains' rate-limited row: far above any drain rate here, so it never postpones.
RATE_LIMIT = "20000/second"
# The dispatcher and the recorder read the stream from these lines on.
READY_LOGS = ("postbox.webhooks.dispatcher: Webhook dispatcher", "History recorder")


def _import_list(setup: Setup, queue: str, entries: int) -> dict[str, str]:
    """`postbox suppressions import` of `entries` addresses into `queue`'s list; the list."""
    path = setup.work_dir / "suppressions.csv"
    lines = ["address,reason,note"]
    lines += [f"gone{n}@example{n % 97}.org,,bench" for n in range(entries)]
    path.write_text("\n".join(lines) + "\n")
    env = postbox_env(setup.redis.url, queue, setup.sink.port)
    argv = [sys.executable, "-m", "postbox", "suppressions", "import", str(path)]
    subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True, timeout=300)
    client = _client(setup.redis)
    return dict(client.hgetall(PostboxKeys(queue).suppressions()))


def _client(redis: BenchRedis) -> Any:
    assert redis.client is not None
    return redis.client


def _behind(redis: BenchRedis, queue: str) -> int:
    """Events some consumer group of `queue`'s stream has not read or not acknowledged."""
    client = _client(redis)
    stream = PostboxKeys(queue).events()
    added = int(client.xinfo_stream(stream)["entries-added"])
    behind = 0
    for group in client.xinfo_groups(stream):
        lag = group.get("lag")
        read = group.get("entries-read")
        unread = int(lag) if lag is not None else added - int(read or 0)
        behind += unread + int(group["pending"])
    return behind


class _FeaturesRun:
    """One drain's extras: the list, the endpoint and its receiver, the settle wait."""

    def __init__(
        self, setup: Setup, saved_list: dict[str, str], total: int, database_pid: int
    ) -> None:
        # An empty list: the history alone (no suppression list, no webhook endpoint).
        self.webhooks = bool(saved_list)
        self.setup = setup
        self.database_pid = database_pid
        self.saved_list = saved_list
        self.total = total
        self.port = free_port()
        self.receiver: subprocess.Popen[bytes] | None = None
        self.queue = ""
        self.settle_seconds: float | None = None

    def before_fill(self, queue: str) -> None:
        self.queue = queue
        if self.saved_list:
            suppressions = PostboxKeys(queue).suppressions()
            _client(self.setup.redis).hset(suppressions, mapping=self.saved_list)

    def after_fill(self, queue: str) -> None:
        if not self.webhooks:
            return
        url = f"http://127.0.0.1:{self.port}/hook"
        secret = asyncio.run(subscribe_all(self.setup.redis.url, queue, url, KEY))
        log = self.setup.work_dir / f"receiver-{queue}.log"
        self.receiver = webhook_receiver.start(self.port, secret, log)

    def helpers(self) -> list[int]:
        """The receiver and PostgreSQL's postmaster (its backends are its children)."""
        found = [self.database_pid] if self.database_pid else []
        return found + ([self.receiver.pid] if self.receiver is not None else [])

    def settle(self) -> None:
        started = time.monotonic()
        deadline = started + SETTLE_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            delivered = not self.webhooks or _count(self.port)["ids"] >= self.total
            if delivered and not _behind(self.setup.redis, self.queue):
                self.settle_seconds = round(time.monotonic() - started, 2)
                return
            time.sleep(0.1)

    def figures(self) -> dict[str, Any]:
        found = _count(self.port) if self.webhooks else {"requests": 0, "ids": 0, "bad": 0}
        return {
            "webhooks_delivered": found["requests"],
            "webhook_ids": found["ids"],
            "bad_signatures": found["bad"],
            "events_behind": _behind(self.setup.redis, self.queue),
            # None: the consumers had not caught up within SETTLE_TIMEOUT_SECONDS.
            "settle_seconds": self.settle_seconds,
        }

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.terminate()
            self.receiver.wait(timeout=30)


def _row(result: DrainResult, database: str, extras: dict[str, Any]) -> dict[str, Any]:
    return {
        **result.to_json(),
        "database": database,
        # Worker tree (workers, dispatcher, recorder) + Redis: CPU-s per 1,000 = ms per email.
        "cpu_ms_per_email_all_in": round(result.cpu_s_per_1000 + result.redis_cpu_s_per_1000, 3),
        **extras,
    }


def _one(
    setup: Setup,
    emails: list[Any],
    saved: dict[str, str],
    database: str,
    url: str,
    rate_limit: str | None = None,
    database_pid: int = 0,
) -> dict[str, Any]:
    run = _FeaturesRun(setup, saved, len(emails), database_pid)
    extra = {
        "ENCRYPTION_KEY": KEY,
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "DATABASE_URL": url,
    }
    if rate_limit is not None:
        extra["EMAIL_RATE_LIMIT"] = rate_limit
    hooks = DrainHooks(run.before_fill, run.after_fill, run.settle, READY_LOGS, run.helpers)
    try:
        label = f"features-{database}" + ("-rate-limited" if rate_limit else "")
        label += "" if saved else "-history-only"
        result = drain_postbox_hooked(setup, emails, label, None, hooks, extra)
        row = _row(result, database, run.figures())
        return {**row, "rate_limit": rate_limit, "history_only": not run.webhooks}
    finally:
        run.stop()


def _postmaster(server: PostgresServer) -> int:
    """The server's main process id (the first line of its data directory's pid file)."""
    try:
        return int((server.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return 0


def run_features_rows(setup: Setup, tag: str, jobs: int, entries: int) -> dict[str, Any]:
    """The drain with every feature on: into SQLite, then PostgreSQL when it is installed,
    then into the last of them again (a fresh database) with EMAIL_RATE_LIMIT too; then
    with the history alone on (PostgreSQL), against the defaults drain of the same run."""
    emails = prepare_many(f"{tag}-features", jobs)
    saved = _import_list(setup, "features-list", entries)
    sqlite = f"sqlite:///{setup.work_dir / 'history.db'}"
    rows = [_one(setup, emails, saved, "sqlite", sqlite)]
    notes = [
        f"features on: send journal, events (1 endpoint on `*`, local receiver), history,"
        f" {len(saved):,} suppressed addresses; CPU all in = worker tree (workers, webhook"
        f" dispatcher, history recorder) + Redis, until the consumers caught up;"
        f" rate-limited: EMAIL_RATE_LIMIT={RATE_LIMIT} (never postpones; what checking costs)"
    ]
    if not (PG_BIN / "initdb").exists():
        notes.append(f"no PostgreSQL row: {PG_BIN}/initdb is not installed")
        again = f"sqlite:///{setup.work_dir / 'history-rate-limited.db'}"
        rows.append(_one(setup, emails, saved, "sqlite", again, RATE_LIMIT))
        return {"runs": rows, "notes": notes}
    server = PostgresServer()
    try:
        try:
            server.init()
            server.start()
            names = ("history", "history_limited", "history_only")
            urls = [server.create_database(name) for name in names]
        except RuntimeError as error:  # the cluster's own failure, not Postbox's: say so
            notes.append(f"no PostgreSQL row: {error}")
            return {"runs": rows, "notes": notes}
        pid = _postmaster(server)
        rows.append(_one(setup, emails, saved, "postgresql", urls[0], None, pid))
        rows.append(_one(setup, emails, saved, "postgresql", urls[1], RATE_LIMIT, pid))
        rows.append(_one(setup, emails, {}, "postgresql", urls[2], None, pid))
    finally:
        server.remove()
    return {"runs": rows, "notes": notes}
