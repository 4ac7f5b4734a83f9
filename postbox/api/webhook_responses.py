"""marshmallow schemas, for the OpenAPI document, of the webhook answers and of every event
payload a receiver gets.

A payload is in the Standard Webhooks shape, `{"type", "timestamp", "data"}`, and comes with
the `webhook-id` (the event id, the same on every retry), `webhook-timestamp` and
`webhook-signature` headers. `data` never holds a body, an attachment or a secret.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from postbox.queue import events
from postbox.webhooks.endpoints import SUBSCRIBABLE_EVENTS

_Str = fields.String
_Int = fields.Integer
TEST_EVENT = "webhook.test"


def _nullable() -> fields.String:
    return fields.String(required=True, allow_none=True)


def _events() -> fields.List[Any]:
    return fields.List(_Str(validate=validate.OneOf(SUBSCRIBABLE_EVENTS)), required=True)


class WebhookSchema(Schema):
    """One endpoint (never its secret)."""

    id = _Str(required=True, validate=validate.Regexp(r"^wh_[A-Za-z0-9_-]{22}$"))
    url = _Str(required=True)
    events = _events()
    description = _Str(required=True)
    enabled = fields.Boolean(required=True)
    disabled_reason = _nullable()
    domains = fields.List(_Str(), required=True)
    created_at = _Str(required=True)


class WebhookCreatedSchema(WebhookSchema):
    """`POST /v1/webhooks`: the endpoint and its signing secret, shown this once."""

    secret = _Str(required=True, validate=validate.Regexp(r"^whsec_"))


class WebhookListSchema(Schema):
    """`GET /v1/webhooks`."""

    data = fields.List(fields.Nested(WebhookSchema), required=True)


class SecretRotatedSchema(Schema):
    """`POST /v1/webhooks/{id}/rotate-secret`: the new secret, shown this once."""

    id = _Str(required=True)
    secret = _Str(required=True, validate=validate.Regexp(r"^whsec_"))
    previous_secret_expires_at = _Str(required=True)


class EventDataSchema(Schema):
    """What every email event's `data` holds."""

    email_id = _Str(required=True, metadata={"description": "The email's id (em_...)."})
    message_id = _Str(required=True, metadata={"description": "Its Message-ID header."})
    sender = _Str(required=True, data_key="from", metadata={"description": "Sender address."})
    to = fields.List(
        _Str(), required=True, metadata={"description": "The recipients the event concerns."}
    )
    tags = fields.List(_Str(), required=True)
    attempt = _Int(required=True, metadata={"description": "The attempt; 0 before any."})
    sequence = _Int(
        required=True,
        metadata={"description": "Increases with each event of an email: order them by it."},
    )


class AcceptedDataSchema(EventDataSchema):
    """What `email.queued` and `email.scheduled` add: the subject and the sending key."""

    subject = _Str(required=True)
    key_id = fields.String(
        required=True, allow_none=True, metadata={"description": "The API key's id."}
    )


class QueuedDataSchema(AcceptedDataSchema):
    """`email.queued`: accepted, to be sent now."""

    send_at = fields.String(required=True, allow_none=True, validate=validate.Equal(None))


class ScheduledDataSchema(AcceptedDataSchema):
    """`email.scheduled`: accepted, to be sent at `send_at`."""

    send_at = _Str(required=True, metadata={"description": "When it will be sent (ISO 8601)."})


class RecipientOutcomeSchema(Schema):
    """What the relay answered for one recipient."""

    address = _Str(required=True)
    status = _Str(required=True, validate=validate.OneOf(["accepted", "refused"]))
    reply = _nullable()
    relay = _Str(
        metadata={
            "description": "The relay that accepted it, when the email was split over "
            "several routes (SMTP_ROUTES)."
        }
    )


class SentDataSchema(EventDataSchema):
    """`email.sent`: the relay accepted it for some or all recipients."""

    recipients = fields.List(fields.Nested(RecipientOutcomeSchema), required=True)
    reply = fields.String(
        required=True, allow_none=True, metadata={"description": "The relay's reply to DATA."}
    )
    relay = fields.String(
        allow_none=True,
        metadata={
            "description": "The relay that accepted it (SMTP_RELAYS' name, `default` without "
            "it); null for a re-run that found it accepted in the journal, absent from events "
            "of workers older than SMTP_RELAYS."
        },
    )


class FailedDataSchema(EventDataSchema):
    """`email.failed`: it became a dead letter."""

    error_class = _Str(required=True, metadata={"description": "rejected, temporary, ..."})
    reply = _Str(required=True, metadata={"description": "The relay's reply or the error."})


class DeferredDataSchema(FailedDataSchema):
    """`email.deferred`: an attempt failed for now; another follows at `next_attempt_at`."""

    next_attempt_at = _Str(required=True)


class RetriedDataSchema(EventDataSchema):
    """`email.retried`: a dead letter was requeued (attempt 0)."""


class CanceledDataSchema(EventDataSchema):
    """`email.canceled`: called back before any worker took it; it will not be sent."""


class TestDataSchema(Schema):
    """`webhook.test`: sent on request (`POST /v1/webhooks/{id}/test`), never for an email."""

    class Meta:
        unknown = "include"


# Component name of each event's payload, and the schema of its `data`.
EVENT_PAYLOADS: dict[str, tuple[str, type[Schema]]] = {
    events.QUEUED: ("EmailQueuedEvent", QueuedDataSchema),
    events.SCHEDULED: ("EmailScheduledEvent", ScheduledDataSchema),
    events.SENT: ("EmailSentEvent", SentDataSchema),
    events.DEFERRED: ("EmailDeferredEvent", DeferredDataSchema),
    events.FAILED: ("EmailFailedEvent", FailedDataSchema),
    events.RETRIED: ("EmailRetriedEvent", RetriedDataSchema),
    events.CANCELED: ("EmailCanceledEvent", CanceledDataSchema),
    TEST_EVENT: ("WebhookTestEvent", TestDataSchema),
}


def payload_schema(event_type: str, data: type[Schema]) -> type[Schema]:
    """The schema of the whole payload of `event_type`: type, timestamp and data."""
    return Schema.from_dict(
        {
            "type": _Str(required=True, validate=validate.OneOf([event_type])),
            "timestamp": fields.DateTime(
                required=True, metadata={"description": "When it happened, ISO 8601 UTC."}
            ),
            "data": fields.Nested(data, required=True),
        },
        name=EVENT_PAYLOADS[event_type][0],
    )
