"""The fan-out's spliced body is exactly the payload `Event.payload()` describes."""

from __future__ import annotations

import json

import pytest

from postbox.queue.events import parse_entry
from postbox.webhooks.fan_out import event_body

DATA = [
    {"email_id": "em_1", "to": ["a@example.org"], "tags": {"k": "v"}, "attempt": 0},
    {"email_id": "em_2", "reply": 'quote " and \\ and ünïcode', "recipients": []},
    {},
]


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("entry_id", ["1764590000123-0", "1764590000123-7", "5-0"])
def test_the_body_is_the_events_payload(entry_id, data):
    fields = {"type": "email.sent", "email": "em_1", "domain": "example.com"}
    for text in (
        json.dumps(data),
        json.dumps(data, indent=1),
        json.dumps(data, separators=(",", ":")),
    ):
        event = parse_entry(entry_id, {**fields, "data": text})
        assert json.loads(event_body(entry_id, "email.sent", text)) == event.payload()


def test_the_body_keeps_the_payloads_key_order():
    body = event_body("1764590000123-2", "email.queued", '{"email_id":"em_1","attempt":0}')
    assert body == (
        '{"type":"email.queued","timestamp":"2025-12-01T11:53:20.123Z","data":'
        '{"email_id":"em_1","attempt":0,"sequence":1764590000123002}}'
    )


@pytest.mark.parametrize("data", ["[1]", "null", "", '"text"'])
def test_data_that_is_not_an_object_is_refused(data):
    with pytest.raises(ValueError):
        event_body("1-0", "email.sent", data)
