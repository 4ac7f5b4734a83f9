"""`send_transaction` against a scripted relay that offers PIPELINING: replies that arrive in
one piece or a byte at a time, and the replies aiosmtpd never gives (421 and a closed
connection, 354 to DATA with no recipient, a malformed line, no reply at all, a connection
closed once the message was written)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import pytest
import uvloop

from postbox.workers.smtp_pipelining import ContentUnanswered, send_transaction

MESSAGE = b"Subject: hi\r\n\r\n.dot\r\n"
RECIPIENTS = ["a@example.org", "b@example.org"]


@dataclass
class Script:
    """How the relay answers MAIL, RCPT... DATA (`group`) and the message (`end`).

    `piece`: send each answer in writes of this many bytes, a moment apart (0: one write).
    `close`: close the connection after the group's answer.
    `hang_up`: close the connection, unanswered, once the message has been read.
    """

    group: bytes
    end: bytes = b"250 ok\r\n"
    piece: int = 0
    close: bool = False
    hang_up: bool = False
    received: list[bytes] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._converse(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.finished.set()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted\r\n")
        await reader.readline()
        writer.write(b"250-scripted\r\n250-SIZE 1000\r\n250 PIPELINING\r\n")
        while (line := await reader.readline()) and (self.received.append(line) or True):
            if line == b"DATA\r\n":
                await self._answer(writer, self.group)
                if self.close:
                    break
                if not self.group.rstrip().rsplit(b"\r\n", 1)[-1].startswith(b"354"):
                    continue
                while (data := await reader.readline()) != b".\r\n":
                    self.received.append(data)
                self.received.append(data)
                if self.hang_up:
                    break
                await self._answer(writer, self.end)
            elif line in (b"RSET\r\n", b"QUIT\r\n"):
                writer.write(b"250 reset\r\n" if line == b"RSET\r\n" else b"221 bye\r\n")
            # MAIL and RCPT are answered with DATA, as the group's answer

    async def _answer(self, writer: asyncio.StreamWriter, reply: bytes) -> None:
        step = self.piece or len(reply) or 1
        for start in range(0, len(reply), step):
            writer.write(reply[start : start + step])
            await writer.drain()
            if self.piece:
                await asyncio.sleep(0.005)


async def send_through(script: Script, timeout: float = 5.0) -> tuple[Any, aiosmtplib.SMTP]:
    """Send MESSAGE to RECIPIENTS through a relay playing `script`; the result (or the
    exception raised) and the connection, closed by then unless the relay kept it open."""
    server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=timeout, start_tls=False)
    try:
        await smtp.connect()
        await smtp.ehlo()
        try:
            result: Any = await send_transaction(smtp, "s@example.com", RECIPIENTS, MESSAGE)
        except (aiosmtplib.SMTPException, ConnectionError) as exc:
            result = exc
        connected = smtp.is_connected
        if connected:
            await smtp.quit()
        return result, connected
    finally:
        smtp.close()
        await asyncio.wait_for(script.finished.wait(), 5)
        server.close()
        await server.wait_closed()


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    return uvloop.run if request.param == "uvloop" else asyncio.run  # type: ignore[no-any-return]


GROUP = b"250 sender ok\r\n550 5.1.1 no such user\r\n250 ok\r\n354 go ahead\r\n"
END = b"250-2.0.0 queued\r\n250 as 12345\r\n"


@pytest.mark.parametrize("piece", [0, 1, 7], ids=["one-write", "bytewise", "7-bytes"])
def test_replies_are_read_however_they_are_split(run, piece):
    script = Script(GROUP, END, piece=piece)
    result, connected = run(send_through(script))

    assert result == ({"a@example.org": (550, "5.1.1 no such user")}, "2.0.0 queued\nas 12345")
    assert connected
    assert script.received[:4] == [
        b"MAIL FROM:<s@example.com> size=21\r\n",
        b"RCPT TO:<a@example.org>\r\n",
        b"RCPT TO:<b@example.org>\r\n",
        b"DATA\r\n",
    ]
    assert script.received[4:7] == [b"Subject: hi\r\n", b"\r\n", b"..dot\r\n"]


def test_421_to_mail_raises_it_as_the_sender_refusal_and_closes(run):
    result, connected = run(send_through(Script(b"421 4.3.2 shutting down\r\n", close=True)))

    assert isinstance(result, aiosmtplib.SMTPSenderRefused)
    assert (result.code, result.message) == (421, "4.3.2 shutting down")
    assert not connected


def test_421_to_a_recipient_raises_it_and_closes(run):
    script = Script(b"250 ok\r\n250 ok\r\n421 4.4.2 timeout\r\n", close=True)
    result, connected = run(send_through(script))

    assert type(result) is aiosmtplib.SMTPDataError
    assert (result.code, result.message) == (421, "4.4.2 timeout")
    assert not connected


def test_354_with_every_recipient_refused_ends_the_data_empty_then_resets(run):
    script = Script(b"250 ok\r\n550 no\r\n551 no\r\n354 go\r\n", end=b"554 no valid recipients\r\n")
    result, connected = run(send_through(script))

    assert isinstance(result, aiosmtplib.SMTPRecipientsRefused)
    assert [(r.recipient, r.code) for r in result.recipients] == [
        ("a@example.org", 550),
        ("b@example.org", 551),
    ]
    assert script.received[4:] == [b".\r\n", b"RSET\r\n", b"QUIT\r\n"]
    assert connected


def test_connection_closed_before_any_reply_raises_disconnected(run):
    result, connected = run(send_through(Script(b"", close=True)))

    assert type(result) is aiosmtplib.SMTPServerDisconnected
    assert not connected


def test_malformed_reply_raises_it_and_closes(run):
    result, connected = run(send_through(Script(b"hello there\r\n")))

    assert type(result) is aiosmtplib.SMTPResponseException
    assert (result.code, result.message) == (-1, "Malformed SMTP response line: hello there\r\n")
    assert not connected


def test_no_reply_within_the_timeout_raises_read_timeout_and_closes(run):
    result, connected = run(send_through(Script(b"250 ok\r\n"), timeout=0.2))

    assert type(result) is aiosmtplib.SMTPReadTimeoutError
    assert not connected


def test_connection_closed_after_the_message_raises_outcome_unknown(run):
    script = Script(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", hang_up=True)
    result, connected = run(send_through(script))

    assert type(result) is ContentUnanswered
    assert isinstance(result.__cause__, aiosmtplib.SMTPServerDisconnected)
    assert script.received[-1] == b".\r\n"
    assert not connected


def test_no_reply_to_the_message_within_the_timeout_raises_outcome_unknown(run):
    script = Script(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", end=b"")
    result, connected = run(send_through(script, timeout=0.2))

    assert type(result) is ContentUnanswered
    assert isinstance(result.__cause__, aiosmtplib.SMTPReadTimeoutError)
    assert not connected
