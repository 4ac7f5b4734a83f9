"""Each API operation as a `Call`: what to send and how to read the answer.

The sync and async clients differ only in how they send, so every operation is described
once here and both run it. A call is `idempotent` when repeating it cannot do the work
twice (reads, and sends with their idempotency key); only those are retried after a
failure that may have reached the server.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from postbox_client.types import (
    Accepted,
    BatchResult,
    DeadLetterPage,
    EmailStatus,
    Requeued,
    Suppression,
    SuppressionPage,
    UserReason,
    Webhook,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the reading of its successful answer's JSON."""

    method: str
    path: str
    read: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool = False


def _new_key() -> str:
    return f"pbc_{uuid.uuid4().hex}"


def _as_is(body: Any) -> Any:
    return body


def _data(body: Any) -> Any:
    return body["data"]


def _nothing(body: Any) -> None:
    return None


def _segment(value: str) -> str:
    return quote(value, safe="")


def _present(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def email_payload(
    *,
    from_: str,
    to: str | Sequence[str],
    subject: str,
    text: str | None,
    html: str | None,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON of one email: the named fields, then any others (`cc`, `attachments`, ...)."""
    payload = {"from": from_, "to": to if isinstance(to, str) else list(to), "subject": subject}
    payload.update(_present(text=text, html=html))
    payload.update(fields)
    return jsonable(payload)


def jsonable(email: Mapping[str, Any]) -> dict[str, Any]:
    """`email` with Python values the API takes as text: a `datetime` for `send_at` in ISO
    8601, and attachment `content` given as bytes in base64."""
    found = dict(email)
    if isinstance(found.get("send_at"), datetime):
        found["send_at"] = found["send_at"].isoformat()
    if found.get("attachments"):
        found["attachments"] = [_attachment(item) for item in found["attachments"]]
    return found


def _attachment(item: Mapping[str, Any]) -> dict[str, Any]:
    content = item.get("content")
    if isinstance(content, bytes | bytearray):
        return {**item, "content": base64.b64encode(content).decode("ascii")}
    return dict(item)


def send(payload: Mapping[str, Any], idempotency_key: str | None) -> Call[Accepted]:
    """`POST /v1/emails` with an Idempotency-Key: the caller's, or one made for this call."""
    headers = {"Idempotency-Key": idempotency_key or _new_key()}
    return Call("POST", "/v1/emails", _as_is, payload, headers=headers, idempotent=True)


def send_batch(emails: Sequence[Mapping[str, Any]]) -> Call[list[BatchResult]]:
    """`POST /v1/emails/batch`; each email without an `idempotency_key` gets one, so a retry
    of the batch is a duplicate of each email, not a second copy."""
    items = [{"idempotency_key": _new_key(), **jsonable(email)} for email in emails]
    return Call("POST", "/v1/emails/batch", _data, {"emails": items}, idempotent=True)


def get_email(email_id: str) -> Call[EmailStatus]:
    return Call("GET", f"/v1/emails/{_segment(email_id)}", _as_is, idempotent=True)


def search_emails(filters: Mapping[str, Any]) -> Call[dict[str, Any]]:
    """`GET /v1/emails`: the history's emails matching `filters` (`to`, `from`, `status`,
    `tag`, `since`, `until`, `cursor`, `limit`), newest first."""
    params = {name: _query_value(value) for name, value in filters.items() if value is not None}
    return Call("GET", "/v1/emails", _as_is, params=params, idempotent=True)


def erase_history(to: str) -> Call[int]:
    """`DELETE /v1/emails?to=`: the history records of every email to `to`, erased."""
    return Call(
        "DELETE", "/v1/emails", lambda b: int(b["deleted"]), params={"to": to}, idempotent=True
    )


def cancel(email_id: str) -> Call[dict[str, Any]]:
    """Canceling twice answers 200 both times, so the call is safe to repeat."""
    path = f"/v1/emails/{_segment(email_id)}/cancel"
    return Call("POST", path, _as_is, idempotent=True)


def reschedule(email_id: str, send_at: datetime | str | None) -> Call[dict[str, Any]]:
    body = {"send_at": _query_value(send_at) if send_at is not None else None}
    return Call("PATCH", f"/v1/emails/{_segment(email_id)}", _as_is, body, idempotent=True)


def _query_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def queue_stats() -> Call[dict[str, Any]]:
    return Call("GET", "/v1/queue/stats", _as_is, idempotent=True)


def dead_letters(
    limit: int | None, cursor: str | None, offset: int | None, error_class: str | None
) -> Call[DeadLetterPage]:
    params = _present(limit=limit, cursor=cursor, offset=offset, error_class=error_class)
    return Call("GET", "/v1/dead-letters", _as_is, params=params, idempotent=True)


def retry_dead_letter(email_id: str) -> Call[Requeued]:
    path = f"/v1/dead-letters/{_segment(email_id)}/retry"
    return Call("POST", path, _as_is)


def retry_dead_letters(error_class: str | None) -> Call[int]:
    body = _present(error_class=error_class)
    return Call("POST", "/v1/dead-letters/retry", lambda b: int(b["retried"]), body)


def discard_dead_letter(email_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/dead-letters/{_segment(email_id)}", _nothing, idempotent=True)


def suppressions(
    limit: int | None, cursor: str | None, reason: str | None, address: str | None
) -> Call[SuppressionPage]:
    params = _present(limit=limit, cursor=cursor, reason=reason, address=address)
    return Call("GET", "/v1/suppressions", _as_is, params=params, idempotent=True)


def suppress(address: str, reason: UserReason, note: str | None) -> Call[list[Suppression]]:
    """Adding an address already there answers 200 with its entries: safe to repeat."""
    body = {"address": address, "reason": reason, **_present(note=note)}
    return Call("POST", "/v1/suppressions", _data, body, idempotent=True)


def unsuppress(address: str) -> Call[None]:
    path = f"/v1/suppressions/{_segment(address)}"
    return Call("DELETE", path, _nothing, idempotent=True)


def create_webhook(url: str, events: Sequence[str], description: str | None) -> Call[Webhook]:
    body = {"url": url, "events": list(events), **_present(description=description)}
    return Call("POST", "/v1/webhooks", _as_is, body)


def list_webhooks() -> Call[list[Webhook]]:
    return Call("GET", "/v1/webhooks", _data, idempotent=True)


def get_webhook(webhook_id: str) -> Call[Webhook]:
    return Call("GET", f"/v1/webhooks/{_segment(webhook_id)}", _as_is, idempotent=True)


def update_webhook(webhook_id: str, changes: Mapping[str, Any]) -> Call[Webhook]:
    path = f"/v1/webhooks/{_segment(webhook_id)}"
    return Call("PATCH", path, _as_is, dict(changes), idempotent=True)


def delete_webhook(webhook_id: str) -> Call[None]:
    path = f"/v1/webhooks/{_segment(webhook_id)}"
    return Call("DELETE", path, _nothing, idempotent=True)


def rotate_webhook_secret(webhook_id: str) -> Call[dict[str, Any]]:
    return Call("POST", f"/v1/webhooks/{_segment(webhook_id)}/rotate-secret", _as_is)


def webhook_deliveries(
    webhook_id: str, state: str | None, limit: int | None, offset: int | None
) -> Call[dict[str, Any]]:
    path = f"/v1/webhooks/{_segment(webhook_id)}/deliveries"
    params = _present(state=state, limit=limit, offset=offset)
    return Call("GET", path, _as_is, params=params, idempotent=True)


def retry_webhook_delivery(webhook_id: str, delivery_id: str) -> Call[dict[str, Any]]:
    path = f"/v1/webhooks/{_segment(webhook_id)}/deliveries/{_segment(delivery_id)}/retry"
    return Call("POST", path, _as_is, idempotent=True)


def replay_webhook(webhook_id: str, since: str, until: str) -> Call[dict[str, Any]]:
    path = f"/v1/webhooks/{_segment(webhook_id)}/replay"
    return Call("POST", path, _as_is, {"since": since, "until": until})


def send_test_event(webhook_id: str) -> Call[dict[str, Any]]:
    return Call("POST", f"/v1/webhooks/{_segment(webhook_id)}/test", _as_is)
