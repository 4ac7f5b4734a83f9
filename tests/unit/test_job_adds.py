"""The add commands JobAdds queues are the ones bullmq's own addJob would send."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
import redis.asyncio as redis
from bullmq import Job, Queue

from postbox.queue._engine.job_adds import JobAdds
from postbox.queue.contract import JOB_NAME, default_job_options

DATA = {"v": 1, "message": "Subject: caf\u00e9\r\n\r\nhello", "recipients": ["ann@example.org"]}


def _commands(delay_ms: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(ours, bullmq's) EVALSHA of one add, queued on pipelines that are never sent."""

    async def build() -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        client = redis.Redis()  # connects only when used: never here
        queue = Queue(
            "email", {"connection": client, "defaultJobOptions": default_job_options(5, 200, 100)}
        )
        ours, theirs = client.pipeline(transaction=True), client.pipeline(transaction=True)
        options: dict[str, Any] = {**queue.jobsOpts, "jobId": "em_1"}
        if delay_ms:
            options["delay"] = delay_ms
        job = Job(queue, JOB_NAME, DATA, options, "em_1")
        JobAdds(queue, JOB_NAME).stage(ours, "em_1", DATA, job.timestamp, delay_ms)
        await queue.backend.scripts.addJob(job, theirs)
        await client.aclose()
        return ours.command_stack[0][0], theirs.command_stack[0][0]

    return asyncio.run(build())


def _decoded(command: tuple[Any, ...]) -> tuple[Any, ...]:
    """An EVALSHA with its packed arguments unpacked (the options' key order aside)."""
    *head, packed_args, data, packed_options, last = command
    return (
        *head,
        msgpack.unpackb(packed_args),
        json.loads(data),
        msgpack.unpackb(packed_options),
        last,
    )


@pytest.mark.parametrize("delay_ms", [0, 60_000], ids=["standard", "delayed"])
def test_the_add_is_bullmqs(delay_ms: int) -> None:
    ours, theirs = _commands(delay_ms)
    assert _decoded(ours) == _decoded(theirs)


def test_the_script_is_listed_for_loading() -> None:
    async def listed() -> int:
        client = redis.Redis()
        queue = Queue("email", {"connection": client})
        pipe = client.pipeline(transaction=True)
        JobAdds(queue, JOB_NAME).stage(pipe, "em_1", DATA, 1, 0)
        await client.aclose()
        return len(pipe.scripts)

    assert asyncio.run(listed()) == 1


def test_options_bullmq_sends_to_other_scripts_are_refused() -> None:
    async def build() -> None:
        client = redis.Redis()
        try:
            JobAdds(
                Queue("email", {"connection": client, "defaultJobOptions": {"priority": 1}}),
                JOB_NAME,
            )
        finally:
            await client.aclose()

    with pytest.raises(ValueError, match="priority"):
        asyncio.run(build())
