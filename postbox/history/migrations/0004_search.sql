-- A status within a tag ("the failed emails tagged password-reset"): each tag row carries its
-- email's status (kept by the same rule, the newest event's), so that search is one range
-- of (tag, status, created_ms, email_id) however rare the status is among the tag's emails;
-- through the emails' status, a page of a rare pair read every email of the tag (p99 1 s
-- over 1,000,000 emails). Filling the new columns reads every tag row once: on a large
-- history this migration takes a while (the others wait on its lock, then start).
ALTER TABLE history_tags ADD COLUMN status TEXT NOT NULL DEFAULT 'queued';
ALTER TABLE history_tags ADD COLUMN status_seq BIGINT NOT NULL DEFAULT 0;
UPDATE history_tags SET
    status = COALESCE((SELECT e.status FROM history_emails e WHERE e.id = history_tags.email_id), status),
    status_seq = COALESCE((SELECT e.status_seq FROM history_emails e WHERE e.id = history_tags.email_id), status_seq);
CREATE INDEX history_tags_status ON history_tags (tag, status, created_ms, email_id);
-- Nothing reads events by time alone (a timeline goes by email, retention by the emails'
-- acceptance time): one index less for every event written.
DROP INDEX history_events_at;
