"""The history's tables as SQLAlchemy Core sees them; migrations/*.sql create them.

The SQL files are the source of truth (they are what a database gets); these declarations
only let the queries be built with SQLAlchemy's expression language. A test compares the two.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, Text

metadata = MetaData()

emails = Table(
    "history_emails",
    metadata,
    Column("id", Text, primary_key=True),
    Column("message_id", Text),
    Column("sender", Text, nullable=False),
    Column("domain", Text, nullable=False),
    Column("subject", Text),
    Column("tags", Text, nullable=False),
    Column("key_id", Text),
    Column("status", Text, nullable=False),
    Column("status_seq", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("send_at", Text),
    Column("send_at_seq", BigInteger, nullable=False),
    Column("sent_ms", BigInteger),
    Column("failed_ms", BigInteger),
    Column("canceled_ms", BigInteger),
    Column("reply", Text),
)

recipients = Table(
    "history_recipients",
    metadata,
    Column("email_id", Text, primary_key=True),
    Column("address", Text, primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("status_seq", BigInteger, nullable=False),
    Column("reply", Text),
    Column("relay", Text),  # migration 0003
)

tags = Table(
    "history_tags",
    metadata,
    Column("email_id", Text, primary_key=True),
    Column("tag", Text, primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
    # The email's status, for a status within a tag (migration 0004).
    Column("status", Text, nullable=False),
    Column("status_seq", BigInteger, nullable=False),
)

events = Table(
    "history_events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("email_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("data", Text, nullable=False),
)

# Only with EMAIL_HISTORY_BODIES=true (migration 0002).
bodies = Table(
    "history_bodies",
    metadata,
    Column("email_id", Text, primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("message", Text, nullable=False),
)

ALL = (emails, recipients, tags, events, bodies)
