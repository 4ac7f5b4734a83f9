"""`/dashboard`: a live page of the queue for people, behind the same API keys.

Server-rendered (Jinja) with one small static script that polls `/dashboard/api/overview`
every 2 seconds and redraws: counts per state, throughput per minute, capacity advice, the
cluster's processes, the dead letters with retry and delete buttons, and the webhook
endpoints. No build step, no
third-party assets; the Content-Security-Policy allows only this origin's script and styles.
Sign-in and CSRF: postbox/api/dashboard_auth.py.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from postbox.api import dead_letters, webhooks
from postbox.api.dashboard_auth import (
    csrf_token,
    matching_key,
    require_csrf,
    require_session,
    session_key,
    sign_in,
    sign_out,
    signed_in,
)
from postbox.api.extension import state
from postbox.api.queue_stats import build_stats
from postbox.queue.stats import STATES
from postbox.webhooks.delivery_records import delivery_summaries

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
)
DEAD_LETTERS_SHOWN = 50
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.get("/login")
def login_form() -> ResponseReturnValue:
    """The sign-in form."""
    return render_template("login.html", error=None)


@bp.post("/login")
def login() -> ResponseReturnValue:
    """Check the key typed in and start a session."""
    key = matching_key(request.form.get("key", "").strip())
    if key is None:
        return render_template("login.html", error="That is not a valid API key."), 401
    sign_in(key)
    return redirect(url_for(".page"))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session."""
    require_csrf()
    sign_out()
    return redirect(url_for(".login_form"))


@bp.get("/")
def page() -> ResponseReturnValue:
    """The dashboard, with the numbers of the moment; the script keeps them fresh."""
    if not signed_in():
        return redirect(url_for(".login_form"))
    return render_template("dashboard.html", stats=build_stats(), states=STATES, csrf=csrf_token())


@bp.get("/api/overview")
def overview() -> dict[str, Any]:
    """Everything the page shows, in one call."""
    require_session()
    page = state().gateway.list_dead_letters(DEAD_LETTERS_SHOWN, None, 0, None)
    return {"stats": build_stats(), "dead_letters": page.to_json(), "webhooks": _webhooks()}


def _webhooks() -> list[dict[str, Any]]:
    """The endpoints the signed-in key may see. Each entry is the endpoint as the API shows
    it, with `delivery`: its last attempt's status, outcome and time, and its pending and
    failed (`failures`) deliveries."""
    key = session_key()
    found = webhooks.endpoints_for(key) if key is not None else []
    name = state().settings.redis.queue_name
    ids = [endpoint.id for endpoint in found]
    summaries = state().gateway.with_client(lambda client: delivery_summaries(client, name, ids))
    return [{**endpoint.as_json(), "delivery": summaries.get(endpoint.id)} for endpoint in found]


@bp.post("/api/dead-letters/<email_id>/retry")
def retry(email_id: str) -> tuple[dict[str, Any], int]:
    """Requeue one dead letter (as `POST /v1/dead-letters/{id}/retry`)."""
    require_session()
    require_csrf()
    return dead_letters.requeue(email_id), 202


@bp.delete("/api/dead-letters/<email_id>")
def discard(email_id: str) -> tuple[str, int]:
    """Discard one dead letter (as `DELETE /v1/dead-letters/{id}`)."""
    require_session()
    require_csrf()
    dead_letters.discard(email_id)
    return "", 204
