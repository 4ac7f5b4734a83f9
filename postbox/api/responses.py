"""marshmallow schemas of the API's answers, for the OpenAPI document.

The request schemas validate what comes in; these describe what goes out, field by field,
with unknown fields forbidden (`additionalProperties: false`), so the schemathesis run in
tests/integration/test_openapi.py fails when an answer and its description drift apart.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from postbox.queue.contract import DEAD_LETTER_CLASSES, EmailStatus
from postbox.queue.job_ids import JOB_ID_PATTERN

_Str = fields.String
_Int = fields.Integer


def _nullable(data_key: str | None = None) -> fields.String:
    """A string that is always there but may be null."""
    return fields.String(required=True, allow_none=True, data_key=data_key)


class AcceptedSchema(Schema):
    """One accepted (or duplicate) email."""

    id = _Str(required=True, validate=validate.Regexp(JOB_ID_PATTERN))
    message_id = _Str(required=True)
    status = _Str(required=True)
    duplicate = fields.Boolean(required=True)
    suppressed = fields.List(
        _Str(), metadata={"description": "Recipients left out: on the suppression list."}
    )


class DeliverySchema(Schema):
    """What the relay answered, per recipient."""

    smtp_reply = _nullable()
    # The relay that accepted it (SMTP_RELAYS' name, `default` without it); null if unknown.
    relay = _nullable()
    accepted = fields.List(_Str(), required=True)
    refused = fields.Dict(keys=_Str(), values=_Str(), required=True)
    relays = fields.Dict(
        keys=_Str(),
        values=_Str(),
        required=True,
        metadata={
            "description": "Per accepted recipient, the relay that accepted it (an email split "
            "over SMTP_ROUTES goes through several); empty when the record no longer lists "
            "the recipients."
        },
    )
    suppressed = fields.List(
        _Str(), metadata={"description": "Recipients on the suppression list."}
    )
    bounced = fields.Dict(
        keys=_Str(),
        values=fields.Dict(),
        metadata={"description": "Per recipient, the latest bounce or complaint report."},
    )


class EmailStatusSchema(Schema):
    """`GET /v1/emails/{id}`."""

    id = _Str(required=True)
    status = _Str(required=True, validate=validate.OneOf([str(s) for s in EmailStatus]))
    attempts = _Int(required=True)
    message_id = _nullable()
    sender = _Str()
    to = fields.List(_Str())
    cc = fields.List(_Str())
    subject = _Str()
    tags = fields.List(_Str())
    send_at = _Str(allow_none=True)
    accepted_at = _nullable()
    finished_at = _nullable()
    last_error = _nullable()
    error_class = _nullable()
    delivery = fields.Nested(DeliverySchema, required=True)
    history = fields.List(fields.Dict(), required=True)


class DeadLetterSchema(Schema):
    """One failed email."""

    id = _Str(required=True)
    failed_at = _Str(required=True)
    error_class = _Str(required=True, validate=validate.OneOf(DEAD_LETTER_CLASSES))
    reason = _Str(required=True)
    attempts = _Int(required=True)
    message_id = _nullable()
    sender = _nullable(data_key="from")
    to = fields.List(_Str(), required=True)
    subject = _nullable()


class DeadLetterPageSchema(Schema):
    """`GET /v1/dead-letters`."""

    data = fields.List(fields.Nested(DeadLetterSchema), required=True)
    next_cursor = _nullable()


class RequeuedSchema(Schema):
    """One dead letter requeued."""

    id = _Str(required=True)
    status = _Str(required=True)


class RequeuedManySchema(Schema):
    """Dead letters requeued by `POST /v1/dead-letters/retry`."""

    retried = _Int(required=True)


class HealthSchema(Schema):
    """`GET /healthz` and `GET /readyz`."""

    status = _Str(required=True)
    redis = _Str()


class ThroughputSchema(Schema):
    """Emails finished in the last minute, and in each of the last minutes."""

    window_seconds = _Int(required=True)
    sent = _Int(required=True)
    failed = _Int(required=True)
    sent_per_second = fields.Float(required=True)
    per_minute = fields.Dict(keys=_Str(), values=fields.List(_Int()), required=True)


class WorkerRelaySchema(Schema):
    """A relay as one worker saw it at its last heartbeat."""

    name = _Str()  # in SMTP_RELAYS, `default` without it (absent from older workers)
    address = _Str(required=True)
    circuit = _Str(required=True, validate=validate.OneOf(["closed", "open", "half_open"]))
    down_since = _nullable()
    down_seconds = fields.Float(required=True, allow_none=True)
    consecutive_failures = _Int(required=True)
    postponed = _Int(required=True)
    probes = _Int(required=True)
    last_error = _nullable()
    error_class = _nullable()
    sends = _Int()  # since the worker started (absent from older workers)
    failures = _Int()


class InstanceSchema(Schema):
    """One API or worker process of the cluster registry; a `gone` one has only its id."""

    id = _Str(required=True)
    health = _Str(required=True, validate=validate.OneOf(["healthy", "slow", "gone"]))
    last_seen_seconds = fields.Float(required=True)
    instance = _Str()
    role = _Str(validate=validate.OneOf(["api", "worker"]))
    host = _Str()
    pid = _Int()
    version = _Str()
    concurrency = _Int()
    active = _Int()
    processed = _Int()
    started_at = _Str()
    heartbeat_seconds = fields.Float()
    # The first relay in trouble (else the first); `relays`: every relay, in order.
    relay = fields.Nested(WorkerRelaySchema)
    relays = fields.List(fields.Nested(WorkerRelaySchema))
    # A worker's delivery settings, nothing secret (postbox/queue/delivery_settings.py).
    delivery = fields.Dict()


class RoleTotalsSchema(Schema):
    """Sums over one role's live processes."""

    processes = _Int(required=True)
    concurrency = _Int(required=True)
    active = _Int(required=True)
    processed = _Int(required=True)


class ClusterSchema(Schema):
    """Processes per health, and per role the totals of the live ones."""

    processes = fields.Dict(keys=_Str(), values=_Int(), required=True)
    roles = fields.Dict(keys=_Str(), values=fields.Nested(RoleTotalsSchema), required=True)


class AdviceSchema(Schema):
    """One thing to do, with the figure that triggered it."""

    code = _Str(required=True)
    message = _Str(required=True)
    figure = _Str(required=True)
    value = fields.Float(required=True)
    threshold = fields.Float(required=True)


class WorkerConnectionSchema(Schema):
    """A worker connected to the queue, as BullMQ names it."""

    instance = _Str(required=True)
    address = _nullable()


class WaitingSampleSchema(Schema):
    """One sample of the waiting count (Redis' clock)."""

    at_ms = _Int(required=True)
    waiting = _Int(required=True)


class RecentDeadLettersSchema(Schema):
    """Error classes of the newest dead letters."""

    sampled = _Int(required=True)
    by_class = fields.Dict(keys=_Str(), values=_Int(), required=True)
    latest_config_error = _nullable()


class RelayWorkersSchema(Schema):
    """What the live workers report about the relay."""

    workers_reporting = _Int(required=True)
    workers_down = _Int(required=True)
    workers_auth_refused = _Int(required=True)
    address = _nullable()
    down_seconds = fields.Float(required=True, allow_none=True)
    last_error = _nullable()
    auth_error = _nullable()
    postponed = _Int(required=True)


class RelayStatusSchema(Schema):
    """One relay by name, as the live workers see it."""

    name = _Str(required=True)
    address = _Str(required=True)
    status = _Str(required=True, validate=validate.OneOf(["healthy", "failing", "open"]))
    workers_reporting = _Int(required=True)
    workers_down = _Int(required=True)
    down_seconds = fields.Float(required=True, allow_none=True)
    last_error = _nullable()
    error_class = _nullable()
    postponed = _Int(required=True)
    sends = _Int(required=True)
    failures = _Int(required=True)


class RelaySchema(Schema):
    """The relay as configured for this API instance, and as the live workers see it."""

    host = _Str(required=True)
    port = _Int(required=True)
    security = _Str(required=True)
    custom_ca = fields.Boolean(required=True)
    pool_size = _Int(required=True)
    config_error = _nullable()
    workers = fields.Nested(RelayWorkersSchema, required=True)
    relays = fields.List(fields.Nested(RelayStatusSchema), required=True)


class RedisMemorySchema(Schema):
    """Redis's memory (INFO memory): `full` means it refuses new emails."""

    used_memory = _Int(required=True)
    maxmemory = _Int(required=True)
    maxmemory_policy = _Str(required=True)
    full = fields.Boolean(required=True)


class WebhookBacklogSchema(Schema):
    """What waits for the webhook dispatchers."""

    stream = _Int(required=True)
    due = _Int(required=True)
    waiting = _Int(required=True)


class WebhookStatsSchema(Schema):
    """Webhook delivery: endpoints, backlog, deliveries pending and failed, and every
    attempt so far by status class (`2xx` ... `5xx`, `timeout`, `connection`, `refused`)."""

    endpoints = _Int(required=True)
    enabled = _Int(required=True)
    backlog = fields.Nested(WebhookBacklogSchema, required=True)
    pending = _Int(required=True)
    failed = _Int(required=True)
    outcomes = fields.Dict(keys=_Str(), values=_Int(), required=True)


class QueueStatsSchema(Schema):
    """`GET /v1/queue/stats`."""

    queue = _Str(required=True)
    at_ms = _Int(required=True)
    counts = fields.Dict(keys=_Str(), values=_Int(), required=True)
    workers = fields.List(fields.Nested(WorkerConnectionSchema), required=True)
    throughput = fields.Nested(ThroughputSchema, required=True)
    dead_letters = fields.Nested(RecentDeadLettersSchema, required=True)
    instances = fields.List(fields.Nested(InstanceSchema), required=True)
    cluster = fields.Nested(ClusterSchema, required=True)
    waiting_history = fields.List(fields.Nested(WaitingSampleSchema), required=True)
    redis = fields.Nested(RedisMemorySchema, required=True)
    settings = fields.Dict(required=True)
    relay = fields.Nested(RelaySchema, required=True)
    webhooks = fields.Nested(WebhookStatsSchema, required=True)
    history = fields.Dict(required=True)  # enabled, and days and bodies (postbox/api/history.py)
    advice = fields.List(fields.Nested(AdviceSchema), required=True)
