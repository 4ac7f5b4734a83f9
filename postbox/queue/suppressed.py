"""Emails that went to nobody because every recipient is on the suppression list.

Such an email is accepted (`202`, status `suppressed`) but never sent: at intake it is not
queued at all; in the worker (an address suppressed after acceptance) its job completes
without a transaction. Either way a small record (`postbox:<queue>:suppressed-email:<id>`,
kept for the dedup window) tells `GET /v1/emails/{id}` what happened, and the same call
writes its `email.suppressed` event (postbox/queue/events.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as redis

from postbox.queue._engine.script_call import ScriptCall
from postbox.queue.contract import EmailJobData
from postbox.queue.events import EMIT_EVENT_LUA, SUPPRESSED, email_event
from postbox.queue.keys import PostboxKeys

# KEYS: the record, the event stream, its consumers. ARGV: ttl, record, then the event
# (type, email id, sender domain, data). A record already there (a retried request) is
# kept, and its event not written again.
_RECORD = (
    EMIT_EVENT_LUA
    + """
if redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1], 'NX') then
  emit_event(KEYS[2], KEYS[3], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
end
"""
)

# What a job's completion carries to write the record (workers never see the engine).
RecordWrite = ScriptCall


@dataclass(frozen=True)
class SuppressedEmail:
    """What an email's record keeps: the recipients suppressed, and when."""

    email_id: str
    data: EmailJobData
    suppressed: list[str]


class SuppressedRecords:
    """Writes and reads the records of emails sent to nobody."""

    def __init__(self, client: redis.Redis, queue_name: str, ttl_seconds: int) -> None:
        self._client = client
        self._keys = PostboxKeys(queue_name)
        self._ttl = ttl_seconds
        self._script = client.register_script(_RECORD)

    def record_call(self, email: SuppressedEmail, attempt: int) -> ScriptCall:
        """The write of one record and its event, to run now or with a job's completion."""
        record = {
            "suppressed": email.suppressed,
            "at": datetime.now(UTC).isoformat(),
            "summary": email.data["summary"],
            "message_id": email.data["message_id"],
            "accepted_at": email.data["accepted_at"],
        }
        event = email_event(SUPPRESSED, email.data, email.email_id, attempt)
        keys = self._keys
        return ScriptCall(
            self._script,
            [keys.suppressed_email(email.email_id), keys.events(), keys.event_consumers()],
            [self._ttl, json.dumps(record, separators=(",", ":")), *event.args()],
        )

    async def record_many(self, emails: Sequence[SuppressedEmail]) -> None:
        """Write the records of emails suppressed at intake, in one round trip."""
        async with self._client.pipeline(transaction=False) as pipe:
            for email in emails:
                call = self.record_call(email, 0)
                await call.script(keys=call.keys, args=call.args, client=pipe)
            await pipe.execute()


async def load_record(client: redis.Redis, queue_name: str, email_id: str) -> dict[str, Any] | None:
    """The record of an email sent to nobody, or None."""
    value = await client.get(PostboxKeys(queue_name).suppressed_email(email_id))
    return cast(dict[str, Any], json.loads(value)) if value else None
