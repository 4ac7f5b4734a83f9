-- The relay that accepted each recipient (SMTP_RELAYS' name, `default` without it), from
-- the email.sent event; null for a recipient no relay accepted, and for records written
-- before this migration.
ALTER TABLE history_recipients ADD COLUMN relay TEXT;
