"""One kept-alive HTTP/1.1 connection to a webhook receiver: an asyncio protocol whose
answers `httptools` (llhttp, the parser uvicorn uses) parses, and the guarded connect that
opens it.

Server-side request forgery is refused when the connection is made, not only when the URL
was accepted: every address a lookup gives is checked (`urls.is_forbidden_address`:
loopback, private, link-local, metadata...) and only the allowed ones are tried, so a name
that resolves elsewhere since (DNS rebinding), or an IP literal, cannot reach them.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from typing import cast

import httptools

from postbox.webhooks.urls import is_forbidden_address, socket_address

MAX_ANSWER_BYTES = 64 * 1024
SNIPPET_BYTES = 200


@dataclass(frozen=True, slots=True)
class Answer:
    """What a receiver answered: its status, Retry-After header and the start of its body."""

    status: int
    retry_after: str | None
    snippet: bytes


class ForbiddenAddress(OSError):
    """The receiver's host resolves only to addresses webhooks may not call."""


class LookupFailed(OSError):
    """The receiver's host name did not resolve."""


class BadAnswer(ConnectionError):
    """The receiver's bytes are not an HTTP/1.1 answer, or it closed mid-answer."""


class ClosedUnanswered(ConnectionError):
    """The connection closed before any byte of an answer came: a kept-alive connection the
    receiver dropped while it was idle (the request may be sent again on a new one)."""


async def connect(
    host: str, port: int, tls: ssl.SSLContext | None, allow_private: bool
) -> HttpConnection:
    """A connection to the first allowed address of `host` that accepts one."""
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise LookupFailed(f"DNS lookup failed: {exc.strerror}") from exc
    addresses = [(str(info[4][0]), int(info[4][1])) for info in found]
    if not allow_private:
        addresses = [a for a in addresses if not is_forbidden_address(socket_address(a[0]))]
    if not addresses:
        raise ForbiddenAddress(f"{host} resolves only to forbidden addresses")
    failure: OSError | None = None
    for address in addresses:
        try:
            _, connection = await loop.create_connection(
                HttpConnection,
                address[0],
                address[1],
                ssl=tls,
                server_hostname=host if tls else None,
            )
        except OSError as exc:
            failure = exc
        else:
            return connection
    assert failure is not None
    raise ConnectionError(f"cannot connect to {host}:{port}: {failure.strerror or failure}")


class HttpConnection(asyncio.Protocol):
    """Sends one request at a time and parses its answer; keeps at most SNIPPET_BYTES of a
    body and closes the connection rather than read past MAX_ANSWER_BYTES of one."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Answer] | None = None
        self.usable = False
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._retry_after: bytes | None = None
        self._snippet = b""
        self._body_bytes = 0
        self._got_bytes = False
        self._got_head = False

    async def exchange(self, request: bytes) -> Answer:
        """Send `request` (head and body) and wait for the whole answer."""
        assert self._transport is not None and self._waiter is None
        self._reset()
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        """Close the socket; an answer being awaited fails."""
        self.usable = False
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.usable = True

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing was asked: not a receiver to keep talking to
            self.close()
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadAnswer(f"not an HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        if self._got_head:  # a body that runs until the connection closes ends here
            self._answered()
        elif self._got_bytes:
            self._fail(BadAnswer("the receiver closed the connection mid-answer"))
        else:
            self._fail(ClosedUnanswered("the receiver closed the connection"))

    # httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self._retry_after = value

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._got_head = self._status >= 200  # a 1xx is followed by the real answer

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if len(self._snippet) < SNIPPET_BYTES:
            self._snippet += body[: SNIPPET_BYTES - len(self._snippet)]
        if self._body_bytes > MAX_ANSWER_BYTES:
            self._answered()
            self.close()

    def on_message_complete(self) -> None:
        if not self._got_head:
            return
        if not self._parser.should_keep_alive():
            self.usable = False
        self._answered()
        self._got_head = False  # so the close that may follow does not answer again

    def _answered(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            retry_after = None if self._retry_after is None else self._retry_after.decode("latin-1")
            self._waiter.set_result(Answer(self._status, retry_after, self._snippet))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
