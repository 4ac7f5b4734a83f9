"""Look up what happened to one email: its BullMQ state, attempts and the relay's answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bullmq import Job, Queue

from postbox.queue.contract import EmailStatus, status_from_state


@dataclass(frozen=True)
class EmailView:
    """The status of one email as `GET /v1/emails/{id}` shows it."""

    id: str
    status: EmailStatus
    attempts: int
    message_id: str | None
    summary: dict[str, Any]
    accepted_at: str | None
    finished_at: str | None
    last_error: str | None
    result: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """The JSON body of the status endpoint."""
        return {
            "id": self.id,
            "status": str(self.status),
            "attempts": self.attempts,
            "message_id": self.message_id,
            **self.summary,
            "accepted_at": self.accepted_at,
            "finished_at": self.finished_at,
            "last_error": self.last_error,
            "result": self.result,
        }


async def lookup_email(queue: Queue, job_id: str) -> EmailView | None:
    """The view of job `job_id`, or None when no such job exists (any more)."""
    job = await Job.fromId(queue, job_id)
    if job is None:
        return None
    state = await queue.getJobState(job_id)
    status = status_from_state(state, job.attemptsMade)
    if status is None:
        return None
    data: dict[str, Any] = job.data or {}
    result = job.returnvalue if isinstance(job.returnvalue, dict) else None
    return EmailView(
        id=job_id,
        status=status,
        attempts=job.attemptsMade,
        message_id=data.get("message_id"),
        summary=dict(data.get("summary") or {}),
        accepted_at=data.get("accepted_at"),
        finished_at=_iso(job.finishedOn),
        last_error=job.failedReason,
        result=result,
    )


def _iso(timestamp_ms: int | None) -> str | None:
    if not timestamp_ms:
        return None
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat()
