-- EMAIL_HISTORY_BODIES=true: each email's rendered message (MIME, attachments and all), in
-- a table of its own so that searches and the records' pages never read it.
CREATE TABLE history_bodies (
    email_id TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    message TEXT NOT NULL
);
