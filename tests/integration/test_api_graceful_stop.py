"""A stopping API instance answers or refuses every connection; it never drops one.

A load balancer (nginx, `deploy/nginx.conf`) retries a POST on another replica only when
the connection was refused, not when it was accepted and then reset. gunicorn's graceful
stop keeps the listening socket open while it finishes the requests in flight, so the
kernel kept completing connections nobody would accept, and reset them all at the end:
14 `502`s for one `docker stop` under load (issue 19). Now the stopping process takes what
already waits and closes its listener, so a newcomer is refused and goes elsewhere.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
from pathlib import Path

from tests.integration.serving import api_only

LINGER_SECONDS = 0.5


def _try_request(port: int) -> str:
    """`refused`, `served` or `dropped` (connected, then closed without an answer)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    except ConnectionRefusedError:
        return "refused"
    with sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        try:
            head = sock.recv(64)
        except (ConnectionResetError, TimeoutError):
            return "dropped"
    return "served" if head.startswith(b"HTTP/1.1 200") else "dropped"


def test_a_stopping_api_serves_or_refuses_new_connections(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    with api_only(service_env, tmp_path, web_concurrency=1) as api:
        assert api.port is not None
        # A kept-alive connection keeps the graceful stop busy for a while (up to
        # gunicorn's 2 s linger): the window in which connections used to pile up.
        idle = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
        idle.request("GET", "/healthz")
        idle.getresponse().read()
        api.process.send_signal(signal.SIGTERM)
        time.sleep(LINGER_SECONDS)
        outcome = _try_request(api.port)
        idle.close()
        assert outcome in ("refused", "served"), api.log_tail()
        assert api.process.wait(timeout=30) == 0


def test_json_logs_are_json_from_the_first_line(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    with api_only({**service_env, "LOG_FORMAT": "json"}, tmp_path, web_concurrency=1) as api:
        pass
    lines = [line for line in api.log_path.read_text().splitlines() if line.strip()]
    assert any("Starting gunicorn" in line for line in lines)
    not_json = [line for line in lines if not _is_json(line)]
    assert not not_json, not_json


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
