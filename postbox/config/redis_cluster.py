"""Redis Cluster: `REDIS_URL=redis+cluster://[:password@]host:port[,host:port...]`, or
`rediss+cluster://...` for TLS (`?ssl_ca_certs=/path/ca.pem` if the nodes' certificates are
not signed by a CA the system trusts).

One setting rather than a `REDIS_CLUSTER=true` beside a plain URL: a cluster has several
seed nodes, which a `redis://` URL cannot name, and the `limits` package and other clients
already spell a cluster this way. The nodes are seeds only: any one that answers tells
where the rest are.

On a cluster the queue's name is wrapped in a hash tag (`QUEUE_NAME=email` is used as
`{email}`), which puts every key of the queue, BullMQ's `bull:{email}:*` and Postbox's
`postbox:{email}:*`, in one slot: BullMQ's Lua scripts and Postbox's own touch several keys
at once, and Redis Cluster runs a script or a MULTI only when all its keys share a slot.
Without a cluster the name stays as it is, so existing deployments and Node BullMQ peers
keep their key names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

from postbox.config.redis_ha import parse_sentinels

SCHEME = "redis+cluster://"
TLS_SCHEME = "rediss+cluster://"


@dataclass(frozen=True)
class ClusterSettings:
    """The seed nodes of a Redis Cluster, and its password."""

    nodes: tuple[tuple[str, int], ...]
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    # With `tls`: the CA certificates to trust (None: the system's).
    ca_file: str | None = None

    def describe(self) -> str:
        """Where the queue is, for log lines and error messages (no secrets)."""
        scheme = TLS_SCHEME if self.tls else SCHEME
        return scheme + ",".join(f"{host}:{port}" for host, port in self.nodes)


def is_cluster_url(value: str | None) -> bool:
    """True for a `redis+cluster://` or `rediss+cluster://` URL."""
    return value is not None and value.lower().startswith((SCHEME, TLS_SCHEME))


def parse_cluster_url(value: str) -> ClusterSettings:
    """`redis+cluster://[:password@]host:port,host:port` into its settings; `ValueError`
    saying what is wrong (never showing the password)."""
    tls = value.lower().startswith(TLS_SCHEME)
    rest, _, query = value[len(TLS_SCHEME if tls else SCHEME) :].partition("?")
    rest = rest.rstrip("/")
    ca_file = _ca_file(query, tls)
    password = None
    if "@" in rest:
        auth, _, rest = rest.rpartition("@")
        user, colon, secret = auth.partition(":")
        if not colon or user:
            raise ValueError("takes a password only (redis+cluster://:password@host:port)")
        password = unquote(secret) or None
    if "/" in rest:
        raise ValueError("takes no database (a cluster has database 0 only)")
    if not rest.strip(" ,"):
        raise ValueError("names no node (use redis+cluster://host:port,host:port)")
    return ClusterSettings(parse_sentinels(rest), password, tls, ca_file)


def _ca_file(query: str, tls: bool) -> str | None:
    options = parse_qs(query, keep_blank_values=True)
    if set(options) - {"ssl_ca_certs"} or (options and not tls):
        raise ValueError("takes no option but ssl_ca_certs, with rediss+cluster:// only")
    [path] = options.get("ssl_ca_certs", [None])
    if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise ValueError("ssl_ca_certs is not a readable file")
    return path


def hash_tagged(queue_name: str) -> str:
    """The queue name as used on a cluster: one hash tag for all of its keys."""
    if "{" in queue_name or "}" in queue_name:
        raise ValueError("must not contain '{' or '}' on a Redis Cluster (Postbox adds them)")
    return f"{{{queue_name}}}"
