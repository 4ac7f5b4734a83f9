"""A minimal HTTP/1.1 client on asyncio streams, with reused keep-alive connections.

Enough for one JSON API on loopback and cheap per request, so the load generator spends its
CPU (which the server competes for on a 2-core machine) on sending, not on a client library.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


class StaleConnection(Exception):
    """Raised when a reused connection turns out closed before any reply came."""


@dataclass(frozen=True)
class Response:
    """Status, body and (lower-case) headers of one reply."""

    status: int
    body: bytes
    headers: dict[bytes, bytes] = field(default_factory=dict)


class Connection:
    """One keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.reusable = True

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        """Connect to `host:port`."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, head: bytes, body: bytes) -> Response:
        """Send one request (`head` ends with the blank line) and read its reply."""
        self._writer.write(head + body)
        try:
            raw_head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise StaleConnection from exc
        status, headers = _parse_head(raw_head)
        data = await self._reader.readexactly(int(headers.get(b"content-length", 0)))
        self.reusable = headers.get(b"connection", b"").lower() != b"close"
        return Response(status, data, headers)

    def close(self) -> None:
        """Close the socket."""
        self._writer.close()


def _parse_head(raw: bytes) -> tuple[int, dict[bytes, bytes]]:
    lines = raw.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return status, headers


class Client:
    """Requests to one server over at most `limit` connections, most recently used first."""

    def __init__(self, host: str, port: int, api_key: str, limit: int = 128) -> None:
        self._host = host
        self._port = port
        self._auth = f"Authorization: Bearer {api_key}\r\n".encode()
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[Connection] = []
        self.opened = 0

    def _head(self, path: str, length: int) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n".encode()
            + self._auth
            + f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()
        )

    async def post(self, path: str, body: bytes) -> Response:
        """POST a JSON body; a connection the server closed while idle is replaced once."""
        head = self._head(path, len(body))
        async with self._slots:
            connection = self._idle.pop() if self._idle else None
            if connection is not None:
                try:
                    return await self._send(connection, head, body)
                except StaleConnection:
                    pass
            return await self._send(await self._open(), head, body)

    async def _open(self) -> Connection:
        self.opened += 1
        return await Connection.open(self._host, self._port)

    async def _send(self, connection: Connection, head: bytes, body: bytes) -> Response:
        try:
            response = await connection.request(head, body)
        except BaseException:
            connection.close()
            raise
        if connection.reusable:
            self._idle.append(connection)
        else:
            connection.close()
        return response

    def close(self) -> None:
        """Close every idle connection."""
        for connection in self._idle:
            connection.close()
        self._idle.clear()
