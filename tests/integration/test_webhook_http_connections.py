"""The webhook HTTP client's connections against real loopback servers: kept-alive reuse, a
connection the receiver dropped while idle, answers framed by chunks or by the close,
bytes that are not HTTP, and TLS with a certificate checked against the trusted CAs; on
asyncio's own event loop and on uvloop's (the dispatcher's)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop

from postbox.webhooks.attempts import Attempt, Verdict
from postbox.webhooks.http_client import EndpointClient
from tests.tls_support import make_ca

Answerer = Callable[[int, int], bytes | None]  # (connection number, request number) -> reply

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawServer:
    """An HTTP server on loopback that reads each request head and body and writes what
    `answer(connection, request)` gives (None: close the connection without answering)."""

    def __init__(self, answer: Answerer) -> None:
        self._answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.handlers: list[asyncio.Task[object]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        self.connections += 1
        number, served = self.connections, 0
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                served += 1
                reply = self._answer(number, served)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if b"Connection: close" in reply:
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


async def serving(
    answer: Answerer,
    use: Callable[[str, RawServer], Awaitable[list[Attempt]]],
    tls: ssl.SSLContext | None = None,
) -> tuple[list[Attempt], RawServer]:
    raw = RawServer(answer)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    async with server:
        attempts = await use(f"{scheme}://localhost:{port}/hook?x=1", raw)
        await asyncio.gather(*raw.handlers)  # each ends at the client's close
    return attempts, raw


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Runs a coroutine to completion on a new event loop of the kind named."""
    return asyncio.run if request.param == "asyncio" else uvloop.run


def posts(count: int, timeout: float = 5.0) -> Callable[[str, RawServer], Awaitable[list]]:
    async def use(url: str, raw: RawServer) -> list[Attempt]:
        client = EndpointClient(timeout, 4, allow_private=True)
        try:
            return [
                await client.post(url, b'{"n":1}', {"webhook-id": "evt_1"}) for _ in range(count)
            ]
        finally:
            await client.close()

    return use


def test_one_kept_alive_connection_carries_sequential_requests(run):
    attempts, raw = run(serving(lambda c, r: OK, posts(3)))
    assert [a.verdict for a in attempts] == [Verdict.DELIVERED] * 3
    assert raw.connections == 1 and len(raw.requests) == 3
    head = raw.requests[0].decode()
    assert head.startswith("POST /hook?x=1 HTTP/1.1\r\n")
    assert "Host: localhost:" in head and "webhook-id: evt_1\r\n" in head
    assert head.endswith('Content-Length: 7\r\nwebhook-id: evt_1\r\n\r\n{"n":1}')


def test_a_connection_dropped_unanswered_is_retried_once_on_a_new_one(run):
    # Each connection answers its first request and closes on the second without a word,
    # as a receiver whose idle timeout fired just as the request went out.
    attempts, raw = run(serving(lambda c, r: OK if r == 1 else None, posts(2)))
    assert [a.verdict for a in attempts] == [Verdict.DELIVERED] * 2
    assert raw.connections == 2 and len(raw.requests) == 3


def test_a_new_connection_closed_unanswered_is_a_connection_error(run):
    attempts, raw = run(serving(lambda c, r: None, posts(1)))
    assert attempts[0].verdict is Verdict.RETRY and attempts[0].status_class == "connection"
    assert "closed the connection" in attempts[0].error
    assert raw.connections == 1


def test_connection_close_in_the_answer_is_honoured(run):
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    attempts, raw = run(serving(lambda c, r: closing, posts(2)))
    assert [a.verdict for a in attempts] == [Verdict.DELIVERED] * 2
    assert raw.connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nRetry-After: 9\r\n\r\n"
        b"3\r\nbus\r\n1\r\ny\r\n0\r\n\r\n",
        b"HTTP/1.1 503 Busy\r\nRetry-After: 9\r\nConnection: close\r\n\r\nbusy",
    ],
    ids=["chunked", "until-close"],
)
def test_bodies_framed_by_chunks_or_by_the_close_are_read(run, reply):
    attempts, _ = run(serving(lambda c, r: reply, posts(1)))
    assert (attempts[0].verdict, attempts[0].status) == (Verdict.RETRY, 503)
    assert (attempts[0].error, attempts[0].retry_after) == ("HTTP 503: busy", 9.0)


def test_bytes_that_are_not_http_are_a_connection_error(run):
    attempts, _ = run(serving(lambda c, r: b"SSH-2.0-OpenSSH_9.2\r\n", posts(1)))
    assert attempts[0].status_class == "connection"
    assert "not an HTTP answer" in attempts[0].error


def test_tls_to_a_certificate_signed_by_a_trusted_ca(run, tmp_path, monkeypatch):
    ca = make_ca(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))  # OpenSSL's default trust store
    context = ca.server_context("localhost")
    attempts, raw = run(serving(lambda c, r: OK, posts(2), tls=context))
    assert [a.verdict for a in attempts] == [Verdict.DELIVERED] * 2
    assert raw.connections == 1


def test_tls_to_an_untrusted_certificate_is_a_connection_error(run, tmp_path):
    context = make_ca(tmp_path).server_context("localhost")
    attempts, raw = run(serving(lambda c, r: OK, posts(1), tls=context))
    assert attempts[0].status_class == "connection"
    assert "CERTIFICATE_VERIFY_FAILED" in attempts[0].error
    assert raw.requests == []


def test_a_changed_url_gets_its_own_connection(run):
    async def main() -> tuple[RawServer, RawServer]:
        first, second = RawServer(lambda c, r: OK), RawServer(lambda c, r: OK)
        servers = [await asyncio.start_server(s.handle, "127.0.0.1", 0) for s in (first, second)]
        urls = [f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}/" for s in servers]
        client = EndpointClient(5.0, 4, allow_private=True)
        for url in (urls[0], urls[1], urls[1]):
            assert (await client.post(url, b"{}", {})).verdict is Verdict.DELIVERED
        await client.close()
        for server in servers:
            server.close()
        await asyncio.gather(*first.handlers, *second.handlers)
        return first, second

    first, second = run(main())
    assert (len(first.requests), len(second.requests)) == (1, 2)
    assert (first.connections, second.connections) == (1, 1)
