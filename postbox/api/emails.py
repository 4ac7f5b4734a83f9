"""`/v1/emails`: accept one email or a batch, and report an email's status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, request

from postbox.api.admission import BATCH_ENQUEUE_DEADLINE_SECONDS, check_in_time
from postbox.api.auth import check_sender, current_key, sender_problem
from postbox.api.body import read_json_object
from postbox.api.extension import state
from postbox.api.history import history_view
from postbox.api.rate_limit import charge_batch
from postbox.api.schemas import load_batch, load_email
from postbox.api.suppression_screen import screen_and_enqueue, sent_to_nobody_body
from postbox.errors import BadRequest, Forbidden, IdempotencyConflict
from postbox.message.types import EmailRequest
from postbox.queue.contract import EmailStatus
from postbox.queue.job_ids import is_job_id
from postbox.queue.producer import EnqueueResult, Outcome, PreparedEmail, prepare_email

bp = Blueprint("emails", __name__)
MAX_IDEMPOTENCY_KEY = 255


@bp.post("/emails")
def send_email() -> tuple[dict[str, Any], int]:
    """Enqueue one email: 202 when new, 200 for a duplicate, 409 for a reused key."""
    email_request = load_email(read_json_object(), state().settings.api.email_limits)
    check_sender(email_request)
    prepared = prepare_email(email_request, _idempotency_key(), key_id=current_key().key_id)
    check_in_time()
    enqueued = screen_and_enqueue([prepared])
    [result], [left_out] = enqueued.results, enqueued.left_out
    if result is None:
        return sent_to_nobody_body(prepared, left_out), 202
    if result.outcome is Outcome.CONFLICT:
        raise IdempotencyConflict(
            "This Idempotency-Key was used with a different payload.",
            {"Idempotency-Key": ["Already used with a different payload."]},
        )
    body = _item_body(prepared, result, _current_statuses([result]))
    body["suppressed"] = left_out
    return body, 202 if result.outcome is Outcome.CREATED else 200


@bp.post("/emails/batch")
def send_batch() -> tuple[dict[str, Any], int]:
    """Enqueue up to 500 emails in one bulk add; each item gets its own result."""
    if "Idempotency-Key" in request.headers:
        raise BadRequest(
            "A batch takes no Idempotency-Key header; give each email an idempotency_key.",
            {"Idempotency-Key": ["Not used on batches: set idempotency_key on each email."]},
        )
    items = load_batch(read_json_object(), state().settings.api.email_limits)
    _check_batch_senders([item["request"] for item in items])
    charge_batch(state().rate_limiter, len(items))
    # One moment of acceptance for the whole batch (its Date header is then formatted once).
    now = datetime.now(UTC)
    key_id = current_key().key_id
    prepared = [prepare_email(i["request"], i["idempotency_key"], now, key_id) for i in items]
    check_in_time(BATCH_ENQUEUE_DEADLINE_SECONDS)
    enqueued = screen_and_enqueue(prepared)
    statuses = _current_statuses([r for r in enqueued.results if r is not None])
    body = [
        {"index": index, **sent_to_nobody_body(p, left_out)}
        if result is None
        else _batch_item(index, p, result, statuses, left_out)
        for index, (p, result, left_out) in enumerate(
            zip(prepared, enqueued.results, enqueued.left_out, strict=True)
        )
    ]
    created = any(r is None or r.outcome is Outcome.CREATED for r in enqueued.results)
    return {"data": body}, 202 if created else 200


@bp.get("/emails/<email_id>")
def get_email(email_id: str) -> dict[str, Any]:
    """The status of one email."""
    view = state().gateway.lookup(email_id) if is_job_id(email_id) else None
    if view is None:
        return history_view(email_id)  # gone from the queue: the history may know it
    return view.to_json()


def _check_batch_senders(requests: list[EmailRequest]) -> None:
    """403 naming every item whose From domain the key may not use; nothing is enqueued."""
    problems = {i: sender_problem(r) for i, r in enumerate(requests)}
    refused = {i: {"from": [problem]} for i, problem in problems.items() if problem}
    if refused:
        raise Forbidden("The API key may not send from some addresses.", {"emails": refused})


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise BadRequest(
            "The Idempotency-Key header is not usable.",
            {"Idempotency-Key": [f"Must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters."]},
        )
    return key


def _current_statuses(results: list[EnqueueResult]) -> dict[str, str]:
    """The present status of each duplicate (one concurrent lookup for all of them)."""
    ids = list({r.job_id: None for r in results if r.outcome is Outcome.DUPLICATE})
    views = state().gateway.lookup_many(ids) if ids else []
    return {
        job_id: str(view.status)
        for job_id, view in zip(ids, views, strict=True)
        if view is not None
    }


def _item_body(
    prepared: PreparedEmail, result: EnqueueResult, statuses: dict[str, str]
) -> dict[str, Any]:
    new_status = EmailStatus.SCHEDULED if prepared.delay_ms else EmailStatus.QUEUED
    return {
        "id": result.job_id,
        "message_id": prepared.data["message_id"],
        "status": statuses.get(result.job_id, str(new_status)),
        "duplicate": result.outcome is Outcome.DUPLICATE,
    }


def _batch_item(
    index: int,
    prepared: PreparedEmail,
    result: EnqueueResult,
    statuses: dict[str, str],
    suppressed: list[str],
) -> dict[str, Any]:
    if result.outcome is Outcome.CONFLICT:
        error = {
            "code": IdempotencyConflict.code,
            "message": "This idempotency_key was used with a different payload.",
        }
        return {"index": index, "id": result.job_id, "error": error}
    return {"index": index, **_item_body(prepared, result, statuses), "suppressed": suppressed}
