"""`postbox webhooks dispatch` as a real process, delivering events from the stream to a real
receiver that verifies every signature: retries with the same webhook-id, timeouts,
Retry-After, 410, private addresses refused at connection time, a slow endpoint beside a fast
one, a dispatcher SIGKILLed mid-delivery, and Redis restarted (AOF) under it."""

from __future__ import annotations

import os
import time

import redis as sync_redis

from postbox.dev.redis_server import RedisServer
from postbox.queue.events import sequence
from tests.support import wait_until
from tests.webhook_support import (
    add_event,
    attempts_log,
    create_endpoint,
    with_store,
)


def test_events_arrive_signed_to_the_endpoints_that_want_them(
    receiver, redis_url, redis_client, dispatcher_factory
):
    everything, all_secret = create_endpoint(redis_url, receiver.url("all"))
    sent_only, sent_secret = create_endpoint(redis_url, receiver.url("sent"), ("email.sent",))
    tenant, tenant_secret = create_endpoint(
        redis_url, receiver.url("tenant"), domains=("example.com",)
    )
    routes = {
        "all": receiver.route("all", [all_secret]),
        "sent": receiver.route("sent", [sent_secret]),
        "tenant": receiver.route("tenant", [tenant_secret]),
    }
    dispatcher_factory()
    queued = add_event(redis_client, "email.queued", "em_1", to=["a@example.org"])
    sent = add_event(redis_client, "email.sent", "em_1", reply="250 ok")
    foreign = add_event(redis_client, "email.sent", "em_2", domain="other.org")

    wait_until(lambda: len(routes["all"].received) == 3 and len(routes["tenant"].received) == 2)
    wait_until(lambda: len(routes["sent"].received) == 2)
    time.sleep(0.3)  # nothing more arrives
    assert all(r.verified for route in routes.values() for r in route.received)
    assert sorted(routes["all"].ids()) == sorted(f"evt_{i}" for i in (queued, sent, foreign))
    assert sorted(routes["sent"].ids()) == sorted(f"evt_{i}" for i in (sent, foreign))
    assert sorted(routes["tenant"].ids()) == sorted(f"evt_{i}" for i in (queued, sent))
    by_id = {r.webhook_id: r.payload for r in routes["all"].received}
    payload = by_id[f"evt_{sent}"]
    assert payload["type"] == "email.sent"
    assert payload["timestamp"].endswith("Z")
    assert payload["data"] == {
        "email_id": "em_1",
        "attempt": 1,
        "reply": "250 ok",
        "sequence": sequence(sent),
    }
    assert by_id[f"evt_{queued}"]["data"]["sequence"] < payload["data"]["sequence"]
    assert redis_client.xpending("postbox:email:events", "webhooks")["pending"] == 0
    assert [e["outcome"] for e in attempts_log(redis_client, everything.id)] == ["delivered"] * 3
    assert sent_only.id and tenant.id


def test_500_twice_then_200_is_delivered_on_the_third_attempt_with_the_same_id(
    receiver, redis_url, redis_client, dispatcher_factory
):
    endpoint, secret = create_endpoint(redis_url, receiver.url("flaky"))
    route = receiver.route("flaky", [secret], answers=[(500, {}), (500, {})])
    dispatcher_factory()
    entry = add_event(redis_client)

    wait_until(lambda: len(route.received) == 3)
    assert [r.status for r in route.received] == [500, 500, 200]
    assert route.ids(status=None) == [f"evt_{entry}"] * 3
    assert all(r.verified for r in route.received)
    log = wait_until(lambda: len(found := attempts_log(redis_client, endpoint.id)) == 3 and found)
    assert [(e["attempt"], e["status"], e["outcome"]) for e in log] == [
        (1, 500, "retrying"),
        (2, 500, "retrying"),
        (3, 200, "delivered"),
    ]
    assert redis_client.zcard(f"postbox:email:webhook:{endpoint.id}:due") == 0


def test_a_receiver_that_times_out_is_retried(
    receiver, redis_url, redis_client, dispatcher_factory
):
    endpoint, secret = create_endpoint(redis_url, receiver.url("slow"))
    route = receiver.route("slow", [secret], delay=1.5)
    dispatcher_factory(WEBHOOK_TIMEOUT_SECONDS="0.5")
    add_event(redis_client)

    first = wait_until(lambda: attempts_log(redis_client, endpoint.id))[0]
    assert first["outcome"] == "retrying" and first["status"] is None
    assert first["error"] == "timeout: no answer within 0.5 s"
    route.delay = 0
    wait_until(lambda: attempts_log(redis_client, endpoint.id)[-1]["outcome"] == "delivered")


def test_429_with_retry_after_is_honoured(receiver, redis_url, redis_client, dispatcher_factory):
    endpoint, secret = create_endpoint(redis_url, receiver.url("busy"))
    route = receiver.route("busy", [secret], answers=[(429, {"Retry-After": "2"})])
    dispatcher_factory()  # its schedule alone would retry after 0.2 s
    add_event(redis_client)

    wait_until(lambda: len(route.received) == 2, timeout=10)
    first, second = route.received
    assert first.status == 429 and second.status == 200
    assert 1.9 <= second.at - first.at < 3.5
    assert attempts_log(redis_client, endpoint.id)[0]["next_retry_at"] is not None


def test_410_gone_disables_the_endpoint(receiver, redis_url, redis_client, dispatcher_factory):
    endpoint, secret = create_endpoint(redis_url, receiver.url("gone"))
    route = receiver.route("gone", [secret], answers=[(410, {})])
    dispatcher_factory()
    add_event(redis_client)

    found = wait_until(
        lambda: not (e := with_store(redis_url, lambda s: s.get(endpoint.id))).enabled and e
    )
    assert "410 Gone" in (found.disabled_reason or "")
    add_event(redis_client, email="em_after")
    time.sleep(1.5)
    assert [r.status for r in route.received] == [410]


def test_a_name_resolving_to_loopback_is_refused_at_connection_time(
    receiver, redis_url, redis_client, dispatcher_factory
):
    # Made as if `localhost` had resolved to a public address when the endpoint was created.
    endpoint, secret = create_endpoint(redis_url, receiver.url("inside", host="localhost"))
    route = receiver.route("inside", [secret])
    dispatcher_factory(WEBHOOK_ALLOW_PRIVATE_NETWORKS="false")
    add_event(redis_client)

    first = wait_until(lambda: attempts_log(redis_client, endpoint.id))[0]
    assert first["status"] is None
    assert first["error"] == "refused: localhost resolves only to forbidden addresses"
    time.sleep(0.5)
    assert route.received == []


def test_a_slow_endpoint_does_not_delay_a_fast_one(
    receiver, redis_url, redis_client, dispatcher_factory
):
    slow, slow_secret = create_endpoint(redis_url, receiver.url("slow"))
    fast, fast_secret = create_endpoint(redis_url, receiver.url("fast"))
    slow_route = receiver.route("slow", [slow_secret], delay=2.0)
    fast_route = receiver.route("fast", [fast_secret])
    dispatcher_factory(WEBHOOK_TIMEOUT_SECONDS="10").wait_ready(2)
    add_event(redis_client, email="em_warm_up")  # the first request's start-up is not timed
    wait_until(lambda: fast_route.received)

    added = {}
    for index in range(40):  # more than the slow endpoint's 16 slots
        added[f"evt_{add_event(redis_client, email=f'em_{index}')}"] = time.time()
        time.sleep(0.01)
    wait_until(lambda: len(fast_route.received) == 41, timeout=10)
    lags = [r.at - added[r.webhook_id] for r in fast_route.received[1:]]
    assert max(lags) < 0.5, [round(lag, 2) for lag in lags]
    assert len(slow_route.received) <= 16  # still in its first round of 2 s answers
    wait_until(lambda: len(slow_route.received) == 41, timeout=20)
    assert all(r.verified for r in slow_route.received + fast_route.received)
    assert slow.id != fast.id


def test_a_dispatcher_sigkilled_mid_delivery_loses_no_event(
    receiver, redis_url, redis_client, dispatcher_factory
):
    endpoint, secret = create_endpoint(redis_url, receiver.url("hook"))
    route = receiver.route("hook", [secret], delay=0.3)
    victim = dispatcher_factory(WEBHOOK_TIMEOUT_SECONDS="1")
    victim.wait_ready(1)
    expected = {f"evt_{add_event(redis_client, email=f'em_{i}')}" for i in range(60)}

    wait_until(lambda: len(route.received) >= 10)
    victim.kill()
    dispatcher_factory(WEBHOOK_TIMEOUT_SECONDS="1")
    wait_until(lambda: set(route.ids()) == expected, timeout=60)
    delivered = route.ids()
    assert all(r.verified for r in route.received)
    # Duplicates, same webhook-id, only of what the kill caught: the 16 requests in flight,
    # and up to as many answered whose outcome was still in the writer's next batch (it
    # gathers for 10 ms, senders.py). 20 were seen once in CI.
    assert len(delivered) - len(expected) <= 2 * 16
    assert endpoint.id


def test_the_dispatcher_runs_at_its_niceness_or_on_idle_cpu_time(
    receiver, redis_url, dispatcher_factory
):
    create_endpoint(redis_url, receiver.url("all"))
    idle = dispatcher_factory(WEBHOOK_DISPATCHER_NICE="idle")
    niced = dispatcher_factory(WEBHOOK_DISPATCHER_NICE="7")
    for dispatcher in (idle, niced):
        dispatcher.wait_ready(1)  # it lowered its priority before it started
    assert os.sched_getscheduler(idle.process.pid) == os.SCHED_IDLE
    assert os.sched_getscheduler(niced.process.pid) == os.SCHED_OTHER
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, niced.process.pid) == own + 7


def test_after_a_rotation_both_secrets_sign(receiver, redis_url, redis_client, dispatcher_factory):
    endpoint, old = create_endpoint(redis_url, receiver.url("rotated"))
    dispatcher_factory().wait_ready(1)
    new, _ = with_store(redis_url, lambda store: store.rotate_secret(endpoint.id))
    route = receiver.route("rotated", [new, old])  # each must verify the delivery
    add_event(redis_client)

    wait_until(lambda: route.received)
    assert route.received[0].verified


def test_a_redis_restart_with_aof_loses_no_event(receiver, tmp_path, dispatcher_factory):
    redis = RedisServer(tmp_path / "aof-redis", appendonly=True, password="aof-test")
    redis.start()
    try:
        client = sync_redis.Redis.from_url(redis.url, decode_responses=True)
        endpoint, secret = create_endpoint(redis.url, receiver.url("hook"))
        route = receiver.route("hook", [secret], delay=0.02)
        dispatcher_factory(REDIS_URL=redis.url).wait_ready(1)
        expected = {f"evt_{add_event(client, email=f'em_{i}')}" for i in range(50)}
        wait_until(lambda: len(route.received) >= 10)
        client.close()
        redis.stop()  # SIGTERM: Redis writes its AOF and exits
        time.sleep(1.5)
        redis.start()
        client = sync_redis.Redis.from_url(redis.url, decode_responses=True)
        expected |= {f"evt_{add_event(client, email=f'em_after_{i}')}" for i in range(50)}
        wait_until(lambda: set(route.ids()) == expected, timeout=60)
        assert all(r.verified for r in route.received)
        assert endpoint.id
        client.close()
    finally:
        redis.stop()
