"""The gunicorn worker class of `postbox serve`: gthread that sheds load before it queues.

gthread's accept loop hands every connection (and every kept-alive one that becomes
readable) to its thread pool, whose queue has no bound; past the process's capacity,
requests waited there for tens of seconds. Measured at 3,000 POSTs/s on one process,
parsing each request just to answer 503 costs more CPU than the process has left, so two
bounds work together:

- Here, on the accept loop's thread: with `MAX_PENDING` requests already waiting for a
  thread, a new /v1 request is answered `503 overloaded` straight from the socket (read
  what arrived, write a fixed answer with `Connection: close`, close): tens of
  microseconds, no parsing, no thread.
- In the thread (`admission.py`): a request that still waited longer than
  `API_MAX_QUEUE_WAIT_MS` is answered 503 before Flask sees it.
"""

from __future__ import annotations

import itertools
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from postbox.api import admission

# Requests waiting for one of the process's threads beyond which new ones are shed: a few
# per thread keeps the wait near a tenth of a second at the process's ~500 requests/s.
PENDING_PER_THREAD = 2
SHED_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: " + admission.RETRY_AFTER.encode() + b"\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(admission.SHED_BODY)).encode() + b"\r\n\r\n"
) + admission.SHED_BODY
_GATED_PREFIXES = (b"POST /v1/", b"GET /v1/", b"DELETE /v1/")


class AdmissionWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, shedding /v1 requests while too many wait, stamping the others."""

    def init_process(self) -> None:
        """Set up the counters of requests queued and started."""
        self._max_pending = PENDING_PER_THREAD * self.cfg.threads
        self._queued = 0
        self._started = itertools.count(1)
        self._last_started = 0
        super().init_process()

    def enqueue_req(self, conn: Any) -> None:
        """Queue `conn` for a thread, noting when; or shed it if too many wait already."""
        buffered = conn.parser is not None and conn.parser.unreader.buf.getvalue()
        if not buffered and self._queued - self._last_started >= self._max_pending:
            self._shed(conn)
            return
        self._queued += 1
        conn.postbox_queued_at = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        """Serve `conn` on this thread, telling the gate how long it waited."""
        self._last_started = next(self._started)
        admission.arrived(conn.postbox_queued_at)
        return super().handle(conn)

    def _shed(self, conn: Any) -> None:
        sock = conn.sock
        sock.setblocking(False)
        try:
            head = sock.recv(16, socket.MSG_PEEK)
        except BlockingIOError:
            self._wait_for_request(conn)
            return
        except OSError:
            head = b""
        if head and not head.startswith(_GATED_PREFIXES):
            self._queued += 1
            conn.postbox_queued_at = time.monotonic()
            super().enqueue_req(conn)  # probes and metrics are never shed
            return
        admission.count_shed()
        try:
            sock.recv(1 << 16)
            sock.send(SHED_ANSWER)
        except OSError:
            pass
        self.nr_conns -= 1
        conn.close()

    def _wait_for_request(self, conn: Any) -> None:
        """A connection accepted before its request arrived: decide when it does."""
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self._on_request_arrived, conn)
        )

    def _on_request_arrived(self, conn: Any, client: Any) -> None:
        self.poller.unregister(client)
        self.pending_conns.remove(conn)
        conn.data_ready = True
        self.enqueue_req(conn)
