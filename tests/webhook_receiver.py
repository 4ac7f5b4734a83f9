"""A real HTTP receiver for webhook tests: a threaded `http.server` on loopback.

Each path (`/<name>`) is a route that verifies every request's signature with
`standardwebhooks.Webhook(secret).verify` for each of its secrets (a request that does not
verify is recorded as such and answered 400), records the `webhook-id`, the body and when it
came, and answers as told: `answers` lists the statuses (with headers) of the next requests,
then 200; `delay` makes every answer wait; `endless` streams a body that never ends.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    """One request as the receiver took it."""

    webhook_id: str
    body: str
    at: float
    verified: bool
    status: int  # what the receiver answered

    @property
    def payload(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found


@dataclass
class Route:
    """How one path answers, and what it received."""

    secrets: list[str] = field(default_factory=list)
    verify: bool = True  # False: take unsigned requests (tests of the HTTP client alone)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    endless: bool = False
    received: list[Received] = field(default_factory=list)

    def ids(self, status: int | None = 200) -> list[str]:
        """The webhook-ids received (answered `status`; None: any), in order."""
        return [r.webhook_id for r in self.received if status is None or r.status == status]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        route = self.server.routes.get(self.path.lstrip("/"))
        if route is None:
            self._answer(404, {})
            return
        if route.delay:
            time.sleep(route.delay)
        verified = self._verified(route, body)
        with self.server.lock:
            status, headers = route.answers.pop(0) if route.answers else (200, {})
            if not verified:
                status = 400
            route.received.append(
                Received(self.headers.get("webhook-id", ""), body, time.time(), verified, status)
            )
        if route.endless:
            self._endless(status)
        else:
            self._answer(status, headers)

    def _verified(self, route: Route, body: str) -> bool:
        if not route.verify:
            return True
        headers = {k: v for k, v in self.headers.items()}
        for secret in route.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                return False
        return bool(route.secrets)

    def _answer(self, status: int, headers: dict[str, str]) -> None:
        text = b"ok" if status < 300 else b"no"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def _endless(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 65536
        try:
            while True:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            return

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Route]
    lock: threading.Lock


class Receiver:
    """The running server; `url(name)` is a route's address, `route(name)` its state."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self.port = server.server_address[1]

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{name}"

    def route(self, name: str, secrets: list[str] | None = None, **how: Any) -> Route:
        """Add (or replace) the route `name`."""
        route = Route(secrets=list(secrets or []), **how)
        self._server.routes[name] = route
        return route


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A receiver on a free loopback port, for the duration of the block."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.routes = {}
    server.lock = threading.Lock()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Receiver(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
