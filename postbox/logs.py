"""Logging set-up, once per process: plain text for people, JSON lines for collectors.

Every record carries the instance id. A record written while a worker runs a job, or while
the API serves a request about one email, also carries that email's id: `email_id` and
`job_id` in JSON, which hold the same value, since one rule makes the email id the BullMQ
job id (postbox/queue/job_ids.py). The id travels in a context variable, so it follows the
job's asyncio task or the request's thread without being passed around.

Secret values this process knows (SMTP_PASSWORD, the password in REDIS_URL, SECRET_KEY,
ENCRYPTION_KEY) are replaced by `***` in every line, whoever logs them, tracebacks included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from urllib.parse import urlsplit

from postbox.config import Settings

MIN_SECRET_LENGTH = 4
email_id: ContextVar[str | None] = ContextVar("email_id", default=None)


class EmailIdFilter(logging.Filter):
    """Puts the current email id (or None) on each record as `email_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.email_id = email_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the instance id on every record."""

    def __init__(self, instance_id: str) -> None:
        super().__init__()
        self._instance_id = instance_id

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "instance": self._instance_id,
            "pid": record.process,
        }
        current = getattr(record, "email_id", None)
        if current:
            entry["email_id"] = entry["job_id"] = current
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then hides every known secret value in the result."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self._inner = inner
        # Very short values would blank out ordinary words; no real secret is that short.
        self._secrets = tuple(secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH)

    def format(self, record: logging.LogRecord) -> str:
        line = self._inner.format(record)
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, "***")
        return line


def secret_values(settings: Settings) -> list[str]:
    """The secret values in `settings` that must never reach a log line."""
    try:
        redis_password = urlsplit(settings.redis.url).password
    except ValueError:
        redis_password = None
    sentinel = settings.redis.sentinel
    candidates = (
        settings.smtp.password,
        redis_password,
        sentinel.password if sentinel else None,
        sentinel.redis_password if sentinel else None,
        settings.redis.cluster.password if settings.redis.cluster else None,
        settings.api.secret_key,
        settings.webhooks.encryption_key,
        settings.history.password,
        *(relay.smtp.password for relay in settings.relays),
    )
    return [value for value in candidates if value]


def setup_logging(level: str, fmt: str, instance_id: str, secrets: Iterable[str] = ()) -> None:
    """Send every log record to stderr in the chosen format, secrets hidden."""
    handler = logging.StreamHandler()
    inner: logging.Formatter
    if fmt == "json":
        inner = JsonFormatter(instance_id)
    else:
        inner = logging.Formatter(
            f"%(asctime)s %(levelname)s [{instance_id} %(process)d] %(name)s: %(message)s"
        )
    handler.setFormatter(RedactingFormatter(inner, secrets))
    handler.addFilter(EmailIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
