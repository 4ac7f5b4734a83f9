"""`SMTP_RELAYS`: the named relays the workers deliver through, in the order they are tried.

    SMTP_RELAYS=primary=smtp+starttls://user:pass@smtp.primary.example:587?pool=16,
                backup=smtps://user:pass@smtp.backup.example:465?pool=8&rate_limit=50/second

The scheme says how the connection is protected: `smtp+starttls` (STARTTLS), `smtps` (TLS
from the first byte), `smtp` (SMTP_SECURITY, `none` by default). The port defaults to 25,
587 or 465 to match. The query may set `pool`, `timeout` (seconds), `ca_file` and
`rate_limit` (`100/second`, beside the global and per-domain limits); SMTP_POOL_SIZE,
SMTP_TIMEOUT_SECONDS and SMTP_CA_FILE are the defaults of the relays that do not. A user
name or password with `@`, `:`, `/`, `,` or `%` in it is percent-encoded, as in any URL.

Without SMTP_RELAYS, SMTP_HOST, SMTP_PORT, SMTP_USERNAME and SMTP_PASSWORD make one relay
named `default`, as before. With it they must be unset: two answers to "where is the relay"
would leave one of them silently ignored. The passwords are secrets: no error names one, and
a relay's `repr` hides it like SmtpSettings does.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from postbox.config.rate_limits import RateLimit, parse_rate_limit
from postbox.config.settings import Settings, SmtpSecurity, SmtpSettings
from postbox.errors import ConfigError

T = TypeVar("T")

DEFAULT_RELAY = "default"
# The settings a relay's URL replaces; set beside SMTP_RELAYS, they are a config error.
REPLACED_BY_RELAYS = ("SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD")
_SCHEMES = {
    "smtp": None,  # SMTP_SECURITY
    "smtp+starttls": SmtpSecurity.STARTTLS,
    "smtps": SmtpSecurity.TLS,
}
_DEFAULT_PORTS = {SmtpSecurity.NONE: 25, SmtpSecurity.STARTTLS: 587, SmtpSecurity.TLS: 465}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_QUERY_KEYS = frozenset({"pool", "timeout", "ca_file", "rate_limit"})


@dataclass(frozen=True)
class RelaySettings:
    """One named relay: where it is, how to log in, its pool and its own rate limit."""

    name: str
    smtp: SmtpSettings
    rate_limit: RateLimit | None = None

    @property
    def address(self) -> str:
        """`host:port`, for logs and stats."""
        return f"{self.smtp.host}:{self.smtp.port}"


def load_relays(environ: Mapping[str, str], defaults: SmtpSettings) -> tuple[RelaySettings, ...]:
    """The relays `environ` configures; `defaults` are the SMTP_* settings as loaded.

    Raises `ConfigError` naming SMTP_RELAYS (and the relay) or the conflicting variables.
    """
    value = (environ.get("SMTP_RELAYS") or "").strip()
    if not value:
        return (RelaySettings(DEFAULT_RELAY, defaults),)
    conflicting = [name for name in REPLACED_BY_RELAYS if (environ.get(name) or "").strip()]
    if conflicting:
        raise ConfigError(
            f"SMTP_RELAYS is set, so {', '.join(conflicting)} must be unset: each relay's URL "
            "says where it is and who logs in"
        )
    items = [item.strip() for item in value.split(",") if item.strip()]
    relays = tuple(_relay(number, item, defaults) for number, item in enumerate(items, 1))
    names = [relay.name for relay in relays]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"SMTP_RELAYS names relay {duplicates[0]!r} more than once")
    if not relays:
        raise ConfigError("SMTP_RELAYS has no relay (name=smtp://host:port, ...)")
    return relays


def _relay(number: int, item: str, defaults: SmtpSettings) -> RelaySettings:
    name, sep, url = item.partition("=")
    name = name.strip().lower()
    if not sep or not _NAME.match(name):
        # Not quoted: without a name, what precedes `=` may be a URL with its password.
        raise ConfigError(
            f"SMTP_RELAYS entry {number} is not name=url (a name of letters, digits, - and _, "
            "32 at most)"
        )
    try:
        return _parse(name, url.strip(), defaults)
    except ValueError as exc:
        raise ConfigError(f"SMTP_RELAYS relay {name!r}: {exc}") from None


def _parse(name: str, url: str, defaults: SmtpSettings) -> RelaySettings:
    """`ValueError`s here never quote the URL: it may hold the password."""
    parts = _split(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError("the URL must start with smtp://, smtp+starttls:// or smtps://")
    if not parts.hostname:
        raise ValueError("the URL has no host name")
    security = _SCHEMES[parts.scheme] or defaults.security
    query = _query(parts.query)
    smtp = dataclasses.replace(
        defaults,
        host=parts.hostname,
        port=parts.port or _DEFAULT_PORTS[security],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        security=security,
        pool_size=_option(query, "pool", _positive_int, defaults.pool_size),
        timeout_seconds=_option(query, "timeout", _positive_float, defaults.timeout_seconds),
        ca_file=_ca_file(query.get("ca_file")) or defaults.ca_file,
    )
    rate_limit = parse_rate_limit(query["rate_limit"]) if "rate_limit" in query else None
    return RelaySettings(name, smtp, rate_limit)


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise ValueError("the URL is malformed or its port is not a TCP port") from None
    return parts


def _query(query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError("the URL's query is not key=value&key=value") from None
    unknown = sorted({key for key, _ in pairs} - _QUERY_KEYS)
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} (pool, timeout, ca_file, rate_limit)")
    return dict(pairs)


def _option(query: dict[str, str], key: str, parse: Callable[[str], T], default: T) -> T:
    text = query.get(key)
    if text is None:
        return default
    try:
        return parse(text)
    except ValueError:
        raise ValueError(f"{key}={text!r} is not a positive number") from None


def _positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise ValueError(text)
    return number


def _positive_float(text: str) -> float:
    number = float(text)
    if not number > 0:
        raise ValueError(text)
    return number


def _ca_file(path: str | None) -> str | None:
    if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise ValueError(f"ca_file={path!r} is not a readable file")
    return path


def configured_relays(settings: Settings) -> tuple[RelaySettings, ...]:
    """The relays of `settings`: SMTP_RELAYS, or the one relay the SMTP_* settings make (for
    settings built in code rather than loaded)."""
    return settings.relays or (RelaySettings(DEFAULT_RELAY, settings.smtp),)
