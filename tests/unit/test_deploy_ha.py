"""Static checks of the high-availability deployment files: the compose `ha` profile and the
k8s `prod-sentinel` overlay point Postbox at the Sentinels they start, under the name those
Sentinels monitor (helpers from test_deploy_files.py)."""

from __future__ import annotations

import re

from postbox.config import load_settings
from tests.unit.test_deploy_files import (
    ENV_EXAMPLE,
    _find,
    container_environment,
    dotenv,
    interpolate,
    kustomize,
    load_compose,
)


def _commented_ha_lines() -> dict[str, str]:
    """The `# REDIS_...=` lines of .env.example that the `ha` profile asks to uncomment."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^# (REDIS_[A-Z_]+)=(.*)$", line)
        if match:
            pairs[match.group(1)] = match.group(2)
    return pairs


def test_compose_ha_profile_finds_the_primary_through_its_sentinels() -> None:
    services = load_compose()["services"]
    variables = {**dotenv(ENV_EXAMPLE), **_commented_ha_lines()}
    environment = {
        key: interpolate(str(value), variables)
        for key, value in services["worker"]["environment"].items()
    }
    redis = load_settings(environment).redis
    assert redis.sentinel is not None and redis.ack.replicas == 1
    host, port = redis.sentinel.nodes[0]
    assert host in services and services[host]["profiles"] == ["ha"]
    [command] = services[host]["command"]
    assert f"sentinel monitor {redis.sentinel.master} redis 6379 2" in command
    assert port == 26379
    assert services["redis-replica"]["profiles"] == ["ha"]
    assert services["redis-replica"]["command"][1:4] == ["--replicaof", "redis", "6379"]


def test_k8s_sentinel_overlay_runs_three_sentinels_over_three_redis_pods() -> None:
    objects = kustomize("prod-sentinel")
    assert _find(objects, "StatefulSet", "redis")["spec"]["replicas"] == 3
    sentinels = _find(objects, "StatefulSet", "redis-sentinel")
    assert sentinels["spec"]["replicas"] == 3
    [script] = sentinels["spec"]["template"]["spec"]["containers"][0]["args"]
    for name in ("postbox-api", "postbox-worker"):
        environment = container_environment(objects, name)
        assert "REDIS_URL" not in environment
        redis = load_settings(environment).redis
        assert redis.sentinel is not None and redis.ack.replicas == 1
        assert f"sentinel monitor {redis.sentinel.master} " in script
        hosts = {host for host, _ in redis.sentinel.nodes}
        assert hosts == {f"redis-sentinel-{i}.redis-sentinel" for i in range(3)}
