"""`postbox bounces`: an SMTP listener (aiosmtpd) for the mail sent to BOUNCE_DOMAIN.

It accepts recipients of BOUNCE_DOMAIN only (no relaying), a few per message, and messages up
to BOUNCE_MAX_MESSAGE_BYTES (aiosmtpd answers 552 past that, before anything is parsed).
Whatever a message holds, the answer is 250 once it was read (a report acted on, or mail
that is not one, ignored and logged): refusing junk would only make its sender bounce the
refusal. Only Redis being unreachable answers 451, so the reporting MTA tries again later.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from redis.exceptions import RedisError

from postbox.bounces.intake import BounceIntake
from postbox.bounces.verp import VerpSigner
from postbox.config import Settings
from postbox.queue.connection import api_client

logger = logging.getLogger(__name__)
MAX_RECIPIENTS = 10
# flufl.bounce logs a traceback for every message one of its detectors cannot read; junk
# is expected here (and said in one line by `take`), so only its critical lines show.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


class BounceHandler:
    """aiosmtpd handler: BOUNCE_DOMAIN's recipients only, each message to the intake."""

    def __init__(self, domain: str, intake: BounceIntake) -> None:
        self._domain = domain
        self._intake = intake

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        """Take only BOUNCE_DOMAIN's addresses, and only a few per message."""
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if domain != self._domain:
            return "550 5.7.1 Relaying denied: this server takes bounces only"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Act on the message; nothing it holds can make an error escape."""
        raw = envelope.original_content or b""
        try:
            outcome = await self._intake.take(list(envelope.rcpt_tos), raw)
        except (RedisError, OSError) as exc:
            logger.warning("Bounce not processed, Redis unreachable: %s", exc)
            return "451 4.3.0 Temporary failure, try again later"
        except Exception:
            logger.exception("Bounce not processed: unexpected error (message ignored)")
            return "250 OK"
        logger.info("Report from %s: %s", envelope.mail_from, outcome)
        return "250 OK"


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Listen until `stop` is set."""
    domain, key = settings.bounces.domain, settings.webhooks.encryption_key
    if domain is None or key is None:
        raise RuntimeError("BOUNCE_DOMAIN (and ENCRYPTION_KEY) must be set")
    client = api_client(settings.redis)
    handler = BounceHandler(domain, BounceIntake(client, settings, VerpSigner(key, domain)))
    limit = settings.bounces.max_message_bytes

    def protocol() -> SMTP:
        return SMTP(handler, data_size_limit=limit, hostname=domain, ident="Postbox bounces")

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        protocol, settings.bounces.smtp_host, settings.bounces.smtp_port
    )
    logger.info(
        "Bounce listener for %s on %s:%d",
        domain,
        settings.bounces.smtp_host,
        settings.bounces.smtp_port,
    )
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        await client.aclose(close_connection_pool=True)
        logger.info("Bounce listener stopped")


def run_listener(settings: Settings) -> None:
    """Run the listener until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, stop)

    asyncio.run(main())
