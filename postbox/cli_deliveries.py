"""What `postbox webhooks deliveries ID` does: an endpoint's recent attempts, or its failed
or pending deliveries, as a table or as JSON (the operator sees every endpoint)."""

from __future__ import annotations

import json
from typing import Any

import click
import redis.asyncio as redis

from postbox.cli_redis import run_with_redis
from postbox.cli_webhooks import echo_columns
from postbox.config import Settings
from postbox.webhooks.delivery_records import (
    LISTED_STATES,
    delivery_counts,
    listed_deliveries,
    recent_attempts,
)
from postbox.webhooks.endpoints import EndpointStore

__all__ = ["LISTED_STATES", "show_deliveries"]


def show_deliveries(
    settings: Settings, endpoint_id: str, state: str, limit: int, as_json: bool
) -> None:
    """Print the endpoint's deliveries in `state`; exit 1 if there is no such endpoint."""
    found = _load(settings, endpoint_id, state, limit)
    if found is None:
        raise click.ClickException(f"No webhook with id {endpoint_id!r}.")
    rows, counts = found
    if as_json:
        click.echo(json.dumps({"data": rows, **counts}, indent=2))
        return
    click.echo(f"{endpoint_id}: {counts['pending']} pending, {counts['failed']} failed")
    if not rows:
        click.echo("No deliveries to show.")
    elif state == "attempts":
        echo_columns([_ATTEMPT_HEADER, *(_attempt_row(row) for row in rows)])
    else:
        echo_columns([_DELIVERY_HEADER, *(_delivery_row(row) for row in rows)])


def _load(
    settings: Settings, endpoint_id: str, state: str, limit: int
) -> tuple[list[dict[str, Any]], dict[str, int]] | None:
    queue_name = settings.redis.queue_name

    async def run(client: redis.Redis) -> tuple[list[dict[str, Any]], dict[str, int]] | None:
        if await EndpointStore(client, queue_name, None).get(endpoint_id) is None:
            return None
        if state == "attempts":
            rows = await recent_attempts(client, queue_name, endpoint_id, limit)
        else:
            rows = await listed_deliveries(
                client, queue_name, endpoint_id, state=state, limit=limit, offset=0
            )
        return rows, await delivery_counts(client, queue_name, endpoint_id)

    return run_with_redis(settings, run)


_ATTEMPT_HEADER = ("AT (UTC)", "OUTCOME", "STATUS", "MS", "TRY", "EVENT", "TYPE", "ERROR")
_DELIVERY_HEADER = ("DELIVERY", "TYPE", "TRIES", "LAST STATUS", "WHEN (UTC)", "LAST ERROR")


def _attempt_row(row: dict[str, Any]) -> tuple[str, ...]:
    return (
        _when(row["at"]),
        row["outcome"],
        str(row["status"] or "-"),
        f"{row['latency_ms']:.0f}",
        str(row["attempt"]),
        row["event_id"],
        row["type"],
        (row["error"] or "")[:80],
    )


def _delivery_row(row: dict[str, Any]) -> tuple[str, ...]:
    return (
        row["delivery_id"],
        row["type"],
        str(row["attempts"]),
        str(row["last_status"] or "-"),
        _when(row["failed_at"] or row["next_attempt_at"] or ""),
        (row["last_error"] or "")[:80],
    )


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ")
