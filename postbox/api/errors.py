"""Every error the API answers, in the JSON envelope of DESIGN.md.

    {"error": {"code": "validation_error", "message": "...", "fields": {"to": ["..."]}}}

Our own errors carry their status and code; marshmallow's `ValidationError`, werkzeug's
`HTTPException` and `QueueUnavailable` are mapped here, and nothing else leaks a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from flask import Flask, Response, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from postbox.errors import PostboxError, QueueUnavailable

logger = logging.getLogger(__name__)
FieldErrors = dict[str, Any]


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


def error_response(status: int, code: str, message: str, fields: FieldErrors | None) -> Response:
    """The JSON envelope with `status`."""
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    response = jsonify(body)
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Install one handler per error family on `app`."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(ValidationError, _validation_error)
    app.register_error_handler(QueueUnavailable, _queue_unavailable)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(Exception, _unexpected)


def _api_error(exc: ApiError) -> Response:
    response = error_response(exc.status, exc.code, exc.message, exc.fields)
    response.headers.update(exc.headers)
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="postbox"'
    return response


def _validation_error(exc: ValidationError) -> Response:
    fields = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return error_response(422, "validation_error", "The request has invalid fields.", fields)


def _queue_unavailable(exc: QueueUnavailable) -> Response:
    logger.warning("Answering 503: %s", exc)
    response = error_response(503, "queue_unavailable", "The queue is unavailable; retry.", None)
    response.headers["Retry-After"] = "5"
    return response


def _http_exception(exc: HTTPException) -> Response:
    code = (exc.name or "error").lower().replace(" ", "_")
    fields = {"body": [exc.description]} if exc.code == 413 else None
    return error_response(exc.code or 500, code, exc.description or code, fields)


def _unexpected(exc: Exception) -> Response:
    logger.exception("Unhandled error while serving a request")
    return error_response(500, "internal_error", "An unexpected error occurred.", None)
