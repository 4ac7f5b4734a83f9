"""Put the email a request is about on its log lines (see postbox/logs.py).

Registered first among the app's hooks, so it runs before authentication can refuse the
request; each request starts from a clean value, because gunicorn's threads serve many
requests one after another in the same context.
"""

from __future__ import annotations

from flask import Flask, request

from postbox.logs import email_id


def register_log_context(app: Flask) -> None:
    """Set the log context from the URL's `email_id`, if any, for each request."""

    @app.before_request
    def _set_email_id() -> None:
        email_id.set((request.view_args or {}).get("email_id"))

    @app.teardown_request
    def _clear_email_id(exc: BaseException | None) -> None:
        email_id.set(None)
