"""Run child processes, restart the ones that crash, and stop them all on a signal.

`postbox worker --processes N` runs N worker children; `postbox serve` runs gunicorn plus the
worker children when START_EMAIL_WORKER is true. A child that dies is restarted (with a
growing pause if it keeps dying); a child marked `essential` ending ends the supervisor.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
MAX_RESTART_PAUSE_SECONDS = 30.0


@dataclass(frozen=True)
class ChildSpec:
    """What to run, and whether its exit should end the whole supervisor. `env` adds to
    or replaces the supervisor's environment for this child; `on_exit` gets the pid of an
    instance of it that ended (to mark its metric files dead)."""

    name: str
    argv: list[str]
    essential: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    on_exit: Callable[[int], None] | None = None


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    crashes: int = 0


class Supervisor:
    """Keeps a set of child processes running until told to stop."""

    def __init__(self, specs: list[ChildSpec], env: Mapping[str, str], stop_timeout: float) -> None:
        self._specs = specs
        self._env = dict(env)
        self._stop_timeout = stop_timeout
        self._stopping = False
        self._children: list[_Child] = []

    def run(self) -> int:
        """Start every child and supervise until a signal or an essential child's exit."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._children = [self._spawn(spec) for spec in self._specs]
        exit_code = 0
        while not self._stopping:
            time.sleep(POLL_SECONDS)
            exit_code = self._check_children()
        return max(self._stop_all(), exit_code)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("Supervisor received %s; stopping children", signal.Signals(signum).name)
        self._stopping = True

    def _spawn(self, spec: ChildSpec, crashes: int = 0) -> _Child:
        process = subprocess.Popen(spec.argv, env={**self._env, **spec.env})
        logger.info("Started %s (pid %d)", spec.name, process.pid)
        return _Child(spec, process, crashes=crashes)

    def _check_children(self) -> int:
        for index, child in enumerate(self._children):
            code = child.process.poll()
            if code is None or self._stopping:
                continue
            if child.spec.on_exit is not None:
                child.spec.on_exit(child.process.pid)
            if child.spec.essential:
                logger.error("%s exited with code %d; stopping", child.spec.name, code)
                self._stopping = True
                return code or 1
            self._children[index] = self._restart(child, code)
        return 0

    def _restart(self, child: _Child, code: int) -> _Child:
        ran_for = time.monotonic() - child.started
        crashes = 0 if ran_for > MAX_RESTART_PAUSE_SECONDS else child.crashes + 1
        pause = min(MAX_RESTART_PAUSE_SECONDS, 0.5 * 2**crashes) if crashes else 0.0
        logger.warning(
            "%s (pid %d) exited with code %d; restarting in %.1f s",
            child.spec.name,
            child.process.pid,
            code,
            pause,
        )
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline and not self._stopping:
            time.sleep(POLL_SECONDS)
        return self._spawn(child.spec, crashes)

    def _stop_all(self) -> int:
        codes = stop_processes([child.process for child in self._children], self._stop_timeout)
        return max((abs(code) for code in codes), default=0)


def stop_processes(
    processes: Sequence[subprocess.Popen[bytes]],
    timeout: float,
    sig: signal.Signals = signal.SIGTERM,
) -> list[int]:
    """Send `sig` to each process still running, give them `timeout` seconds in all to
    exit, then kill whichever has not; their exit codes, in order."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(sig)
    deadline = time.monotonic() + timeout
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            logger.error("%s (pid %d) did not stop in time; killing it", process.args, process.pid)
            process.kill()
            codes.append(process.wait())
    return codes
