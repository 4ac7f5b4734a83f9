"""`postbox queue migrate --from OLD_URL`: move a drained queue's lasting state to the Redis
this configuration names (postbox/queue/migration.py says what moves and why jobs do not)."""

from __future__ import annotations

import os

import click

from postbox.cli_redis import run_command
from postbox.config import Settings, load_settings
from postbox.queue.connection import api_client, binary_client
from postbox.queue.migration import Copied, copy_postbox_keys, unfinished_jobs


@click.group()
def queue() -> None:
    """Manage the queue as a whole."""


@queue.command("migrate")
@click.option(
    "--from",
    "from_url",
    required=True,
    help="The Redis the queue lives on now (a redis:// or redis+cluster:// URL).",
)
@click.option("--check", is_flag=True, help="Only say whether the old queue is drained.")
def migrate(from_url: str, check: bool) -> None:
    """Copy the idempotency records, suppressions, webhooks and other lasting state of a
    drained queue on --from to the Redis of REDIS_URL (and QUEUE_NAME). Refuses, listing
    what is left, while the old queue holds jobs: let its workers finish first."""
    target = load_settings(dict(os.environ))
    source = load_settings({**os.environ, "REDIS_URL": from_url})
    where = f"{source.redis.safe_url} ({source.redis.queue_name})"
    if (source.redis.safe_url, source.redis.queue_name) == (
        target.redis.safe_url,
        target.redis.queue_name,
    ):
        raise click.ClickException("--from names the queue REDIS_URL already names")
    left = run_command(source, lambda: _unfinished(source))
    if left:
        counts = ", ".join(f"{count} {state}" for state, count in left.items())
        raise click.ClickException(
            f"not drained: {where} still holds {counts}. Stop the APIs that write there,"
            " let its workers finish, retry or discard dead letters (postbox dlq), then"
            " run this again."
        )
    click.echo(f"drained: no job left on {where}")
    if check:
        return
    copied = run_command(target, lambda: _copy(source, target))
    click.echo(
        f"copied {copied.copied} keys to {target.redis.safe_url} ({target.redis.queue_name});"
        f" {copied.already_there} were there already, {copied.skipped} per-process keys skipped"
    )


async def _unfinished(settings: Settings) -> dict[str, int]:
    client = api_client(settings.redis)
    try:
        return await unfinished_jobs(client, settings.redis.queue_name)
    finally:
        await client.aclose(close_connection_pool=True)


async def _copy(source: Settings, target: Settings) -> Copied:
    reader, writer = binary_client(source.redis), binary_client(target.redis)
    try:
        return await copy_postbox_keys(
            reader, source.redis.queue_name, writer, target.redis.queue_name
        )
    finally:
        await reader.aclose(close_connection_pool=True)
        await writer.aclose(close_connection_pool=True)
