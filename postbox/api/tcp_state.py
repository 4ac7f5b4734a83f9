"""What the kernel knows of a client connection: how long its request has waited, and
whether its client is still there.

A connection can wait in the listening socket's accept queue (gunicorn's `backlog`, 2048)
before the process takes it, with its request already received: measured at 3,000
requests/s on one starved process, for longer than the client's 10 s timeout, after which
the process accepted, served and queued requests whose clients had given up. The time the
process itself measures starts at `accept`, too late. Linux's `TCP_INFO` says how long ago
the socket last received data (`tcpi_last_data_recv`, in ms, also counted while the
connection sits in the accept queue) and its state (`CLOSE_WAIT` once the client has
closed its side), for one `getsockopt` call of a few microseconds.

Elsewhere (no `TCP_INFO`, a Unix socket) nothing is known: age 0, client present.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

# struct tcp_info (include/uapi/linux/tcp.h): tcpi_state is byte 0, tcpi_last_data_recv
# the u32 at byte 52, after 8 bytes of flags and 11 u32 fields.
_INFO_BYTES = 56
_LAST_DATA_RECV = struct.Struct("=I")
_LAST_DATA_RECV_OFFSET = 52
_ESTABLISHED = 1
_TCP_INFO = getattr(socket, "TCP_INFO", None)


@dataclass(frozen=True)
class ConnectionState:
    """`age`: seconds since the connection last received data (or was made, if none came
    yet); `client_gone`: the client closed or reset its side."""

    age: float = 0.0
    client_gone: bool = False


UNKNOWN = ConnectionState()


def connection_state(sock: socket.socket) -> ConnectionState:
    """The kernel's view of `sock`, or `UNKNOWN` where it gives none."""
    if _TCP_INFO is None:
        return UNKNOWN
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _INFO_BYTES)
    except OSError:
        return UNKNOWN
    if len(info) < _INFO_BYTES:
        return UNKNOWN
    (last_data_ms,) = _LAST_DATA_RECV.unpack_from(info, _LAST_DATA_RECV_OFFSET)
    return ConnectionState(last_data_ms / 1000, info[0] != _ESTABLISHED)
