"""An endpoint's deliveries: `GET /v1/webhooks/{id}/deliveries` (recent attempts, or the
failed or pending deliveries), `POST .../deliveries/{delivery_id}/retry`, `POST .../replay`
{since, until} after an outage on the receiver's side, and `POST .../test`.

The tenancy rule is the endpoints' own (postbox/api/webhooks.py): an endpoint the caller's
key may not see answers 404, as if it did not exist. What these routes queue goes out
through the dispatchers, signed and retried like every delivery (202: accepted, not sent).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, request
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from postbox.api.body import read_json_object
from postbox.api.extension import state
from postbox.api.webhooks import _own as owned_endpoint
from postbox.errors import NotFound
from postbox.webhooks.deliveries import iso_ms, retry_delivery
from postbox.webhooks.delivery_records import (
    LISTED_STATES,
    delivery_counts,
    listed_deliveries,
    recent_attempts,
)
from postbox.webhooks.replay import ReplayResult, replay, send_test

bp = Blueprint("webhook_deliveries", __name__)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 1000  # the log keeps the last 1,000 attempts


class DeliveriesQuerySchema(Schema):
    """The query string of `GET /v1/webhooks/{id}/deliveries`."""

    state = fields.String(load_default="attempts", validate=validate.OneOf(LISTED_STATES))
    limit = fields.Integer(
        load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT)
    )
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))


class ReplaySchema(Schema):
    """The body of `POST /v1/webhooks/{id}/replay`: the span of events to deliver again,
    ISO 8601 with a time zone, both ends included."""

    since = fields.AwareDateTime(format="iso", required=True)
    until = fields.AwareDateTime(format="iso", required=True)

    @validates_schema
    def _in_order(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["until"] < data["since"]:
            raise ValidationError("Must not be before since.", "until")
        if data["since"] > datetime.now(UTC):
            raise ValidationError("Must not be in the future.", "since")


_query = DeliveriesQuerySchema()
_replay = ReplaySchema()


@bp.get("/webhooks/<endpoint_id>/deliveries")
def list_deliveries(endpoint_id: str) -> dict[str, Any]:
    """The endpoint's recent attempts, newest first (or its failed or pending deliveries),
    with how many are pending and failed."""
    query = _query.load(request.args.to_dict())
    owned_endpoint(endpoint_id)
    name = state().settings.redis.queue_name
    limit, offset, listed = query["limit"], query["offset"], query["state"]

    async def load(client: Any) -> dict[str, Any]:
        if listed == "attempts":
            rows = await recent_attempts(client, name, endpoint_id, limit, offset)
        else:
            rows = await listed_deliveries(
                client, name, endpoint_id, state=listed, limit=limit, offset=offset
            )
        return {"data": rows, "state": listed, **await delivery_counts(client, name, endpoint_id)}

    return state().gateway.with_client(load)


@bp.post("/webhooks/<endpoint_id>/deliveries/<delivery_id>/retry")
def retry(endpoint_id: str, delivery_id: str) -> tuple[dict[str, Any], int]:
    """Make a failed or pending delivery due now (a failed one with a fresh schedule)."""
    owned_endpoint(endpoint_id)
    name = state().settings.redis.queue_name
    done = delivery_id.startswith(f"{endpoint_id}:") and state().gateway.with_client(
        lambda client: retry_delivery(client, name, endpoint_id, delivery_id)
    )
    if not done:
        raise NotFound(
            f"No failed or pending delivery {delivery_id!r} of this webhook.",
            {"delivery_id": ["Not a failed or pending delivery of this webhook."]},
        )
    return {"delivery_id": delivery_id, "state": "pending"}, 202


@bp.post("/webhooks/<endpoint_id>/replay")
def replay_events(endpoint_id: str) -> tuple[dict[str, Any], int]:
    """Deliver again the events of a span that this endpoint takes, with their own ids."""
    body = _replay.load(read_json_object())
    endpoint = owned_endpoint(endpoint_id)
    name = state().settings.redis.queue_name
    since_ms, until_ms = (int(body[end].timestamp() * 1000) for end in ("since", "until"))
    found: ReplayResult = state().gateway.with_client(
        lambda client: replay(client, name, endpoint, since_ms, until_ms)
    )
    resume = found.resume_since_ms
    return {
        "replayed": found.replayed,
        "read": found.read,
        "complete": resume is None,
        "resume_since": None if resume is None else iso_ms(resume),
    }, 202


@bp.post("/webhooks/<endpoint_id>/test")
def send_test_event(endpoint_id: str) -> tuple[dict[str, Any], int]:
    """Queue a `webhook.test` event for the endpoint, sent at once like any delivery."""
    owned_endpoint(endpoint_id)
    name = state().settings.redis.queue_name
    event_id, delivery_id = state().gateway.with_client(
        lambda client: send_test(client, name, endpoint_id)
    )
    return {"event_id": event_id, "delivery_id": delivery_id, "type": "webhook.test"}, 202
