"""POST -> Redis -> worker process -> real SMTP server, checked on what the server received."""

from __future__ import annotations

import base64

from tests.support import email_payload, wait_until

PDF_BYTES = b"%PDF-1.4\n" + bytes(range(256)) * 4


def test_posted_email_arrives_with_every_part(api, smtp_server, worker_factory):
    payload = email_payload(
        to=["Ann <ann@example.org>", "bob@example.org"],
        cc="carol@example.net",
        bcc=["secret@example.com"],
        reply_to="replies@example.com",
        subject="Quarterly report ✓",
        text="Plain body ✓",
        html="<p>HTML body ✓</p>",
        headers={"X-Campaign": "q3"},
        attachments=[{"filename": "report.pdf", "content": base64.b64encode(PDF_BYTES).decode()}],
    )
    response = api.post("/v1/emails", json=payload)
    assert response.status_code == 202, response.json
    body = response.json
    worker_factory()

    [received] = wait_until(lambda: smtp_server.received)
    message = received.message
    assert received.mail_from == "sender@example.com"
    assert sorted(received.rcpt_tos) == sorted(
        ["ann@example.org", "bob@example.org", "carol@example.net", "secret@example.com"]
    )
    assert message["From"] == "Sender <sender@example.com>"
    assert message["To"] == "Ann <ann@example.org>, bob@example.org"
    assert message["Cc"] == "carol@example.net"
    assert message["Reply-To"] == "replies@example.com"
    assert message["Subject"] == "Quarterly report ✓"
    assert message["Message-ID"] == body["message_id"]
    assert message["X-Campaign"] == "q3"
    assert "secret@example.com" not in received.data.decode()
    assert "bcc" not in {name.lower() for name in message}
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Plain body ✓\n"
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n") == "<p>HTML body ✓</p>\n"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "report.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == PDF_BYTES


def test_status_moves_from_queued_to_sent_with_the_relay_reply(api, smtp_server, worker_factory):
    created = api.post("/v1/emails", json=email_payload()).json
    status = api.get(f"/v1/emails/{created['id']}").json
    assert status["status"] == "queued"
    assert status["attempts"] == 0

    worker_factory()
    sent = wait_until(
        lambda: (s := api.get(f"/v1/emails/{created['id']}").json)["status"] == "sent" and s
    )
    assert sent["attempts"] == 1
    assert sent["message_id"] == created["message_id"]
    assert sent["delivery"]["smtp_reply"].startswith("2.0.0 Message accepted")
    assert sent["delivery"]["accepted"] == ["rcpt@example.org"]
    assert sent["delivery"]["refused"] == {}
    [attempt] = sent["history"]
    assert attempt["outcome"] == "sent" and attempt["attempt"] == 1
    assert sent["subject"] == "Hello"


def test_unknown_email_id_is_404(api):
    response = api.get("/v1/emails/em_" + "0" * 64)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert api.get("/v1/emails/not-an-id").status_code == 404


def test_queue_stats_counts_jobs_and_lists_workers(api, smtp_server, worker_factory):
    for index in range(3):
        api.post("/v1/emails", json=email_payload(subject=f"n{index}"))
    assert api.get("/v1/queue/stats").json["counts"]["waiting"] == 3
    worker_factory(INSTANCE_ID="stats-worker")
    wait_until(lambda: len(smtp_server.received) == 3)
    stats = wait_until(
        lambda: (s := api.get("/v1/queue/stats").json)["counts"]["completed"] == 3 and s
    )
    assert stats["throughput"]["sent"] == 3
    assert [w["instance"].split("-")[0] for w in stats["workers"]] == ["stats"]
