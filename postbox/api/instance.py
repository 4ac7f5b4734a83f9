"""This API process in the cluster registry: its request counts and its heartbeat.

`RequestCounter` wraps the WSGI app to count requests in flight and served (a lock and two
adds per request); the heartbeat, started by the gunicorn config once a process has loaded
the app, reports them every interval from the process's queue loop thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask

from postbox.api.extension import PostboxState
from postbox.queue.registry import this_process

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class RequestCounter:
    """WSGI middleware counting requests in flight and finished."""

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.active = 0
        self.processed = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.active += 1
        try:
            return self._app(environ, start_response)
        finally:
            with self._lock:
                self.active -= 1
                self.processed += 1

    def counts(self) -> tuple[int, int]:
        """(in flight, finished) right now."""
        with self._lock:
            return self.active, self.processed


def count_requests(app: Flask) -> None:
    """Wrap `app` so its requests are counted, keeping the counter in `app.extensions`."""
    counter = RequestCounter(app.wsgi_app)
    app.wsgi_app = counter  # type: ignore[method-assign]
    app.extensions["postbox.requests"] = counter


def start_heartbeat(app: Any, threads: int) -> None:
    """Register this gunicorn process (`threads` requests at once) and keep it fresh."""
    state: PostboxState = app.extensions["postbox"]
    settings = state.settings
    info = this_process(settings.instance_id, "api", threads, settings.heartbeat_seconds)
    counter: RequestCounter = app.extensions["postbox.requests"]
    state.gateway.start_heartbeat(info, counter.counts)
