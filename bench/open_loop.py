"""An open-loop HTTP/1.1 load generator on one epoll loop: cheap enough to share 2 cores.

Requests are sent at their scheduled times whatever the server does (no coordinated
omission), each on an idle kept-alive connection if one is free, else on a new one. The
asyncio client (`bench.http_client`) spent ~330 microseconds of CPU per request here: at
3,000 requests/s four generator processes took ~0.9 of the machine's 2 cores from the
server they measured, and still ran up to a second late. Non-blocking sockets on one
`select.epoll` cost a fraction of that.

A request that outlives its timeout is given up as a client does: its socket is closed.
Each answer records its status (or the client error's name), error code, Retry-After,
latency from its scheduled send, how late it was sent (`lag`) and how long its TCP connect
took (`connect`: a SYN the server's full accept queue dropped is resent after 1 s).
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import json
import select
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

_HEAD_END = b"\r\n\r\n"
_READ = select.EPOLLIN
_WRITE = select.EPOLLOUT


@dataclass(frozen=True)
class Answer:
    """One request's fate: an HTTP status (or the client error's name), its error code,
    whether it carried Retry-After, seconds from its scheduled send, how late the
    generator sent it, and seconds its TCP connect took (0 on a reused connection)."""

    status: str
    code: str | None
    retry_after: bool
    latency: float
    lag: float = 0.0
    connect: float = 0.0
    index: int = -1


@dataclass
class _Request:
    index: int
    data: bytes
    scheduled: float
    sent: float
    sock: socket.socket | None = None
    connecting_since: float | None = None
    connect: float = 0.0
    reused: bool = False
    received: bytearray = field(default_factory=bytearray)
    done: bool = False


class OpenLoop:
    """Sends `bodies` as POSTs to `path` at `host:port`, body i at `start + times[i]`."""

    def __init__(self, host: str, port: int, api_key: str, path: str, timeout: float) -> None:
        self._address = (host, port)
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
        ).encode()
        self._timeout = timeout
        self._poll = select.epoll()
        self._by_fd: dict[int, _Request] = {}
        self._idle: list[socket.socket] = []
        self._idle_fds: dict[int, socket.socket] = {}
        self._deadlines: list[tuple[float, int, _Request]] = []
        self._outstanding = 0
        self.answers: list[Answer] = []

    def run(self, bodies: Sequence[bytes], times: Sequence[float], start: float) -> None:
        """Send every body at its time, then wait for every answer (or timeout)."""
        clock = time.monotonic
        index, count = 0, len(bodies)
        try:
            while index < count or self._outstanding:
                wait = 0.05 if index >= count else max(0.0, start + times[index] - clock())
                for fd, events in self._poll.poll(min(wait, 0.05)):
                    self._on_event(fd, events)
                # Answers already received count, even if this process ran late to read them.
                self._expire(clock())
                now = clock()
                while index < count and start + times[index] <= now:
                    body = bodies[index]
                    head = self._head + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    self._send(_Request(index, head + body, start + times[index], now), now)
                    index += 1
        finally:
            self._close_all()

    def _send(self, request: _Request, now: float) -> None:
        heapq.heappush(self._deadlines, (now + self._timeout, id(request), request))
        self._outstanding += 1
        if self._idle:
            sock = self._idle.pop()
            self._poll.unregister(sock.fileno())
            del self._idle_fds[sock.fileno()]
            request.sock, request.reused = sock, True
            self._write(request)
            return
        self._connect(request, now)

    def _connect(self, request: _Request, now: float) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:  # this process's open files (20,000 here) all in use
            self._finish(request, _error_name(exc.errno or 0))
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.sock, request.connecting_since, request.reused = sock, now, False
        code = sock.connect_ex(self._address)
        self._by_fd[sock.fileno()] = request
        if code in (errno.EINPROGRESS, 0):
            self._poll.register(sock.fileno(), _WRITE)
        else:
            self._finish(request, _error_name(code))

    def _write(self, request: _Request) -> None:
        assert request.sock is not None
        fd = request.sock.fileno()
        self._by_fd[fd] = request
        try:
            request.sock.send(request.data)  # a few hundred bytes: one send on loopback
        except OSError as exc:
            self._failed(request, exc)
            return
        self._poll.register(fd, _READ)

    def _on_event(self, fd: int, events: int) -> None:
        if fd in self._idle_fds:  # the server closed an idle connection
            sock = self._idle_fds.pop(fd)
            self._idle.remove(sock)
            self._poll.unregister(fd)
            sock.close()
            return
        request = self._by_fd.get(fd)
        if request is None or request.sock is None:
            return
        if request.connecting_since is not None:
            self._on_connected(request)
        else:
            self._on_readable(request)

    def _on_connected(self, request: _Request) -> None:
        assert request.sock is not None and request.connecting_since is not None
        error = request.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        request.connect = time.monotonic() - request.connecting_since
        request.connecting_since = None
        self._poll.unregister(request.sock.fileno())
        if error:
            self._finish(request, _error_name(error))
            return
        self._write(request)

    def _on_readable(self, request: _Request) -> None:
        assert request.sock is not None
        try:
            chunk = request.sock.recv(65536)
        except OSError as exc:
            self._failed(request, exc)
            return
        self._received(request, chunk)

    def _drain(self, request: _Request) -> None:
        """Read what already arrived for `request` (its answer may wait unread in the
        socket while this process ran late)."""
        while request.sock is not None and request.connecting_since is None:
            try:
                chunk = request.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                self._failed(request, exc)
                return
            self._received(request, chunk)

    def _received(self, request: _Request, chunk: bytes) -> None:
        if not chunk:
            self._failed(request, ConnectionResetError())
            return
        request.received += chunk
        head_end = request.received.find(_HEAD_END)
        if head_end < 0:
            return
        head = bytes(request.received[:head_end]).decode("latin-1").lower()
        length = _header(head, "content-length")
        body = request.received[head_end + len(_HEAD_END) :]
        if len(body) < int(length or 0):
            return
        status = head.split(" ", 2)[1]
        code = None if int(status) < 400 else json.loads(bytes(body))["error"]["code"]
        keep = _header(head, "connection") != "close"
        self._finish(request, status, code, "retry-after:" in head, keep)

    def _failed(self, request: _Request, exc: BaseException) -> None:
        if request.reused and not request.received:  # closed while idle: once more, anew
            self._release(request, keep=False)
            request.connect = 0.0
            self._connect(request, time.monotonic())
            return
        self._finish(request, type(exc).__name__)

    def _finish(
        self,
        request: _Request,
        status: str,
        code: str | None = None,
        retry_after: bool = False,
        keep: bool = False,
    ) -> None:
        now = time.monotonic()
        lag = request.sent - request.scheduled
        latency = now - request.scheduled
        self.answers.append(
            Answer(status, code, retry_after, latency, lag, request.connect, request.index)
        )
        request.done = True
        self._outstanding -= 1
        self._release(request, keep)

    def _release(self, request: _Request, keep: bool) -> None:
        sock, request.sock = request.sock, None
        if sock is None:
            return
        fd = sock.fileno()
        self._by_fd.pop(fd, None)
        with contextlib.suppress(OSError, ValueError):
            self._poll.unregister(fd)
        if keep:
            self._idle.append(sock)
            self._idle_fds[fd] = sock
            self._poll.register(fd, _READ)
        else:
            sock.close()

    def _expire(self, now: float) -> None:
        while self._deadlines and (self._deadlines[0][0] <= now or self._deadlines[0][2].done):
            _, _, request = heapq.heappop(self._deadlines)
            if not request.done:
                self._drain(request)
            if not request.done:
                self._finish(request, TimeoutError.__name__)  # closes it: the client gives up

    def _close_all(self) -> None:
        for sock in self._idle:
            sock.close()
        for request in list(self._by_fd.values()):
            if request.sock is not None:
                request.sock.close()
        self._poll.close()


def _error_name(code: int) -> str:
    """The name of the OSError subclass for errno `code` (ConnectionRefusedError, ...)."""
    return type(OSError(code, "")).__name__


def _header(head: str, name: str) -> str | None:
    start = head.find(f"\r\n{name}:")
    if start < 0:
        return None
    end = head.find("\r\n", start + 2)
    return head[start + len(name) + 3 : end if end >= 0 else None].strip()
