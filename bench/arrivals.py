"""Record when smtp-sink finishes writing each dumped message: `python -m bench.arrivals DIR OUT`.

smtp-sink closes a message's dump file when the client ends DATA, so the inotify
IN_CLOSE_WRITE event is the moment of arrival. File modification times will not do: for a
file nobody has looked at, Linux stamps them with the coarse clock (4 ms steps at HZ=250),
too coarse for a 15 ms target. This runs as its own process so that the load generator's
work in the benchmark process cannot delay the time stamps. On SIGTERM it writes
"<file name> <unix time>" lines to OUT and exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
import struct
import sys
import time
from pathlib import Path
from types import FrameType

IN_CLOSE_WRITE = 0x00000008
_EVENT = struct.Struct("iIII")


class _Stop(Exception):
    """Raised by the SIGTERM handler to leave the read loop."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _watch(directory: Path) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.inotify_init1(0))
    if fd < 0 or libc.inotify_add_watch(fd, str(directory).encode(), IN_CLOSE_WRITE) < 0:
        raise OSError(ctypes.get_errno(), f"inotify on {directory} failed")
    return fd


def _names(buffer: bytes) -> list[str]:
    names, offset = [], 0
    while offset < len(buffer):
        _wd, _mask, _cookie, length = _EVENT.unpack_from(buffer, offset)
        start = offset + _EVENT.size
        names.append(buffer[start : start + length].rstrip(b"\0").decode())
        offset = start + length
    return names


def main(directory: Path, out: Path) -> None:
    """Watch `directory` until SIGTERM, then write the arrival times to `out`."""
    signal.signal(signal.SIGTERM, _on_term)
    fd = _watch(directory)
    seen: list[tuple[str, float]] = []
    (directory / ".watching").touch()  # tells the benchmark the watch is in place
    try:
        while True:
            buffer = os.read(fd, 1 << 16)
            now = time.time()
            seen.extend((name, now) for name in _names(buffer) if not name.startswith("."))
    except _Stop:
        pass
    out.write_text("".join(f"{name} {at:.6f}\n" for name, at in seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
