"""Load shedding: a request that waited too long for a thread is answered 503 at once.

Past its capacity a gunicorn gthread process queues requests without bound: its accept loop
takes every connection (up to `worker_connections`) and hands each to the thread pool's
unbounded queue. Measured at 3,000 POSTs/s on one process, requests waited tens of seconds
there, and many were enqueued (and delivered) after their client had given up. So the
worker class (`gunicorn_worker.py`) stamps each request with when the kernel received it
(`tcp_state`: the accept queue's wait counts too), and this gate, the outermost WSGI
layer, answers a /v1 request that waited more than
`API_MAX_QUEUE_WAIT_MS` with `503 overloaded` and `Retry-After`, before Flask routes it:
cheap enough that shedding keeps up with what the process cannot serve, so every request
gets an answer within about a second. A request let in is checked once more just before
it is enqueued (`check_in_time`), so none is enqueued long after it arrived, nor after its
client closed the connection (the client gave up: it must not be told "failed" of an email
that is then sent).

Probes and metrics are never shed: an orchestrator must not take a saturated process for
a dead one. Outside gunicorn (tests' Flask client) nothing is stamped and nothing is shed.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from postbox.api.tcp_state import connection_state
from postbox.errors import Overloaded

logger = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# A request let in must reach Redis within this long of arriving, or it is shed instead
# (a batch of 500 takes its time to validate and render, even on an idle process).
ENQUEUE_DEADLINE_SECONDS = 0.5
BATCH_ENQUEUE_DEADLINE_SECONDS = 5.0
RETRY_AFTER = "1"
# API_MAX_QUEUE_WAIT_MS's default, for a worker whose app has no gate.
DEFAULT_MAX_WAIT_SECONDS = 0.25
# At most one log line per this many seconds while shedding, with the count.
LOG_EVERY_SECONDS = 10.0

_arrival = threading.local()
SHED_BODY = json.dumps(
    {
        "error": {
            "code": Overloaded.code,
            "message": "The server is overloaded; retry after Retry-After.",
            "fields": {},
        }
    }
).encode()
_HEADERS = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(SHED_BODY))),
    ("Retry-After", RETRY_AFTER),
]


def arrived(at: float, sock: socket.socket | None = None) -> None:
    """Called on the thread about to serve a request: it arrived at `at` (monotonic), on
    `sock`."""
    _arrival.at = at
    _arrival.sock = sock


def waited() -> float | None:
    """Seconds since this thread's request was queued; None outside the gated worker."""
    at: float | None = getattr(_arrival, "at", None)
    return None if at is None else time.monotonic() - at


def check_in_time(deadline: float = ENQUEUE_DEADLINE_SECONDS) -> None:
    """`Overloaded` when this request arrived more than `deadline` seconds ago, too long
    to be enqueued now, or its client closed the connection: the client may have given
    up, and an email it believes failed must not be sent."""
    age = waited()
    if age is not None and age > deadline:
        _SHED_LOG.count()
        raise Overloaded(f"The request waited {age:.2f} s; retry.", headers=_retry_header())
    sock: socket.socket | None = getattr(_arrival, "sock", None)
    if sock is not None and connection_state(sock).client_gone:
        _SHED_LOG.count()
        raise Overloaded("The client closed the connection.", headers=_retry_header())


def count_shed() -> None:
    """Count one request shed elsewhere (the worker's accept loop), for the log."""
    _SHED_LOG.count()


def _retry_header() -> dict[str, str]:
    return {"Retry-After": RETRY_AFTER}


class _ShedLog:
    """Counts shed requests and logs the count at most every `LOG_EVERY_SECONDS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shed = 0
        self._logged_at = 0.0

    def count(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._shed += 1
            if now - self._logged_at < LOG_EVERY_SECONDS:
                return
            shed, self._shed, self._logged_at = self._shed, 0, now
        logger.warning(
            "Overloaded: answered %d requests 503 overloaded (or closed them unserved, their "
            "client gone)",
            shed,
        )


_SHED_LOG = _ShedLog()


class AdmissionGate:
    """WSGI middleware: 503 for a /v1 request that waited more than `max_wait_ms`."""

    def __init__(self, app: WsgiApp, max_wait_ms: int) -> None:
        self._app = app
        self.max_wait = max_wait_ms / 1000

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        age = waited()
        if age is not None and age > self.max_wait and _gated(environ):
            _SHED_LOG.count()
            start_response("503 Service Unavailable", _HEADERS)
            return [SHED_BODY]
        return self._app(environ, start_response)


def _gated(environ: dict[str, Any]) -> bool:
    return str(environ.get("PATH_INFO", "")).startswith("/v1/")
