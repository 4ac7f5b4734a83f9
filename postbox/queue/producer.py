"""Turn validated emails into BullMQ jobs: render once, claim the id, enqueue.

Deduplication has two layers. A Redis claim per job id (`SET NX GET`, kept for the dedup
window) holds the payload's fingerprint, and once the email is sent its compact record
(records.py): a claim that finds another fingerprint is a conflict. BullMQ itself never adds
a job id twice while the job exists. Duplicates not yet sent are still passed to `add`: if
an API process died between claiming and adding, the retry adds the job (a no-op when it
exists), so a claimed email is never lost. A sent duplicate is not: its job is gone.

An add that Redis refuses (out of memory, mostly: the claims are small and fit when the job
does not) releases the claims this call made for jobs that do not exist, so the client's
retry is a new email again, not a "duplicate" of one that was never queued.

The adds and their `email.queued` (or `email.scheduled`) events go in one transaction
(postbox/queue/events.py): an event for each job the add created, none for a job that
existed already, and none at all while no consumer reads the stream (the claim call says).

With REDIS_ACK_REPLICAS the add's transaction then waits for that many replicas (one WAIT,
on its connection: _engine/replication.py), which covers the claims made before it; short
of them, the call raises `NotReplicated` (503): the jobs stay, and the client's retry with
the same key finds them and waits again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis.asyncio as redis
from bullmq import Queue
from redis.exceptions import NoScriptError, RedisError

from postbox.config import ReplicaAck
from postbox.errors import NotReplicated
from postbox.message.mime import (
    envelope_recipients,
    format_mailbox,
    message_id_for,
    needs_smtputf8,
    render_message,
)
from postbox.message.types import EmailRequest
from postbox.queue import events
from postbox.queue._engine.job_adds import JobAdds
from postbox.queue._engine.replication import ReplicatedTransaction
from postbox.queue.contract import JOB_DATA_VERSION, JOB_NAME, EmailJobData
from postbox.queue.job_ids import fingerprint, job_id_for
from postbox.queue.keys import PostboxKeys
from postbox.queue.records import canceled_at, claim_value, parse_record, same_payload
from postbox.queue.screening import IntakeScreen, Screened, unscreened
from postbox.queue.suppressed import SuppressedEmail, SuppressedRecords

# One `SET key fingerprint EX ttl NX GET` per email, in one call: a pipeline of SETs cost the
# API a command to encode and a reply to await (with its timeout) per email, ~10 % of intake.
# Each reply is the value found (a claim, or a sent record), or nil when the claim is new;
# the last says whether the event stream has a consumer (its KEY comes last).
CLAIM_SCRIPT = """
local found = {}
for i = 1, #KEYS - 1 do
  found[i] = redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'EX', ARGV[2 * i], 'NX', 'GET')
end
found[#KEYS] = redis.call('EXISTS', KEYS[#KEYS])
return found
"""

# Runs right after the adds, in their transaction: an event for each job its add created,
# which BullMQ stamped with the timestamp this add gave it (a job that existed keeps its
# own). KEYS: the stream, its consumers, then the job hashes. ARGV: per job its timestamp,
# event type, id, sender domain and event data.
QUEUED_SCRIPT = (
    events.EMIT_EVENT_LUA
    + """
for i = 3, #KEYS do
  local a = (i - 3) * 5
  if redis.call('HGET', KEYS[i], 'timestamp') == ARGV[a + 1] then
    emit_event(KEYS[1], KEYS[2], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
  end
end
"""
)

# Compare-and-delete of the claims an add made, skipping any whose job exists (a bulk add's
# transaction can add some jobs and be refused for others). KEYS are (claim, job hash) pairs,
# ARGV the fingerprints each claim was made with: a claim someone else has since made stays.
RELEASE_SCRIPT = """
local released = 0
for i, claimed in ipairs(ARGV) do
  local claim = KEYS[2 * i - 1]
  if redis.call('EXISTS', KEYS[2 * i]) == 0 and redis.call('GET', claim) == claimed then
    redis.call('DEL', claim)
    released = released + 1
  end
end
return released
"""


class Outcome(StrEnum):
    """What enqueueing one email did."""

    CREATED = "created"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class PreparedEmail:
    """An email ready to enqueue: its id, payload fingerprint, job data and delay."""

    job_id: str
    fingerprint: str
    data: EmailJobData
    delay_ms: int
    # The API key's id, for the `email.queued` event (the history); not in the job data.
    key_id: str | None = None


@dataclass(frozen=True)
class EnqueueResult:
    """The job id an email got and whether it was new."""

    job_id: str
    outcome: Outcome


@dataclass(frozen=True)
class Enqueued:
    """Per email asked, in order: what enqueueing it did (None: the screen left it no
    recipient, so it was not queued), and the recipients the screen left out."""

    results: list[EnqueueResult | None]
    left_out: list[list[str]]


def prepare_email(
    request: EmailRequest,
    idempotency_key: str | None,
    now: datetime | None = None,
    key_id: str | None = None,
) -> PreparedEmail:
    """Compute the id and render the message of `request` (pure: no I/O)."""
    now = now or datetime.now(UTC)
    request_fingerprint = fingerprint(request)
    job_id = job_id_for(request_fingerprint, idempotency_key)
    message_id = message_id_for(job_id, request["sender"])
    data: EmailJobData = {
        "v": JOB_DATA_VERSION,
        "envelope_from": request["sender"]["email"],
        "recipients": envelope_recipients(request),
        "message": render_message(request, message_id, now),
        "message_id": message_id,
        "accepted_at": now.isoformat(),
        "summary": {
            "sender": format_mailbox(request["sender"]),
            "to": [box["email"] for box in request["to"]],
            "cc": [box["email"] for box in request["cc"]],
            "subject": request["subject"],
            "tags": request["tags"],
            "send_at": request["send_at"],
        },
    }
    if needs_smtputf8(request):
        # The message has UTF-8 headers; the worker must send it with SMTPUTF8.
        data["smtputf8"] = True
    delay_ms = _delay_ms(request["send_at"], now)
    return PreparedEmail(job_id, request_fingerprint, data, delay_ms, key_id)


def _delay_ms(send_at: str | None, now: datetime) -> int:
    if send_at is None:
        return 0
    return max(0, int((datetime.fromisoformat(send_at) - now).total_seconds() * 1000))


class EmailProducer:
    """Enqueues prepared emails into one BullMQ queue, deduplicating by job id."""

    def __init__(
        self,
        queue: Queue,
        client: redis.Redis,
        dedup_window_seconds: int,
        ack: ReplicaAck | None = None,
    ) -> None:
        self._queue = queue
        self._client = client
        self._keys = PostboxKeys(queue.name)
        self._window = dedup_window_seconds
        self._ack = ack or ReplicaAck()
        self._adds = JobAdds(queue, JOB_NAME)
        self._claim_script = client.register_script(CLAIM_SCRIPT)
        self._release_script = client.register_script(RELEASE_SCRIPT)
        self._queued_script = client.register_script(QUEUED_SCRIPT)

    async def enqueue(
        self, emails: Sequence[PreparedEmail], screen: IntakeScreen | None = None
    ) -> Enqueued:
        """Screen the emails and claim their ids (one round trip), then enqueue every email
        the screen left a recipient that is not a conflict; those it left none are set
        aside (their claims released, their records written)."""
        found, with_events, read = await self._claim(emails, screen)
        outcomes = [_outcome(email, value) for email, value in zip(emails, found, strict=True)]
        try:
            screened = await self._screened(emails, screen, read)
            # Before the add, so that its wait for replicas covers the records too.
            await self._set_aside(emails, outcomes, screened)
            to_add = {
                email.job_id: email
                for email, outcome, value in zip(screened.kept, outcomes, found, strict=True)
                if email is not None and outcome is not Outcome.CONFLICT and not _finished(value)
            }
            acked = await self._add(list(to_add.values()), with_events)
        except Exception:
            await self._release(emails, outcomes)
            raise
        if to_add and acked < self._ack.replicas:
            raise NotReplicated(
                f"{acked} of {self._ack.replicas} replicas confirmed the emails within"
                f" {self._ack.timeout_ms} ms"
            )
        results = [
            None if kept is None else EnqueueResult(email.job_id, outcome)
            for email, kept, outcome in zip(emails, screened.kept, outcomes, strict=True)
        ]
        return Enqueued(results, screened.left_out)

    async def _claim(
        self, emails: Sequence[PreparedEmail], screen: IntakeScreen | None
    ) -> tuple[list[str | None], bool, list[Any]]:
        """Claim every email's id, with the screen's reads in the same round trip; per
        email, the value it already had (None: claimed now), whether events are being
        written, and the reads' replies (an exception in place of a failed one)."""
        keys = [self._keys.idempotency(email.job_id) for email in emails]
        keys.append(self._keys.event_consumers())
        args: list[str | int] = []
        for email in emails:
            args += (claim_value(email.fingerprint), self._window + email.delay_ms // 1000)
        try:
            return await self._claim_round(keys, args, screen, check_scripts=False)
        except NoScriptError:
            # Redis lost the claim's script (a restart, SCRIPT FLUSH): nothing was claimed.
            return await self._claim_round(keys, args, screen, check_scripts=True)

    async def _claim_round(
        self,
        keys: list[str],
        args: list[str | int],
        screen: IntakeScreen | None,
        check_scripts: bool,
    ) -> tuple[list[str | None], bool, list[Any]]:
        async with self._client.pipeline(transaction=False) as pipe:
            if screen is not None:
                await screen.stage(self._client, pipe)
            await self._claim_script(keys=keys, args=args, client=pipe)
            if not check_scripts:
                pipe.scripts.clear()  # no SCRIPT EXISTS round trip first (see _transaction)
            *read, claimed = await pipe.execute(raise_on_error=False)
        if isinstance(claimed, Exception):
            raise claimed
        *found, consumers = claimed
        return found, bool(consumers), read

    async def _screened(
        self, emails: Sequence[PreparedEmail], screen: IntakeScreen | None, read: list[Any]
    ) -> Screened:
        """What the screen's reads leave of the emails. A read that failed beside claims
        that were made (its script not loaded, mostly) is made again alone, scripts
        loaded: the claims are not made twice."""
        if screen is None:
            return unscreened(emails)
        if any(isinstance(reply, Exception) for reply in read):
            async with self._client.pipeline(transaction=False) as pipe:
                await screen.stage(self._client, pipe)
                read = await pipe.execute()
        return screen.screened(read)

    async def _set_aside(
        self, emails: Sequence[PreparedEmail], outcomes: list[Outcome], screened: Screened
    ) -> None:
        """Release the claims of the emails sent to nobody, and write their records."""
        nobody = [
            (email, outcome, left_out)
            for email, outcome, kept, left_out in zip(
                emails, outcomes, screened.kept, screened.left_out, strict=True
            )
            if kept is None
        ]
        if not nobody:
            return
        await self._release([e for e, _, _ in nobody], [o for _, o, _ in nobody])
        records = [SuppressedEmail(e.job_id, e.data, left_out) for e, _, left_out in nobody]
        await SuppressedRecords(self._client, self._queue.name, self._window).record_many(records)

    async def _release(self, emails: Sequence[PreparedEmail], outcomes: list[Outcome]) -> None:
        """Undo the claims this call made (DEL is allowed at maxmemory); if Redis cannot be
        reached to do so, the claims stay, and the client's retry completes them by adding
        the job as before."""
        made = {e.job_id: e for e, o in zip(emails, outcomes, strict=True) if o is Outcome.CREATED}
        keys: list[str] = []
        for job_id in made:
            keys += (self._keys.idempotency(job_id), self._keys.bull(job_id))
        if made:
            with contextlib.suppress(RedisError, OSError):
                claims = [claim_value(e.fingerprint) for e in made.values()]
                await self._release_script(keys=keys, args=claims)

    async def _add(self, emails: list[PreparedEmail], with_events: bool) -> int:
        """Add the jobs (what bullmq's addBulk does) and their events, in one transaction;
        how many replicas then confirmed it (as many as asked when none were)."""
        if not emails:
            return self._ack.replicas
        timestamp = round(time.time() * 1000)  # each job's creation, as bullmq stamps it
        try:
            return await self._transaction(emails, timestamp, with_events, check_scripts=False)
        except NoScriptError:
            # Redis lost its scripts (a restart, SCRIPT FLUSH): some commands of the
            # transaction did not run. Again with the same jobs, scripts loaded first: an
            # add that ran is a no-op now, and its event goes out, its timestamp matching.
            return await self._transaction(emails, timestamp, with_events, check_scripts=True)

    async def _transaction(
        self, emails: list[PreparedEmail], timestamp: int, with_events: bool, check_scripts: bool
    ) -> int:
        mark = self._keys.replication_mark()
        async with ReplicatedTransaction(self._client, mark, self._ack) as pipe:
            for email in emails:
                self._adds.stage(pipe, email.job_id, email.data, timestamp, email.delay_ms)
            if with_events:
                await self._queue_events(pipe, emails, timestamp)
            if not check_scripts:
                # redis-py would send SCRIPT EXISTS for them first: one more round trip per
                # POST, ~1/4 of its Redis round trips (a NOSCRIPT reply is handled above).
                pipe.scripts.clear()
            await pipe.execute()
            return pipe.replicas_acked

    async def _queue_events(self, pipe: Any, emails: list[PreparedEmail], timestamp: int) -> None:
        keys = [self._keys.events(), self._keys.event_consumers()]
        args: list[str | int] = []
        for email in emails:
            kind = events.SCHEDULED if email.delay_ms else events.QUEUED
            summary = email.data["summary"]
            data = events.event_data(
                email.data,
                email.job_id,
                0,
                send_at=summary["send_at"],
                subject=summary["subject"],
                key_id=email.key_id,
            )
            keys.append(self._keys.bull(email.job_id))
            args += (timestamp, kind, email.job_id, events.sender_domain(email.data), data)
        await self._queued_script(keys=keys, args=args, client=pipe)


def _finished(found: str | None) -> bool:
    """True when the stored value says the email was sent or canceled: nothing to add."""
    return parse_record(found) is not None or canceled_at(found) is not None


def _outcome(email: PreparedEmail, found: str | None) -> Outcome:
    if found is None:
        return Outcome.CREATED
    return Outcome.DUPLICATE if same_payload(found, email.fingerprint) else Outcome.CONFLICT
