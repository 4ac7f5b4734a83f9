"""A fast local webhook receiver for the dispatcher benchmark: raw HTTP/1.1 keep-alive on
asyncio (uvloop), answering every POST 200 at once, so the dispatcher is what is measured.

It checks the signature of every 50th request with `standardwebhooks` (a dispatcher that
signed wrongly would show as `bad`), counts requests and distinct webhook-ids, and answers
`GET /count` with JSON: requests, distinct ids, bad signatures, first and last arrival.
`GET /sent` answers when each email's first `email.sent` arrived, by email id (for the
latency from POST to event, bench/webhook_latency.py).

    python -m bench.webhook_receiver PORT SECRET
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import uvloop
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from bench.services import ROOT
from postbox.dev.ports import wait_for_port

CHECK_EVERY = 50
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class _Counts:
    def __init__(self, secret: str) -> None:
        self.hook = Webhook(secret)
        self.requests = 0
        self.ids: set[str] = set()
        self.bad = 0
        self.first = 0.0
        self.last = 0.0
        self.sent: dict[str, float] = {}

    def took(self, headers: dict[str, str], body: bytes) -> None:
        now = time.time()
        self.first = self.first or now
        self.last = now
        self.requests += 1
        self.ids.add(headers.get("webhook-id", ""))
        if b'"email.sent"' in body:
            email_id = json.loads(body)["data"]["email_id"]
            self.sent.setdefault(email_id, now)
        if self.requests % CHECK_EVERY == 1:
            try:
                self.hook.verify(body, headers)
            except WebhookVerificationError:
                self.bad += 1

    def as_json(self) -> bytes:
        found = {
            "requests": self.requests,
            "ids": len(self.ids),
            "bad": self.bad,
            "first": self.first,
            "last": self.last,
        }
        return json.dumps(found).encode()


class _Protocol(asyncio.Protocol):
    def __init__(self, counts: _Counts) -> None:
        self._counts = counts
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._one_request():
            pass

    def _one_request(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = self._buffer[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(self._buffer) < end + 4 + length:
            return False
        body = self._buffer[end + 4 : end + 4 + length]
        self._buffer = self._buffer[end + 4 + length :]
        assert self._transport is not None
        if head[0].startswith("GET /"):
            wanted = head[0].startswith("GET /sent")
            answer = json.dumps(self._counts.sent).encode() if wanted else self._counts.as_json()
            self._transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)
            )
        else:
            self._counts.took(headers, body)
            self._transport.write(_OK)
        return True


def start(port: int, secret: str, log_path: Path) -> subprocess.Popen[bytes]:
    """This receiver as its own process on `port`, once it listens."""
    argv = [sys.executable, "-m", "bench.webhook_receiver", str(port), secret]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    wait_for_port("127.0.0.1", port, timeout=10)
    return process


async def _serve(port: int, secret: str) -> None:
    counts = _Counts(secret)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(counts), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1]), sys.argv[2]))
