"""The metrics a dispatcher process updates, for Prometheus.

Made once per dispatcher process (a child of `postbox worker`, writing to the workers'
multiprocess folder, so the supervisor's METRICS_PORT serves them beside the workers' own;
or `postbox webhooks dispatch` alone, serving its registry itself). Counting stays in
memory, as for the workers (postbox/workers/metrics.py).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from postbox.webhooks.attempts import Attempt, Verdict

# A local receiver answers in a millisecond; a distant one in tens to hundreds; the timeout
# (10 s by default) bounds the rest.
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class DispatcherMetrics:
    """Every metric a dispatcher process updates."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "postbox_webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered (2xx), retry (408, 429, 5xx, "
            "timeout, connection error, refused address), failed (another status), gone (410: "
            "the endpoint was disabled).",
            ["outcome"],
            registry=registry,
        )
        self.seconds = Histogram(
            "postbox_webhook_delivery_seconds",
            "Duration of one webhook delivery attempt (request to the end of the answer).",
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        # Every dispatcher measures the same cluster-wide backlog: the most recent reading
        # of a live process is the value (not their sum).
        self.backlog = Gauge(
            "postbox_webhook_backlog",
            "Events waiting for webhook delivery: stream entries not yet fanned out to the "
            "endpoints, plus deliveries due now.",
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        self._by_verdict = {v: self.deliveries.labels(v.value) for v in Verdict}

    def attempted(self, attempt: Attempt) -> None:
        """Count one attempt and its duration."""
        self._by_verdict[attempt.verdict].inc()
        self.seconds.observe(attempt.seconds)
