"""Redis Cluster (three masters, three replicas: tests/redis_cluster.py): the API, the
workers and the CLI keep every key of the queue under one hash tag on one master, deliver
each email once, and follow a failover of that master without a restart."""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from redis.crc import key_slot

from postbox.config import load_settings
from tests.redis_cluster import RedisCluster
from tests.support import email_payload, run_postbox, wait_until
from tests.tls_support import make_ca

TAG = "{email}"


@contextmanager
def _running_cluster(ca: bool = False) -> Iterator[RedisCluster]:
    # Not under tmp_path, for the reason test_sentinel.py gives.
    with tempfile.TemporaryDirectory(prefix="postbox-cluster-") as folder:
        root = Path(folder)
        cluster = RedisCluster(root, secrets.token_hex(12), make_ca(root) if ca else None)
        try:
            # Inside: nodes started before a failed join are stopped too (left running, one
            # was reported as a ResourceWarning in whichever later test collected it).
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[RedisCluster]:
    with _running_cluster() as cluster:
        yield cluster


@pytest.fixture
def redis_cluster(shared_cluster: RedisCluster) -> RedisCluster:
    """The module's cluster, emptied (a test that kills a node makes its own).

    On a busy machine its nodes can fail over by themselves (a 1 s node timeout): a node
    just listed as a master may answer as a replica (seen once in a full run here), so the
    masters are listed again, once the cluster is healthy, until each takes the flush."""
    deadline = time.monotonic() + 30
    while True:
        shared_cluster.wait_healthy()
        try:
            for port in _masters(shared_cluster):
                with shared_cluster.client(port) as client:
                    client.flushall()
            return shared_cluster
        except sync_redis.ReadOnlyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def cluster_env(service_env: dict[str, str], redis_cluster: RedisCluster) -> dict[str, str]:
    return {
        **service_env,
        "REDIS_URL": redis_cluster.url,
        "API_RATE_LIMIT": "100000/minute",
        "EMAIL_RATE_LIMIT": "1000/second",
        # Jobs active on a lost master come back within seconds, not 30.
        "EMAIL_LOCK_DURATION_MS": "5000",
        "EMAIL_STALLED_INTERVAL_MS": "5000",
    }


def _post(api: Any, index: int, prefix: str = "cl") -> Any:
    return api.post(
        "/v1/emails",
        json=email_payload(subject=f"{prefix}-{index}", to=[f"r{index}@example.org"]),
        headers={"Idempotency-Key": f"{prefix}-{index}"},
    )


def _subjects(smtp_server: Any, expected: int) -> Counter[str] | None:
    counts = Counter(str(r.message["Subject"]) for r in list(smtp_server.received))
    return counts if sum(counts.values()) >= expected else None


def test_every_key_of_the_queue_is_on_one_slot_and_each_email_is_delivered_once(
    redis_cluster, api_factory, worker_factory, smtp_server, cluster_env
):
    settings = load_settings(cluster_env)
    assert settings.redis.queue_name == TAG
    assert redis_cluster.password not in settings.redis.safe_url
    first, second = api_factory(settings), api_factory(settings)
    worker_factory(**cluster_env)
    emails = 60
    for index in range(emails):
        assert _post(first, index).status_code == 202
    # The same keys on another API instance: found, not queued again.
    for index in range(0, emails, 10):
        assert _post(second, index).status_code == 200
    batch = second.post(
        "/v1/emails/batch",
        json={"emails": [email_payload(subject=f"batch-{i}") for i in range(20)]},
    )
    assert batch.status_code == 202, batch.json
    received = wait_until(lambda: _subjects(smtp_server, emails + 20), timeout=60)
    time.sleep(1)  # a second send of any, if there were one
    assert len(smtp_server.received) == emails + 20
    assert max(received.values()) == 1
    stats = first.get("/v1/queue/stats").json
    assert stats["counts"]["waiting"] == 0

    # Every key Postbox and BullMQ made is under the queue's hash tag, on its master alone.
    slot = key_slot(TAG.encode())
    owner = redis_cluster.master_of(TAG)
    on_owner = _keys(redis_cluster, owner)
    assert any(key.startswith(f"bull:{TAG}:") for key in on_owner)
    assert any(key.startswith(f"postbox:{TAG}:idem:") for key in on_owner)
    assert all(key_slot(key.encode()) == slot for key in on_owner), on_owner
    for port in _masters(redis_cluster):
        if port != owner:
            assert _keys(redis_cluster, port) == set()

    listed = run_postbox(cluster_env, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert redis_cluster.password not in listed.stdout + listed.stderr


@pytest.fixture
def own_cluster() -> Iterator[RedisCluster]:
    with _running_cluster() as cluster:
        yield cluster


def test_acknowledged_emails_survive_a_master_kill_and_are_delivered_once(
    own_cluster, api_factory, worker_factory, smtp_server, cluster_env
):
    redis_cluster = own_cluster
    env = {**cluster_env, "REDIS_URL": own_cluster.url, "REDIS_ACK_REPLICAS": "1"}
    api = api_factory(load_settings(env))
    worker_factory(**env)
    owner = redis_cluster.master_of(TAG)
    emails, kill_at = 150, 50
    statuses: Counter[int] = Counter()
    refused = []
    killed_at = 0.0
    promoted_after = None
    for index in range(emails):
        if index == kill_at:
            # The worker is taking jobs (a worker that starts while Redis is unreachable
            # exits, on a cluster as on one Redis; that is not what this test is about).
            wait_until(lambda: _subjects(smtp_server, 1), timeout=30)
            redis_cluster.kill(owner)
            killed_at = time.time()
        if killed_at and promoted_after is None and redis_cluster.master_of(TAG) != owner:
            # The promoted replica has no replica of its own, so with REDIS_ACK_REPLICAS=1
            # its slots take no email until one is back: the killed node, restarted as an
            # orchestrator would, rejoins as its replica.
            promoted_after = time.time() - killed_at
            redis_cluster.restart(owner)
        status = _post(api, index).status_code
        statuses[status] += 1
        assert status in {202, 503}
        if status == 503:
            refused.append(index)
        time.sleep(0.03)
    redis_cluster.wait_healthy()
    promoted = redis_cluster.master_of(TAG)
    assert promoted != owner
    redis_cluster.wait_replicas(promoted, 1)
    for index in refused:
        wait_until(lambda index=index: _post(api, index).status_code in {200, 202}, timeout=30)
    received = wait_until(lambda: _subjects(smtp_server, emails), timeout=60)
    time.sleep(1)
    assert set(received) == {f"cl-{i}" for i in range(emails)}
    assert max(received.values()) == 1, [s for s, n in received.items() if n > 1]
    after = [r.at for r in smtp_server.received if int(str(r.message["Subject"])[3:]) >= kill_at]
    print(
        "cluster failover: "
        + json.dumps(
            {
                "statuses": statuses,
                "promoted_after_s": round(promoted_after or 0, 2),
                "delivery_resumed_s": round(min(after) - killed_at, 2),
            }
        )
    )


def _masters(cluster: RedisCluster) -> set[int]:
    with cluster.client(cluster.master_of(TAG)) as client:
        nodes = client.execute_command("CLUSTER", "NODES")
    text = nodes if isinstance(nodes, str) else str(nodes)
    return {
        int(line.split()[1].split("@")[0].rsplit(":", 1)[1])
        for line in text.splitlines()
        if "master" in line.split()[2] and "fail" not in line.split()[2]
    }


def _keys(cluster: RedisCluster, port: int) -> set[str]:
    with cluster.client(port) as client:
        return set(client.scan_iter(count=1000))


def test_a_drained_queue_moves_to_the_cluster_with_its_idempotency_records(
    redis_cluster, api_factory, worker_factory, smtp_server, service_env, cluster_env
):
    single = api_factory(load_settings(service_env))
    for index in range(5):
        assert _post(single, index, "mig").status_code == 202
    migrate = ("queue", "migrate", "--from", service_env["REDIS_URL"])

    refused = run_postbox(cluster_env, *migrate)
    assert refused.returncode == 1
    assert "not drained" in refused.stderr and "5 waiting" in refused.stderr
    assert redis_cluster.password not in refused.stderr

    old_worker = worker_factory()
    wait_until(lambda: _subjects(smtp_server, 5), timeout=30)
    old_worker.stop()
    moved = run_postbox(cluster_env, *migrate)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.startswith("drained: no job left")
    assert "copied" in moved.stdout

    clustered = api_factory(load_settings(cluster_env))
    # A client's retry of an email sent from the old Redis is found, not sent again.
    assert _post(clustered, 0, "mig").status_code == 200
    assert _post(clustered, 5, "mig").status_code == 202
    worker_factory(**cluster_env)
    wait_until(lambda: _subjects(smtp_server, 6), timeout=30)
    time.sleep(1)
    assert _subjects(smtp_server, 6) == Counter({f"mig-{i}": 1 for i in range(6)})
    again = run_postbox(cluster_env, *migrate)
    assert again.returncode == 0, again.stderr
    assert "copied 0 keys" in again.stdout


def test_a_tls_cluster_is_reached_by_the_api_the_worker_and_the_cli(
    api_factory, worker_factory, smtp_server, service_env
):
    with _running_cluster(ca=True) as cluster:
        env = {**service_env, "REDIS_URL": cluster.url, "API_RATE_LIMIT": "1000/minute"}
        settings = load_settings(env)
        assert settings.redis.safe_url.startswith("rediss+cluster://127.0.0.1:")
        api = api_factory(settings)
        worker = worker_factory(**env)
        for index in range(10):
            assert _post(api, index, "tls").status_code == 202
        wait_until(lambda: _subjects(smtp_server, 10), timeout=30)
        listed = run_postbox(env, "dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        with cluster.client(cluster.master_of(TAG)) as client:
            assert client.exists(f"bull:{TAG}:meta")
        # Before the cluster goes: a worker cut off from Redis waits out its stop timeout.
        worker.stop()
        api.close()
