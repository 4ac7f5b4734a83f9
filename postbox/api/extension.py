"""The long-lived objects of one app, kept in `app.extensions["postbox"]`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from postbox.api.rate_limit import ApiRateLimiter
from postbox.config import Settings
from postbox.queue.gateway import QueueGateway


@dataclass(frozen=True)
class PostboxState:
    """Settings, the queue gateway and the per-key rate limiter of one app."""

    settings: Settings
    gateway: QueueGateway
    rate_limiter: ApiRateLimiter


def init_app(app: Flask, settings: Settings) -> PostboxState:
    """Create the app's state; its clients connect lazily, in the process that uses them."""
    state = PostboxState(settings, QueueGateway(settings), ApiRateLimiter(settings))
    app.extensions["postbox"] = state
    return state


def state() -> PostboxState:
    """The state of the app handling the current request."""
    found: PostboxState = current_app.extensions["postbox"]
    return found
