"""CPU time and peak memory of live process trees, read from /proc.

A supervisor's children are alive while we measure, so the parent's `cutime` does not hold
their CPU yet: each process of the tree is read on its own and summed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children of `pid` (empty once it has exited)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    found = [pid]
    for child in children(pid):
        found.extend(tree(child))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it has gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may hold spaces: fields are counted after its closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU of `pid` and its live descendants."""
    return sum(cpu_seconds(each) for each in tree(pid))


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident set size (VmHWM) in MiB; 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _stat_line() -> list[int]:
    # cpu  user nice system idle iowait irq softirq steal ...
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores together."""
    fields = _stat_line()
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / _TICKS, sum(fields) / _TICKS


def _task_seconds() -> float:
    """CPU charged to processes machine-wide (user + nice + system), without interrupts."""
    fields = _stat_line()
    return (fields[0] + fields[1] + fields[2]) / _TICKS


@dataclass(frozen=True)
class CpuMark:
    """CPU seconds of a process tree, Redis, the sink and the machine at one moment."""

    tree: float
    redis: float
    sink: float
    machine_busy: float
    machine_total: float


def mark(pids: Sequence[int], redis_pid: int, sink_pid: int) -> CpuMark:
    """Read the CPU counters now (`tree`: of every tree rooted at `pids`), to subtract from
    a later mark."""
    busy, total = machine_cpu()
    trees = sum(tree_cpu_seconds(pid) for pid in pids)
    return CpuMark(trees, cpu_seconds(redis_pid), cpu_seconds(sink_pid), busy, total)


class OtherLoad:
    """CPU taken by processes that are not the benchmark's over an interval, in cores.

    This machine may be shared (another session's test run): a figure measured while
    something else ran is not clean, and the report says so instead of hiding it.
    """

    def __init__(self, roots: Sequence[int]) -> None:
        self._roots = list(roots)
        self._start = self._read()

    def _read(self) -> tuple[float, float, float]:
        own = os.times()
        ours = own.user + own.system + sum(tree_cpu_seconds(pid) for pid in self._roots)
        return _task_seconds(), ours, time.monotonic()

    def cores(self) -> float:
        """Average cores used by other processes since this meter was made."""
        machine, ours, now = self._read()
        start_machine, start_ours, start = self._start
        other = (machine - start_machine) - (ours - start_ours)
        return round(max(0.0, other) / max(now - start, 1e-9), 2)
