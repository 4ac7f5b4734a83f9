"""The HTTP client that posts events to one webhook endpoint (aiohttp lives only here).

Server-side request forgery is refused when the connection is made, not only when the URL
was accepted: the resolver drops every forbidden address (`urls.is_forbidden_address`:
loopback, private, link-local, metadata...) from each lookup, so a name that resolves
elsewhere since (DNS rebinding) still cannot reach them, and an IP-literal host is checked
before the request. Redirects are not followed (a 3xx is a failed delivery), and at most
64 KiB of an answer is read. `WEBHOOK_ALLOW_PRIVATE_NETWORKS=true` lifts the address rule.

An answer decides the delivery: 2xx delivered; 410 gone (the endpoint is disabled); 408,
429 and 5xx (honouring Retry-After), timeouts and connection errors retry; other statuses
fail for good.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from postbox.webhooks.attempts import Attempt, Verdict
from postbox.webhooks.urls import is_forbidden_address

MAX_ANSWER_BYTES = 64 * 1024
ERROR_CHARS = 200
USER_AGENT = "Postbox-Webhooks/1"
_RETRY_STATUSES = frozenset({408, 429})


class ForbiddenAddress(OSError):
    """Raised when a receiver's host resolves only to addresses webhooks may not call."""


class GuardedResolver(AbstractResolver):
    """A resolver that keeps only the addresses webhooks may call."""

    def __init__(self) -> None:
        self._resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        allowed = [r for r in found if not is_forbidden_address(_ip(r["host"]))]
        if not allowed:
            raise ForbiddenAddress(f"{host} resolves only to forbidden addresses")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


class EndpointClient:
    """Posts signed bodies to one endpoint over kept-alive connections (at most
    `concurrency` of them), and classifies each answer."""

    def __init__(self, timeout_seconds: float, concurrency: int, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._timeout_seconds = timeout_seconds
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._checked: tuple[str, URL, str | None] = ("", URL(), None)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._concurrency,
                resolver=None if self._allow_private else GuardedResolver(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                # All set here, so aiohttp adds none of its own (its skip_auto_headers path
                # costs more per request); identity: no compressed answers to inflate.
                headers={
                    "User-Agent": USER_AGENT,
                    "Content-Type": "application/json",
                    "Accept": "*/*",
                    "Accept-Encoding": "identity",
                },
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        """Post `body` to `url` once; what came of it (never raises for the receiver's
        faults)."""
        started = time.monotonic()
        parsed, refused = self._parsed(url)
        if refused is not None:
            return _no_answer(started, "refused", refused)
        try:
            async with self._open().post(
                parsed, data=body, headers=headers, allow_redirects=False
            ) as answer:
                snippet = await _read_some(answer)
                return _classify(answer, snippet, time.monotonic() - started)
        except TimeoutError:
            within = f"no answer within {self._timeout_seconds:g} s"
            return _no_answer(started, "timeout", within)
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, ForbiddenAddress):
                return _no_answer(started, "refused", str(exc.os_error))
            return _no_answer(started, "connection", f"DNS lookup failed: {exc.os_error}")
        except (aiohttp.ClientError, OSError) as exc:
            return _no_answer(started, "connection", _describe(exc))

    def _parsed(self, url: str) -> tuple[URL, str | None]:
        """The URL parsed (once per URL, not per request), and why it may not be called if
        its host is a forbidden IP literal (aiohttp skips the resolver for those)."""
        if self._checked[0] != url:
            parsed = URL(url)
            problem = None if self._allow_private else _literal_problem(parsed.host or "")
            self._checked = (url, parsed, problem)
        return self._checked[1], self._checked[2]

    async def close(self) -> None:
        """Close the kept-alive connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _literal_problem(host: str) -> str | None:
    try:
        address = _ip(host)
    except ValueError:
        return None
    return f"{host} is a forbidden address" if is_forbidden_address(address) else None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(host.partition("%")[0])


async def _read_some(answer: aiohttp.ClientResponse) -> bytes:
    """The start of the answer's body for the log; reads at most MAX_ANSWER_BYTES, and
    drops the connection rather than read a longer body to its end."""
    kept = b""
    remaining = MAX_ANSWER_BYTES
    while remaining > 0:
        chunk = await answer.content.read(remaining)
        if not chunk:
            return kept
        remaining -= len(chunk)
        if len(kept) < ERROR_CHARS:
            kept += chunk[: ERROR_CHARS - len(kept)]
    if not answer.content.at_eof():
        answer.close()
    return kept


def _classify(answer: aiohttp.ClientResponse, snippet: bytes, seconds: float) -> Attempt:
    status = answer.status
    if 200 <= status < 300:
        return Attempt(Verdict.DELIVERED, status, "", seconds)
    text = snippet.decode("utf-8", "replace").strip()
    error = f"HTTP {status}" + (f": {text}" if text else "")
    if status == 410:
        return Attempt(Verdict.GONE, status, error, seconds)
    if status in _RETRY_STATUSES or status >= 500:
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
