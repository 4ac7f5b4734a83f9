"""Private: the parts of Postbox that lean on bullmq's and redis-py's internals.

Only modules of `postbox.queue` import this package (an import-linter contract in
pyproject.toml holds that); everything else sees the bullmq-free interfaces of
`postbox.queue.consumer` and `postbox.queue.gateway`.

Written against bullmq 3.4.4 (its Python client, whose Lua scripts and `bull:<queue>:*` keys
are shared with Node BullMQ) and redis-py 8.1: `requirements.txt` pins both, and a new
release of either must be checked against what is used here.

- `slot_worker.py`: a `bullmq.Worker` subclass with its own run loop. It calls ~25 of the
  Worker's attributes and methods (`getNextJob`, `nextJobFromJobData`, `lockManager`,
  `scripts.moveToCompletedArgs`, `retryIfFailed`, ...), none of them documented API.
- `completions.py`: completing jobs in shared pipelines, by the SHA of bullmq's
  `moveToFinished` script (`scripts.commands`).
- `script_call.py`: one Lua script call as a value, to ride in another call's pipeline.
- `job_adds.py`: intake's adds, by bullmq's `addStandardJob`/`addDelayedJob` scripts
  (`scripts.commands`, `keys`, `getKeys`, `encodeOpts`) with `Scripts.addJobArgs`' layout.
- `hiredis_packing.py`: redis-py's asyncio connections made to pack commands with hiredis.

What was measured of bullmq 3.4.4 with redis-py 8, and how Postbox works around it:
- redis-py 8's default 5 s `socket_timeout` races the worker's 5 s blocking fetch, and the
  reconnect backs off for up to 20 s: a job added to an idle queue was picked up 14 s late.
  The worker's client has no read timeout (`postbox.queue.connection.worker_client`).
- Sub-second block timeouts round up to whole seconds unless the blocking connection's Redis
  version is read first: `EmailConsumer.start` primes both connections.
- A Queue or Worker built on bullmq's own connection serializes every command behind one
  lock; a shared `BlockingConnectionPool` doubled both add and no-op worker throughput.
- A custom job id is added once while the job exists, completed or failed included; after
  it is removed it can run again. So the dedup window is the retention of finished jobs.
- `UnrecoverableError` fails a job at once; `DelayedError` after `job.moveToDelayed`
  reschedules it without spending an attempt; `job.retry("failed", {"resetAttemptsMade":
  True})` gives a dead letter a full budget again.
- BullMQ counts the current start in `attemptsStarted` (`ats`): a first run sees 1.
- `moveToFinished` with fetchNext works from Python if the caller processes the job it
  returns (Python's own Worker never asks for one).
- With redis-py 8, `Redis(connection_pool=..., retry=...)` ignores `retry`: retries live on
  the pool's connections.
"""
