"""Erasure: every record of the emails sent to an address goes (a privacy request)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from postbox.history import schema
from postbox.history.database import unavailable_as_error
from postbox.history.retention import BATCH, delete_emails
from postbox.history.search import normal_address


def erase_address(engine: Engine, address: str, domains: tuple[str, ...] | None) -> int:
    """Delete the records of every email to `address` (of the sender `domains` only, if
    given), a batch per transaction; how many emails were erased."""
    emails, recipients = schema.emails, schema.recipients
    query = select(recipients.c.email_id).where(recipients.c.address == normal_address(address))
    if domains is not None:
        query = query.join(emails, emails.c.id == recipients.c.email_id)
        query = query.where(emails.c.domain.in_(domains))
    erased = 0
    while True:
        with unavailable_as_error(), engine.begin() as connection:
            ids = list(connection.scalars(query.limit(BATCH)))
            delete_emails(connection, ids)
        erased += len(ids)
        if len(ids) < BATCH:
            return erased
