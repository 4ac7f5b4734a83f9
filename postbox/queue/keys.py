"""Every Redis key name Postbox uses: its own `postbox:<queue>:*` keys, and the BullMQ keys
(`bull:<queue>:*`) it reads or writes beside bullmq itself."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PostboxKeys:
    """Key names for one queue."""

    queue_name: str

    def idempotency(self, job_id: str) -> str:
        """Holds the payload fingerprint of a job id for the dedup window."""
        return f"postbox:{self.queue_name}:idem:{job_id}"

    def journal(self, job_id: str) -> str:
        """Holds the relay's acceptance of a job's message, per recipient."""
        return f"postbox:{self.queue_name}:journal:{job_id}"

    def sent_bucket(self, ten_seconds: int) -> str:
        """Counts the emails sent in one 10-second span (Unix time // 10), for throughput."""
        return f"postbox:{self.queue_name}:sent:{ten_seconds}"

    def sent_total(self) -> str:
        """Counts every email sent (completed jobs are removed; this is their count)."""
        return f"postbox:{self.queue_name}:sent:total"

    def sending(self, job_id: str) -> str:
        """Set (with the run's lock token) while a run may be mid-send; expires on its own."""
        return f"postbox:{self.queue_name}:sending:{job_id}"

    def instance(self, instance_key: str) -> str:
        """Holds one live process's registry entry; it expires when heartbeats stop."""
        return f"postbox:{self.queue_name}:instance:{instance_key}"

    def instances_seen(self) -> str:
        """Sorted set of registered processes, scored by their last heartbeat (ms)."""
        return f"postbox:{self.queue_name}:instances"

    def instances_last(self) -> str:
        """Hash of every registered process's last entry, kept while it is in the set."""
        return f"postbox:{self.queue_name}:instances:last"

    def waiting_history(self) -> str:
        """Capped list of `ms:count` samples of the waiting count, newest first."""
        return f"postbox:{self.queue_name}:history:waiting"

    def waiting_sample_lock(self) -> str:
        """Taken by the process whose heartbeat samples the waiting count this interval."""
        return f"postbox:{self.queue_name}:history:waiting:lock"

    def dashboard_secret(self) -> str:
        """The random secret that signs dashboard sessions when SECRET_KEY is not set."""
        return f"postbox:{self.queue_name}:dashboard:secret"

    def readiness_probe(self) -> str:
        """Written (with a short expiry) by `/readyz`: a Redis that refuses it is not ready."""
        return f"postbox:{self.queue_name}:readiness"

    def send_rate_prefix(self) -> str:
        """Prefix of the workers' send rate-limit counters (the `limits` package's keys)."""
        return f"postbox:{self.queue_name}:rate"

    def api_rate_prefix(self) -> str:
        """Prefix of the API's per-key rate-limit counters."""
        return f"postbox:{self.queue_name}:api-rate"

    def events(self) -> str:
        """The delivery-event stream (postbox/queue/events.py): one entry per state change."""
        return f"postbox:{self.queue_name}:events"

    def event_consumers(self) -> str:
        """Set of the stream's consumer groups; events are written only while it exists."""
        return f"postbox:{self.queue_name}:events:consumers"

    def webhooks(self) -> str:
        """Sorted set of webhook endpoint ids, scored by creation time (ms)."""
        return f"postbox:{self.queue_name}:webhooks"

    def webhooks_version(self) -> str:
        """Counter bumped by every change to an endpoint, so dispatchers reload them."""
        return f"postbox:{self.queue_name}:webhooks:version"

    def webhook(self, endpoint_id: str) -> str:
        """Hash of one webhook endpoint: url, events, owner, encrypted secrets, state."""
        return f"postbox:{self.queue_name}:webhook:{endpoint_id}"

    def webhook_due(self, endpoint_id: str) -> str:
        """Sorted set of an endpoint's pending deliveries, scored by when they are due (ms)."""
        return f"postbox:{self.queue_name}:webhook:{endpoint_id}:due"

    def webhook_failed(self, endpoint_id: str) -> str:
        """Sorted set of an endpoint's deliveries that ended failed, scored by when (ms)."""
        return f"postbox:{self.queue_name}:webhook:{endpoint_id}:failed"

    def webhook_log(self, endpoint_id: str) -> str:
        """Capped list of an endpoint's recent delivery attempts (JSON), newest first."""
        return f"postbox:{self.queue_name}:webhook:{endpoint_id}:log"

    def webhook_delivery(self, delivery_id: str) -> str:
        """Hash of one delivery (an event for an endpoint): the event, attempts, outcome."""
        return f"postbox:{self.queue_name}:webhook-delivery:{delivery_id}"

    def replication_mark(self) -> str:
        """Written by every transaction that waits for replicas (_engine/replication.py)."""
        return f"postbox:{self.queue_name}:replication-mark"

    def history_retention_lease(self) -> str:
        """String held (SET NX PX) by the instance deleting expired history records."""
        return f"postbox:{self.queue_name}:history:retention-lease"

    def bull(self, suffix: str) -> str:
        """BullMQ's own key `bull:<queue>:<suffix>` (`wait`, `failed`, a job id, ...)."""
        return f"bull:{self.queue_name}:{suffix}"

    def attempt_log(self, job_id: str) -> str:
        """BullMQ's log list of a job (the attempt history), removed by BullMQ with the job."""
        return self.bull(f"{job_id}:logs")

    def webhook_outcomes(self) -> str:
        """Hash counting every webhook delivery attempt by status class (`2xx`, `timeout`, ...)."""
        return f"postbox:{self.queue_name}:webhooks:outcomes"
