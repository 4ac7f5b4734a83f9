"""Relays of a test's own for the relay tests: aiosmtpd servers on loopback that drop the
connection at a chosen moment, and a way to start several of them beside `smtp_server`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from postbox.dev.ports import free_port
from tests.conftest import RecordingHandler, SmtpServer


@dataclass
class HangingUpHandler(RecordingHandler):
    """Takes each of the next `hang_ups` messages, then closes the connection without
    answering the final `.`: a relay that committed the message and lost the connection
    before its 250 went out."""

    hang_ups: int = 0

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if self.hang_ups:
            self.hang_ups -= 1
            server.transport.abort()
        return reply


@dataclass
class DroppingHandler(RecordingHandler):
    """Closes the connection, unanswered, on each of the next `drops` MAIL commands: nothing
    of the message reached the relay."""

    drops: int = 0

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if self.drops:
            self.drops -= 1
            server.transport.abort()
            return "421 gone"  # never reaches the client
        return await super().handle_MAIL(server, session, envelope, address, options)


@contextmanager
def relay(handler: RecordingHandler) -> Iterator[SmtpServer]:
    """An SMTP server with `handler` on a free loopback port, for the test's length."""
    server = SmtpServer("127.0.0.1", free_port(), handler)
    server.start()
    try:
        yield server
    finally:
        server.stop()
