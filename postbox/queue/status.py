"""Look up what happened to one email: its BullMQ state, every attempt, the relay's answers.

A sent email's job is removed at completion; within the dedup window its compact record
(records.py) still answers: status, attempts, when it finished, the relay's reply code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from bullmq import Job, Queue

from postbox.queue.bounce_records import load_reports
from postbox.queue.contract import EmailStatus, split_failure_reason, status_from_state
from postbox.queue.journal import JournalEntry, parse_entry
from postbox.queue.keys import PostboxKeys
from postbox.queue.records import canceled_at, parse_record
from postbox.queue.suppressed import load_record


@dataclass(frozen=True)
class EmailView:
    """The status of one email as `GET /v1/emails/{id}` shows it."""

    id: str
    status: EmailStatus
    attempts: int
    data: dict[str, Any]
    finished_at: str | None
    failed_reason: str | None
    result: dict[str, Any] | None
    history: list[dict[str, Any]]
    journal: JournalEntry
    # Per recipient, the latest bounce or complaint report (bounce_records.py).
    reports: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON body of the status endpoint."""
        body: dict[str, Any] = {
            "id": self.id,
            "status": str(self.status),
            "attempts": self.attempts,
            "message_id": self.data.get("message_id"),
            **(self.data.get("summary") or {}),
            "accepted_at": self.data.get("accepted_at"),
            "finished_at": self.finished_at,
            "last_error": None,
            "error_class": None,
            "delivery": self._delivery(),
            "history": self.history,
        }
        if self.failed_reason:
            body["error_class"], body["last_error"] = split_failure_reason(self.failed_reason)
        return body

    def _delivery(self) -> dict[str, Any]:
        found = self._replies()
        if self.reports:
            found["bounced"] = self.reports
        return found

    def _replies(self) -> dict[str, Any]:
        """Per recipient, what the relay answered and which relay accepted it; from the
        result once the job completed, else from the journal (which may already hold a 250
        for a job still running, or one part of a split email that failed later)."""
        if self.result is not None:
            relay, accepted = self.result.get("relay"), self.result.get("accepted", [])
            # The worker lists each recipient's relay only when not all went through `relay`.
            relays = self.result.get("relays") or (dict.fromkeys(accepted, relay) if relay else {})
            found = {
                "smtp_reply": self.result.get("smtp_reply"),
                "relay": relay,
                "accepted": accepted,
                "refused": self.result.get("refused", {}),
                "relays": relays,
            }
            if self.result.get("suppressed"):
                found["suppressed"] = self.result["suppressed"]
            return found
        return {
            "smtp_reply": next(iter(self.journal.accepted.values()), None),
            "relay": self.journal.only_relay,
            "accepted": sorted(self.journal.accepted),
            "refused": self.journal.rejected,
            "relays": self.journal.relays,
        }


async def lookup_email(queue: Queue, job_id: str) -> EmailView | None:
    """The view of job `job_id`, or None when no such job exists (any more).

    The state is read before the job: a job that finishes in between then shows its
    previous state with final counts, never `sent` with the attempt count of the run before.
    """
    state = await queue.getJobState(job_id)
    job = await Job.fromId(queue, job_id)
    if job is None:
        return await _from_record(queue, job_id) or await _from_suppressed(queue, job_id)
    async with queue.client.pipeline(transaction=False) as pipe:
        keys = PostboxKeys(queue.name)
        pipe.lrange(keys.attempt_log(job_id), 0, -1)
        pipe.hgetall(keys.journal(job_id))
        pipe.hgetall(keys.bounces(job_id))
        logs, journal, reports = await pipe.execute()
    data: dict[str, Any] = job.data or {}
    status = status_from_state(state, job.attemptsMade, _ahead(data))
    if status is None:
        return None
    result = job.returnvalue if isinstance(job.returnvalue, dict) else None
    if status is EmailStatus.SENT and result and result.get("suppressed_all"):
        status = EmailStatus.SUPPRESSED
    return EmailView(
        id=job_id,
        status=status,
        attempts=job.attemptsMade,
        data=data,
        finished_at=_iso(job.finishedOn),
        failed_reason=job.failedReason,
        result=result,
        history=[json.loads(line) for line in logs],
        journal=parse_entry(cast(dict[str, str], journal)),
        reports={r: json.loads(v) for r, v in cast(dict[str, str], reports).items()},
    )


async def _from_record(queue: Queue, job_id: str) -> EmailView | None:
    """The view of a sent email whose job is gone: what its compact record keeps."""
    found = await queue.client.get(PostboxKeys(queue.name).idempotency(job_id))
    canceled = canceled_at(found)
    if canceled is not None:
        return _canceled_view(job_id, canceled)
    record = parse_record(found)
    if record is None:
        return None
    reports = await load_reports(queue.client, queue.name, job_id)
    return EmailView(
        id=job_id,
        status=record.status,
        attempts=record.attempts,
        data={},
        finished_at=datetime.fromtimestamp(record.finished_s, UTC).isoformat(),
        failed_reason=None,
        result={
            "smtp_reply": record.reply_code or None,
            "relay": record.relay,
            "accepted": [],
            "refused": {},
        },
        history=[],
        journal=parse_entry({}),
        reports=reports,
    )


async def _from_suppressed(queue: Queue, job_id: str) -> EmailView | None:
    """The view of an email sent to nobody (every recipient suppressed)."""
    record = await load_record(queue.client, queue.name, job_id)
    if record is None:
        return None
    delivery: dict[str, Any] = {"smtp_reply": None, "accepted": [], "refused": {}}
    return EmailView(
        id=job_id,
        status=EmailStatus.SUPPRESSED,
        attempts=0,
        data={k: record[k] for k in ("summary", "message_id", "accepted_at")},
        finished_at=record["at"],
        failed_reason=None,
        result={**delivery, "suppressed": record["suppressed"]},
        history=[],
        journal=parse_entry({}),
    )


def _canceled_view(job_id: str, canceled_s: int) -> EmailView:
    """A canceled email: its job is gone, its record says when."""
    return EmailView(
        id=job_id,
        status=EmailStatus.CANCELED,
        attempts=0,
        data={},
        finished_at=datetime.fromtimestamp(canceled_s, UTC).isoformat(),
        failed_reason=None,
        result=None,
        history=[],
        journal=parse_entry({}),
    )


def _ahead(data: dict[str, Any]) -> bool:
    send_at = (data.get("summary") or {}).get("send_at")
    return isinstance(send_at, str) and datetime.fromisoformat(send_at) > datetime.now(UTC)


def _iso(timestamp_ms: int | None) -> str | None:
    if not timestamp_ms:
        return None
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat()
