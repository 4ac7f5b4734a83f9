"""Every error the API answers, in the JSON envelope of DESIGN.md.

    {"error": {"code": "validation_error", "message": "...", "fields": {"to": ["..."]}}}

Our own errors (`postbox.errors.ApiError` and its subclasses) carry their status and code;
marshmallow's `ValidationError`, werkzeug's `HTTPException`, `QueueUnavailable` and
`QueueFull` are mapped here, and nothing else leaks a stack trace.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from postbox.errors import ApiError, FieldErrors, QueueFull, QueueUnavailable, Unauthorized

logger = logging.getLogger(__name__)
# Memory comes back as workers complete jobs or an operator raises maxmemory: minutes, not
# the seconds a Redis restart takes.
QUEUE_FULL_RETRY_AFTER = "30"


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
    app.register_error_handler(QueueFull, _queue_full)
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


def _queue_full(exc: QueueFull) -> Response:
    # Not logged here: the gateway logs once when the refusals start and once when they end.
    message = "The queue is full (Redis is out of memory); retry later."
    response = error_response(503, "queue_full", message, None)
    response.headers["Retry-After"] = QUEUE_FULL_RETRY_AFTER
    return response


def _http_exception(exc: HTTPException) -> Response:
    code = (exc.name or "error").lower().replace(" ", "_")
    fields = {"body": [exc.description]} if exc.code == 413 else None
    return error_response(exc.code or 500, code, exc.description or code, fields)


def _unexpected(exc: Exception) -> Response:
    logger.exception("Unhandled error while serving a request")
    return error_response(500, "internal_error", "An unexpected error occurred.", None)
