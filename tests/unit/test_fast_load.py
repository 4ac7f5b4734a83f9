"""`FastLoader` stands in for marshmallow's `Schema.load` on valid input, and only there.

For any payload (the hostile ones of the rendering properties, then with values of the
wrong type, unknown keys, missing fields and the rarer fields mixed in), the fast loader
either gives exactly what the schema's `load` gives, or gives None where `load` raises;
a batch loads to the same items, or fails with the same field errors.
"""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, post_load, pre_load, validates

from postbox.api.fast_load import FastLoader
from postbox.api.schemas import BatchItemSchema, BatchSchema, EmailSchema, load_batch
from postbox.config import EmailLimits
from tests.support import email_payload
from tests.unit.test_mime_properties import _payloads

LIMITS = EmailLimits()
_WRONG_TYPES = st.sampled_from([None, 42, 1.5, True, [], {}, [None], [42], {"a": "b"}, ""])
_NOW = datetime.now(UTC)
# Far from the one-year limit, so the two loads cannot fall on either side of it.
_SEND_AT = st.sampled_from(
    [
        (_NOW + timedelta(days=2)).isoformat(),
        (_NOW - timedelta(days=2)).isoformat(),
        (_NOW + timedelta(days=400)).isoformat(),
        "2026-13-01T00:00:00Z",
        "2030-01-01T00:00:00",  # no time zone
        "tomorrow",
    ]
)
_EXTRAS = st.fixed_dictionaries(
    {},
    optional={
        "tags": st.lists(st.sampled_from(["a", "b.c", "bad tag", "x" * 65, "é"]), max_size=11),
        "send_at": _SEND_AT,
        "idempotency_key": st.sampled_from(["k-1", "", "x" * 256, "a\nb", "ünï"]),
        "unknown": st.just("field"),
    },
)
_FIELDS = ["from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers"]


@st.composite
def _hostile(draw: st.DrawFn) -> dict[str, Any]:
    """A payload of the rendering properties, now and then broken in type or shape."""
    payload: dict[str, Any] = {**draw(_payloads), **draw(_EXTRAS)}
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=2, unique=True)):
        if draw(st.booleans()):
            payload[name] = draw(_WRONG_TYPES)
        else:
            payload.pop(name, None)
    return payload


def _schema_load(schema: Schema, payload: Any) -> Any | None:
    try:
        return schema.load(copy.deepcopy(payload))
    except ValidationError:
        return None


def _fast_load(loader: FastLoader, payload: Any) -> Any | None:
    return loader.load(copy.deepcopy(payload))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_hostile())
def test_fast_loader_gives_what_the_email_schema_gives_or_nothing(payload: dict[str, Any]):
    payload.pop("idempotency_key", None)
    expected = _schema_load(EmailSchema(), payload)
    loaded = _fast_load(FastLoader(EmailSchema()), payload)
    event("accepted" if expected is not None else "refused")
    assert loaded == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_hostile())
def test_fast_loader_gives_what_a_batch_item_schema_gives_or_nothing(payload: dict[str, Any]):
    expected = _schema_load(BatchItemSchema(), payload)
    loaded = _fast_load(FastLoader(BatchItemSchema()), payload)
    event("accepted" if expected is not None else "refused")
    assert loaded == expected


def _batch_outcome(load: Any, payload: Any) -> Any:
    try:
        return load(copy.deepcopy(payload))
    except ValidationError as exc:
        return ("refused", exc.messages)


_batches = st.one_of(
    st.builds(lambda emails: {"emails": emails}, st.lists(_hostile(), min_size=0, max_size=4)),
    st.builds(lambda emails: {"emails": emails}, st.lists(st.just(email_payload()), max_size=3)),
    st.builds(lambda emails: {"emails": emails, "extra": 1}, st.lists(_hostile(), max_size=2)),
    st.builds(lambda value: {"emails": value}, _WRONG_TYPES),
    st.just({}),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_batches)
def test_a_batch_loads_to_what_the_batch_schema_gives(payload: dict[str, Any]):
    expected = _batch_outcome(lambda p: BatchSchema().load(p)["emails"], payload)
    loaded = _batch_outcome(lambda p: load_batch(p, LIMITS), payload)
    event("refused" if isinstance(expected, tuple) else "accepted")
    assert loaded == expected


def _full_payload() -> dict[str, Any]:
    return email_payload(
        **{
            "from": "Zoë <zoe@Bücher.de>",
            "cc": ["c@example.org"],
            "bcc": "b@example.org",
            "reply_to": ["r@example.org"],
            "html": "<p>Hi</p>",
            "headers": {"X-Campaign": "spring"},
            "attachments": [{"filename": "a.pdf", "content": base64.b64encode(b"%PDF").decode()}],
            "tags": ["welcome"],
            "send_at": (_NOW + timedelta(days=1)).isoformat(),
            "idempotency_key": "order-1",
        }
    )


@pytest.mark.parametrize("payload", [email_payload(), _full_payload()], ids=["plain", "full"])
def test_valid_items_take_the_fast_path(payload: dict[str, Any]):
    loaded = FastLoader(BatchItemSchema()).load(payload)
    assert loaded is not None
    assert loaded == BatchItemSchema().load(payload)


def test_an_invalid_item_is_left_to_the_schema():
    assert FastLoader(EmailSchema()).load(email_payload(to="nobody")) is None
    assert FastLoader(EmailSchema()).load({**email_payload(), "surprise": 1}) is None
    assert FastLoader(EmailSchema()).load([email_payload()]) is None


class _PreLoad(Schema):
    name = fields.String()

    @pre_load
    def _strip(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return data


class _Validates(Schema):
    name = fields.String()

    @validates("name")
    def _check(self, value: str, **kwargs: Any) -> None:
        pass


class _PassOriginal(Schema):
    name = fields.String()

    @post_load(pass_original=True)
    def _keep(self, data: dict[str, Any], original: Any, **kwargs: Any) -> dict[str, Any]:
        return data


@pytest.mark.parametrize(
    "schema", [_PreLoad(), _Validates(), _PassOriginal(), EmailSchema(many=True)]
)
def test_schemas_with_behaviour_it_would_skip_are_refused(schema: Schema):
    with pytest.raises(TypeError, match="cannot stand in"):
        FastLoader(schema)
