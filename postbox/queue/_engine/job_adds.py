"""bullmq's add scripts, queued on a pipeline with their arguments built here.

bullmq's `Scripts.addJob` takes a `Job` per email and builds its arguments from it each
time: the job data through the standard library's json, the options merged, normalised and
encoded. Intake adds jobs of one shape (the queue's default options, an id, at times a
delay), so the options are normalised once per queue here and only the id and delay added
per job, and the data is encoded with orjson (the same JSON, compact; non-ASCII as UTF-8
rather than `\\u` escapes, which every JSON reader takes). Measured on 2,000 rendered
receipts: `Job()` 4.5-5.7 µs and `addJobArgs` 22.6-25.4 µs per email, of which its
`json.dumps` 14.5-18.3 µs against orjson's 4.3-7.6 µs.

The arguments are those of `Scripts.addJobArgs`, `addStandardJob` and `addDelayedJob` in
bullmq 3.4.4 (the version requirements.txt pins); tests/unit/test_job_adds.py compares them
with what bullmq builds.
"""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]
import orjson
from bullmq import Job, Queue
from redis.asyncio.client import Pipeline

_STANDARD_KEYS = [
    "wait",
    "paused",
    "meta",
    "id",
    "completed",
    "delayed",
    "active",
    "events",
    "marker",
]
_DELAYED_KEYS = ["marker", "meta", "id", "delayed", "completed", "events"]


class JobAdds:
    """Queues the add of jobs named `name` into `queue` on a pipeline."""

    def __init__(self, queue: Queue, name: str) -> None:
        scripts = queue.backend.scripts
        self._name = name
        self._prefix = scripts.keys[""]
        # What `Job.__init__` makes of the queue's default options (attempts, delay and a
        # normalised backoff), without the per-job id and delay.
        self._options = Job(queue, name, None, dict(queue.jobsOpts)).opts
        # bullmq sends such jobs to other scripts, with other arguments.
        unsupported = {"priority", "parent", "deduplication", "repeat"} & set(self._options)
        if unsupported:
            raise ValueError(f"JobAdds cannot add jobs with {sorted(unsupported)}")
        self._encode = scripts.encodeOpts
        self._standard = scripts.commands["addStandardJob"]
        self._delayed = scripts.commands["addDelayedJob"]
        self._standard_keys = scripts.getKeys(_STANDARD_KEYS)
        self._delayed_keys = scripts.getKeys(_DELAYED_KEYS)

    def stage(self, pipe: Pipeline, job_id: str, data: Any, timestamp: int, delay_ms: int) -> None:
        """Queue on `pipe` the add of one job, created at `timestamp` (ms), due `delay_ms`
        later (0: now)."""
        options = {**self._options, "jobId": job_id, "delay": delay_ms}
        args = [
            msgpack.packb(
                [self._prefix, job_id, self._name, timestamp, None, None, None, None, None],
                use_bin_type=True,
            ),
            orjson.dumps(data),
            msgpack.packb(self._encode(options)),
            delay_ms if delay_ms else timestamp,
        ]
        script, keys = (
            (self._delayed, self._delayed_keys)
            if delay_ms
            else (self._standard, self._standard_keys)
        )
        # What redis-py's Script does in a pipeline, without its coroutine per call: the
        # script is listed for loading (used when the caller has Redis check for it first).
        pipe.scripts.add(script)
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
