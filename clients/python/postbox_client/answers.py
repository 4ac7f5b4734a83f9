"""Reading Postbox's answers, and deciding after a failure whether to try again.

Shared by the sync and async clients: everything here is independent of how the request
was sent.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx

from postbox_client.calls import Call
from postbox_client.errors import BY_CODE, BY_STATUS, ApiError
from postbox_client.retries import (
    RetryPolicy,
    answer_retryable,
    retry_after_seconds,
    transport_error_retryable,
)
from postbox_client.version import VERSION

T = TypeVar("T")
USER_AGENT = f"postbox-client/{VERSION}"


def default_headers(api_key: str) -> dict[str, str]:
    """The headers every request of a client carries."""
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}


def result(call: Call[T], response: httpx.Response, lost: bool) -> T:
    """The call's result from a 2xx answer, or the `ApiError` of any other.

    A DELETE that finds nothing to delete after a try whose answer was `lost` did its work
    on that try: that is its success, not a 404 for the caller."""
    if call.method == "DELETE" and lost and response.status_code == 404:
        return call.read(None)
    if not response.is_success:
        raise api_error(response)
    body = response.json() if response.content else None
    return call.read(body)


def api_error(response: httpx.Response) -> ApiError:
    """The exception for an error answer, with the JSON error's code, message and fields
    (an answer from something other than Postbox, such as a proxy, gets a code made of its
    status)."""
    error = _error_object(response)
    code = str(error.get("code") or f"http_{response.status_code}")
    message = str(error.get("message") or response.reason_phrase or "error")
    fields = error.get("fields") if isinstance(error.get("fields"), dict) else {}
    cls = BY_CODE.get(code) or BY_STATUS.get(response.status_code, ApiError)
    return cls(response.status_code, code, message, fields, retry_after_seconds(response))


def _error_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def wait_before_retry(
    policy: RetryPolicy, call: Call[Any], retry: int, failure: ApiError | httpx.TransportError
) -> float | None:
    """Seconds to wait before retrying `call` after `failure`, or None to give up."""
    if isinstance(failure, httpx.TransportError):
        if not transport_error_retryable(failure, call.idempotent):
            return None
        return policy.delay(retry, None)
    if not answer_retryable(failure.status_code, failure.code):
        return None
    return policy.delay(retry, failure.retry_after)
