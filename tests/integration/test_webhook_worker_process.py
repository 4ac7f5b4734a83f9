"""`postbox worker` runs a webhook dispatcher beside its workers: an email posted to the API
is sent by the worker, and its `email.queued` and `email.sent` reach the endpoint, signed; the
dispatcher's metrics are served with the workers' on METRICS_PORT."""

from __future__ import annotations

import signal

from postbox.cli import dispatcher_specs, worker_specs
from postbox.config import load_settings
from postbox.dev.ports import free_port
from tests.integration.serving import scrape, total
from tests.support import email_payload, wait_until


def test_the_worker_command_runs_a_dispatcher_whose_metrics_it_serves(
    api_factory, receiver, worker_factory, smtp_server, service_env
):
    api = api_factory(load_settings({**service_env, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}))
    created = api.post("/v1/webhooks", json={"url": receiver.url("hook"), "events": ["*"]})
    assert created.status_code == 201, created.json
    route = receiver.route("hook", [created.json["secret"]])
    port = free_port()
    worker = worker_factory(
        WEBHOOK_DISPATCHER="true", WEBHOOK_ALLOW_PRIVATE_NETWORKS="true", METRICS_PORT=str(port)
    )
    posted = api.post("/v1/emails", json=email_payload()).json

    wait_until(lambda: len(route.received) == 2, timeout=30)
    assert all(r.verified for r in route.received)
    by_type = {r.payload["type"]: r.payload["data"] for r in route.received}
    assert set(by_type) == {"email.queued", "email.sent"}
    assert by_type["email.sent"]["email_id"] == posted["id"]
    assert by_type["email.queued"]["sequence"] < by_type["email.sent"]["sequence"]
    assert smtp_server.received

    def delivered() -> float:
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        return total(samples, "postbox_webhook_deliveries_total", outcome="delivered")

    wait_until(lambda: delivered() == 2)
    samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert total(samples, "postbox_webhook_delivery_seconds_count") == 2
    assert ("postbox_webhook_backlog", ()) in samples
    assert total(samples, "postbox_emails_total", outcome="sent") == 1  # the worker's, beside
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, worker.log()
    assert "Webhook dispatcher" in worker.log() and "stopped" in worker.log()


def test_the_dispatcher_child_is_left_out_when_the_setting_says_so(tmp_path):
    on = load_settings({})
    off = load_settings({"WEBHOOK_DISPATCHER": "false"})

    [spec] = dispatcher_specs(on, str(tmp_path))
    assert spec.argv[-2:] == ["webhooks", "dispatch"]
    assert dispatcher_specs(off, str(tmp_path)) == []
    # Worker children are lone workers: none runs a dispatcher of its own.
    assert all(s.env["WEBHOOK_DISPATCHER"] == "false" for s in worker_specs(2, str(tmp_path)))
