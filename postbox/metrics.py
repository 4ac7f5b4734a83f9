"""Prometheus plumbing both sides use: multiprocess folders, summing registries, a server.

Under `postbox serve` and `postbox worker --processes N` several processes count the same
metrics (prometheus_client's multiprocess mode); each writes its values to files in
PROMETHEUS_MULTIPROC_DIR and one reader sums them: for the API whichever gunicorn process
answers /metrics, for workers the supervisor on METRICS_PORT (`serve_metrics`). A lone
`postbox worker --processes 1` serves its own registry the same way.

The API's gunicorn processes and the worker processes get separate folders, so the API's
/metrics holds HTTP metrics and METRICS_PORT the workers'. The folders are made empty at
start (a fresh temporary folder, under TMPDIR) and removed at stop: values left by an
earlier run would otherwise be summed in.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


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


def exposition_registry(own: CollectorRegistry) -> CollectorRegistry:
    """What to serve: the files of every process in multiprocess mode, else `own`."""
    path = os.environ.get(MULTIPROC_ENV)
    return multiprocess_registry(path) if path else own


def multiprocess_registry(path: str) -> CollectorRegistry:
    """A registry that sums the metric files that processes wrote to `path`."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


@contextmanager
def serve_metrics(host: str, port: int | None, registry: CollectorRegistry) -> Iterator[None]:
    """Serve `registry` at http://host:port/metrics on a daemon thread, if a port is set."""
    if port is None:
        yield
        return
    server: WSGIServer
    server, thread = start_http_server(port, host, registry=registry)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
