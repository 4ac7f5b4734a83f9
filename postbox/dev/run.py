"""`postbox dev`: a whole Postbox on loopback for trying it out.

It starts a private redis-server and the SMTP inbox, then `postbox serve` (API and one
worker) and `postbox bounces` (the bounce listener, on a free loopback port, for
BOUNCE_DOMAIN `bounces.localhost` unless one is set) as children with a freshly generated
API key (and ENCRYPTION_KEY, unless one is set, with webhook receivers on private networks
allowed), prints how to use it, and on Ctrl-C stops everything it started and removes its
temporary data.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

import click

from postbox.config.settings import redact_url
from postbox.dev.inbox import DevInbox
from postbox.dev.ports import free_port, port_is_free, wait_for_port
from postbox.dev.redis_server import RedisServer
from postbox.errors import RedisServerError
from postbox.supervisor import stop_processes

logger = logging.getLogger(__name__)
# The VERP domain of a development run: `.localhost` names resolve to nothing outside.
DEV_BOUNCE_DOMAIN = "bounces.localhost"


def _serve_env(
    redis_url: str, smtp_port: int, api_port: int, key: str, maildir: Path, *, bounce_port: int
) -> dict[str, str]:
    """The environment of both children: one ENCRYPTION_KEY and BOUNCE_DOMAIN, so the
    listener verifies the VERP tokens the worker signs."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_SECURITY": "none",
        "API_KEYS": key,
        "HOST": "127.0.0.1",
        "PORT": str(api_port),
        "START_EMAIL_WORKER": "true",
        "EMAIL_WORKER_PROCESSES": "1",
        "WEB_CONCURRENCY": "1",
        "INSTANCE_ID": "dev",
        "POSTBOX_DEV_INBOX_DIR": str(maildir),
        "WORKER_SHUTDOWN_GRACE_SECONDS": "10",
        # Webhook secrets need a key; this run's data is thrown away with it, so any will do.
        "ENCRYPTION_KEY": os.environ.get("ENCRYPTION_KEY") or secrets.token_hex(32),
        # A receiver on this machine (http://127.0.0.1:...) is the usual development target.
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "BOUNCE_DOMAIN": os.environ.get("BOUNCE_DOMAIN") or DEV_BOUNCE_DOMAIN,
        "BOUNCE_SMTP_HOST": "127.0.0.1",
        "BOUNCE_SMTP_PORT": str(bounce_port),
    }


def _banner(api_port: int, smtp_port: int, redis_url: str, key: str, bounces: str) -> str:
    base = f"http://127.0.0.1:{api_port}"
    return f"""
Postbox is running (development mode, loopback only).
  API        {base}/v1/emails
  Inbox      {base}/dev/inbox   (SMTP on 127.0.0.1:{smtp_port})
  Stats      {base}/v1/queue/stats
  Dashboard  {base}/dashboard   (sign in with the API key)
  API docs   {base}/docs
  Webhooks   {base}/v1/webhooks   (receivers on this machine and http:// allowed)
  History    {base}/v1/emails?to=you@example.com   (SQLite, in the run's data directory)
  Bounces    SMTP on {bounces}   (DSNs to the bounces+... envelope senders)
  Redis      {redis_url}   (private; its data goes when you stop)
  API key    {key}

Try, from Python (.venv/bin/python; the client is clients/python):
  from postbox_client import Postbox
  postbox = Postbox("{base}", "{key}")
  print(postbox.send(from_="dev@example.com", to="you@example.com", subject="Hi", text="Hi"))

or with curl:
  curl -s {base}/v1/emails \\
    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{"from": "Dev <dev@example.com>", "to": "you@example.com",
         "subject": "Hello", "text": "It works."}}'

Press Ctrl-C to stop.
"""


def run_dev(api_port: int, smtp_port: int | None) -> int:
    """Run until Ctrl-C (or SIGTERM); returns the exit code."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if not port_is_free(api_port):
        click.echo(f"postbox dev: port {api_port} is in use; pick another with --port", err=True)
        return 2
    with tempfile.TemporaryDirectory(prefix="postbox-dev-") as tmp:
        data = Path(tmp)
        redis = RedisServer(data / "redis", password=secrets.token_hex(16))
        inbox = DevInbox(data / "inbox", port=smtp_port)
        try:
            redis.start()
        except RedisServerError as exc:
            click.echo(f"postbox dev: {exc}", err=True)
            return 2
        inbox.start()
        key = "pbdev_" + secrets.token_urlsafe(24)
        bounce_port = free_port()
        env = _serve_env(
            redis.url, inbox.port, api_port, key, inbox.maildir, bounce_port=bounce_port
        )
        # The email history in a SQLite file beside Redis's data (gone with it).
        env.setdefault("DATABASE_URL", f"sqlite:///{data / 'history.db'}")
        children = {
            command: subprocess.Popen([sys.executable, "-m", "postbox", command], env=env)
            for command in ("serve", "bounces")
        }
        try:
            bounces = f"127.0.0.1:{bounce_port}"
            banner = _banner(api_port, inbox.port, redact_url(redis.url), key, bounces)
            return _supervise(children, stop, (api_port, bounce_port), banner)
        finally:
            stop_processes(list(children.values()), timeout=30)
            inbox.stop()
            redis.stop()
            logger.info("Development run stopped; removed %s", tmp)


def _supervise(
    children: dict[str, subprocess.Popen[bytes]],
    stop: threading.Event,
    ports: tuple[int, ...],
    banner: str,
) -> int:
    """Wait until every child listens, print the banner, then run until Ctrl-C or until
    a child exits."""
    try:
        for port in ports:
            wait_for_port("127.0.0.1", port, timeout=30)
    except TimeoutError:
        click.echo(
            "postbox dev: the API or the bounce listener did not start; see the log above", err=True
        )
        return 1
    click.echo(banner)
    while not stop.wait(0.2):
        for name, child in children.items():
            if child.poll() is not None:
                click.echo(
                    f"postbox dev: `postbox {name}` exited with code {child.returncode}", err=True
                )
                return child.returncode or 1
    return 0
