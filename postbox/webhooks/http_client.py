"""The HTTP client that posts events to one webhook endpoint, over at most `concurrency`
kept-alive connections (`http_wire`).

Redirects are not followed (a 3xx is a failed delivery), at most 64 KiB of an answer is
read, and forbidden addresses are refused at connection time (`http_wire.connect`);
`WEBHOOK_ALLOW_PRIVATE_NETWORKS=true` lifts the address rule.

An answer decides the delivery: 2xx delivered; 410 gone (the endpoint is disabled); 408,
429 and 5xx (honouring Retry-After), timeouts and connection errors retry; other statuses
fail for good.

Why not aiohttp, which this used before: its per-request machinery (`ClientSession._request`,
`ClientRequest`) was 35-41 % of the dispatcher's CPU under py-spy, several times the cost of
the bytes; this module builds the request head once per URL and lets llhttp parse answers.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from postbox.webhooks.attempts import Attempt, Verdict
from postbox.webhooks.http_wire import (
    Answer,
    ClosedUnanswered,
    ForbiddenAddress,
    HttpConnection,
    LookupFailed,
    connect,
)
from postbox.webhooks.urls import ascii_host

ERROR_CHARS = 200
USER_AGENT = "Postbox-Webhooks/1"
_RETRY_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class _Target:
    """Where one URL's requests go, and the part of their head that never changes."""

    url: str
    host: str
    port: int
    tls: bool
    head: bytes

    @classmethod
    def of(cls, url: str) -> _Target:
        parts = urlsplit(url)
        tls = parts.scheme.lower() == "https"
        host = ascii_host(parts.hostname or "")
        port = parts.port or (443 if tls else 80)
        shown = f"[{host}]" if ":" in host else host
        authority = shown if parts.port is None else f"{shown}:{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Content-Type: application/json\r\nAccept: */*\r\nAccept-Encoding: identity\r\n"
        )
        return cls(url, host, port, tls, head.encode("ascii"))

    def request(self, body: bytes, headers: dict[str, str]) -> bytes:
        """The whole request; `headers` are the signer's (an event id, a timestamp, base64
        signatures), which hold no line breaks."""
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        extra = f"Content-Length: {len(body)}\r\n{lines}\r\n".encode("latin-1")
        return self.head + extra + body


class EndpointClient:
    """Posts signed bodies to one endpoint over kept-alive connections (at most
    `concurrency` of them), and classifies each answer."""

    def __init__(self, timeout_seconds: float, concurrency: int, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._timeout_seconds = timeout_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._tls: ssl.SSLContext | None = None
        self._target: _Target | None = None
        self._idle: list[HttpConnection] = []
        self._open: set[HttpConnection] = set()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        """Post `body` to `url` once; what came of it (never raises for the receiver's
        faults)."""
        started = time.monotonic()
        target = self._target_of(url)
        request = target.request(body, headers)
        try:
            async with asyncio.timeout(self._timeout_seconds), self._slots:
                answer = await self._exchange(target, request)
        except TimeoutError:
            within = f"no answer within {self._timeout_seconds:g} s"
            return _no_answer(started, "timeout", within)
        except ForbiddenAddress as exc:
            return _no_answer(started, "refused", str(exc))
        except OSError as exc:  # LookupFailed, ConnectionError, ssl.SSLError...
            return _no_answer(started, "connection", _describe(exc))
        return _classify(answer, time.monotonic() - started)

    async def _exchange(self, target: _Target, request: bytes) -> Answer:
        """The answer on a kept-alive connection, or on a new one if none is idle or the
        idle one turns out closed by the receiver before it answered."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.usable:  # the receiver closed it while it was idle
                self._drop(connection)
                continue
            try:
                return await self._on(connection, target, request)
            except ClosedUnanswered:
                break
        connection = await connect(
            target.host, target.port, self._context(target), self._allow_private
        )
        self._open.add(connection)
        return await self._on(connection, target, request)

    async def _on(self, connection: HttpConnection, target: _Target, request: bytes) -> Answer:
        """The answer on `connection`, which goes back to the idle ones if it can carry
        another request to the current URL (an endpoint's URL may change meanwhile)."""
        try:
            answer = await connection.exchange(request)
        except BaseException:
            self._drop(connection)
            raise
        if connection.usable and target is self._target:
            self._idle.append(connection)
        else:
            self._drop(connection)
        return answer

    def _drop(self, connection: HttpConnection) -> None:
        connection.close()
        self._open.discard(connection)

    def _target_of(self, url: str) -> _Target:
        """The URL's target, parsed once per URL; a new URL closes the old one's idle
        connections."""
        if self._target is None or self._target.url != url:
            self._close_idle()
            self._target = _Target.of(url)
        return self._target

    def _context(self, target: _Target) -> ssl.SSLContext | None:
        if not target.tls:
            return None
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _close_idle(self) -> None:
        for connection in self._idle:
            self._drop(connection)
        self._idle.clear()

    async def close(self) -> None:
        """Close every connection."""
        self._close_idle()
        for connection in list(self._open):
            self._drop(connection)


def _classify(answer: Answer, seconds: float) -> Attempt:
    status = answer.status
    if 200 <= status < 300:
        return Attempt(Verdict.DELIVERED, status, "", seconds)
    text = answer.snippet.decode("utf-8", "replace").strip()
    error = f"HTTP {status}" + (f": {text}" if text else "")
    if status == 410:
        return Attempt(Verdict.GONE, status, error, seconds)
    if status in _RETRY_STATUSES or status >= 500:
        retry_after = parse_retry_after(answer.retry_after)
        return Attempt(Verdict.RETRY, status, error, seconds, retry_after)
    if 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed"
    return Attempt(Verdict.FAILED, status, error, seconds)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _no_answer(started: float, why: str, error: str) -> Attempt:
    seconds = time.monotonic() - started
    return Attempt(Verdict.RETRY, None, f"{why}: {error}"[:ERROR_CHARS], seconds, no_answer=why)


def _describe(exc: OSError) -> str:
    if isinstance(exc, LookupFailed | ConnectionError):
        return str(exc)[:ERROR_CHARS]
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
