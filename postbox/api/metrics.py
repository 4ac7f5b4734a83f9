"""`GET /metrics`: the API's HTTP metrics (prometheus-flask-exporter) and the queue's depth.

Under gunicorn several processes serve the API. `postbox serve` gives them a
PROMETHEUS_MULTIPROC_DIR, so each writes its counters to files there (prometheus_client's
multiprocess mode) and whichever process answers a scrape sums every process's files: one
/metrics for the whole instance. The gunicorn config marks a dead process's files dead.

Queue depth is no per-process value: `QueueDepthCollector` reads the counts from Redis when
scraped (one round trip per scrape, by the one process that answers it) and is added to the
scrape's registry rather than written to files.

No key is needed (Prometheus scrapes it); it shows request counts and latencies per route
and status, and job counts: nothing secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from flask import Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_flask_exporter import PrometheusMetrics

from postbox.errors import QueueUnavailable
from postbox.metrics import MULTIPROC_ENV, multiprocess_registry


class QueueDepthCollector(Collector):
    """Jobs per state, read from Redis at scrape time."""

    def __init__(self, queue_name: str, counts: Callable[[], dict[str, int]]) -> None:
        self._queue_name = queue_name
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        """`postbox_queue_jobs{queue,state}`, and `postbox_redis_up` saying if Redis answered."""
        try:
            counts = self._counts()
        except QueueUnavailable:
            yield GaugeMetricFamily("postbox_redis_up", "1 when Redis answered.", value=0)
            return
        jobs = GaugeMetricFamily(
            "postbox_queue_jobs", "Jobs in the queue, by state.", labels=["queue", "state"]
        )
        for state, count in counts.items():
            jobs.add_metric([self._queue_name, state], count)
        yield jobs
        yield GaugeMetricFamily("postbox_redis_up", "1 when Redis answered.", value=1)


def register_metrics(app: Flask, depth: QueueDepthCollector) -> None:
    """Count every request of `app` and serve the metrics on `/metrics`."""
    own = CollectorRegistry()
    # Routes, not paths, as labels: /v1/emails/<email_id> is one series, not one per email.
    exporter = PrometheusMetrics(app, path=None, registry=own, group_by="url_rule")
    own.register(depth)

    @exporter.do_not_track()  # type: ignore[untyped-decorator]
    def metrics() -> Response:
        registry = own
        path = os.environ.get(MULTIPROC_ENV)
        if path:
            registry = multiprocess_registry(path)
            registry.register(depth)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", metrics)
