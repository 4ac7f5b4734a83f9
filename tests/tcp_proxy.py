"""A TCP proxy for tests that can cut the network between a process and a server.

Point the process at `proxy.port` instead of the server's port. `cut()` closes every
connection through the proxy and then, until `restore()`, either refuses new ones (they are
accepted and reset at once: what a client sees of a server that went away) or black-holes
them (accepted, and nothing is ever forwarded: a partition where packets vanish; `restore()`
resets them, as a client's keepalive or retransmission timeout eventually would). Threads,
not asyncio, so synchronous tests can drive it.
"""

from __future__ import annotations

import socket
import struct
import threading
from contextlib import suppress
from typing import Literal

Mode = Literal["refuse", "blackhole"]
_CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """Close `sock` with a TCP reset, so the peer sees the connection end at once.

    `shutdown` first: a `close` alone, while a pump thread is blocked in `recv` on the same
    socket, only drops the descriptor; the connection stayed open (Redis kept the clients of
    a long-gone worker) and the thread blocked for good."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`, until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()  # both ends of every forwarded connection
        self._held: set[socket.socket] = set()  # black-holed while cut
        self._mode: Mode | None = None
        self._closed = False
        threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True).start()

    @property
    def is_cut(self) -> bool:
        return self._mode is not None

    def cut(self, mode: Mode = "refuse") -> None:
        """Close every connection; refuse or black-hole new ones until `restore`."""
        with self._lock:
            self._mode = mode
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)

    def restore(self) -> None:
        """Forward new connections again; reset the black-holed ones."""
        with self._lock:
            self._mode = None
            held, self._held = self._held, set()
        for sock in held:
            _reset(sock)

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.restore()
        _reset(self._listener)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._admit(client)

    def _admit(self, client: socket.socket) -> None:
        with self._lock:
            mode = self._mode
            if mode == "blackhole":
                self._held.add(client)
                return
        if mode == "refuse":
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self._target, timeout=5)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        with self._lock:
            if self._mode is not None:  # cut while connecting
                _reset(client)
                _reset(upstream)
                return
            self._open |= {client, upstream}
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open.discard(source)
            self._open.discard(sink)
        _reset(source)
        _reset(sink)


def proxied_url(redis_url: str, proxy: TcpProxy) -> str:
    """`redis_url` (host:port/db) with the port replaced by `proxy`'s."""
    head, _, tail = redis_url.rpartition(":")
    _, _, database = tail.partition("/")
    return f"{head}:{proxy.port}/{database}"
