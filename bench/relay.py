"""A realistic relay for the drain: 30 ms per transaction, and some recipients refused.

smtp-sink answers at once and accepts everyone, which flatters every queue: a real relay
takes time to commit each message, greylists some recipients and knows others do not exist.
This one (raw asyncio on uvloop, PIPELINING, its own process) decides by recipient, so every
sender it is measured with gets the same refusals:
- `zlib.crc32(address) % 100 < DEFER_PERCENT` (3): `450 4.2.0` the first time it sees the
  address (greylisting), accepted when it comes back;
- the next REJECT_PERCENT (1): `550 5.1.1` every time (no such user);
- each transaction that accepted a recipient waits DELAY_MS (30) after the message's final
  dot before its `250`, as a relay writes its queue file; the connection waits with it.

A second loopback port answers every connection with the counts as JSON and closes:
connections, the most open at once, messages accepted, recipients deferred and rejected.

    python -m bench.relay PORT CONTROL_PORT
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, cast

import uvloop

from bench.services import ROOT
from postbox.dev.ports import free_port, wait_for_port

DELAY_MS = 30
DEFER_PERCENT = 3
REJECT_PERCENT = 1
_EHLO = b"250-relay.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n"
_END = b"\r\n.\r\n"


def refusal(address: str) -> str | None:
    """`defer` or `reject` for the recipients the relay refuses, else None."""
    bucket = zlib.crc32(address.lower().encode()) % 100
    if bucket < DEFER_PERCENT:
        return "defer"
    if bucket < DEFER_PERCENT + REJECT_PERCENT:
        return "reject"
    return None


class _Counts:
    def __init__(self) -> None:
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.accepted = 0
        self.deferred = 0
        self.rejected = 0
        self.greylisted: set[str] = set()

    def as_json(self) -> bytes:
        found = {
            "connections": self.connections,
            "max_open": self.max_open,
            "accepted": self.accepted,
            "deferred": self.deferred,
            "rejected": self.rejected,
        }
        return json.dumps(found).encode()


class _Smtp(asyncio.Protocol):
    """One SMTP connection: commands in order, the message's `250` DELAY_MS late."""

    def __init__(self, counts: _Counts) -> None:
        self._counts = counts
        self._buffer = b""
        self._in_data = False
        self._waiting = False  # a transaction's delayed 250 is not written yet
        self._recipients = 0
        self._quit = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        counts = self._counts
        counts.connections += 1
        counts.open += 1
        counts.max_open = max(counts.max_open, counts.open)
        self._transport.write(b"220 relay.bench ESMTP\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self._counts.open -= 1

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._process()

    def _process(self) -> None:
        assert self._transport is not None
        out: list[bytes] = []
        while not self._waiting and not self._quit:
            if self._in_data:
                end = self._buffer.find(_END)
                if end < 0:
                    break
                self._buffer = self._buffer[end + len(_END) :]
                self._in_data = False
                self._waiting = True
                asyncio.get_running_loop().call_later(DELAY_MS / 1000, self._accepted)
                break
            line, sep, rest = self._buffer.partition(b"\r\n")
            if not sep:
                break
            self._buffer = rest
            out.append(self._command(line))
        if out:
            self._transport.write(b"".join(out))
        if self._quit:
            self._transport.close()

    def _accepted(self) -> None:
        assert self._transport is not None
        self._counts.accepted += 1
        self._waiting = False
        if not self._transport.is_closing():
            self._transport.write(b"250 2.0.0 Ok: queued\r\n")
            self._process()

    def _command(self, line: bytes) -> bytes:
        verb = line[:4].upper()
        if verb == b"RCPT":
            return self._recipient(line)
        if verb == b"MAIL" or verb == b"RSET":
            self._recipients = 0
            return b"250 2.1.0 Ok\r\n"
        if verb == b"DATA":
            if not self._recipients:
                return b"554 5.5.1 Error: no valid recipients\r\n"
            self._in_data = True
            # The terminator search needs the CRLF before a message's first line.
            self._buffer = b"\r\n" + self._buffer
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb in (b"EHLO", b"HELO"):
            return _EHLO if verb == b"EHLO" else b"250 relay.bench\r\n"
        if verb == b"NOOP":
            return b"250 2.0.0 Ok\r\n"
        if verb == b"QUIT":
            self._quit = True
            return b"221 2.0.0 Bye\r\n"
        return b"502 5.5.2 Error: command not recognized\r\n"

    def _recipient(self, line: bytes) -> bytes:
        text = line.decode("latin-1")
        address = text[text.find("<") + 1 : text.rfind(">")].lower()
        verdict = refusal(address)
        counts = self._counts
        if verdict == "defer" and address not in counts.greylisted:
            counts.greylisted.add(address)
            counts.deferred += 1
            return b"450 4.2.0 <%s>: Recipient address rejected: Greylisted\r\n" % address.encode()
        if verdict == "reject":
            counts.rejected += 1
            return b"550 5.1.1 <%s>: Recipient address rejected: User unknown\r\n" % (
                address.encode()
            )
        self._recipients += 1
        return b"250 2.1.5 Ok\r\n"


class _Control(asyncio.Protocol):
    def __init__(self, counts: _Counts) -> None:
        self._counts = counts

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        transport.write(self._counts.as_json())
        transport.close()


async def _serve(port: int, control_port: int) -> None:
    counts = _Counts()
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(lambda: _Smtp(counts), "127.0.0.1", port, backlog=512)
    control = await loop.create_server(lambda: _Control(counts), "127.0.0.1", control_port)
    async with smtp, control:
        await smtp.serve_forever()


class RealisticRelay:
    """This relay as a child process on free loopback ports (a drain's `Relay`)."""

    def __init__(self, work_dir: Path, name: str) -> None:
        self.port = free_port()
        self._control_port = free_port()
        self._log_path = work_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until both ports listen."""
        argv = [sys.executable, "-m", "bench.relay", str(self.port), str(self._control_port)]
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_for_port("127.0.0.1", self.port, timeout=10)
        wait_for_port("127.0.0.1", self._control_port, timeout=10)

    @property
    def pid(self) -> int:
        """The process id (0 when not running)."""
        return self._process.pid if self._process is not None else 0

    def counts(self) -> dict[str, Any]:
        """The relay's counts so far (see the module's docstring)."""
        with socket.create_connection(("127.0.0.1", self._control_port), timeout=5) as conn:
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        found: dict[str, Any] = json.loads(data)
        return found

    def messages_received(self) -> int | None:
        """Messages accepted so far."""
        return int(self.counts()["accepted"])

    def stop(self) -> None:
        """Stop it and wait for it to exit."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1]), int(sys.argv[2])))
