"""The gunicorn worker class of `postbox serve`: gthread that sheds load before it queues.

gthread's accept loop hands every connection (and every kept-alive one that becomes
readable) to its thread pool, whose queue has no bound; past the process's capacity,
requests waited there for tens of seconds. Measured at 3,000 POSTs/s on one process,
parsing each request just to answer 503 costs more CPU than the process has left, so
these bounds work together:

- Here, on the accept loop's thread: a new /v1 request is answered `503 overloaded`
  straight from the socket (read what arrived, write a fixed answer with
  `Connection: close`, close: no parsing, no thread) when `PENDING_PER_THREAD` per thread
  already wait for one, or when it already waited longer than `API_MAX_QUEUE_WAIT_MS` in
  the kernel's accept queue (`tcp_state`: the process's own clock only starts at
  `accept`). One whose client has already closed is closed unserved.
- The loop accepts up to `ACCEPT_BURST` connections per wakeup (gthread takes one): each
  wakeup of the loop's thread, like each of its socket calls, may wait for the GIL behind
  the request threads, and the accept queue must drain as fast as connections arrive, or
  it overflows and Linux drops their SYNs (the client resends after 1 s).
- On a graceful stop the loop takes what waits in the accept queue and closes its
  listener (`set_accept_enabled`): gthread stops accepting but kept the socket open while
  it drained, so the kernel completed connections nobody accepted and reset them all at the
  end, which a load balancer cannot retry for a POST. Closed, a newcomer is refused, and
  nginx tries the next replica.
- In the thread (`admission.py`): a request that still waited longer than
  `API_MAX_QUEUE_WAIT_MS`, counted from when the kernel received it, is answered 503
  before Flask sees it, and one whose client has gone is not enqueued.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import selectors
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

from postbox.api import admission, lingering_close
from postbox.api.tcp_state import connection_state

# Requests waiting for one of the process's threads beyond which new ones are shed: 24 of 4
# threads. Each adds ~3 ms of wait to the next at the ~350 requests/s one process serves
# while shedding on the 2-core test machine. The scale test's client keeps 24 requests in
# flight, at times all on one process: with 16 waiting some of them were shed on a busy
# machine.
PENDING_PER_THREAD = 6
# Connections taken from the accept queue per wakeup of the accept loop, at most.
ACCEPT_BURST = 64
SHED_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: " + admission.RETRY_AFTER.encode() + b"\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(admission.SHED_BODY)).encode() + b"\r\n\r\n"
) + admission.SHED_BODY
_GATED_PREFIXES = (b"POST /v1/", b"GET /v1/", b"DELETE /v1/")
_NOTHING_TO_ACCEPT = (errno.EAGAIN, errno.EWOULDBLOCK)
_READ_BYTES = 1 << 16
# How often the process tells the arbiter it is alive (gunicorn's `timeout` is 30 s).
NOTIFY_SECONDS = 1.0


class AdmissionWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, shedding /v1 requests while too many wait, stamping the others."""

    _notified_at = float("-inf")

    def notify(self) -> None:
        """Tell the arbiter this process is alive, at most once per `NOTIFY_SECONDS`.

        gthread does it on every turn of its loop (each accepted connection, each finished
        request): an `os.utime` of its temporary file that took ~10 % of an API process's
        busy samples at 150 POSTs/s (py-spy).
        """
        now = time.monotonic()
        if now - self._notified_at >= NOTIFY_SECONDS:
            self._notified_at = now
            super().notify()

    def init_process(self) -> None:
        """Set up the counters of requests queued and started."""
        self._max_pending = PENDING_PER_THREAD * self.cfg.threads
        self._max_wait = admission.DEFAULT_MAX_WAIT_SECONDS
        self._queued = 0
        self._started = itertools.count(1)
        self._last_started = 0
        self._serving_since = time.monotonic()
        self._accepted_last_burst = False
        super().init_process()

    def load_wsgi(self) -> None:
        """Load the app, and take the longest queue wait from its admission gate."""
        super().load_wsgi()
        gate = getattr(self.wsgi, "wsgi_app", None)
        if isinstance(gate, admission.AdmissionGate):
            self._max_wait = gate.max_wait
        # A request that came while this process was starting waited for the start, not
        # behind other requests: its wait counts from now (`postbox dev`'s first request,
        # sent as soon as the port listened, was shed as overloaded).
        self._serving_since = time.monotonic()

    def set_accept_enabled(self, enabled: bool) -> None:
        """Stop accepting; when the process is stopping, also take every connection that
        already waits and close the listeners (see the module docstring)."""
        super().set_accept_enabled(enabled)
        if enabled or self.alive:
            return
        for listener in self.sockets:
            self.accept(listener)
            while self._accepted_last_burst:
                self.accept(listener)
            listener.close()

    def accept(self, listener: socket.socket) -> None:
        """Take up to `ACCEPT_BURST` waiting connections (gthread takes one per wakeup)."""
        self._accepted_last_burst = False
        for _ in range(ACCEPT_BURST):
            if self.nr_conns >= self.worker_connections:
                return
            try:
                client, address = listener.accept()
            except OSError as exc:
                if exc.errno in _NOTHING_TO_ACCEPT:
                    return
                if exc.errno == errno.ECONNABORTED:
                    continue
                raise
            self._accepted_last_burst = True
            self._take(client, partial(self._new_conn, client, address, listener), True)

    def enqueue_req(self, conn: Any) -> None:
        """Queue `conn` for a thread, noting when its request arrived; or shed it if it
        waited too long already, or too many wait (gthread calls this for a kept-alive
        connection that became readable, and with a request read ahead)."""
        if conn.parser is not None and conn.parser.unreader.buf.getvalue():
            self._enqueue(conn, time.monotonic())  # the next request, read with the last
            return
        self.nr_conns -= 1  # `_take` counts it again if it stays
        self._take(conn.sock, lambda: conn, False)

    def handle(self, conn: Any) -> Any:
        """Serve `conn` on this thread, telling the gate how long it waited; a connection
        closed while its client still sends lingers (lingering_close.py)."""
        self._last_started = next(self._started)
        admission.arrived(conn.postbox_queued_at, conn.sock)
        head = getattr(conn, "postbox_head", None)
        if head is not None:  # read by the accept loop: give it back to the parser
            conn.postbox_head = None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(head)
            conn.data_ready = True
        keep = super().handle(conn)
        if keep is False:  # closing: a 413 may have left the client sending its body
            lingering_close.close_after_answer(conn.sock, _unread_body_bytes(conn))
        return keep

    def _take(self, sock: socket.socket, make_conn: Callable[[], Any], accepted: bool) -> None:
        """Serve, shed or close the connection on `sock`; `make_conn` gives its TConn.

        Just `accepted`, its request's wait counts from when the kernel received it: it may
        have waited in the accept queue for any time, unseen. A kept-alive connection's
        request (or one that came after its connection was accepted) was seen by the loop's
        poller when the loop last ran, and counts from now, as gthread counts; in both
        cases a client that has closed the connection meanwhile is seen here.

        Every socket call lets a request thread take the GIL, for up to the switch
        interval: the shed path makes four (accept, recv, send, close) and no TConn.
        """
        now = time.monotonic()
        state = connection_state(sock)
        if state.client_gone:
            self._close_gone(sock)
            return
        # A request that came while this process was starting waited for the start.
        age = min(state.age, now - self._serving_since) if accepted else 0.0
        arrived_at = now - age
        saturated = self._queued - self._last_started >= self._max_pending
        if not (age > self._max_wait or saturated) or self.cfg.is_ssl:
            self._enqueue(self._counted(make_conn()), arrived_at)
            return
        try:
            head = sock.recv(_READ_BYTES, socket.MSG_DONTWAIT)
        except BlockingIOError:
            self._wait_for_request(self._counted(make_conn()))
            return
        except OSError:
            head = b""
        if head and not head.startswith(_GATED_PREFIXES):
            conn = self._counted(make_conn())  # probes and metrics are never shed
            conn.postbox_head = head
            self._enqueue(conn, arrived_at)
            return
        admission.count_shed()
        with contextlib.suppress(OSError):
            sock.send(SHED_ANSWER, socket.MSG_DONTWAIT)
        sock.close()

    def _new_conn(self, client: socket.socket, address: Any, listener: socket.socket) -> Any:
        return TConn(self.cfg, client, address, listener.getsockname())

    def _counted(self, conn: Any) -> Any:
        self.nr_conns += 1
        return conn

    def _enqueue(self, conn: Any, arrived_at: float) -> None:
        self._queued += 1
        conn.postbox_queued_at = arrived_at
        super().enqueue_req(conn)

    @staticmethod
    def _close_gone(sock: socket.socket) -> None:
        """Close a connection whose client has gone: nobody reads an answer. Counted as shed
        when a request came before (a client closing an idle connection gave up nothing)."""
        with contextlib.suppress(OSError):
            if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                admission.count_shed()
        sock.close()

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


def _unread_body_bytes(conn: Any) -> int | None:
    """How much of the last request's body the client announced and is not read from the
    socket yet: 0 when none is left, None when unknown (a chunked body)."""
    parser = conn.parser
    reader = getattr(getattr(getattr(parser, "mesg", None), "body", None), "reader", None)
    if reader is None:
        return 0
    left = getattr(reader, "length", None)  # gunicorn's LengthReader: bytes still to come
    if not isinstance(left, int):
        return None
    # Some of them may sit in gunicorn's buffer already, read with the head.
    return max(0, left - len(parser.unreader.buf.getvalue()))
