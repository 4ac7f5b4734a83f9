"""A pool of reused aiosmtplib connections to the relay, the only user of aiosmtplib (with
`smtp_pipelining`, which it calls).

At most `pool_size` connections are open; a job waits for a free one. A connection that
failed at the transport level is closed and replaced by a new one on next use; a negative
SMTP reply leaves it usable (the envelope is reset). A relay whose EHLO offers PIPELINING
gets each message in two round trips (`send_transaction`).

A reused connection found closed is replaced and the message sent on the new one at once,
but only if the loss came before the message's content was written: after that the relay
may have committed it, and the send fails with `OutcomeUnknown` (retried on the backoff
schedule, never at once).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiosmtplib

from postbox.config import SmtpSecurity, SmtpSettings
from postbox.errors import OutcomeUnknown, StaleConnection
from postbox.workers.failures import classify
from postbox.workers.metrics import RelayMetrics
from postbox.workers.smtp_pipelining import ContentUnanswered, send_transaction

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

    def __init__(self, settings: SmtpSettings, metrics: RelayMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        metrics.pool_size.inc(settings.pool_size)  # each relay has a pool
        # Connections closed after a failure and not yet replaced: the next connects are
        # counted as reconnects.
        self._lost = 0
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._idle: list[aiosmtplib.SMTP] = []
        # Verifies the certificate and host name; SMTP_CA_FILE replaces the system CAs.
        self._tls_context = ssl.create_default_context(cafile=settings.ca_file)
        self.connections_opened = 0

    async def send(
        self,
        sender: str,
        recipients: list[str],
        message: str,
        ready: Callable[[], Awaitable[None]] | None = None,
        mail_options: Sequence[str] = (),
    ) -> SendResult:
        """Deliver one message; raises a `DeliveryError` saying whether to retry.

        `ready` runs once a connection is in hand, just before the transaction: a rate limit
        checked there counts sends when they happen, not when they start waiting.
        `mail_options` go on the MAIL command (`SMTPUTF8`: the relay must offer it).
        """
        async with self._slots:
            smtp, reused = await self._checkout()
            if ready is not None:
                try:
                    await ready()
                except BaseException:
                    self._idle.append(smtp)
                    raise
            started = time.perf_counter()
            try:
                return await self._send_on(
                    smtp, reused, sender, recipients, message, mail_options=mail_options
                )
            except StaleConnection:
                # The relay closed this idle connection before the message was written.
                smtp = await self._connect_or_raise()
                return await self._send_on(
                    smtp, False, sender, recipients, message, mail_options=mail_options
                )
            finally:
                self._metrics.send_seconds.observe(time.perf_counter() - started)

    async def _send_on(
        self,
        smtp: aiosmtplib.SMTP,
        reused: bool,
        sender: str,
        recipients: list[str],
        message: str,
        *,
        mail_options: Sequence[str] = (),
    ) -> SendResult:
        # aiosmtplib sends a str message as ASCII; an SMTPUTF8 message has UTF-8 headers.
        wire = message.encode("utf-8") if mail_options else message
        try:
            refused, reply = await send_transaction(smtp, sender, recipients, wire, mail_options)
        except ContentUnanswered as exc:
            self._discard(smtp)
            raise OutcomeUnknown(f"Outcome unknown: {exc}") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._idle.append(smtp)
            for refusal in exc.recipients:
                self._metrics.reply(refusal.code)
            return SendResult(None, {r.recipient: Reply(r.code, r.message) for r in exc.recipients})
        except aiosmtplib.SMTPResponseException as exc:
            self._idle.append(smtp)
            self._metrics.reply(exc.code)
            raise classify(exc) from exc
        except aiosmtplib.SMTPServerDisconnected as exc:
            self._discard(smtp)
            if reused:
                raise StaleConnection from exc
            raise classify(exc) from exc
        except Exception as exc:
            self._discard(smtp)
            raise classify(exc) from exc
        self._idle.append(smtp)
        self._metrics.reply(250)  # aiosmtplib raises for anything else to DATA
        for answer in refused.values():
            self._metrics.reply(answer.code)
        return SendResult(reply, {rcpt: Reply(r.code, r.message) for rcpt, r in refused.items()})

    async def _checkout(self) -> tuple[aiosmtplib.SMTP, bool]:
        while self._idle:
            smtp = self._idle.pop()
            if smtp.is_connected:
                return smtp, True
            self._discard(smtp)
        return await self._connect_or_raise(), False

    async def _connect_or_raise(self) -> aiosmtplib.SMTP:
        try:
            smtp = await self._connect()
        except Exception as exc:
            raise classify(exc) from exc
        self._metrics.connections_open.inc()
        if self._lost:
            self._lost -= 1
            self._metrics.reconnects.inc()
        return smtp

    def _discard(self, smtp: aiosmtplib.SMTP) -> None:
        """Close a connection that failed or that the relay closed."""
        smtp.close()
        self._lost += 1
        self._metrics.connections_open.dec()

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
        """Open a new connection (greeting, EHLO, TLS, login) and give it to the pool;
        raises a `DeliveryError` if the relay is still unavailable.

        The probe takes no slot: during a stall every slot is held by a send waiting for
        its timeout, and a probe queued behind them would not run for minutes. So one
        connection more than `pool_size` may be open while a probe runs; a probe's
        connection that finds the pool full is closed. EHLO is part of the probe because
        a stalled relay may still greet.
        """
        smtp = await self._connect_or_raise()
        try:
            if smtp.is_ehlo_or_helo_needed:
                await smtp.ehlo()
        except Exception as exc:
            self._discard(smtp)
            raise classify(exc) from exc
        if len(self._idle) < self._settings.pool_size:
            self._idle.append(smtp)
            return
        await self._quit([smtp])

    async def close(self) -> None:
        """Quit every idle connection."""
        idle, self._idle = self._idle, []
        await self._quit(idle)

    async def _quit(self, connections: list[aiosmtplib.SMTP]) -> None:
        for smtp in connections:
            self._metrics.connections_open.dec()
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()
