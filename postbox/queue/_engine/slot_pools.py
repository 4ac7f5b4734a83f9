"""Bounded connection pools to the Redis Cluster master that serves one hash tag's slot.

Every key of a Postbox queue carries the queue's hash tag (`bull:{email}:wait`,
`postbox:{email}:idem:...`: postbox/config/redis_cluster.py), so all of them live in one
slot, on one master. A client pinned to that master runs everything Postbox and bullmq do
unchanged: bullmq's Lua scripts, EVALSHA in pipelines and MULTI/EXEC (which redis-py's
`RedisCluster` blocks or splits), blocking pops, WAIT for REDIS_ACK_REPLICAS (the master's
own replicas). It is the Sentinel design (sentinel_pools.py) with the cluster as the oracle:

- a new connection goes to the master the pool last found; the first, and the first after
  a failure, asks a cluster node (`CLUSTER SLOTS`; the seeds in turn, the last one that
  answered first) which master serves the slot. Asking on every connection doubled the
  connects, which with TLS (a handshake each, ~0.3 s of CPU on this loaded machine) made a
  worker's 32 connections at start time out;
- a failover breaks the connections to a killed master (a connect there fails); a demoted
  or resharded one answers `MOVED`/`ASK`/`CLUSTERDOWN`, which these connections turn into a
  connection error after dropping themselves. Either way the pool forgets the master, so
  the next connection asks again. Callers see what they see for a
  Redis restart (the API a 503, workers a retried fetch) until the replica has taken over.

Written against redis-py 8.1 (`AbstractConnection._connect`, `read_response`).
"""

from __future__ import annotations

from typing import Any

import redis as sync_redis
import redis.asyncio as redis
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError

from postbox.config import ClusterSettings
from postbox.queue._engine.hiredis_packing import HiredisConnection, HiredisSSLConnection

# One node's answer about the slots is tiny; a node silent this long is skipped.
DISCOVERY_TIMEOUT_SECONDS = 2.0
# `MovedError` is an `AskError`; all of them mean "this node does not serve the slot now".
_NOT_HERE = (AskError, ClusterDownError, TryAgainError)

Address = tuple[str, int]


def _owner_in(slots: Any, slot: int) -> Address | None:
    """The master's address in a `CLUSTER SLOTS` reply for `slot`, or None."""
    for start, end, master, *_ in slots:
        if int(start) <= slot <= int(end):
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            return host, int(master[1])
    return None


class _Seeds:
    """The nodes to ask, the last one that answered first, and the master last found."""

    def __init__(self, cluster: ClusterSettings, tag: str) -> None:
        self.nodes = list(cluster.nodes)
        self.password = cluster.password
        self.slot = key_slot(tag.encode())
        self.owner: Address | None = None
        # What a probe needs beside the address: the same password and TLS as the pool.
        self.probe_options: dict[str, Any] = {
            "password": cluster.password,
            "socket_connect_timeout": DISCOVERY_TIMEOUT_SECONDS,
            "socket_timeout": DISCOVERY_TIMEOUT_SECONDS,
            **_tls_options(cluster),
        }

    def answered(self, node: Address, owner: Address) -> None:
        # A new list, not an edit: the API's threads read it concurrently.
        self.nodes = [node, *(other for other in self.nodes if other != node)]
        self.owner = owner

    def nobody(self, errors: list[str]) -> RedisConnectionError:
        return RedisConnectionError(
            f"no Redis Cluster node named a master for slot {self.slot}: {'; '.join(errors)}"
        )


class _AsyncSlotOwner(HiredisConnection):
    """asyncio: a connection to whichever master serves the pool's slot when it connects."""

    probe_class: type[redis.Connection] = redis.Connection

    def __init__(self, **kwargs: Any) -> None:
        self.seeds: _Seeds = kwargs.pop("seeds")
        super().__init__(**kwargs)

    async def _connect(self) -> None:
        self.host, self.port = self.seeds.owner or await self._find_owner()
        try:
            await super()._connect()  # type: ignore[no-untyped-call]
        except BaseException:
            self.seeds.owner = None
            raise

    async def _find_owner(self) -> Address:
        errors = []
        for node in list(self.seeds.nodes):
            probe = self.probe_class(host=node[0], port=node[1], **self.seeds.probe_options)
            try:
                await probe.connect()  # type: ignore[no-untyped-call]
                await probe.send_command("CLUSTER", "SLOTS")
                owner = _owner_in(await probe.read_response(), self.seeds.slot)
            except (sync_redis.RedisError, OSError) as exc:
                errors.append(f"{node[0]}:{node[1]} {type(exc).__name__}")
                continue
            finally:
                await probe.disconnect()
            if owner is not None:
                self.seeds.answered(node, owner)
                return owner
            errors.append(f"{node[0]}:{node[1]} serves no master for it")
        raise self.seeds.nobody(errors)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """A reply, or, if this node no longer serves the slot, a connection error (the
        connection dropped, so the next one finds the new master)."""
        try:
            return await super().read_response(*args, **kwargs)
        except _NOT_HERE as exc:
            self.seeds.owner = None
            await self.disconnect()
            raise RedisConnectionError(f"this node no longer serves the slot: {exc}") from exc


class SlotOwnerConnection(_AsyncSlotOwner):
    """asyncio, TCP."""


class SlotOwnerSSLConnection(_AsyncSlotOwner, HiredisSSLConnection):
    """asyncio, TLS (`rediss+cluster://`)."""

    probe_class = redis.SSLConnection


class SyncSlotOwnerConnection(sync_redis.Connection):
    """Threads: the same, for the API's synchronous pool (its rate limiter)."""

    probe_ssl = False

    def __init__(self, **kwargs: Any) -> None:
        self.seeds: _Seeds = kwargs.pop("seeds")
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]

    def _connect(self) -> Any:
        self.host, self.port = self.seeds.owner or self._find_owner()
        try:
            return super()._connect()  # type: ignore[no-untyped-call]
        except BaseException:
            self.seeds.owner = None
            raise

    def _find_owner(self) -> Address:
        errors = []
        for node in list(self.seeds.nodes):
            probe = sync_redis.Redis(
                host=node[0],
                port=node[1],
                single_connection_client=True,
                ssl=self.probe_ssl,
                **self.seeds.probe_options,
            )
            try:
                slots = probe.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
                owner = _owner_in(slots, self.seeds.slot)
            except (sync_redis.RedisError, OSError) as exc:
                errors.append(f"{node[0]}:{node[1]} {type(exc).__name__}")
                continue
            finally:
                probe.close()
            if owner is not None:
                self.seeds.answered(node, owner)
                return owner
            errors.append(f"{node[0]}:{node[1]} serves no master for it")
        raise self.seeds.nobody(errors)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """As `SlotOwnerConnection.read_response`."""
        try:
            return super().read_response(*args, **kwargs)
        except _NOT_HERE as exc:
            self.seeds.owner = None
            self.disconnect()  # type: ignore[no-untyped-call]
            raise RedisConnectionError(f"this node no longer serves the slot: {exc}") from exc


class SyncSlotOwnerSSLConnection(SyncSlotOwnerConnection, sync_redis.SSLConnection):
    """Threads, TLS."""

    probe_ssl = True


def owner_pool(cluster: ClusterSettings, tag: str, **options: Any) -> redis.ConnectionPool:
    """An asyncio pool to the master of `tag`'s slot, with `options` as
    `BlockingConnectionPool` takes."""
    return redis.BlockingConnectionPool(
        connection_class=SlotOwnerSSLConnection if cluster.tls else SlotOwnerConnection,
        seeds=_Seeds(cluster, tag),
        password=cluster.password,
        **_tls_options(cluster),
        **options,
    )


def sync_owner_pool(
    cluster: ClusterSettings, tag: str, **options: Any
) -> sync_redis.BlockingConnectionPool:
    """A thread-safe pool to the master of `tag`'s slot."""
    return sync_redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
        connection_class=SyncSlotOwnerSSLConnection if cluster.tls else SyncSlotOwnerConnection,
        seeds=_Seeds(cluster, tag),
        password=cluster.password,
        **_tls_options(cluster),
        **options,
    )


def _tls_options(cluster: ClusterSettings) -> dict[str, Any]:
    """SSLConnection's settings: verify the certificate and the host name (the defaults)."""
    if not cluster.tls:
        return {}
    return {"ssl_ca_certs": cluster.ca_file, "ssl_cert_reqs": "required"}
