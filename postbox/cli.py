"""The `postbox` command line: serve | worker | dev | dlq | keys | webhooks | emails.

Every setting comes from the environment; a flag only overrides its variable, and the
override is passed on to child processes through their environment.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import click
from prometheus_client.multiprocess import mark_process_dead

from postbox import (
    cli_deliveries,
    cli_emails,
    cli_queue,
    cli_standalone,
    cli_suppressions,
    cli_webhooks,
)
from postbox.cli_redis import run_command
from postbox.config import Settings, load_settings
from postbox.config.api_keys import config_entry, new_key
from postbox.errors import ConfigError, InvalidCursor
from postbox.logs import secret_values, setup_logging
from postbox.metrics import MULTIPROC_ENV, metrics_dirs, multiprocess_registry, serve_metrics
from postbox.queue import dead_letters
from postbox.queue.contract import DEAD_LETTER_CLASSES
from postbox.queue.dead_letters import DeadLetter, DeadLetterPage
from postbox.queue.job_ids import is_job_id
from postbox.startup import exit_cleanly_on_sigterm
from postbox.supervisor import ChildSpec, Supervisor

T = TypeVar("T")
# A supervised worker runs alone: the supervisor runs the dispatcher and recorder beside it.
LONE_WORKER = {"WEBHOOK_DISPATCHER": "false", "HISTORY_RECORDER": "false"}
# Threads per gunicorn process. Each request thread runs its own event loop and does its
# Redis I/O itself (queue/gateway.py), so a thread waits on Redis for well under a
# millisecond of a request's ~2 ms of CPU under the GIL: a few threads keep the process busy;
# more are only runnable competitors for the GIL, and the accept loop, which sheds the
# excess, waits behind them on each socket call. `python -m bench.overload --processes 2`
# against the default two API processes, 2026-12-02, one sequence: at 3,000 requests/s,
# 4 threads (24 waiting) answered all within 1 s, accepted p99 164-210 ms; 8 threads (24
# waiting) 184-290 ms; at 500/s, 4 threads accepted all 5,000 (p99 21 ms, 0.96 of a core),
# 8 threads 4,992 (p99 119 ms, 1.34 cores). On the slower host of 2026-12-01, 8 threads
# left 25,506-27,406 of 30,000 answers over 1 s at 3,000/s, 4 threads 40-163 (README,
# Guarantees: Overload).
GUNICORN_THREADS = 4


def _settings(overrides: dict[str, str]) -> tuple[Settings, dict[str, str]]:
    env = {**os.environ, **overrides}
    settings = load_settings(env)
    setup_logging(
        settings.log_level, settings.log_format, settings.instance_id, secret_values(settings)
    )
    return settings, env


def _overrides(**values: object) -> dict[str, str]:
    return {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in values.items()
        if value is not None
    }


def worker_specs(count: int, metrics_dir: str) -> list[ChildSpec]:
    """Child specs for `count` single-process workers writing their metrics to `metrics_dir`
    (each a lone worker: the supervisor runs the dispatcher, if any, beside them)."""
    argv = [sys.executable, "-m", "postbox", "worker", "--processes", "1"]
    return [
        ChildSpec(
            f"worker-{index + 1}",
            argv,
            env={
                MULTIPROC_ENV: metrics_dir,
                "WEBHOOK_DISPATCHER": "false",
                "HISTORY_RECORDER": "false",
            },
            on_exit=lambda pid: mark_process_dead(pid, metrics_dir),  # type: ignore[no-untyped-call]
        )
        for index in range(count)
    ]


def dispatcher_specs(settings: Settings, metrics_dir: str) -> list[ChildSpec]:
    """The webhook dispatcher child that runs beside the workers (none when
    WEBHOOK_DISPATCHER=false), its metrics in the workers' folder."""
    if not settings.webhook_delivery.run_dispatcher:
        return []
    argv = [sys.executable, "-m", "postbox", "webhooks", "dispatch"]
    return [
        ChildSpec(
            "webhook-dispatcher",
            argv,
            env={MULTIPROC_ENV: metrics_dir},
            on_exit=lambda pid: mark_process_dead(pid, metrics_dir),  # type: ignore[no-untyped-call]
        )
    ]


def gunicorn_spec(settings: Settings, metrics_dir: str) -> ChildSpec:
    """The gunicorn child serving the Flask app, its processes' metrics in `metrics_dir`."""
    api = settings.api
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "postbox.api.wsgi:app",
        "--config",
        "python:postbox.api.gunicorn_conf",
        "--bind",
        f"{api.host}:{api.port}",
        "--workers",
        str(api.web_concurrency),
        "--worker-class",
        "postbox.api.gunicorn_worker.AdmissionWorker",
        "--threads",
        str(GUNICORN_THREADS),
        "--graceful-timeout",
        "20",
        "--no-control-socket",
        "--log-level",
        settings.log_level.lower(),
    ]
    return ChildSpec("api", argv, essential=True, env={MULTIPROC_ENV: metrics_dir})


def _supervise(
    settings: Settings, specs: list[ChildSpec], env: dict[str, str], workers_dir: str | None
) -> int:
    """Run `specs`; with workers among them, serve their summed metrics on METRICS_PORT.

    The children get neither METRICS_PORT (only the supervisor listens on it) nor an
    inherited PROMETHEUS_MULTIPROC_DIR (each spec sets its role's own folder).
    """
    child_env = {k: v for k, v in env.items() if k not in {"METRICS_PORT", MULTIPROC_ENV}}
    port = settings.worker.metrics_port
    metrics: AbstractContextManager[None] = nullcontext()
    if workers_dir and port:
        metrics = serve_metrics(settings.api.host, port, multiprocess_registry(workers_dir))
    stop_timeout = settings.worker.shutdown_grace_seconds + 10
    with metrics:
        return Supervisor(specs, child_env, stop_timeout).run()


@click.group()
def cli() -> None:
    """Postbox: a self-hosted email delivery service."""


@cli.command()
@click.option("--host", help="Interface to listen on (HOST).")
@click.option("--port", type=int, help="Port to listen on (PORT).")
@click.option("--worker/--no-worker", default=None, help="Also run workers (START_EMAIL_WORKER).")
def serve(host: str | None, port: int | None, worker: bool | None) -> None:
    """Run the HTTP API under gunicorn, plus supervised workers unless START_EMAIL_WORKER=false."""
    settings, env = _settings(_overrides(HOST=host, PORT=port, START_EMAIL_WORKER=worker))
    with metrics_dirs() as dirs:
        specs = [gunicorn_spec(settings, dirs.api)]
        workers_dir = dirs.workers if settings.worker.start_with_api else None
        if workers_dir:
            specs += worker_specs(settings.worker.processes, workers_dir)
            specs += dispatcher_specs(settings, workers_dir)
            specs += cli_emails.recorder_specs(settings, {})
        cli_emails.announce_history(settings)
        code = _supervise(settings, specs, env, workers_dir)
    sys.exit(code)


@cli.command()
@click.option(
    "--processes", type=int, help="Worker processes (EMAIL_WORKER_PROCESSES; default: cores)."
)
@click.option("--concurrency", type=int, help="Jobs per process (EMAIL_WORKER_CONCURRENCY).")
def worker(processes: int | None, concurrency: int | None) -> None:
    """Deliver queued emails, and webhook events unless WEBHOOK_DISPATCHER=false; several
    processes (or one worker and the dispatcher) run under one supervisor."""
    settings, env = _settings(
        _overrides(EMAIL_WORKER_PROCESSES=processes, EMAIL_WORKER_CONCURRENCY=concurrency)
    )
    cli_emails.announce_history(settings)
    recorder = cli_emails.recorder_specs(settings, {})
    alone = not settings.webhook_delivery.run_dispatcher and not recorder
    if settings.worker.processes == 1 and alone:
        from postbox.workers.runner import run_worker  # noqa: PLC0415

        run_worker(settings)
        return
    with metrics_dirs() as dirs:
        specs = worker_specs(settings.worker.processes, dirs.workers)
        specs += dispatcher_specs(settings, dirs.workers) + recorder
        code = _supervise(settings, specs, env, dirs.workers)
    sys.exit(code)


@cli.command()
@click.option("--port", type=int, default=8080, show_default=True, help="API port on 127.0.0.1.")
@click.option("--smtp-port", type=int, default=None, help="Dev inbox SMTP port (default: free).")
def dev(port: int, smtp_port: int | None) -> None:
    """Everything on loopback: private Redis, an SMTP inbox, the API, a worker, bounces."""
    from postbox.dev.run import run_dev  # noqa: PLC0415

    setup_logging("INFO", "text", "dev")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    sys.exit(run_dev(api_port=port, smtp_port=smtp_port))


@cli.group()
def dlq() -> None:
    """The dead-letter view: failed emails, to list, requeue or discard."""


_error_class_option = click.option(
    "--error-class", type=click.Choice(DEAD_LETTER_CLASSES), help="Only this error class."
)
_all_option = click.option("--all", "all_", is_flag=True, help="Every dead letter (of the class).")


@dlq.command("list")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--cursor", help="Continue where a previous listing stopped.")
@_error_class_option
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON.")
def dlq_list(limit: int, cursor: str | None, error_class: str | None, as_json: bool) -> None:
    """Show failed emails, newest first."""
    settings, _ = _settings({})
    try:
        page = _with_queue(
            settings,
            lambda queue: dead_letters.list_dead_letters(queue, limit, cursor, 0, error_class),
        )
    except InvalidCursor as exc:
        raise click.BadParameter(str(exc), param_hint="--cursor") from None
    if as_json:
        click.echo(json.dumps(page.to_json(), indent=2, ensure_ascii=False))
    else:
        _print_table(page)


@dlq.command("retry")
@click.argument("ids", nargs=-1)
@_all_option
@_error_class_option
def dlq_retry(ids: tuple[str, ...], all_: bool, error_class: str | None) -> None:
    """Requeue failed emails by id, or --all of them, with a full attempt budget."""
    _check_selection(ids, all_, error_class)
    settings, _ = _settings({})
    if all_:
        count = _with_queue(settings, lambda q: dead_letters.retry_dead_letters(q, error_class))
        click.echo(f"requeued {count} dead letter(s)")
        return
    _each(settings, ids, dead_letters.retry_dead_letter, "requeued")


@dlq.command("purge")
@click.argument("ids", nargs=-1)
@_all_option
@_error_class_option
def dlq_purge(ids: tuple[str, ...], all_: bool, error_class: str | None) -> None:
    """Discard failed emails by id, or --all of them, for good."""
    _check_selection(ids, all_, error_class)
    settings, _ = _settings({})
    if all_:
        count = _with_queue(settings, lambda q: dead_letters.discard_dead_letters(q, error_class))
        click.echo(f"discarded {count} dead letter(s)")
        return
    _each(settings, ids, dead_letters.discard_dead_letter, "discarded")


@cli.group()
def keys() -> None:
    """API keys: make a new one."""


@keys.command("create")
@click.option(
    "--allowed-from",
    "allowed_from",
    multiple=True,
    metavar="DOMAIN",
    help="A domain the key may send from (repeat for several); default: any.",
)
def keys_create(allowed_from: tuple[str, ...]) -> None:
    """Print a new API key, once, and the API_KEYS entry that holds only its digest."""
    key = new_key()
    try:
        entry = config_entry(key, allowed_from)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allowed-from") from None
    click.echo(f"API key (shown only now; store it in your client's secrets):\n  {key}")
    click.echo(f"Add this entry to API_KEYS (comma-separated with the others):\n  {entry}")


def _check_selection(ids: Sequence[str], all_: bool, error_class: str | None) -> None:
    if ids and all_:
        raise click.UsageError("Give dead-letter ids or --all, not both.")
    if not ids and not all_:
        raise click.UsageError("Give dead-letter ids, or --all.")
    if error_class and not all_:
        raise click.UsageError("--error-class goes with --all.")


def _with_queue(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run `action` on a queue handle in a fresh event loop; Redis down ends the command."""

    async def run() -> T:
        async with dead_letters.open_queue(settings.redis) as queue:
            return await action(queue)

    return run_command(settings, run)


def _each(
    settings: Settings,
    ids: Sequence[str],
    action: Callable[[Any, str], Awaitable[bool]],
    verb: str,
) -> None:
    """Apply `action` to each id in turn; exit 1 if any was not a dead letter."""

    async def run_all(queue: Any) -> list[bool]:
        return [is_job_id(job_id) and await action(queue, job_id) for job_id in ids]

    results = _with_queue(settings, run_all)
    for job_id, done in zip(ids, results, strict=True):
        if done:
            click.echo(f"{verb} {job_id}")
        else:
            click.echo(f"not a dead letter: {job_id}", err=True)
    if not all(results):
        sys.exit(1)


def _print_table(page: DeadLetterPage) -> None:
    if not page.entries:
        click.echo("No dead letters.")
    else:
        _echo_columns([_TABLE_HEADER, *(_table_row(entry) for entry in page.entries)])
    if page.next_cursor:
        click.echo(f"More: postbox dlq list --cursor {page.next_cursor}")


_TABLE_HEADER = ("FAILED AT (UTC)", "CLASS", "TRIES", "ID", "TO", "SUBJECT", "REASON")


def _table_row(entry: DeadLetter) -> tuple[str, ...]:
    return (
        entry.failed_at[:19].replace("T", " "),
        entry.error_class,
        str(entry.attempts),
        entry.id,
        ", ".join(entry.to),
        _clip(entry.subject or "", 30),
        _clip(entry.reason, 80),
    )


def _echo_columns(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@cli.group()
def webhooks() -> None:
    """Webhook endpoints: where delivery events are sent, signed."""


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as JSON.")
def webhooks_list(as_json: bool) -> None:
    """Show every endpoint, whoever made it."""
    cli_webhooks.list_endpoints(_settings({})[0], as_json)


@webhooks.command("create")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=cli_webhooks.EVENT_CHOICE,
    help="An event type to send (repeat for several); default: every one (*).",
)
@click.option("--description", default="", help="A note for people.")
@click.option(
    "--allowed-from",
    "allowed_from",
    multiple=True,
    metavar="DOMAIN",
    help="Only events of emails from this sender domain (repeat); default: all.",
)
def webhooks_create(
    url: str, events: tuple[str, ...], description: str, allowed_from: tuple[str, ...]
) -> None:
    """Make an endpoint for URL and print its signing secret, once."""
    settings = _settings({})[0]
    cli_webhooks.create_endpoint(settings, url, events, description, allowed_from)


@webhooks.command("delete")
@click.argument("ids", nargs=-1, required=True)
def webhooks_delete(ids: tuple[str, ...]) -> None:
    """Delete endpoints by id, with the deliveries still waiting for them."""
    cli_webhooks.delete_endpoints(_settings({})[0], ids)


@webhooks.command("dispatch")
def webhooks_dispatch() -> None:
    """Deliver webhook events only (no email worker): for deployments that scale it apart."""
    from postbox.webhooks.runner import run_dispatcher  # noqa: PLC0415

    run_dispatcher(_settings({})[0])


@webhooks.command("deliveries")
@click.argument("endpoint_id")
@click.option(
    "--state",
    type=click.Choice(cli_deliveries.LISTED_STATES),
    default="attempts",
    show_default=True,
    help="Recent attempts, or the deliveries that failed, or those still pending.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def webhooks_deliveries(endpoint_id: str, state: str, limit: int, as_json: bool) -> None:
    """Show an endpoint's recent delivery attempts (or its failed or pending deliveries)."""
    cli_deliveries.show_deliveries(_settings({})[0], endpoint_id, state, limit, as_json)


cli.add_command(cli_emails.emails)
cli.add_command(cli_suppressions.make_group(lambda: _settings({})[0]), "suppressions")


@cli.command()
def bounces() -> None:
    """Listen for bounces and complaints sent to BOUNCE_DOMAIN (SMTP)."""
    settings = _settings({})[0]
    if settings.bounces.domain is None:
        raise click.ClickException("Set BOUNCE_DOMAIN (and ENCRYPTION_KEY) to take bounces.")
    from postbox.bounces.listener import run_listener  # noqa: PLC0415

    run_listener(settings)


cli.add_command(cli_standalone.standalone)
cli.add_command(cli_queue.queue)


def main() -> None:
    """Console-script entry point; configuration errors end the process with one line."""
    exit_cleanly_on_sigterm()
    try:
        cli()
    except ConfigError as exc:
        click.echo(f"postbox: configuration error: {exc}", err=True)
        sys.exit(2)
