"""Deliver one email job: hand its pre-rendered message to the relay, report the reply."""

from __future__ import annotations

import logging
import time
from typing import Any

from postbox.errors import DeliveryError
from postbox.queue.consumer import EmailJob
from postbox.workers.smtp_pool import SmtpPool

logger = logging.getLogger(__name__)


class EmailProcessor:
    """Sends each job's message through the SMTP pool."""

    def __init__(self, smtp_pool: SmtpPool, instance_id: str) -> None:
        self._pool = smtp_pool
        self._instance_id = instance_id

    async def process(self, job: EmailJob) -> dict[str, Any]:
        """Send `job`; the returned dict is stored as the job's result."""
        data = job.data
        started = time.perf_counter()
        try:
            result = await self._pool.send(
                data["envelope_from"], data["recipients"], data["message"]
            )
        except DeliveryError as exc:
            logger.warning(
                "Email %s attempt %d/%d failed: %s", job.id, job.attempt, job.max_attempts, exc
            )
            raise
        logger.debug(
            "Email %s sent on attempt %d in %.1f ms",
            job.id,
            job.attempt,
            (time.perf_counter() - started) * 1000,
        )
        return {
            "smtp_reply": result.reply,
            "accepted": [r for r in data["recipients"] if r not in result.refused],
            "refused": result.refused,
            "instance": self._instance_id,
        }
