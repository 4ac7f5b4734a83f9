"""The client's exceptions: every failure of a call is one of these.

```
PostboxError                 any failure of a call
├── TransportError           no answer: connection refused or lost, timeout (after retries)
├── ApiError                 an HTTP answer with Postbox's JSON error (status, code, fields)
│   ├── BadRequest           400 the body or a header cannot be read
│   ├── AuthenticationError  401 no valid API key
│   ├── PermissionDenied     403 the key may not send from this address
│   ├── NotFound             404 no such email, dead letter or webhook
│   ├── Conflict             409 the request conflicts with what exists
│   │   └── IdempotencyConflict  the idempotency key was used with another payload
│   ├── PayloadTooLarge      413 the body is over the server's MAX_REQUEST_BYTES
│   ├── UnsupportedMediaType 415 the body is not JSON
│   ├── ValidationError      422 a field is invalid (`fields` names it)
│   ├── RateLimited          429 over the key's rate limit (after retries)
│   └── ServiceUnavailable   503 queue unavailable or full, overloaded (after retries)
└── WebhookVerificationError a webhook's signature or timestamp does not check out
```
"""

from __future__ import annotations

from typing import Any, ClassVar


class PostboxError(Exception):
    """Raised when a call to Postbox fails."""


class TransportError(PostboxError):
    """Raised when Postbox could not be reached or did not answer, after every retry."""


class ApiError(PostboxError):
    """Raised when Postbox answers with an error: its status, `code`, `message` and `fields`
    (the field names mapped to their problems, as in the JSON error body)."""

    status: ClassVar[int] = 0

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status_code = status
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.retry_after = retry_after


class BadRequest(ApiError):
    """Raised on 400: the body or a header cannot be read."""

    status = 400


class AuthenticationError(ApiError):
    """Raised on 401: the API key is missing or wrong."""

    status = 401


class PermissionDenied(ApiError):
    """Raised on 403: the API key may not send from this address."""

    status = 403


class NotFound(ApiError):
    """Raised on 404: no such email, dead letter or webhook (or not one this key sees)."""

    status = 404


class Conflict(ApiError):
    """Raised on 409: the request conflicts with what exists (such as a key's webhook limit)."""

    status = 409


class IdempotencyConflict(Conflict):
    """Raised on 409 `idempotency_conflict`: the key was already used with another payload."""


class PayloadTooLarge(ApiError):
    """Raised on 413: the request body is larger than the server's MAX_REQUEST_BYTES."""

    status = 413


class UnsupportedMediaType(ApiError):
    """Raised on 415: the body was not sent as JSON."""

    status = 415


class ValidationError(ApiError):
    """Raised on 422: a field is invalid; `fields` says which and why."""

    status = 422


class RateLimited(ApiError):
    """Raised on 429 once the retries are spent: the key is over its rate limit."""

    status = 429


class ServiceUnavailable(ApiError):
    """Raised on 503 once the retries are spent (or at once when retrying cannot help,
    such as `encryption_key_missing`)."""

    status = 503


class WebhookVerificationError(PostboxError):
    """Raised when a webhook delivery's signature, id or timestamp does not verify."""


BY_STATUS: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        AuthenticationError,
        PermissionDenied,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationError,
        RateLimited,
        ServiceUnavailable,
    )
}
# Errors told apart by their code rather than their status alone.
BY_CODE: dict[str, type[ApiError]] = {"idempotency_conflict": IdempotencyConflict}
