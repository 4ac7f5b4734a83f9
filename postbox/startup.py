"""A SIGTERM that comes while a command is still starting ends it with exit code 0.

Python's default for SIGTERM kills the process (exit 143 in a container, -15 to a parent),
and a command installs its own handler only once it runs: after its imports and settings,
which took seconds on a busy host. `docker compose up --scale worker=2` right after
`--scale worker=4` stopped workers in that window, and their exit codes (143, 15) said
"killed" of processes that had taken no job. Installed first thing, this handler makes such
a stop a clean exit; each command replaces it with its own (a drain) once it can act on it.
"""

from __future__ import annotations

import signal
from types import FrameType


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def exit_cleanly_on_sigterm() -> None:
    """Until the command installs its own handler, SIGTERM means "exit 0 now"."""
    signal.signal(signal.SIGTERM, _exit_cleanly)
