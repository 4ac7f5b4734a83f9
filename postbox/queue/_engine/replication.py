"""Transactions that count as done only once replicas hold them (`REDIS_ACK_REPLICAS`).

Redis replicates asynchronously: a primary that dies right after answering EXEC can take
the write with it, and the replica promoted in its place never saw it. `WAIT n timeout`
blocks until `n` replicas acknowledged every write *this connection* made, so it must go
on the transaction's own connection, right after EXEC: redis-py's pipeline releases its
connection when `execute` returns, so `ReplicatedTransaction` sends the WAIT inside
`_execute_transaction` (redis-py 8.1's private hook, which holds the connection).

Each transaction also writes a short-lived mark. A transaction whose commands changed
nothing (a re-posted email whose job exists already) propagates nothing, and a WAIT after
it would answer at once for the connection's last write, long ago; the mark's write comes
after everything the primary ran before it, so once replicas have the mark they have that
too (the replication stream is one ordered log): the first post's job included.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import Pipeline

from postbox.config import ReplicaAck

logger = logging.getLogger(__name__)

# The mark only has to reach the replicas; then it may go.
MARK_TTL_MS = 60_000


class ReplicatedTransaction(Pipeline):
    """A MULTI/EXEC pipeline that then waits, on its connection, for `ack.replicas`.

    After `execute`, `replicas_acked` holds how many replicas acknowledged in time (fewer
    than asked when the wait timed out). Without replicas asked for, it is a plain
    transaction.
    """

    def __init__(self, client: redis.Redis, mark_key: str, ack: ReplicaAck) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, True, None)
        self._mark_key = mark_key
        self._ack = ack
        self.replicas_acked = 0

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        """The replies of the commands queued (the mark's left out), as `Pipeline` gives."""
        if not self._ack.replicas:
            return await super().execute(raise_on_error)
        self.set(self._mark_key, "1", px=MARK_TTL_MS)
        replies = await super().execute(raise_on_error)
        return replies[:-1]

    async def _execute_transaction(  # type: ignore[no-untyped-def]
        self, connection, commands, raise_on_error
    ) -> list[Any]:
        replies: list[Any] = await super()._execute_transaction(
            connection, commands, raise_on_error
        )
        if self._ack.replicas:
            await connection.send_command("WAIT", self._ack.replicas, self._ack.timeout_ms)
            self.replicas_acked = int(await connection.read_response())
        return replies


async def wait_for_replicas(client: redis.Redis, mark_key: str, ack: ReplicaAck) -> int:
    """Wait (up to the timeout) until `ack.replicas` hold everything the primary ran before
    this call; how many did."""
    async with ReplicatedTransaction(client, mark_key, ack) as pipe:
        await pipe.execute()
        return pipe.replicas_acked


async def until_replicated(
    client: redis.Redis, mark_key: str, ack: ReplicaAck, acked: int | None = None
) -> None:
    """Return once `ack.replicas` hold everything the primary ran before; `acked`: how many
    a WAIT already confirmed (None: none asked yet). Waits again for as long as they do not;
    a lost connection raises (the primary may be gone: the caller replays its writes)."""
    if not ack.replicas:
        return
    if acked is None:
        acked = await wait_for_replicas(client, mark_key, ack)
    while acked < ack.replicas:
        logger.warning(
            "%d of %d replicas confirmed a write in %d ms; waiting again",
            acked,
            ack.replicas,
            ack.timeout_ms,
        )
        acked = await wait_for_replicas(client, mark_key, ack)
