"""Every exception Postbox raises on its own, in one tree.

PostboxError
├── ConfigError              a setting in the environment is unusable
├── RedisServerError         no usable private redis-server could be started (dev, tests)
├── QueueUnavailable         Redis cannot be reached (or answered too slowly)
│   ├── QueueFull            Redis refuses writes: it is out of memory (maxmemory)
│   └── NotReplicated        fewer replicas than REDIS_ACK_REPLICAS confirmed a write in time
├── InvalidCursor            a pagination cursor was not made by Postbox
├── HistoryUnavailable       the history database cannot be reached (or is busy)
├── HistoryRejected          the history database refused a write for its content
├── SecretUnreadable         a stored webhook secret does not decrypt with ENCRYPTION_KEY
├── AddressError             a posted email address cannot be used
├── Postponed                a job must run again later without spending an attempt
├── AttemptFailed            an attempt failed and may be retried (handed to BullMQ)
├── LockLost                 a job's lock may no longer be this worker's: neither send nor
│                            complete it
├── StaleConnection          a reused SMTP connection turned out to be closed by the relay
├── DeliveryError            one attempt to hand a message to the relay failed
│   ├── TemporaryDeliveryError   worth another attempt (4xx on MAIL/RCPT/DATA)
│   │   ├── RelayUnavailable     the relay itself is down (refused, timed out, 421)
│   │   │   └── RelayAuthFailed  the relay refused the SMTP credentials (530, 534, 535,
│   │   │                        538): the emails wait, unharmed, until an operator acts
│   │   └── OutcomeUnknown       the connection was lost after the message was written:
│   │                            the relay may have it, so no instant resend
│   └── PermanentDeliveryError   no attempt will succeed (5xx on MAIL/RCPT/DATA)
│       └── RelayMisconfigured   the relay cannot be used as configured (TLS required but
│                                not offered, an untrusted certificate)
└── ApiError                 an HTTP answer with a JSON error body (status and code below)
    ├── BadRequest               400 bad_request
    ├── Unauthorized             401 unauthorized
    ├── Forbidden                403 forbidden
    ├── NotFound                 404 not_found
    ├── IdempotencyConflict      409 idempotency_conflict
    ├── EmailStateConflict       409 email_state_conflict
    ├── UnsupportedMediaType     415 unsupported_media_type
    ├── ValidationFailed         422 validation_error
    ├── RateLimited              429 rate_limited
    ├── Overloaded               503 overloaded
    ├── EncryptionKeyMissing     503 encryption_key_missing
    ├── HistoryDisabled          503 history_disabled
    └── HistoryDown              503 history_unavailable

Each delivery error has an `error_class`: the word that starts a dead letter's reason
("rejected: 550 5.1.1 no such user") and that the dead-letter view filters by;
`error_classes()` lists them from this tree, so no other module repeats them.
"""

from __future__ import annotations

from typing import Any, ClassVar

FieldErrors = dict[str, Any]


class PostboxError(Exception):
    """Raised for every failure Postbox itself detects."""


class ConfigError(PostboxError):
    """Raised when an environment variable holds a value Postbox cannot use."""


class HistoryUnavailable(PostboxError):
    """Raised when the history database cannot be reached, or is too busy to answer."""


class HistoryRejected(PostboxError):
    """Raised when the history database refuses a statement for what it holds (a
    constraint, a value it cannot store): trying again would fail again."""


class RedisServerError(PostboxError, RuntimeError):
    """Raised when no usable redis-server can be started."""


class QueueUnavailable(PostboxError):
    """Raised when Redis, which holds the queue, cannot be reached in time."""


class QueueFull(QueueUnavailable):
    """Raised when Redis refuses a write because it reached `maxmemory` (noeviction)."""


class NotReplicated(QueueUnavailable):
    """Raised when the primary took a write but fewer replicas than REDIS_ACK_REPLICAS
    confirmed it in time: it may be lost in a failover, so it is not acknowledged."""


class InvalidCursor(PostboxError, ValueError):
    """Raised when a pagination cursor was not made by Postbox."""


class SecretUnreadable(PostboxError):
    """Raised when a stored webhook secret does not decrypt: ENCRYPTION_KEY is not the key
    it was encrypted with (changed, or different on this instance), or the value was altered."""


class AddressError(PostboxError, ValueError):
    """Raised when a posted address cannot be used."""


class Postponed(PostboxError):
    """Raised by a handler to run the job again at `until_ms` without spending an attempt."""

    def __init__(self, until_ms: int, reason: str) -> None:
        super().__init__(reason)
        self.until_ms = until_ms


class AttemptFailed(PostboxError):
    """Raised to BullMQ for a failed attempt that may be retried; its text is the reason."""


class LockLost(PostboxError):
    """Raised when a job's lock is no longer this worker's, or not for long enough to send:
    the job must neither send nor complete; the stalled-job check hands it on."""


class StaleConnection(PostboxError):
    """Raised when a reused SMTP connection turns out to be closed by the relay."""


class DeliveryError(PostboxError):
    """Raised when one attempt to deliver a message to the SMTP relay fails."""

    error_class: ClassVar[str] = "internal"

    def __init__(self, message: str, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.smtp_code = smtp_code
        # The relay that answered, once the relays know it (workers/relays.py).
        self.relay: str | None = None


class TemporaryDeliveryError(DeliveryError):
    """Raised when the relay failed in a way another attempt may get past."""

    error_class = "temporary"


class RelayUnavailable(TemporaryDeliveryError):
    """Raised when the relay cannot be reached or says it is not available (421)."""

    error_class = "unavailable"


class RelayAuthFailed(RelayUnavailable):
    """Raised when the relay refuses to authenticate Postbox (wrong SMTP_PASSWORD, no
    credentials where the relay requires them, a mechanism it will not accept).

    A relay outage as far as the emails go (postponed, never failed, the worker paused and
    probing), because no email is at fault and every one would fail alike; its own class so
    that the stats, the advice and the metrics can tell the operator to fix the credentials.
    """

    error_class = "auth"


class OutcomeUnknown(TemporaryDeliveryError):
    """Raised when the connection was lost (or the reply timed out) after the message's
    content was written: the relay may have accepted it, so it is retried on the backoff
    schedule like a 4xx, never at once on another connection."""

    error_class = "unknown_outcome"


class PermanentDeliveryError(DeliveryError):
    """Raised when the relay refused the message for good."""

    error_class = "rejected"


class RelayMisconfigured(PermanentDeliveryError):
    """Raised when the connection to the relay cannot be made as configured (no STARTTLS
    where it is required, a certificate that does not verify): an operator must act."""

    error_class = "config"


def error_classes() -> tuple[str, ...]:
    """The `error_class` of every delivery error, the tree walked depth first."""
    found: list[str] = []
    pending: list[type[DeliveryError]] = [DeliveryError]
    while pending:
        cls = pending.pop()
        found.append(cls.error_class)
        pending.extend(reversed(cls.__subclasses__()))
    return tuple(dict.fromkeys(found))


class ApiError(PostboxError):
    """Raised by a view to answer with a JSON error."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        fields: FieldErrors | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}


class BadRequest(ApiError):
    """Raised when the request cannot be read at all (bad JSON, bad header)."""


class Unauthorized(ApiError):
    """Raised when the request carries no valid API key."""

    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    """Raised when the API key is valid but may not do what was asked (send from a domain)."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    """Raised when the resource asked for does not exist."""

    status = 404
    code = "not_found"


class IdempotencyConflict(ApiError):
    """Raised when an idempotency key is reused with another payload."""

    status = 409
    code = "idempotency_conflict"


class EmailStateConflict(ApiError):
    """Raised when an email can no longer be canceled or moved (a worker took it, or it is
    done); the body names its current status."""

    status = 409
    code = "email_state_conflict"


class UnsupportedMediaType(ApiError):
    """Raised when the body is not JSON."""

    status = 415
    code = "unsupported_media_type"


class ValidationFailed(ApiError):
    """Raised when the JSON is well formed but its content is not acceptable."""

    status = 422
    code = "validation_error"


class RateLimited(ApiError):
    """Raised when an API key has used up its rate limit; `headers` say when to retry."""

    status = 429
    code = "rate_limited"


class Overloaded(ApiError):
    """Raised when a request waited too long to be served: the process is saturated, and
    answering now, without enqueueing, beats answering after the client gave up."""

    status = 503
    code = "overloaded"


class WebhookLimitReached(ApiError):
    """Raised when a key that already owns the most endpoints allowed makes another."""

    status = 409
    code = "webhook_limit_reached"


class EncryptionKeyMissing(ApiError):
    """Raised when a webhook secret must be made or read and ENCRYPTION_KEY is not set:
    secrets are kept only encrypted, so without the key there is nothing to do."""

    status = 503
    code = "encryption_key_missing"

    def __init__(self) -> None:
        super().__init__(
            "Webhooks need ENCRYPTION_KEY (64 hex characters, e.g. from `openssl rand -hex 32`,"
            " the same on every instance) to keep their signing secrets encrypted; set it and"
            " restart."
        )


class HistoryDisabled(ApiError):
    """Raised when the email history is asked for and no DATABASE_URL is configured."""

    status = 503
    code = "history_disabled"

    def __init__(self) -> None:
        super().__init__(
            "No email history is kept: set DATABASE_URL to keep one.",
            {"DATABASE_URL": ["Not set on this instance."]},
        )


class HistoryDown(ApiError):
    """Raised when the history is asked for and its database cannot be reached."""

    status = 503
    code = "history_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The email history database cannot be reached; try again shortly.",
            {"DATABASE_URL": ["Not reachable from this instance."]},
            {"Retry-After": "5"},
        )
