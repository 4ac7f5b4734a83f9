"""A TCP proxy that passes each request on to Postbox but can lose the answer: what a
client sees when the network drops between the server doing the work and the client
hearing of it. It keeps the requests' heads, so a test can compare their headers."""

from __future__ import annotations

import socket
import struct
import threading
from contextlib import suppress

_CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()


class LossyProxy:
    """Forwards 127.0.0.1:`port` to `target`; the first `lose` answers are replaced by a
    reset of the client's connection."""

    def __init__(self, target_port: int, lose: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._lose = lose
        self._lock = threading.Lock()
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def lose_next(self, answers: int) -> None:
        """Lose the next `answers` answers."""
        with self._lock:
            self._lose = answers

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        _reset(self._listener)

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target, timeout=10)
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        with suppress(OSError):
            while data := client.recv(_CHUNK):
                if data[:4] in (b"POST", b"GET ", b"PATC", b"DELE"):
                    self.requests.append(data)
                upstream.sendall(data)
        _reset(upstream)

    def _answers(self, upstream: socket.socket, client: socket.socket) -> None:
        with suppress(OSError):
            while data := upstream.recv(_CHUNK):
                with self._lock:
                    lose, self._lose = self._lose > 0, max(0, self._lose - 1)
                if lose:
                    break
                client.sendall(data)
        _reset(client)
        _reset(upstream)
