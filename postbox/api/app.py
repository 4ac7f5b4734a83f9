"""The Flask application factory."""

from __future__ import annotations

from flask import Blueprint, Flask

from postbox.api import dead_letters, emails, health, queue_stats
from postbox.api.auth import check_api_key
from postbox.api.errors import register_error_handlers
from postbox.api.extension import init_app
from postbox.config import Settings, load_settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API app; settings default to the process environment."""
    settings = settings or load_settings()
    app = Flask("postbox")
    app.config["MAX_CONTENT_LENGTH"] = settings.api.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    init_app(app, settings)
    register_error_handlers(app)
    register_blueprints(app, settings)
    return app


def register_blueprints(app: Flask, settings: Settings) -> None:
    """Public probes at the root, everything else under /v1 behind the API key."""
    app.register_blueprint(health.bp)
    v1 = Blueprint("v1", __name__, url_prefix="/v1")
    v1.before_request(lambda: check_api_key(settings.api.api_key_digests))
    v1.register_blueprint(emails.bp)
    v1.register_blueprint(queue_stats.bp)
    v1.register_blueprint(dead_letters.bp)
    app.register_blueprint(v1)
    if settings.api.dev_inbox_dir:
        from postbox.api import dev_inbox  # noqa: PLC0415  (development runs only)

        app.register_blueprint(dev_inbox.blueprint(settings.api.dev_inbox_dir))
