"""`postbox suppressions list|add|remove|import|export`: the operator's view of the list.

The command line sees every entry, whatever its scope. What it adds is global unless
`--domain` limits it to sender domains (one entry per domain), as a restricted key's is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

import click

from postbox.cli_redis import run_with_redis
from postbox.config import Settings
from postbox.config.api_keys import sender_domains
from postbox.errors import AddressError
from postbox.suppressions.csv_files import read_import, write_export
from postbox.suppressions.entries import Reason, Suppression, new_entry, normalised, scopes_for
from postbox.suppressions.store import SuppressionStore

T = TypeVar("T")
_DOMAIN = click.option(
    "--domain",
    "domains",
    multiple=True,
    metavar="DOMAIN",
    help="Only for emails from this sender domain (repeat); default: every email.",
)


def make_group(load: Callable[[], Settings]) -> click.Group:
    """The `suppressions` command group; `load` reads the settings (and sets up logging)."""

    @click.group()
    def suppressions() -> None:
        """The suppression list: addresses no email is sent to."""

    @suppressions.command("list")
    @click.option("--reason", type=click.Choice([str(r) for r in Reason]), default=None)
    @click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
    def list_command(reason: str | None, as_json: bool) -> None:
        """Show every entry, in address order."""
        found = _run(load(), lambda s: _collect(s, reason))
        if as_json:
            click.echo(json.dumps({"data": [e.to_json() for e in found]}, indent=2))
        for entry in [] if as_json else found:
            click.echo(f"{entry.address}  {entry.scope}  {entry.reason}  {entry.created_at}")

    @suppressions.command("add")
    @click.argument("address")
    @click.option(
        "--reason", type=click.Choice([str(r) for r in Reason]), default=str(Reason.MANUAL)
    )
    @click.option("--note", default="")
    @_DOMAIN
    def add_command(address: str, reason: str, note: str, domains: tuple[str, ...]) -> None:
        """Suppress ADDRESS."""
        settings = load()
        normal = _address(address)
        ttl = settings.suppressions.ttl_seconds(reason)
        entries = [new_entry(normal, s, reason, ttl, note=note) for s in _scopes(domains)]
        added = _run(settings, lambda s: s.add(entries))
        click.echo(f"{normal}: {'added' if any(added) else 'already suppressed'}")

    @suppressions.command("remove")
    @click.argument("address")
    @_DOMAIN
    def remove_command(address: str, domains: tuple[str, ...]) -> None:
        """Remove ADDRESS's entries (those of --domain only, if given); exit 1 if none."""
        normal = _address(address)
        scopes = _scopes(domains) if domains else None
        if not _run(load(), lambda s: s.remove(normal, scopes)):
            click.echo(f"not suppressed: {normal}", err=True)
            sys.exit(1)
        click.echo(f"removed {normal}")

    @suppressions.command("import")
    @click.argument("file", type=click.File("r", encoding="utf-8-sig"))
    @_DOMAIN
    def import_command(file: TextIO, domains: tuple[str, ...]) -> None:
        """Add every address of a CSV FILE (header `address,reason,note`)."""
        settings = load()
        try:
            rows = read_import(file, _scopes(domains), settings.suppressions)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="FILE") from None
        added = _run(settings, lambda s: s.add(rows.entries))
        for line, problem in rows.refused:
            click.echo(f"line {line}: {problem}", err=True)
        new = sum(added)
        click.echo(
            f"{new} added, {len(added) - new} already suppressed, {len(rows.refused)} refused"
        )

    @suppressions.command("export")
    def export_command() -> None:
        """Write every entry as CSV to standard output."""
        found = _run(load(), lambda s: _collect(s, None))
        write_export(found, sys.stdout)

    return suppressions


async def _collect(store: SuppressionStore, reason: str | None) -> list[Suppression]:
    return [e async for e in store.every() if reason in (None, e.reason)]


def _run(settings: Settings, action: Callable[[SuppressionStore], Awaitable[T]]) -> T:
    """Run `action` on the store (cli_redis: Redis down ends the command with one line)."""
    queue = settings.redis.queue_name
    return run_with_redis(settings, lambda client: action(SuppressionStore(client, queue)))


def _address(address: str) -> str:
    try:
        return normalised(address)
    except AddressError as exc:
        raise click.BadParameter(str(exc), param_hint="ADDRESS") from None


def _scopes(domains: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return scopes_for(sender_domains(domains))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--domain") from None
