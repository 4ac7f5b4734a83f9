"""`/v1/webhooks`: make, list, change and delete webhook endpoints; rotate their secrets.

An endpoint belongs to the API key that made it and takes only the events of emails from
that key's sender domains. A key restricted to domains sees and changes only its own
endpoints (another's answers 404, as if it did not exist); an unrestricted key sees all.
The signing secret is shown once, when it is made (creation, rotation), never again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any, TypeVar

from flask import Blueprint, Flask
from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from postbox.api.auth import current_key
from postbox.api.body import read_json_object
from postbox.api.extension import PostboxState, state
from postbox.api.schemas import BoundedList
from postbox.config import ApiKey
from postbox.errors import (
    EncryptionKeyMissing,
    NotFound,
    QueueUnavailable,
    ValidationFailed,
    WebhookLimitReached,
)
from postbox.webhooks.endpoints import ALL_EVENTS, SUBSCRIBABLE_EVENTS, Endpoint, EndpointStore
from postbox.webhooks.secret_box import SecretBox
from postbox.webhooks.urls import MAX_URL_LENGTH, check_url

bp = Blueprint("webhooks", __name__)
T = TypeVar("T")
log = logging.getLogger(__name__)
MAX_DESCRIPTION_CHARS = 500
# Endpoints one API key may own: each takes a consumer's share of every event, so a key
# that makes them in a loop would slow every tenant's deliveries.
MAX_WEBHOOKS_PER_KEY = 25


def _events_field(required: bool) -> BoundedList:
    event = fields.String(
        validate=validate.OneOf(SUBSCRIBABLE_EVENTS, error="Not an event type: {input}.")
    )
    return BoundedList(
        event,
        len(SUBSCRIBABLE_EVENTS),
        required=required,
        validate=validate.Length(min=1, error="Name at least one event type, or '*'."),
    )


class _JsonBoolean(fields.Boolean):
    """true or false, nothing that merely looks like one ("yes", 1)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class _EndpointFields(Schema):
    @validates("events")
    def _star_alone(self, value: list[str], **kwargs: Any) -> None:
        if ALL_EVENTS in value and len(set(value)) > 1:
            raise ValidationError("'*' already means every event: give it alone.")


class CreateWebhookSchema(_EndpointFields):
    """The body of `POST /v1/webhooks`."""

    url = fields.String(required=True, validate=validate.Length(min=1, max=MAX_URL_LENGTH))
    events = _events_field(required=True)
    description = fields.String(
        load_default="", validate=validate.Length(max=MAX_DESCRIPTION_CHARS)
    )


class UpdateWebhookSchema(_EndpointFields):
    """The body of `PATCH /v1/webhooks/{id}`: the fields to change, at least one."""

    url = fields.String(validate=validate.Length(min=1, max=MAX_URL_LENGTH))
    events = _events_field(required=False)
    description = fields.String(validate=validate.Length(max=MAX_DESCRIPTION_CHARS))
    enabled = _JsonBoolean()

    @validates_schema
    def _something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Give at least one of url, events, description, enabled.")


_create = CreateWebhookSchema()
_update = UpdateWebhookSchema()


@bp.post("/webhooks")
def create_webhook() -> tuple[dict[str, Any], int]:
    """Make an endpoint; the answer holds its signing secret, shown this once."""
    _box_or_refuse()
    body = _create.load(read_json_object())
    url = _checked_url(body["url"])
    key = current_key()
    _below_limit(key)
    endpoint, secret = _endpoints(
        lambda store: store.create(
            url, tuple(body["events"]), body["description"], key.key_id, key.allowed_from
        )
    )
    return {**endpoint.as_json(), "secret": secret}, 201


@bp.get("/webhooks")
def list_webhooks() -> dict[str, Any]:
    """The endpoints this key may see, oldest first."""
    return {"data": [endpoint.as_json() for endpoint in endpoints_for(current_key())]}


@bp.get("/webhooks/<endpoint_id>")
def get_webhook(endpoint_id: str) -> dict[str, Any]:
    """One endpoint (never its secret)."""
    return _own(endpoint_id).as_json()


@bp.patch("/webhooks/<endpoint_id>")
def update_webhook(endpoint_id: str) -> dict[str, Any]:
    """Change an endpoint's URL, events, description, or whether it is enabled."""
    body = _update.load(read_json_object())
    _own(endpoint_id)
    if "url" in body:
        body["url"] = _checked_url(body["url"])
    if "events" in body:
        body["events"] = tuple(body["events"])
    changed = _endpoints(lambda store: store.update(endpoint_id, **body))
    if changed is None:
        raise _not_found(endpoint_id)
    return changed.as_json()


@bp.delete("/webhooks/<endpoint_id>")
def delete_webhook(endpoint_id: str) -> tuple[str, int]:
    """Delete an endpoint and the deliveries still waiting for it."""
    _own(endpoint_id)
    if not _endpoints(lambda store: store.delete(endpoint_id)):
        raise _not_found(endpoint_id)
    return "", 204


@bp.post("/webhooks/<endpoint_id>/rotate-secret")
def rotate_webhook_secret(endpoint_id: str) -> dict[str, Any]:
    """A new signing secret, shown this once; the old one signs beside it for 24 hours."""
    _box_or_refuse()
    _own(endpoint_id)
    rotated = _endpoints(lambda store: store.rotate_secret(endpoint_id))
    if rotated is None:
        raise _not_found(endpoint_id)
    secret, until = rotated
    return {"id": endpoint_id, "secret": secret, "previous_secret_expires_at": until}


def _below_limit(key: ApiKey) -> None:
    """409 when `key` already owns MAX_WEBHOOKS_PER_KEY endpoints (a soft cap: two creations
    at the same moment may both pass it)."""
    owned = sum(1 for e in _endpoints(lambda store: store.all()) if e.owner == key.key_id)
    if owned >= MAX_WEBHOOKS_PER_KEY:
        raise WebhookLimitReached(
            f"This API key already has {owned} webhook endpoints, the most allowed"
            f" ({MAX_WEBHOOKS_PER_KEY}): delete one, or subscribe one endpoint to more events."
        )


def sync_owners_at_start(app: Flask) -> None:
    """Make every endpoint follow its owner key as API_KEYS has it in this process: run once
    per API process at start, so a key's new domains apply and a removed key's endpoints
    stop receiving events. Redis being down only postpones it to the next start."""
    current: PostboxState = app.extensions["postbox"]
    settings = current.settings
    owners = {key.key_id: key.allowed_from for key in settings.api.api_keys}
    queue_name = settings.redis.queue_name
    try:
        changed = current.gateway.with_client(
            lambda client: EndpointStore(client, queue_name, None).sync_owners(owners)
        )
    except QueueUnavailable as exc:
        log.warning("webhook endpoints not checked against API_KEYS: %s", exc)
        return
    if changed:
        log.info("%d webhook endpoint(s) updated to their API keys' current scope", changed)


def _endpoints(make: Callable[[EndpointStore], Awaitable[T]]) -> T:
    """Run one store call on the gateway's loop thread, with this app's settings."""
    current = state()
    queue_name = current.settings.redis.queue_name
    box = _box(current.settings.webhooks.encryption_key)
    return current.gateway.with_client(lambda client: make(EndpointStore(client, queue_name, box)))


@lru_cache(maxsize=4)
def _box(key_hex: str | None) -> SecretBox | None:
    return SecretBox(key_hex) if key_hex else None


def _box_or_refuse() -> None:
    """503 before anything is read or resolved, when no secret could be kept."""
    if state().settings.webhooks.encryption_key is None:
        raise EncryptionKeyMissing()


def _checked_url(url: str) -> str:
    problem = check_url(url, state().settings.webhooks.allow_private_networks)
    if problem:
        raise ValidationFailed("The webhook URL cannot be used.", {"url": [problem]})
    return url


def endpoints_for(key: ApiKey) -> list[Endpoint]:
    """The endpoints `key` may see, oldest first (the API's list and the dashboard's)."""
    return [e for e in _endpoints(lambda store: store.all()) if _visible(e, key)]


def _visible(endpoint: Endpoint, key: ApiKey) -> bool:
    """An unrestricted key sees every endpoint; a restricted one only those it made."""
    return not key.allowed_from or endpoint.owner == key.key_id


def _own(endpoint_id: str) -> Endpoint:
    """The endpoint, if the current key may see it; 404 otherwise (not 403: another
    tenant's ids are not confirmed to exist)."""
    endpoint = _endpoints(lambda store: store.get(endpoint_id))
    if endpoint is None or not _visible(endpoint, current_key()):
        raise _not_found(endpoint_id)
    return endpoint


def _not_found(endpoint_id: str) -> NotFound:
    return NotFound(f"No webhook with id {endpoint_id!r}.", {"id": ["No such webhook."]})
