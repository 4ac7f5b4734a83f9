-- The history's first schema. Written in the SQL that PostgreSQL and SQLite share: times
-- are milliseconds since the epoch (BIGINT), lists are JSON text. Each search index ends in
-- (created_ms, id): the newest-first order and the keyset cursor of GET /v1/emails.
CREATE TABLE history_emails (
    id TEXT PRIMARY KEY,
    message_id TEXT,
    sender TEXT NOT NULL,
    domain TEXT NOT NULL,
    subject TEXT,
    tags TEXT NOT NULL,
    key_id TEXT,
    status TEXT NOT NULL,
    status_seq BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    created_ms BIGINT NOT NULL,
    send_at TEXT,
    send_at_seq BIGINT NOT NULL,
    sent_ms BIGINT,
    failed_ms BIGINT,
    canceled_ms BIGINT,
    reply TEXT
);
CREATE INDEX history_emails_created ON history_emails (created_ms, id);
CREATE INDEX history_emails_status ON history_emails (status, created_ms, id);
CREATE INDEX history_emails_sender ON history_emails (sender, created_ms, id);

CREATE TABLE history_recipients (
    email_id TEXT NOT NULL,
    address TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    status_seq BIGINT NOT NULL,
    reply TEXT,
    PRIMARY KEY (email_id, address)
);
CREATE INDEX history_recipients_address ON history_recipients (address, created_ms, email_id);

CREATE TABLE history_tags (
    email_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (email_id, tag)
);
CREATE INDEX history_tags_tag ON history_tags (tag, created_ms, email_id);

CREATE TABLE history_events (
    id TEXT PRIMARY KEY,
    email_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX history_events_email ON history_events (email_id, id);
CREATE INDEX history_events_at ON history_events (at_ms);
