"""`/v1/suppressions` through the Flask app with the real Redis: add, list, remove, the
normalised match, expiry, errors naming the field, and scope isolation between keys."""

from __future__ import annotations

from typing import Any

import pytest

from postbox.config import key_digest, load_settings
from tests.support import API_KEY

PATH = "/v1/suppressions"
OTHER_KEY = "tenant-b-key-0123456789"


def _delete(api: Any, address: str, key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else api.auth
    return api.client.delete(f"{PATH}/{address}", headers=headers)


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_add_answers_201_then_200_and_lists_the_normalised_address(api):
    first = api.post(PATH, json={"address": "Bob@Bücher.Example", "note": "asked by phone"})
    again = api.post(PATH, json={"address": "Bob@XN--BCHER-KVA.example", "reason": "manual"})

    assert first.status_code == 201
    [entry] = first.json["data"]
    assert entry["address"] == "Bob@xn--bcher-kva.example"
    assert entry["scope"] == "*"
    assert entry["reason"] == "manual"
    assert entry["note"] == "asked by phone"
    assert entry["expires_at"] is None
    assert again.status_code == 200
    assert again.json["data"] == [entry]
    assert api.get(PATH).json == {"data": [entry], "next_cursor": None}


def test_delete_answers_204_then_404(api):
    api.post(PATH, json={"address": "gone@example.org", "reason": "unsubscribe"})

    assert _delete(api, "gone@EXAMPLE.ORG").status_code == 204
    missing = _delete(api, "gone@example.org")
    assert missing.status_code == 404
    assert missing.json["error"]["fields"] == {"address": ["Not suppressed."]}
    assert api.get(PATH).json["data"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": "not an address"}, "address"),
        ({"address": "a@example.org", "reason": "hard_bounce"}, "reason"),
        ({"address": "a@example.org", "colour": "red"}, "colour"),
        ({"reason": "manual"}, "address"),
    ],
)
def test_bad_adds_answer_422_naming_the_field(api, body, field):
    answer = api.post(PATH, json=body)

    assert answer.status_code == 422
    assert field in answer.json["error"]["fields"]


def test_listing_pages_with_a_cursor_and_filters_by_reason(api):
    for n in range(7):
        reason = "unsubscribe" if n % 2 else "manual"
        api.post(PATH, json={"address": f"user{n}@example.org", "reason": reason})

    seen, cursor = [], None
    while True:
        query = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
        page = api.get(PATH + query).json
        seen += [e["address"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    unsubscribed = api.get(PATH + "?reason=unsubscribe").json["data"]
    one = api.get(PATH + "?address=user3@EXAMPLE.org").json["data"]

    assert seen == [f"user{n}@example.org" for n in range(7)]
    assert [e["address"] for e in unsubscribed] == [
        "user1@example.org",
        "user3@example.org",
        "user5@example.org",
    ]
    assert [e["address"] for e in one] == ["user3@example.org"]
    assert api.get(PATH + "?cursor=bm9wZQ").status_code == 422


def test_an_expiry_per_reason_is_set_from_the_configuration(api_factory, service_env):
    api = api_factory(load_settings({**service_env, "SUPPRESSION_TTL_DAYS_UNSUBSCRIBE": "30"}))

    kept = api.post(PATH, json={"address": "a@example.org"}).json["data"][0]
    expiring = api.post(PATH, json={"address": "b@example.org", "reason": "unsubscribe"})

    assert kept["expires_at"] is None
    assert expiring.json["data"][0]["expires_at"] > expiring.json["data"][0]["created_at"]


def test_two_restricted_keys_see_and_remove_only_their_own_entries(api_factory, service_env):
    keys = f"sha256:{key_digest(API_KEY)}@example.com,sha256:{key_digest(OTHER_KEY)}@example.net"
    api = api_factory(load_settings({**service_env, "API_KEYS": keys}))

    mine = api.post(PATH, json={"address": "shared@example.org"}).json["data"]
    theirs = api.post(PATH, json={"address": "shared@example.org"}, headers=_as(OTHER_KEY))

    assert [e["scope"] for e in mine] == ["example.com"]
    assert theirs.status_code == 201  # a separate entry, in the other key's scope
    assert [e["scope"] for e in theirs.json["data"]] == ["example.net"]
    assert [e["scope"] for e in api.get(PATH).json["data"]] == ["example.com"]
    assert _delete(api, "shared@example.org").status_code == 204
    assert _delete(api, "shared@example.org").status_code == 404
    listed = api.get(PATH, headers=_as(OTHER_KEY)).json["data"]
    assert [e["scope"] for e in listed] == ["example.net"]
