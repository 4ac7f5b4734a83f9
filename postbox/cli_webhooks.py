"""What `postbox webhooks list|create|delete` do: the operator's view of the endpoints.

The command line sees every endpoint, whoever made it. An endpoint made here belongs to no
API key (only unrestricted keys see it through the API); `--allowed-from` scopes it to the
emails of some sender domains, as a restricted key's endpoint is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import click

from postbox.cli_redis import run_with_redis
from postbox.config import Settings
from postbox.config.api_keys import sender_domains
from postbox.errors import EncryptionKeyMissing
from postbox.webhooks.endpoints import SUBSCRIBABLE_EVENTS, Endpoint, EndpointStore
from postbox.webhooks.secret_box import SecretBox
from postbox.webhooks.urls import check_url

T = TypeVar("T")


def with_store(settings: Settings, action: Callable[[EndpointStore], Awaitable[T]]) -> T:
    """Run `action` on an endpoint store in a fresh event loop; Redis down or no
    ENCRYPTION_KEY (where a secret is needed) ends the command with one line."""
    key = settings.webhooks.encryption_key
    box = SecretBox(key) if key else None

    try:
        return run_with_redis(
            settings, lambda client: action(EndpointStore(client, settings.redis.queue_name, box))
        )
    except EncryptionKeyMissing as exc:
        raise click.ClickException(exc.message) from None


def list_endpoints(settings: Settings, as_json: bool) -> None:
    """Print every endpoint, oldest first, as a table or as JSON."""
    found = with_store(settings, lambda store: store.all())
    if as_json:
        click.echo(json.dumps({"data": [e.as_json() for e in found]}, indent=2))
    elif not found:
        click.echo("No webhook endpoints.")
    else:
        echo_columns([_HEADER, *(_row(endpoint) for endpoint in found)])


_HEADER = ("ID", "STATE", "EVENTS", "DOMAINS", "URL", "DESCRIPTION")


def _row(endpoint: Endpoint) -> tuple[str, ...]:
    state = "enabled" if endpoint.enabled else f"disabled: {endpoint.disabled_reason or '-'}"
    return (
        endpoint.id,
        state,
        ",".join(endpoint.events),
        ",".join(endpoint.domains) or "*",
        endpoint.url,
        endpoint.description,
    )


def create_endpoint(
    settings: Settings,
    url: str,
    events: Sequence[str],
    description: str,
    allowed_from: Sequence[str],
) -> None:
    """Make an endpoint and print its id and signing secret (shown only now)."""
    if settings.webhooks.encryption_key is None:
        raise click.ClickException(EncryptionKeyMissing().message)
    problem = check_url(url, settings.webhooks.allow_private_networks)
    if problem:
        raise click.BadParameter(problem, param_hint="URL")
    try:
        domains = sender_domains(allowed_from)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allowed-from") from None
    chosen = tuple(events) or ("*",)
    endpoint, secret = with_store(
        settings, lambda store: store.create(url, chosen, description, "", domains)
    )
    click.echo(f"Webhook {endpoint.id} -> {endpoint.url} ({', '.join(endpoint.events)})")
    click.echo(f"Signing secret (shown only now; give it to the receiver):\n  {secret}")


def delete_endpoints(settings: Settings, ids: Sequence[str]) -> None:
    """Delete endpoints by id; exit 1 if any was not one."""

    async def run(store: EndpointStore) -> list[bool]:
        return [await store.delete(endpoint_id) for endpoint_id in ids]

    results = with_store(settings, run)
    for endpoint_id, done in zip(ids, results, strict=True):
        if done:
            click.echo(f"deleted {endpoint_id}")
        else:
            click.echo(f"not a webhook: {endpoint_id}", err=True)
    if not all(results):
        sys.exit(1)


def echo_columns(rows: list[tuple[str, ...]]) -> None:
    """Print `rows` as left-aligned columns."""
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


EVENT_CHOICE = click.Choice(SUBSCRIBABLE_EVENTS)
