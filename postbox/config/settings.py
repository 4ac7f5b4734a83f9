"""Settings read once from the environment into frozen dataclasses.

`load_settings(environ)` is the only place that reads configuration. A bad value raises
`ConfigError` with one line naming the variable and the problem; the CLI prints it and exits.
Secrets (SMTP password, API keys, a password inside REDIS_URL) are kept out of every `repr`.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, TypeVar
from urllib.parse import urlsplit

from limits import RateLimitItem

from postbox.config.api_keys import ApiKey, parse_api_keys
from postbox.config.bounces import BounceSettings, parse_bounce_domain
from postbox.config.history import HistorySettings, load_history
from postbox.config.rate_limits import (
    RateLimit,
    parse_api_rate_limit,
    parse_domain_rate_limits,
    parse_rate_limit,
)
from postbox.config.redis_cluster import (
    ClusterSettings,
    hash_tagged,
    is_cluster_url,
    parse_cluster_url,
)
from postbox.config.redis_ha import (
    ReplicaAck,
    SentinelSettings,
    parse_ack_timeout_ms,
    parse_sentinels,
)
from postbox.config.ses import SesSettings, parse_topic_arns
from postbox.config.suppressions import REASONS, SuppressionSettings, ttl_variable
from postbox.config.webhook_delivery import WebhookDeliverySettings, parse_retry_schedule
from postbox.config.webhooks import WebhookSettings, parse_encryption_key
from postbox.errors import ConfigError

if TYPE_CHECKING:
    from postbox.config.relays import RelaySettings
    from postbox.config.routes import Route

T = TypeVar("T")


class SmtpSecurity(StrEnum):
    """How the worker protects its connection to the relay."""

    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


@dataclass(frozen=True)
class RedisSettings:
    """Where the queue lives."""

    url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    queue_name: str = "email"
    # New emails are refused (503 queue_full) once Redis uses this share of its maxmemory:
    # the rest stays for the workers, who need writes to move queued emails out.
    intake_memory_percent: int = 95
    # Set: the primary is found through Sentinel, and `url` is not used (redis_ha.py).
    sentinel: SentinelSettings | None = None
    # Set (REDIS_URL=redis+cluster://...): `url` is not used, `queue_name` is hash-tagged.
    cluster: ClusterSettings | None = None
    ack: ReplicaAck = field(default_factory=ReplicaAck)

    @property
    def safe_url(self) -> str:
        """Where the queue is (the URL with any password replaced), for logs and errors."""
        if self.cluster:
            return self.cluster.describe()
        return self.sentinel.describe() if self.sentinel else redact_url(self.url)


@dataclass(frozen=True)
class SmtpSettings:
    """The relay the workers deliver through."""

    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: SmtpSecurity = SmtpSecurity.NONE
    pool_size: int = 8
    timeout_seconds: float = 30.0
    ca_file: str | None = None


@dataclass(frozen=True)
class WorkerSettings:
    """How each worker process takes and retries jobs."""

    start_with_api: bool = True
    concurrency: int = 100
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_attempts: int = 5
    backoff_ms: int = 2000
    shutdown_grace_seconds: float = 60.0
    lock_duration_ms: int = 30_000
    # How long a re-run waits for the journal of a send that another run started and did not
    # report (its worker cut off from Redis, or dead); then it sends (see journal.py).
    send_mark_seconds: int = 120
    stalled_interval_ms: int = 30_000
    max_stalled_count: int = 5
    rate_limit: RateLimit | None = None
    domain_rate_limits: tuple[tuple[str, RateLimit], ...] = ()
    metrics_port: int | None = None


@dataclass(frozen=True)
class EmailLimits:
    """What one email may hold; larger requests are refused with 422 naming the field."""

    max_recipients: int = 50
    max_subject_chars: int = 998
    max_body_bytes: int = 5 * 1024 * 1024
    # Decoded size of all attachments of one email: with base64 in the message (4/3) and the
    # bodies, 7 MiB stays under the 10 MB that many relays accept.
    max_attachment_bytes: int = 7 * 1024 * 1024
    # File extensions (without the dot) and MIME types refused as attachments; empty: none.
    blocked_attachment_types: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ApiSettings:
    """How the HTTP API listens, whom it lets in and how much it takes."""

    host: str = "0.0.0.0"
    port: int = 8080
    web_concurrency: int = 2
    api_keys: tuple[ApiKey, ...] = ()
    max_request_bytes: int = 10 * 1024 * 1024
    dev_inbox_dir: str | None = None
    rate_limit: RateLimitItem | None = None
    email_limits: EmailLimits = field(default_factory=EmailLimits)
    # Signs the dashboard's session cookie; without one, a random secret kept in Redis is
    # shared by every API instance (see postbox/api/dashboard_auth.py).
    secret_key: str | None = field(default=None, repr=False)
    # A /v1 request that waited longer than this for a thread (gunicorn accepted it, the
    # process was busy) is answered 503 overloaded at once (postbox/api/admission.py).
    max_queue_wait_ms: int = 250

    @property
    def api_key_digests(self) -> tuple[str, ...]:
        """The digests of every configured key."""
        return tuple(key.digest for key in self.api_keys)


@dataclass(frozen=True)
class Settings:
    """Everything a Postbox process needs to know, read once at start."""

    redis: RedisSettings = field(default_factory=RedisSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    webhook_delivery: WebhookDeliverySettings = field(default_factory=WebhookDeliverySettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    suppressions: SuppressionSettings = field(default_factory=SuppressionSettings)
    bounces: BounceSettings = field(default_factory=BounceSettings)
    ses: SesSettings = field(default_factory=SesSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    dedup_window_seconds: int = 24 * 3600
    # Completed jobs kept whole, newest first; every other sent email is a compact record.
    keep_completed_jobs: int = 1000
    instance_id: str = field(default_factory=socket.gethostname)
    # How often each process refreshes its cluster registry entry (postbox/queue/registry.py).
    heartbeat_seconds: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"
    # SMTP_RELAYS (postbox/config/relays.py); empty: the one relay `smtp` describes.
    relays: tuple[RelaySettings, ...] = ()
    routes: tuple[Route, ...] = ()  # SMTP_ROUTES (postbox/config/routes.py)


def redact_url(url: str) -> str:
    """Return `url` with its password (if any) replaced by `***`."""
    try:
        parts = urlsplit(url)
        has_password = bool(parts.password)
    except ValueError:
        return "(not a URL)"
    if not has_password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


_SECRET_NAMES = frozenset(
    {
        "SMTP_PASSWORD",
        "API_KEYS",
        "SECRET_KEY",
        "ENCRYPTION_KEY",
        "REDIS_PASSWORD",
        "REDIS_SENTINEL_PASSWORD",
    }
)


class _Env:
    """Typed access to one environment mapping; every error names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        return value.strip() if value is not None and value.strip() != "" else None

    def get(self, name: str, default: T, parse: Callable[[str], T], problem: str) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as exc:
            detail = str(exc) or problem
            shown = repr(redact_url(value)) if name not in _SECRET_NAMES else "(hidden)"
            raise ConfigError(f"{name} has value {shown}: {detail}") from exc

    def positive_int(self, name: str, default: int) -> int:
        return self.get(name, default, _positive_int, "not a positive whole number")

    def positive_float(self, name: str, default: float) -> float:
        return self.get(name, default, _positive_float, "not a positive number")


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be 1 or more")
    return number


def _whole_number(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be greater than 0")
    return number


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("not a boolean (use true or false)")


def _redis_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ValueError("must start with redis://, rediss:// or unix://")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("has no host name")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value


def _blocked_types(value: str) -> frozenset[str]:
    """`exe,bat,application/x-msdownload`: extensions (a leading dot is optional) and types."""
    entries = {item.strip().lower().lstrip(".") for item in value.split(",")}
    entries.discard("")
    for entry in entries:
        if not _EXTENSION_OR_TYPE.match(entry):
            raise ValueError(f"{entry!r} is not a file extension or MIME type")
    return frozenset(entries)


_EXTENSION_OR_TYPE = re.compile(r"^[a-z0-9][a-z0-9.+_-]*(/[a-z0-9][a-z0-9.+_-]*)?$")


def _ca_file(value: str) -> str:
    if not os.path.isfile(value) or not os.access(value, os.R_OK):
        raise ValueError("not a readable file")
    return value


def _choice(options: set[str]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.lower() not in options:
            raise ValueError(f"must be one of {', '.join(sorted(options))}")
        return value.lower()

    return parse


def _int_from(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"must be from {low} to {high}")
        return number

    return parse


def _nice(value: str) -> int | Literal["idle"]:
    return "idle" if value.strip().lower() == "idle" else _int_from(0, 19)(value)


def _port(value: str) -> int:
    number = int(value)
    if not 0 < number < 65536:
        raise ValueError("not a TCP port (1-65535)")
    return number


def _smtp_security(value: str) -> SmtpSecurity:
    try:
        return SmtpSecurity(value.lower())
    except ValueError:
        raise ValueError("must be one of none, starttls, tls") from None


def _load_redis(env: _Env) -> RedisSettings:
    cluster = None
    url = RedisSettings.url
    if is_cluster_url(env.raw("REDIS_URL")):
        cluster = env.get("REDIS_URL", None, parse_cluster_url, "not a redis+cluster:// URL")
    else:
        url = env.get("REDIS_URL", RedisSettings.url, _redis_url, "not a Redis URL")
    if cluster:
        queue_name = env.get("QUEUE_NAME", hash_tagged("email"), _tagged_name, "not a name")
    else:
        queue_name = env.get("QUEUE_NAME", "email", _queue_name, "not a queue name")
    return RedisSettings(
        url=url,
        queue_name=queue_name,
        cluster=cluster,
        intake_memory_percent=env.get(
            "REDIS_INTAKE_MEMORY_PERCENT", 95, _int_from(1, 100), "not a percentage"
        ),
        sentinel=_load_sentinel(env),
        ack=ReplicaAck(
            replicas=env.get("REDIS_ACK_REPLICAS", 0, _whole_number, "not a whole number"),
            timeout_ms=env.get("REDIS_ACK_TIMEOUT_MS", 1000, parse_ack_timeout_ms, "bad"),
        ),
    )


def _load_sentinel(env: _Env) -> SentinelSettings | None:
    nodes = env.get("REDIS_SENTINELS", None, parse_sentinels, "not host:port,...")
    if nodes is None:
        for name in ("REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD", "REDIS_PASSWORD"):
            if env.raw(name) is not None:
                raise ConfigError(f"{name} is set without REDIS_SENTINELS, which it goes with")
        return None
    if env.raw("REDIS_URL") is not None:
        raise ConfigError(
            "REDIS_URL and REDIS_SENTINELS are both set: use one (REDIS_SENTINELS finds the"
            " primary through Sentinel)"
        )
    return SentinelSettings(
        nodes=nodes,
        master=env.raw("REDIS_SENTINEL_MASTER") or "mymaster",
        password=env.raw("REDIS_SENTINEL_PASSWORD"),
        redis_password=env.raw("REDIS_PASSWORD"),
    )


def _queue_name(value: str) -> str:
    if ":" in value or not value.isprintable() or " " in value:
        raise ValueError("must not contain ':' or spaces")
    return value


def _tagged_name(value: str) -> str:
    return hash_tagged(_queue_name(value))


def _load_smtp(env: _Env) -> SmtpSettings:
    return SmtpSettings(
        host=env.raw("SMTP_HOST") or SmtpSettings.host,
        port=env.get("SMTP_PORT", SmtpSettings.port, _port, "not a port"),
        username=env.raw("SMTP_USERNAME"),
        password=env.raw("SMTP_PASSWORD"),
        security=env.get("SMTP_SECURITY", SmtpSecurity.NONE, _smtp_security, "bad value"),
        pool_size=env.positive_int("SMTP_POOL_SIZE", SmtpSettings.pool_size),
        timeout_seconds=env.positive_float("SMTP_TIMEOUT_SECONDS", SmtpSettings.timeout_seconds),
        ca_file=env.get("SMTP_CA_FILE", None, _ca_file, "not a file"),
    )


def _load_worker(env: _Env) -> WorkerSettings:
    defaults = WorkerSettings()
    return WorkerSettings(
        start_with_api=env.get("START_EMAIL_WORKER", True, _bool, "not a boolean"),
        concurrency=env.positive_int("EMAIL_WORKER_CONCURRENCY", defaults.concurrency),
        processes=env.positive_int("EMAIL_WORKER_PROCESSES", defaults.processes),
        max_attempts=env.positive_int("EMAIL_MAX_ATTEMPTS", defaults.max_attempts),
        backoff_ms=env.positive_int("EMAIL_BACKOFF_MS", defaults.backoff_ms),
        shutdown_grace_seconds=env.positive_float(
            "WORKER_SHUTDOWN_GRACE_SECONDS", defaults.shutdown_grace_seconds
        ),
        lock_duration_ms=env.positive_int("EMAIL_LOCK_DURATION_MS", defaults.lock_duration_ms),
        send_mark_seconds=env.positive_int("EMAIL_SEND_MARK_SECONDS", defaults.send_mark_seconds),
        stalled_interval_ms=env.positive_int(
            "EMAIL_STALLED_INTERVAL_MS", defaults.stalled_interval_ms
        ),
        max_stalled_count=env.positive_int("EMAIL_MAX_STALLED_COUNT", defaults.max_stalled_count),
        rate_limit=env.get("EMAIL_RATE_LIMIT", None, parse_rate_limit, "bad rate limit"),
        domain_rate_limits=env.get("EMAIL_DOMAIN_RATE_LIMITS", (), parse_domain_rate_limits, "bad"),
        metrics_port=env.get("METRICS_PORT", None, _port, "not a port"),
    )


def _load_api(env: _Env) -> ApiSettings:
    defaults = ApiSettings()
    return ApiSettings(
        host=env.raw("HOST") or defaults.host,
        port=env.get("PORT", defaults.port, _port, "not a port"),
        web_concurrency=env.positive_int("WEB_CONCURRENCY", defaults.web_concurrency),
        api_keys=env.get("API_KEYS", (), parse_api_keys, "bad API key list"),
        max_request_bytes=env.positive_int("MAX_REQUEST_BYTES", defaults.max_request_bytes),
        dev_inbox_dir=env.raw("POSTBOX_DEV_INBOX_DIR"),
        rate_limit=env.get("API_RATE_LIMIT", None, parse_api_rate_limit, "bad rate limit"),
        email_limits=_load_email_limits(env),
        secret_key=env.raw("SECRET_KEY"),
        max_queue_wait_ms=env.positive_int("API_MAX_QUEUE_WAIT_MS", defaults.max_queue_wait_ms),
    )


def _load_email_limits(env: _Env) -> EmailLimits:
    defaults = EmailLimits()
    return EmailLimits(
        max_recipients=env.positive_int("EMAIL_MAX_RECIPIENTS", defaults.max_recipients),
        max_subject_chars=env.positive_int("EMAIL_MAX_SUBJECT_CHARS", defaults.max_subject_chars),
        max_body_bytes=env.positive_int("EMAIL_MAX_BODY_BYTES", defaults.max_body_bytes),
        max_attachment_bytes=env.positive_int(
            "EMAIL_MAX_ATTACHMENT_BYTES", defaults.max_attachment_bytes
        ),
        blocked_attachment_types=env.get(
            "EMAIL_BLOCKED_ATTACHMENT_TYPES", frozenset(), _blocked_types, "bad type list"
        ),
    )


def _load_webhook_delivery(env: _Env) -> WebhookDeliverySettings:
    defaults = WebhookDeliverySettings()
    return WebhookDeliverySettings(
        timeout_seconds=env.positive_float("WEBHOOK_TIMEOUT_SECONDS", defaults.timeout_seconds),
        retry_schedule=env.get(
            "WEBHOOK_RETRY_SCHEDULE", defaults.retry_schedule, parse_retry_schedule, "bad schedule"
        ),
        concurrency=env.positive_int("WEBHOOK_CONCURRENCY", defaults.concurrency),
        run_dispatcher=env.get("WEBHOOK_DISPATCHER", True, _bool, "not a boolean"),
        events_retention_seconds=env.get(
            "EVENTS_RETENTION_SECONDS",
            defaults.events_retention_seconds,
            _whole_number,
            "not a whole number",
        ),
        nice=env.get("WEBHOOK_DISPATCHER_NICE", defaults.nice, _nice, "not idle or 0 to 19"),
    )


def _load_webhooks(env: _Env) -> WebhookSettings:
    return WebhookSettings(
        encryption_key=env.get("ENCRYPTION_KEY", None, parse_encryption_key, "bad key"),
        allow_private_networks=env.get("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False, _bool, "bad"),
    )


def _load_suppressions(env: _Env) -> SuppressionSettings:
    ttl = {r: env.positive_int(ttl_variable(r), 0) for r in REASONS}
    return SuppressionSettings(
        ttl_days={reason: days for reason, days in ttl.items() if days},
        suppress_hard_refusals=env.get("SUPPRESS_ON_HARD_REFUSALS", True, _bool, "bad"),
        suppress_policy_refusals=env.get("SUPPRESS_ON_POLICY_REFUSALS", False, _bool, "bad"),
    )


def _load_bounces(env: _Env, encryption_key: str | None) -> BounceSettings:
    defaults = BounceSettings()
    domain = env.get("BOUNCE_DOMAIN", None, parse_bounce_domain, "bad domain")
    if domain and not encryption_key:
        raise ConfigError("BOUNCE_DOMAIN needs ENCRYPTION_KEY (its tokens are signed with it)")
    return BounceSettings(
        domain=domain,
        smtp_host=env.raw("BOUNCE_SMTP_HOST") or defaults.smtp_host,
        smtp_port=env.get("BOUNCE_SMTP_PORT", defaults.smtp_port, _port, "not a port"),
        max_message_bytes=env.positive_int("BOUNCE_MAX_MESSAGE_BYTES", defaults.max_message_bytes),
        token_ttl_days=env.positive_int("BOUNCE_TOKEN_TTL_DAYS", defaults.token_ttl_days),
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every setting from `environ` (default: the process environment).

    Raises `ConfigError` naming the first variable whose value is unusable.
    """
    from postbox.config.relays import load_relays  # noqa: PLC0415  (it imports this module)
    from postbox.config.routes import load_routes  # noqa: PLC0415

    environ = os.environ if environ is None else environ
    env = _Env(environ)
    smtp = _load_smtp(env)
    relays = load_relays(environ, smtp)
    webhooks = _load_webhooks(env)
    return Settings(
        redis=_load_redis(env),
        smtp=smtp,
        worker=_load_worker(env),
        api=_load_api(env),
        webhook_delivery=_load_webhook_delivery(env),
        webhooks=webhooks,
        history=load_history(environ),
        suppressions=_load_suppressions(env),
        bounces=_load_bounces(env, webhooks.encryption_key),
        ses=SesSettings(
            cert_file=env.get("SES_SNS_CERT_FILE", None, _ca_file, "not a readable file"),
            topic_arns=env.get("SES_SNS_TOPIC_ARNS", (), parse_topic_arns, "bad ARNs"),
        ),
        dedup_window_seconds=env.positive_int("EMAIL_DEDUP_WINDOW_SECONDS", 24 * 3600),
        keep_completed_jobs=env.get(
            "EMAIL_KEEP_COMPLETED_JOBS", 1000, _whole_number, "not a whole number"
        ),
        instance_id=env.raw("INSTANCE_ID") or socket.gethostname(),
        heartbeat_seconds=env.positive_float("INSTANCE_HEARTBEAT_SECONDS", 10.0),
        log_level=env.get("LOG_LEVEL", "INFO", _log_level, "bad level"),
        log_format=env.get("LOG_FORMAT", "text", _choice({"text", "json"}), "bad format"),
        relays=relays,
        routes=load_routes(environ, [relay.name for relay in relays]),
    )


def _log_level(value: str) -> str:
    return _choice({"debug", "info", "warning", "error", "critical"})(value).upper()
