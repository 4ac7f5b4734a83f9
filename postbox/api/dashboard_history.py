"""`/dashboard/emails`: the history in the dashboard, a search page and a page per email.

Server-rendered, without script: the search is a GET form over the same filters and keyset
cursor as `GET /v1/emails` (postbox/history/search.py), and an email's page shows its
record, each recipient with its outcome and reply, and its timeline: every event (attempts
with the relay's replies, deferrals, bounce and complaint reports, cancel or reschedule) in
the order it happened. Behind the dashboard's session; a key restricted to sender domains
sees only their emails, as on /v1.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from postbox.api.dashboard import SECURITY_HEADERS
from postbox.api.dashboard_auth import csrf_token, session_key
from postbox.api.history import EXTENSION, STATUSES, SearchQuerySchema
from postbox.errors import HistoryRejected, HistoryUnavailable, InvalidCursor
from postbox.history.access import HistoryAccess
from postbox.history.search import EmailPage, EmailQuery, search
from postbox.history.views import EmailRecord, find_record

bp = Blueprint(
    "dashboard_history", __name__, url_prefix="/dashboard/emails", template_folder="templates"
)
PAGE_SIZE = 25
FILTERS = ("to", "from", "status", "tag", "since", "until")
_query = SearchQuerySchema()


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.get("/")
def search_page() -> ResponseReturnValue:
    """The search form and one page of matching emails, newest first."""
    key = session_key()
    if key is None:
        return redirect(url_for("dashboard.login_form"))
    asked = {name: request.args.get(name, "").strip() for name in (*FILTERS, "cursor")}
    page, error, status = _search({name: value for name, value in asked.items() if value}, key)
    return render_template(
        "dashboard_emails.html",
        asked=asked,
        statuses=STATUSES,
        page=page,
        error=error,
        next_args={**{n: v for n, v in asked.items() if v}, "cursor": page and page.next_cursor},
        csrf=csrf_token(),
    ), status


@bp.get("/<email_id>")
def email_page(email_id: str) -> ResponseReturnValue:
    """One email's record, recipients and timeline."""
    key = session_key()
    if key is None:
        return redirect(url_for("dashboard.login_form"))
    access = _access()
    record: EmailRecord | None = None
    error, status = None, 200
    if access is None:
        error, status = "No history is kept: DATABASE_URL is not set.", 404
    else:
        try:
            record = find_record(access.engine(), email_id)
        except (HistoryUnavailable, HistoryRejected):
            error, status = "The history database cannot be reached; try again shortly.", 503
    if record is not None and key.allowed_from and record.row["domain"] not in key.allowed_from:
        record = None
    if record is None and error is None:
        error, status = f"No email with id {email_id} in the history.", 404
    return render_template(
        "dashboard_email.html",
        email_id=email_id,
        record=record.to_json(with_events=True) if record else None,
        timeline=_timeline(record) if record else [],
        error=error,
        csrf=csrf_token(),
    ), status


def _access() -> HistoryAccess | None:
    access: HistoryAccess | None = current_app.extensions.get(EXTENSION)
    return access


def _search(args: dict[str, str], key: Any) -> tuple[EmailPage | None, str | None, int]:
    """(the page, None, 200), or (None, what is wrong, its HTTP status)."""
    access = _access()
    if access is None:
        return None, "No history is kept: DATABASE_URL is not set.", 404
    try:
        loaded = _query.load({**args, **_as_utc(args)})
    except ValidationError as exc:
        fields = "; ".join(f"{name}: {' '.join(map(str, why))}" for name, why in _flat(exc))
        return None, f"Check the filters ({fields}).", 400
    since, until = loaded.pop("since"), loaded.pop("until")
    loaded["limit"] = PAGE_SIZE
    scope = tuple(key.allowed_from) if key.allowed_from else None
    query = EmailQuery(**loaded, since_ms=_ms(since), until_ms=_ms(until), domains=scope)
    try:
        return search(access.engine(), query), None, 200
    except InvalidCursor:
        return None, "That page link is not valid any more: search again.", 400
    except (HistoryUnavailable, HistoryRejected):
        return None, "The history database cannot be reached; try again shortly.", 503


def _as_utc(args: dict[str, str]) -> dict[str, str]:
    """A browser's `datetime-local` value (no zone) taken as UTC, as the page says."""
    found = {}
    for name in ("since", "until"):
        value = args.get(name)
        if value and len(value) <= 19 and "T" in value:
            found[name] = value + ("Z" if len(value) > 16 else ":00Z")
    return found


def _flat(exc: ValidationError) -> list[tuple[str, list[Any]]]:
    messages = exc.messages if isinstance(exc.messages, dict) else {"query": exc.messages}
    return [(str(name), why if isinstance(why, list) else [why]) for name, why in messages.items()]


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def _timeline(record: EmailRecord) -> list[dict[str, Any]]:
    """The events as the page lists them: time, type, and what each says in a line."""
    return [
        {"at": event["at"], "type": event["type"], "summary": _summary(event["data"]),
         "data": json.dumps(event["data"], indent=2, sort_keys=True)}
        for event in record.events
    ]  # fmt: skip


def _summary(data: dict[str, Any]) -> str:
    """The parts of an event's data a person looks for first."""
    parts = []
    if data.get("attempt"):
        parts.append(f"attempt {data['attempt']}")
    for name in ("reply", "recipient", "bounce_type", "status", "diagnostic", "send_at"):
        if data.get(name):
            parts.append(f"{name.replace('_', ' ')}: {data[name]}")
    for item in data.get("recipients") or []:
        parts.append(f"{item.get('address')} {item.get('status')} ({item.get('reply') or '-'})")
    return "; ".join(parts)
