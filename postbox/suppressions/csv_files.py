"""The CSV form of the suppression list, for `postbox suppressions import|export`.

An import file has a header naming its columns, `address,reason,note` (only `address` is
required; other columns, such as those of an export, are ignored), then one address a line.
An empty reason means `manual`. An export writes every field of every entry, so a file
exported from one Postbox imports into another.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from postbox.config.suppressions import SuppressionSettings
from postbox.errors import AddressError
from postbox.suppressions.entries import Reason, Suppression, new_entry, normalised

EXPORT_COLUMNS = (
    "address",
    "reason",
    "note",
    "scope",
    "created_at",
    "email_id",
    "evidence",
    "expires_at",
)
_REASONS = frozenset(Reason)


@dataclass
class ImportedRows:
    """The entries read from a file, and the lines refused (line number, why)."""

    entries: list[Suppression] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


def read_import(
    source: TextIO, scopes: tuple[str, ...], settings: SuppressionSettings
) -> ImportedRows:
    """Entries for every usable line of `source`, one per scope; `ValueError` when the
    header names no `address` column."""
    reader = csv.DictReader(source)
    if reader.fieldnames is None or "address" not in reader.fieldnames:
        raise ValueError("the first line must be a header naming an 'address' column")
    found = ImportedRows()
    now = datetime.now(UTC)
    for row in reader:
        reason = (row.get("reason") or "").strip() or Reason.MANUAL
        try:
            address = normalised(row.get("address") or "")
        except AddressError as exc:
            found.refused.append((reader.line_num, f"address: {exc}"))
            continue
        if reason not in _REASONS:
            found.refused.append((reader.line_num, f"reason: not one of {', '.join(Reason)}"))
            continue
        note = (row.get("note") or "").strip()
        ttl = settings.ttl_seconds(reason)
        found.entries += (new_entry(address, s, reason, ttl, note=note, now=now) for s in scopes)
    return found


def write_export(entries: Iterable[Suppression], target: TextIO) -> int:
    """Write `entries` as CSV with a header; how many were written."""
    writer = csv.writer(target, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in _rows(entries):
        writer.writerow(row)
        count += 1
    return count


def _rows(entries: Iterable[Suppression]) -> Iterator[list[str]]:
    for entry in entries:
        values = entry.to_json()
        yield ["" if values[name] is None else str(values[name]) for name in EXPORT_COLUMNS]
