"""Folders for prometheus_client's multiprocess files, one per role, for one supervisor run.

Under `postbox serve` and `postbox worker --processes N` several processes count the same
metrics; each writes its values to files in PROMETHEUS_MULTIPROC_DIR and one reader sums
them. The API's gunicorn processes and the worker processes get separate folders, so the
API's /metrics holds HTTP metrics and METRICS_PORT the workers'. The folders are made empty
at start (a fresh temporary folder, under TMPDIR) and removed at stop: values left by an
earlier run would otherwise be summed in.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MetricsDirs:
    """The multiprocess folders of the API processes and of the worker processes."""

    api: str
    workers: str


@contextmanager
def metrics_dirs() -> Iterator[MetricsDirs]:
    """Make empty folders for one run; remove them, with every value file, at the end."""
    base = Path(tempfile.mkdtemp(prefix="postbox-metrics-"))
    dirs = MetricsDirs(str(base / "api"), str(base / "workers"))
    for path in (dirs.api, dirs.workers):
        Path(path).mkdir()
    try:
        yield dirs
    finally:
        shutil.rmtree(base, ignore_errors=True)
