"""REDIS_URL=redis+cluster://...: parsed once, the queue's name hash-tagged on a cluster and
untouched without one, errors naming the variable, the password kept out of `repr`, logs
and error messages."""

from __future__ import annotations

import pytest

from postbox.config import load_settings
from postbox.errors import ConfigError
from postbox.logs import secret_values


def test_a_cluster_url_names_the_seeds_and_tags_the_queue():
    settings = load_settings({"REDIS_URL": "redis+cluster://:s%40cret-1@n0:7000,n1:7001/"})

    cluster = settings.redis.cluster
    assert cluster is not None
    assert cluster.nodes == (("n0", 7000), ("n1", 7001))
    assert cluster.password == "s@cret-1"
    assert settings.redis.queue_name == "{email}"
    assert settings.redis.safe_url == "redis+cluster://n0:7000,n1:7001"
    assert "s@cret-1" not in repr(settings)
    assert "s@cret-1" in secret_values(settings)


def test_a_named_queue_is_tagged_too():
    env = {"REDIS_URL": "redis+cluster://n0:7000", "QUEUE_NAME": "mail"}
    assert load_settings(env).redis.queue_name == "{mail}"


def test_without_a_cluster_the_queue_name_is_kept():
    settings = load_settings({"REDIS_URL": "redis://cache:6380/2"})
    assert settings.redis.cluster is None
    assert settings.redis.queue_name == "email"


@pytest.mark.parametrize(
    "value",
    [
        "redis+cluster://",
        "redis+cluster://n0",
        "redis+cluster://n0:port",
        "redis+cluster://n0:7000/1",
        "redis+cluster://user:pw@n0:7000",
    ],
)
def test_a_bad_cluster_url_names_the_variable_and_hides_the_password(value):
    with pytest.raises(ConfigError, match="REDIS_URL") as error:
        load_settings({"REDIS_URL": value})
    assert "pw" not in str(error.value)


def test_braces_in_the_queue_name_are_refused_on_a_cluster():
    with pytest.raises(ConfigError, match="QUEUE_NAME"):
        load_settings({"REDIS_URL": "redis+cluster://n0:7000", "QUEUE_NAME": "{a}"})


def test_a_cluster_url_and_sentinels_are_not_both_allowed():
    with pytest.raises(ConfigError, match="REDIS_URL and REDIS_SENTINELS"):
        load_settings({"REDIS_URL": "redis+cluster://n0:7000", "REDIS_SENTINELS": "s0:26379"})


def test_rediss_cluster_is_tls_with_an_optional_ca_file(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    plain = load_settings({"REDIS_URL": "rediss+cluster://n0:7000"}).redis.cluster
    with_ca = load_settings({"REDIS_URL": f"rediss+cluster://n0:7000?ssl_ca_certs={ca}"})
    assert plain is not None and plain.tls and plain.ca_file is None
    assert with_ca.redis.cluster is not None and with_ca.redis.cluster.ca_file == str(ca)
    assert with_ca.redis.safe_url == "rediss+cluster://n0:7000"


@pytest.mark.parametrize(
    "value",
    [
        "redis+cluster://n0:7000?ssl_ca_certs=/etc/hosts",
        "rediss+cluster://n0:7000?ssl_ca_certs=/nonexistent/ca.pem",
        "rediss+cluster://n0:7000?timeout=5",
    ],
)
def test_bad_tls_options_name_the_variable(value):
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_settings({"REDIS_URL": value})
