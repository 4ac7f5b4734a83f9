"""The metrics a worker process updates, for Prometheus.

One `WorkerMetrics` is made per worker process and handed to the processor, and each relay's
SMTP pool and circuit get its `RelayMetrics` (constructor arguments, no module globals): the
SMTP metrics carry a `relay` label (SMTP_RELAYS' name, `default` without it), bound once per
relay rather than looked up per send. Counting stays in memory: a counter
increment is a lock and an add, never a Redis round trip. How they are served, summed over
processes, is postbox/metrics.py. Gauges use `livesum`: the sum over processes that are
alive (the supervisor marks a dead child's files as dead).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# SMTP transactions take milliseconds on a local relay and seconds on a distant or slow one.
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WorkerMetrics:
    """Every metric a worker process updates."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.emails = Counter(
            "postbox_emails",
            "Email job runs by outcome (sent, failed, retried, postponed) and reason.",
            ["outcome", "reason"],
            registry=registry,
        )
        self.smtp_replies = Counter(
            "postbox_smtp_replies",
            "SMTP replies to MAIL/RCPT/DATA, by relay and code.",
            ["relay", "code"],
            registry=registry,
        )
        self.send_seconds = Histogram(
            "postbox_send_seconds",
            "Duration of one SMTP transaction (MAIL to the reply to DATA), by relay.",
            ["relay"],
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        self.in_progress = _gauge("postbox_emails_in_progress", "Jobs being processed.", registry)
        self.concurrency = _gauge(
            "postbox_worker_concurrency", "Jobs the worker processes may run at once.", registry
        )
        self.pool_size = _gauge(
            "postbox_smtp_pool_size", "SMTP connections the pools may open.", registry, ("relay",)
        )
        self.connections_open = _gauge(
            "postbox_smtp_connections_open", "SMTP connections open now.", registry, ("relay",)
        )
        self.reconnects = Counter(
            "postbox_smtp_reconnects",
            "SMTP connections opened to replace one that was lost, by relay.",
            ["relay"],
            registry=registry,
        )
        # A counter by reason rather than a 0/1 "relay up" gauge: it says which failure it is
        # (an outage and a refused password call for different people), sums correctly over
        # processes and instances, and keeps rising while probes fail, so an alert on
        # `increase(postbox_relay_errors_total{reason="auth"}[5m]) > 0` holds for as long
        # as the problem does.
        self.relay_errors = Counter(
            "postbox_relay_errors",
            "Failed uses of a relay itself (sends and probes), by relay and reason: "
            "unavailable (refused, timed out, 421), auth (credentials refused) or config.",
            ["relay", "reason"],
            registry=registry,
        )
        self._sent = self.emails.labels("sent", "relay")

    def for_relay(self, relay: str) -> RelayMetrics:
        """The metrics of one relay's pool and circuit."""
        return RelayMetrics(self, relay)

    def sent(self) -> None:
        """A job's message was accepted by the relay."""
        self._sent.inc()

    def outcome(self, outcome: str, reason: str) -> None:
        """A job run ended some other way: `failed`, `retried`, `postponed`, or `sent` from
        the journal."""
        self.emails.labels(outcome, reason).inc()


class RelayMetrics:
    """The SMTP metrics of one relay, its `relay` label bound."""

    def __init__(self, metrics: WorkerMetrics, relay: str) -> None:
        self._relay = relay
        self._replies = metrics.smtp_replies
        self._accepted = metrics.smtp_replies.labels(relay, "250")
        self._errors = metrics.relay_errors
        self.send_seconds = metrics.send_seconds.labels(relay)
        self.pool_size = metrics.pool_size.labels(relay)
        self.connections_open = metrics.connections_open.labels(relay)
        self.reconnects = metrics.reconnects.labels(relay)
        for reason in ("unavailable", "auth"):
            self._errors.labels(relay, reason)

    def relay_error(self, reason: str) -> None:
        """Count one failed use of the relay (`unavailable`, `auth` or `config`)."""
        self._errors.labels(self._relay, reason).inc()

    def reply(self, code: int) -> None:
        """Count one SMTP reply code."""
        counter = self._accepted if code == 250 else self._replies.labels(self._relay, str(code))
        counter.inc()


def _gauge(
    name: str, documentation: str, registry: CollectorRegistry, labels: tuple[str, ...] = ()
) -> Gauge:
    return Gauge(name, documentation, labels, multiprocess_mode="livesum", registry=registry)
