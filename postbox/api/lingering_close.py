"""Close a connection whose client is still sending its body, so that it reads the answer.

A request refused before its body is read (`413`: the body is over `MAX_REQUEST_BYTES`) is
answered while the client may still be sending. Closing the socket with unread data in it
makes Linux send a reset, and a client that sends its whole body before it reads (Python's
urllib and http.client do) gets `EPIPE` or `ECONNRESET` instead of the JSON `413`. gunicorn
drains 64 KiB before closing; a 30 MB body needs more.

So, as Apache's and nginx's lingering close do: half-close (the client sees the answer
end), read and discard whatever still arrives until the client closes, within bounds, then
close. The bounds keep a client from holding the thread: `MAX_BYTES` read, `MAX_SECONDS`
in all, `IDLE_SECONDS` without data. A client still sending past them gets the reset, as
before. Runs on the request's thread, never on the accept loop's.
"""

from __future__ import annotations

import contextlib
import socket
import time

MAX_BYTES = 64 * 1024 * 1024
MAX_SECONDS = 10.0
IDLE_SECONDS = 2.0
_CHUNK = 1 << 16


def close_after_answer(sock: socket.socket, unread: int | None) -> None:
    """Before gunicorn closes `sock`: linger when the client still has `unread` body bytes
    to send (None: unknown, so when some wait on the socket). A body left larger than
    `MAX_BYTES` is not waited for: the client would get the reset all the same."""
    if unread is None:
        if still_sending(sock):
            linger(sock, MAX_BYTES)
    elif 0 < unread <= MAX_BYTES:
        linger(sock, unread)


def still_sending(sock: socket.socket) -> bool:
    """True when request bytes wait unread: the client has not finished sending."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (OSError, ValueError):  # nothing to read now, the connection is gone, or TLS
        return False


def linger(sock: socket.socket, most: int) -> int:
    """Half-close `sock` and discard up to `most` bytes the client still sends, within the
    time bounds; the bytes discarded. The socket is left for gunicorn to close: it then
    reads end-of-file at once (the client closed, or `shutdown` made reads end)."""
    discarded = 0
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + MAX_SECONDS
        while discarded < most and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(min(IDLE_SECONDS, left))
            data = sock.recv(_CHUNK)
            if not data:
                return discarded  # the client closed: it has read the answer
            discarded += len(data)
    except OSError:  # includes the idle timeout
        pass
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    return discarded
