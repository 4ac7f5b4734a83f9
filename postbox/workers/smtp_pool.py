"""A pool of reused aiosmtplib connections to the relay, the only user of aiosmtplib.

At most `pool_size` connections are open; a job waits for a free one. A connection that
failed at the transport level is closed and replaced by a new one on next use; a negative
SMTP reply leaves it usable (aiosmtplib resets the envelope).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosmtplib

from postbox.config import SmtpSecurity, SmtpSettings
from postbox.workers.failures import classify

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """One SMTP reply."""

    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


@dataclass(frozen=True)
class SendResult:
    """The relay's answer to one message: its reply to DATA (None when it refused every
    recipient, so no DATA was sent) and the reply to each refused recipient."""

    reply: str | None
    refused: dict[str, Reply]


class SmtpPool:
    """Bounded, lazily filled pool of SMTP connections."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._idle: list[aiosmtplib.SMTP] = []
        self._tls_context = ssl.create_default_context()
        self.connections_opened = 0

    async def send(
        self,
        sender: str,
        recipients: list[str],
        message: str,
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> SendResult:
        """Deliver one message; raises a `DeliveryError` saying whether to retry.

        `ready` runs once a connection is in hand, just before the transaction: a rate limit
        checked there counts sends when they happen, not when they start waiting.
        """
        async with self._slots:
            smtp, reused = await self._checkout()
            if ready is not None:
                try:
                    await ready()
                except BaseException:
                    self._idle.append(smtp)
                    raise
            try:
                return await self._send_on(smtp, reused, sender, recipients, message)
            except _StaleConnection:
                # The relay closed this idle connection; nothing was sent on it.
                smtp = await self._connect_or_raise()
                return await self._send_on(smtp, False, sender, recipients, message)

    async def _send_on(
        self, smtp: aiosmtplib.SMTP, reused: bool, sender: str, recipients: list[str], message: str
    ) -> SendResult:
        try:
            refused, reply = await smtp.sendmail(sender, recipients, message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._idle.append(smtp)
            return SendResult(None, {r.recipient: Reply(r.code, r.message) for r in exc.recipients})
        except aiosmtplib.SMTPResponseException as exc:
            self._idle.append(smtp)
            raise classify(exc) from exc
        except aiosmtplib.SMTPServerDisconnected as exc:
            smtp.close()
            if reused:
                raise _StaleConnection from exc
            raise classify(exc) from exc
        except Exception as exc:
            smtp.close()
            raise classify(exc) from exc
        self._idle.append(smtp)
        return SendResult(reply, {rcpt: Reply(r.code, r.message) for rcpt, r in refused.items()})

    async def _checkout(self) -> tuple[aiosmtplib.SMTP, bool]:
        while self._idle:
            smtp = self._idle.pop()
            if smtp.is_connected:
                return smtp, True
        return await self._connect_or_raise(), False

    async def _connect_or_raise(self) -> aiosmtplib.SMTP:
        try:
            return await self._connect()
        except Exception as exc:
            raise classify(exc) from exc

    async def _connect(self) -> aiosmtplib.SMTP:
        settings = self._settings
        smtp = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            timeout=settings.timeout_seconds,
            use_tls=settings.security is SmtpSecurity.TLS,
            start_tls=settings.security is SmtpSecurity.STARTTLS,
            tls_context=self._tls_context if settings.security is not SmtpSecurity.NONE else None,
        )
        await smtp.connect()
        self.connections_opened += 1
        return smtp

    async def probe(self) -> None:
        """Open a new connection (greeting, EHLO, TLS, login) and keep it; raises a
        `DeliveryError` if the relay is still unavailable."""
        async with self._slots:
            self._idle.append(await self._connect_or_raise())

    async def close(self) -> None:
        """Quit every idle connection."""
        idle, self._idle = self._idle, []
        for smtp in idle:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()


class _StaleConnection(Exception):
    """A reused connection turned out to be closed by the relay."""
