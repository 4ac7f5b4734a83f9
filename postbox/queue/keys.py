"""Names of Postbox's own Redis keys, beside BullMQ's `bull:<queue>:*` keys."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PostboxKeys:
    """Key names for one queue."""

    queue_name: str

    def idempotency(self, job_id: str) -> str:
        """Holds the payload fingerprint of a job id for the dedup window."""
        return f"postbox:{self.queue_name}:idem:{job_id}"

    def journal(self, job_id: str) -> str:
        """Holds the relay's acceptance of a job's message, per recipient."""
        return f"postbox:{self.queue_name}:journal:{job_id}"
