"""The Flask application factory."""

from __future__ import annotations

from flask import Blueprint, Flask

from postbox.api import (
    admission,
    dashboard,
    dashboard_history,
    dead_letters,
    docs,
    emails,
    health,
    history,
    inbound_ses,
    lifecycle,
    openapi,
    queue_stats,
    suppressions,
    webhook_deliveries,
    webhooks,
)
from postbox.api.auth import check_api_key
from postbox.api.dashboard_auth import configure_sessions
from postbox.api.errors import register_error_handlers
from postbox.api.extension import init_app
from postbox.api.instance import count_requests
from postbox.api.log_context import register_log_context
from postbox.api.metrics import QueueDepthCollector, register_metrics
from postbox.api.rate_limit import ApiRateLimiter, register_rate_limit
from postbox.config import Settings, load_settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API app; settings default to the process environment."""
    settings = settings or load_settings()
    app = Flask("postbox")
    app.config["MAX_CONTENT_LENGTH"] = settings.api.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    state = init_app(app, settings)
    register_log_context(app)
    register_error_handlers(app)
    register_metrics(app, QueueDepthCollector(settings.redis.queue_name, state.gateway.counts))
    count_requests(app)
    configure_sessions(app, settings.api.secret_key)
    register_blueprints(app, settings, state.rate_limiter)
    history.init_history(app, settings.history)
    app.wsgi_app = admission.AdmissionGate(  # type: ignore[method-assign]
        app.wsgi_app, settings.api.max_queue_wait_ms
    )
    return app


def register_blueprints(app: Flask, settings: Settings, limiter: ApiRateLimiter) -> None:
    """Public probes, metrics and the API description at the root, the dashboard behind its
    session, everything else under /v1 behind the API key and its rate limit."""
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(dashboard_history.bp)
    v1 = Blueprint("v1", __name__, url_prefix="/v1")
    v1.before_request(lambda: check_api_key(settings.api.api_keys))
    register_rate_limit(v1, limiter)
    v1.register_blueprint(emails.bp)
    v1.register_blueprint(history.bp)
    v1.register_blueprint(lifecycle.bp)
    v1.register_blueprint(queue_stats.bp)
    v1.register_blueprint(dead_letters.bp)
    v1.register_blueprint(webhooks.bp)
    v1.register_blueprint(webhook_deliveries.bp)
    v1.register_blueprint(suppressions.bp)
    app.register_blueprint(v1)
    # SNS sends no API key: its signature authenticates it (inbound_ses.py).
    app.register_blueprint(inbound_ses.bp)
    if settings.api.dev_inbox_dir:
        from postbox.api import dev_inbox  # noqa: PLC0415  (development runs only)

        app.register_blueprint(dev_inbox.blueprint(settings.api.dev_inbox_dir))
