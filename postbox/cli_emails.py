"""`postbox emails search|show|cancel|migrate|record`: the email history and the lifecycle of
one email from the command line, and the recorder child that `postbox worker` runs.

The command line reads the history database directly (DATABASE_URL) and Redis for an email
still in the queue; it sees every email, whatever key sent it. The history's modules (and
SQLAlchemy) are imported by the commands that use them: `postbox worker` imports this module
too, and SQLAlchemy was over a third of its start-up CPU.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime
from typing import Any

import click

from postbox.cli_redis import run_command
from postbox.config import Settings, load_settings
from postbox.errors import ConfigError, HistoryUnavailable, InvalidCursor
from postbox.logs import secret_values, setup_logging
from postbox.queue import dead_letters
from postbox.queue.cancel import EmailCanceler
from postbox.queue.job_ids import is_job_id
from postbox.queue.status import lookup_email
from postbox.supervisor import ChildSpec

logger = logging.getLogger(__name__)
NO_HISTORY = "No DATABASE_URL: no email history is kept beyond the dedup window"


def recorder_specs(settings: Settings, env: dict[str, str]) -> list[ChildSpec]:
    """The history recorder child beside the workers (none without DATABASE_URL, or with
    HISTORY_RECORDER=false)."""
    if not settings.history.enabled or not settings.history.run_recorder:
        return []
    argv = [sys.executable, "-m", "postbox", "emails", "record"]
    return [ChildSpec("history-recorder", argv, env=env)]


def announce_history(settings: Settings) -> None:
    """Say at start whether a history is kept, and where (never with the password)."""
    if settings.history.enabled:
        logger.info("Email history kept for %d days", settings.history.days)
    else:
        logger.warning(NO_HISTORY)


def _settings(need_history: bool = True) -> Settings:
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging(
        settings.log_level, settings.log_format, settings.instance_id, secret_values(settings)
    )
    if need_history and not settings.history.enabled:
        raise click.ClickException(NO_HISTORY + ": set it to use the history.")
    return settings


@click.group()
def emails() -> None:
    """The email history: search it, show one email, run the recorder."""


@emails.command("migrate")
def emails_migrate() -> None:
    """Apply the history's schema migrations (every recorder does at start)."""
    from postbox.history.database import create_history_engine  # noqa: PLC0415
    from postbox.history.migrations import migrate  # noqa: PLC0415

    settings = _settings()
    engine = create_history_engine(settings.history)
    try:
        migrate(engine)
    except HistoryUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


@emails.command("record")
def emails_record() -> None:
    """Record delivery events into the history (`postbox worker` runs one beside it)."""
    from postbox.history.runner import run_recorder  # noqa: PLC0415

    run_recorder(_settings())


def _ms(value: datetime | None) -> int | None:
    return int(value.timestamp() * 1000) if value else None


@emails.command("search")
@click.option("--to", help="A recipient address.")
@click.option("--from", "sender", help="The envelope sender.")
@click.option("--status", help="queued, scheduled, retrying, sent, failed or canceled.")
@click.option("--tag")
@click.option("--since", type=click.DateTime(), help="Accepted at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Accepted before (UTC).")
@click.option("--cursor", help="Continue where a previous search stopped.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON.")
def emails_search(as_json: bool, since: datetime | None, until: datetime | None, **kw: Any) -> None:
    """Search the history, newest first."""
    from postbox.history.database import create_history_engine  # noqa: PLC0415
    from postbox.history.search import MAX_LIMIT, EmailQuery, search  # noqa: PLC0415

    if kw["limit"] > MAX_LIMIT:
        raise click.BadParameter(f"at most {MAX_LIMIT}", param_hint="--limit")
    settings = _settings()
    query = EmailQuery(since_ms=_ms(since), until_ms=_ms(until), **kw)
    engine = create_history_engine(settings.history)
    try:
        page = search(engine, query)
    except InvalidCursor as exc:
        raise click.BadParameter(str(exc), param_hint="--cursor") from None
    except HistoryUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    if as_json:
        body = {"data": [r.to_json() for r in page.records], "next_cursor": page.next_cursor}
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    for record in page.records:
        row = record.to_json()
        to = ",".join(r["address"] for r in row["to"])
        click.echo(f"{row['id']}  {row['accepted_at']}  {row['status']:<9}  {to}  {row['subject']}")
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}")


@emails.command("show")
@click.argument("email_id")
def emails_show(email_id: str) -> None:
    """One email as JSON: from the queue while it is there, else from the history."""
    from postbox.history.database import create_history_engine  # noqa: PLC0415
    from postbox.history.views import find_record  # noqa: PLC0415

    settings = _settings()
    body = _from_queue(settings, email_id) if is_job_id(email_id) else None
    if body is None:
        engine = create_history_engine(settings.history)
        try:
            record = find_record(engine, email_id)
        except HistoryUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            engine.dispose()
        body = record.to_json(with_events=True) if record else None
    if body is None:
        raise click.ClickException(f"No email with id {email_id!r}.")
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _from_queue(settings: Settings, email_id: str) -> dict[str, Any] | None:
    async def run() -> dict[str, Any] | None:
        async with dead_letters.open_queue(settings.redis) as queue:
            view = await lookup_email(queue, email_id)
        return view.to_json() if view else None

    try:
        return run_command(settings, run)
    except click.ClickException:
        return None  # Redis cannot be reached: the history may still know it


@emails.command("cancel")
@click.argument("email_id")
def emails_cancel(email_id: str) -> None:
    """Cancel a queued, scheduled or retrying email (exit 1 if a worker already took it)."""
    settings = _settings(need_history=False)
    if not is_job_id(email_id):
        raise click.ClickException(f"No email with id {email_id!r}.")

    async def run() -> tuple[str, str | None]:
        async with dead_letters.open_queue(settings.redis) as queue:
            outcome = await EmailCanceler(queue.client, queue.name).cancel(email_id)
            view = None if outcome.result == "canceled" else await lookup_email(queue, email_id)
        return outcome.result, str(view.status) if view else None

    result, status = run_command(settings, run)
    if result == "canceled" or status == "canceled":
        click.echo(f"{email_id} canceled")
    elif status is None:
        raise click.ClickException(f"No email with id {email_id!r}.")
    else:
        raise click.ClickException(f"{email_id} is {status}: it can no longer be canceled")
