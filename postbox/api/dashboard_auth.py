"""Dashboard sign-in: an API key typed once into a form, then a signed session cookie.

The cookie is Flask's session, signed with SECRET_KEY or, without one, with a random secret
that every API instance shares through Redis (made by the first that needs it), so a
session works whichever process or instance answers. It holds the key's SHA-256 digest
(never the key) and a CSRF token, is sent only to /dashboard paths, and is `HttpOnly` and
`SameSite=Strict`. Every dashboard request checks that the digest is still a configured
key: removing a key from API_KEYS ends its sessions.

The dashboard's POST and DELETE calls must carry the session's CSRF token (the
`X-CSRF-Token` header, or a `csrf` form field): another site can make a browser send the
cookie but cannot read the token. /v1 ignores the session and takes Bearer keys only.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from flask import Flask, Request, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from postbox.api.extension import state
from postbox.config import ApiKey, find_key, key_digest
from postbox.errors import Forbidden, Unauthorized

SESSION_LIFETIME = timedelta(hours=12)


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened for /dashboard paths only.

    Flask opens the session before any `before_request` hook runs, so the shared secret must
    be in place here: a process whose first dashboard request carried a valid cookie would
    otherwise see no session at all and send a signed-in user back to the login form.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith("/dashboard"):
            return None
        if not app.secret_key:
            app.secret_key = app.extensions["postbox"].gateway.shared_secret()
        return super().open_session(app, request)


def configure_sessions(app: Flask, secret_key: str | None) -> None:
    """Cookie settings for dashboard sessions; the secret is set now or on first use."""
    app.session_interface = DashboardSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="postbox_session",
        SESSION_COOKIE_PATH="/dashboard",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    if secret_key:
        app.secret_key = secret_key


def matching_key(presented: str) -> ApiKey | None:
    """The configured key `presented` is, compared in constant time against every key."""
    return find_key(state().settings.api.api_keys, key_digest(presented))


def sign_in(key: ApiKey) -> None:
    """Start a fresh session for `key` (a new CSRF token too)."""
    session.clear()
    session["key"] = key.digest
    session["csrf"] = secrets.token_urlsafe(32)
    session.permanent = True


def sign_out() -> None:
    """End the session."""
    session.clear()


def signed_in() -> bool:
    """True when the session names a key that is still configured."""
    return session_key() is not None


def session_key() -> ApiKey | None:
    """The configured key the session was started with, or None."""
    digest = session.get("key")
    if not isinstance(digest, str):
        return None
    return find_key(state().settings.api.api_keys, digest)


def require_session() -> None:
    """Raise `Unauthorized` unless signed in (for the dashboard's JSON calls)."""
    if not signed_in():
        raise Unauthorized("Sign in to the dashboard first.", {"session": ["Not signed in."]})


def require_csrf() -> None:
    """Raise `Forbidden` unless the request carries the session's CSRF token."""
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf") or ""
    expected = session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden("Missing or wrong CSRF token.", {"X-CSRF-Token": ["Invalid."]})


def csrf_token() -> str:
    """The current session's CSRF token, for the page to send back."""
    return str(session.get("csrf", ""))
