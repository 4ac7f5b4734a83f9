"""Webhook secrets at rest: AES-GCM under ENCRYPTION_KEY, bound to their endpoint."""

from __future__ import annotations

import base64

import pytest

from postbox.config import load_settings
from postbox.errors import ConfigError, SecretUnreadable
from postbox.webhooks.secret_box import SecretBox, new_signing_secret

KEY = "0f" * 32
OTHER_KEY = "a1" * 32


def test_a_secret_round_trips_and_is_not_stored_in_clear() -> None:
    box = SecretBox(KEY)
    secret = new_signing_secret()
    stored = box.encrypt(secret, "wh_one")
    assert secret not in stored
    assert secret.removeprefix("whsec_") not in stored
    assert box.decrypt(stored, "wh_one") == secret
    assert box.encrypt(secret, "wh_one") != stored  # a fresh nonce each time


def test_another_key_or_another_endpoint_does_not_decrypt() -> None:
    stored = SecretBox(KEY).encrypt("whsec_abc", "wh_one")
    with pytest.raises(SecretUnreadable):
        SecretBox(OTHER_KEY).decrypt(stored, "wh_one")
    with pytest.raises(SecretUnreadable):
        SecretBox(KEY).decrypt(stored, "wh_two")
    with pytest.raises(SecretUnreadable):
        SecretBox(KEY).decrypt(stored[:-4] + "AAAA", "wh_one")
    with pytest.raises(SecretUnreadable):
        SecretBox(KEY).decrypt("not a stored secret", "wh_one")


def test_signing_secrets_are_standard_webhooks_secrets() -> None:
    secret = new_signing_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    assert new_signing_secret() != secret


@pytest.mark.parametrize("bad", ["abc", "0f" * 31, "zz" * 32, "0f" * 33])
def test_a_bad_key_is_a_config_error_naming_the_setting_not_the_value(bad: str) -> None:
    with pytest.raises(ConfigError) as raised:
        SecretBox(bad)
    assert "ENCRYPTION_KEY" in str(raised.value)
    assert bad not in str(raised.value)
    with pytest.raises(ConfigError) as loaded:
        load_settings({"ENCRYPTION_KEY": bad})
    assert str(loaded.value).startswith("ENCRYPTION_KEY has value (hidden): must be 64 hex")
    assert bad not in str(loaded.value)


def test_the_key_is_read_once_and_kept_out_of_repr() -> None:
    settings = load_settings({"ENCRYPTION_KEY": KEY.upper()})
    assert settings.webhooks.encryption_key == KEY
    assert KEY not in repr(settings)
    assert KEY not in repr(SecretBox(KEY))
    assert load_settings({}).webhooks.encryption_key is None
    assert load_settings({}).webhooks.allow_private_networks is False
    allowed = load_settings({"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"})
    assert allowed.webhooks.allow_private_networks is True
