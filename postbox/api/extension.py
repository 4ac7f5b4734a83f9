"""The long-lived objects of one app, kept in `app.extensions["postbox"]`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from postbox.config import Settings
from postbox.queue.gateway import QueueGateway


@dataclass(frozen=True)
class PostboxState:
    """Settings and the queue gateway of one app."""

    settings: Settings
    gateway: QueueGateway


def init_app(app: Flask, settings: Settings) -> PostboxState:
    """Create the app's state; the gateway connects lazily, in the process that uses it."""
    state = PostboxState(settings, QueueGateway(settings))
    app.extensions["postbox"] = state
    return state


def state() -> PostboxState:
    """The state of the app handling the current request."""
    found: PostboxState = current_app.extensions["postbox"]
    return found
