"""REDIS_SENTINELS, REDIS_SENTINEL_*, REDIS_PASSWORD and REDIS_ACK_*: parsed once, errors
naming the variable, secrets kept out of `repr` and error messages."""

from __future__ import annotations

import pytest

from postbox.config import load_settings
from postbox.errors import ConfigError
from postbox.logs import secret_values

SENTINELS = "s0:26379, s1:26380,[::1]:26381"


def test_sentinels_are_parsed_with_their_master_and_secrets():
    settings = load_settings(
        {
            "REDIS_SENTINELS": SENTINELS,
            "REDIS_SENTINEL_MASTER": "queue",
            "REDIS_SENTINEL_PASSWORD": "sentinel-secret-1",
            "REDIS_PASSWORD": "redis-secret-2",
        }
    )

    sentinel = settings.redis.sentinel
    assert sentinel is not None
    assert sentinel.nodes == (("s0", 26379), ("s1", 26380), ("::1", 26381))
    assert sentinel.master == "queue"
    assert sentinel.password == "sentinel-secret-1"
    assert sentinel.redis_password == "redis-secret-2"
    assert settings.redis.safe_url == "sentinel://s0:26379,s1:26380,::1:26381/queue"
    shown = repr(settings)
    assert "sentinel-secret-1" not in shown
    assert "redis-secret-2" not in shown


def test_without_sentinels_redis_url_is_used_and_nothing_waits_for_replicas():
    settings = load_settings({"REDIS_URL": "redis://cache:6380/2"})

    assert settings.redis.sentinel is None
    assert settings.redis.ack.replicas == 0


def test_the_master_name_defaults_to_mymaster():
    sentinel = load_settings({"REDIS_SENTINELS": "s0:26379"}).redis.sentinel
    assert sentinel is not None
    assert sentinel.master == "mymaster"


def test_setting_both_redis_url_and_sentinels_names_both():
    with pytest.raises(ConfigError, match="REDIS_URL and REDIS_SENTINELS"):
        load_settings({"REDIS_URL": "redis://cache:6379/0", "REDIS_SENTINELS": "s0:26379"})


@pytest.mark.parametrize("value", ["s0", "s0:port", ":26379", "s0:70000", " , "])
def test_a_bad_sentinel_list_names_the_variable(value):
    with pytest.raises(ConfigError, match="REDIS_SENTINELS"):
        load_settings({"REDIS_SENTINELS": value})


@pytest.mark.parametrize("name", ["REDIS_SENTINEL_MASTER", "REDIS_PASSWORD"])
def test_a_sentinel_setting_without_sentinels_is_an_error(name):
    with pytest.raises(ConfigError, match=f"{name} is set without REDIS_SENTINELS"):
        load_settings({name: "x"})


def test_a_bad_sentinel_password_setting_hides_the_value():
    with pytest.raises(ConfigError) as raised:
        load_settings({"REDIS_SENTINEL_PASSWORD": "hush-hush-hush"})
    assert "hush-hush-hush" not in str(raised.value)


def test_ack_replicas_and_timeout_are_parsed_and_bounded():
    ack = load_settings({"REDIS_ACK_REPLICAS": "2", "REDIS_ACK_TIMEOUT_MS": "250"}).redis.ack
    assert (ack.replicas, ack.timeout_ms) == (2, 250)
    with pytest.raises(ConfigError, match="REDIS_ACK_REPLICAS"):
        load_settings({"REDIS_ACK_REPLICAS": "-1"})
    with pytest.raises(ConfigError, match="REDIS_ACK_TIMEOUT_MS"):
        load_settings({"REDIS_ACK_TIMEOUT_MS": "60000"})


def test_sentinel_passwords_are_masked_in_logs():
    settings = load_settings(
        {
            "REDIS_SENTINELS": "s0:26379",
            "REDIS_SENTINEL_PASSWORD": "sentinel-secret-1",
            "REDIS_PASSWORD": "redis-secret-2",
        }
    )
    secrets = secret_values(settings)
    assert "sentinel-secret-1" in secrets
    assert "redis-secret-2" in secrets
