"""The `postbox` command line: serve | worker | dev.

Every setting comes from the environment; a flag only overrides its variable, and the
override is passed on to child processes through their environment.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from postbox.config import Settings, load_settings
from postbox.errors import ConfigError
from postbox.logs import setup_logging
from postbox.workers.supervisor import ChildSpec, Supervisor

GUNICORN_THREADS = 16


def _settings(overrides: dict[str, str]) -> tuple[Settings, dict[str, str]]:
    env = {**os.environ, **overrides}
    settings = load_settings(env)
    setup_logging(settings.log_level, settings.log_format, settings.instance_id)
    return settings, env


def _overrides(**values: object) -> dict[str, str]:
    return {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in values.items()
        if value is not None
    }


def worker_specs(count: int) -> list[ChildSpec]:
    """Child specs for `count` single-process workers."""
    argv = [sys.executable, "-m", "postbox", "worker", "--processes", "1"]
    return [ChildSpec(f"worker-{index + 1}", argv) for index in range(count)]


def gunicorn_spec(settings: Settings) -> ChildSpec:
    """The gunicorn child serving the Flask app."""
    api = settings.api
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "postbox.api.wsgi:app",
        "--bind",
        f"{api.host}:{api.port}",
        "--workers",
        str(api.web_concurrency),
        "--worker-class",
        "gthread",
        "--threads",
        str(GUNICORN_THREADS),
        "--graceful-timeout",
        "20",
        "--no-control-socket",
        "--log-level",
        settings.log_level.lower(),
    ]
    return ChildSpec("api", argv, essential=True)


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
    specs = [gunicorn_spec(settings)]
    if settings.worker.start_with_api:
        specs += worker_specs(settings.worker.processes)
    stop_timeout = settings.worker.shutdown_grace_seconds + 10
    sys.exit(Supervisor(specs, env, stop_timeout).run())


@cli.command()
@click.option(
    "--processes", type=int, help="Worker processes (EMAIL_WORKER_PROCESSES; default: cores)."
)
@click.option("--concurrency", type=int, help="Jobs per process (EMAIL_WORKER_CONCURRENCY).")
def worker(processes: int | None, concurrency: int | None) -> None:
    """Deliver queued emails; several processes run under one supervisor."""
    settings, env = _settings(
        _overrides(EMAIL_WORKER_PROCESSES=processes, EMAIL_WORKER_CONCURRENCY=concurrency)
    )
    if settings.worker.processes == 1:
        from postbox.workers.runner import run_worker  # noqa: PLC0415

        run_worker(settings)
        return
    stop_timeout = settings.worker.shutdown_grace_seconds + 10
    sys.exit(Supervisor(worker_specs(settings.worker.processes), env, stop_timeout).run())


@cli.command()
@click.option("--port", type=int, default=8080, show_default=True, help="API port on 127.0.0.1.")
@click.option("--smtp-port", type=int, default=None, help="Dev inbox SMTP port (default: free).")
def dev(port: int, smtp_port: int | None) -> None:
    """Everything on loopback: private Redis, an SMTP inbox, the API and a worker."""
    from postbox.dev.run import run_dev  # noqa: PLC0415

    setup_logging("INFO", "text", "dev")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    sys.exit(run_dev(api_port=port, smtp_port=smtp_port))


def main() -> None:
    """Console-script entry point; configuration errors end the process with one line."""
    try:
        cli()
    except ConfigError as exc:
        click.echo(f"postbox: configuration error: {exc}", err=True)
        sys.exit(2)
