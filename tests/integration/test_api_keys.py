"""Several API keys, each optionally tied to sender domains; keys never reach the logs."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

from postbox.config import key_digest, load_settings
from tests.conftest import ROOT
from tests.support import API_KEY, email_payload

SEND = "/v1/emails"
OTHER_KEY = "second-key-0123456789abcdef"


def _api(api_factory, service_env, keys: str):
    return api_factory(load_settings({**service_env, "API_KEYS": keys}))


def test_a_restricted_key_sends_from_its_domains_only(api_factory, service_env):
    keys = f"sha256:{key_digest(API_KEY)}@Bücher.de|example.com,{OTHER_KEY}"
    api = _api(api_factory, service_env, keys)
    other = {"Authorization": f"Bearer {OTHER_KEY}"}

    own = api.post(SEND, json=email_payload(**{"from": "Shop <shop@bücher.de>"}))
    foreign = api.post(SEND, json=email_payload(**{"from": "ceo@bank.example"}))
    unrestricted = api.post(SEND, json=email_payload(**{"from": "ceo@bank.example"}), headers=other)

    assert own.status_code == 202
    assert foreign.status_code == 403
    assert foreign.json["error"]["code"] == "forbidden"
    assert foreign.json["error"]["fields"] == {
        "from": ["This API key may only send from xn--bcher-kva.de, example.com."]
    }
    assert unrestricted.status_code == 202


def test_keys_never_appear_in_logs(api_factory, service_env, caplog):
    keys = f"sha256:{key_digest(API_KEY)}@example.net"
    api = _api(api_factory, service_env, keys)
    caplog.set_level(logging.DEBUG)

    api.post(SEND, json=email_payload())  # 403: logged with the key's id
    api.client.post(SEND, json=email_payload(), headers={"Authorization": "Bearer wrong-key-123"})

    assert "may not send from" in caplog.text
    assert key_digest(API_KEY)[:12] in caplog.text
    assert API_KEY not in caplog.text
    assert key_digest(API_KEY) not in caplog.text
    assert "wrong-key-123" not in caplog.text


def test_keys_create_prints_a_key_and_the_entry_that_admits_it(api_factory, service_env):
    completed = subprocess.run(
        [sys.executable, "-m", "postbox", "keys", "create", "--allowed-from", "example.com"],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    key = re.search(r"^\s+(pbx_\S+)$", completed.stdout, re.MULTILINE).group(1)
    entry = re.search(r"^\s+(sha256:\S+)$", completed.stdout, re.MULTILINE).group(1)
    assert entry == f"sha256:{key_digest(key)}@example.com"

    api = _api(api_factory, service_env, entry)
    headers = {"Authorization": f"Bearer {key}"}
    allowed = api.client.post(
        SEND, json=email_payload(**{"from": "a@example.com"}), headers=headers
    )
    assert allowed.status_code == 202
    foreign = email_payload(**{"from": "a@example.org"})
    assert api.client.post(SEND, json=foreign, headers=headers).status_code == 403
