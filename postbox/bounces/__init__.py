"""Bounce intake: VERP envelope senders, and the SMTP listener that reads DSNs and ARF reports."""
