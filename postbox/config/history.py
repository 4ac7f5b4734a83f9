"""Settings of the email history: where it is kept, for how long, and whether bodies go in.

    DATABASE_URL=postgresql://user:pass@host/db     (shared deployments; psycopg 3)
    DATABASE_URL=sqlite:////var/lib/postbox/history.db   (embedded; as SQLAlchemy writes it)

Without DATABASE_URL no history is kept beyond the dedup window. Read by `load_settings`
(settings.py) like every other setting; the password inside the URL is a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from postbox.errors import ConfigError

_SCHEMES = {"postgresql", "postgresql+psycopg", "postgres", "sqlite", "sqlite+pysqlite"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class HistorySettings:
    """Where and how long the history of every accepted email is kept."""

    database_url: str | None = field(default=None, repr=False)
    pool_size: int = 5
    days: int = 30
    store_bodies: bool = False
    # `postbox worker` (and `serve` with workers) also runs one recorder process.
    run_recorder: bool = True
    # An event a recorder read and did not record for this long belongs to a dead one.
    claim_idle_ms: int = 30_000

    @property
    def enabled(self) -> bool:
        """True when a database is configured."""
        return self.database_url is not None

    @property
    def password(self) -> str | None:
        """The password inside DATABASE_URL, if any (for the log redaction)."""
        if self.database_url is None:
            return None
        try:
            return urlsplit(self.database_url).password
        except ValueError:
            return None


def sqlalchemy_url(url: str) -> str:
    """`url` with the driver SQLAlchemy should use: psycopg 3 for PostgreSQL."""
    scheme, sep, rest = url.partition("://")
    if scheme in {"postgresql", "postgres"}:
        return f"postgresql+psycopg://{rest}"
    return f"{scheme}{sep}{rest}"


def load_history(environ: Mapping[str, str]) -> HistorySettings:
    """The history settings of `environ`; `ConfigError` naming the variable that is wrong."""
    url = environ.get("DATABASE_URL", "").strip() or None
    if url is not None and url.partition("://")[0] not in _SCHEMES:
        raise ConfigError("DATABASE_URL must start with postgresql:// or sqlite:///")
    return HistorySettings(
        database_url=url,
        pool_size=_positive(environ, "DATABASE_POOL_SIZE", 5),
        days=_positive(environ, "EMAIL_HISTORY_DAYS", 30),
        store_bodies=_flag(environ, "EMAIL_HISTORY_BODIES", False),
        run_recorder=_flag(environ, "HISTORY_RECORDER", True),
        claim_idle_ms=_positive(environ, "HISTORY_CLAIM_IDLE_SECONDS", 30) * 1000,
    )


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name} has value {value!r}: not a positive whole number")
    return int(value)


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    if not value:
        return default
    if value not in _TRUE | _FALSE:
        raise ConfigError(f"{name} has value {value!r}: not a boolean")
    return value in _TRUE
