"""Under gunicorn, a batch answer closes its connection and a single send keeps it.

A keep-alive connection stays with the gunicorn process that accepted it, so a client
posting batches over a few connections could load one process while the others idle; a
fresh connection per batch lets whichever process is free take the next one.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.serving import Process, api_only
from tests.support import API_KEY, email_payload

HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


@pytest.fixture
def served(service_env: dict[str, str], tmp_path: Path) -> Iterator[Process]:
    with api_only(service_env, tmp_path, web_concurrency=2) as api:
        yield api


def _post(
    connection: http.client.HTTPConnection, path: str, payload: object
) -> http.client.HTTPResponse:
    connection.request("POST", path, body=json.dumps(payload), headers=HEADERS)
    response = connection.getresponse()
    response.read()
    return response


def test_a_batch_answer_closes_the_connection(served: Process):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    try:
        batch = {"emails": [email_payload(subject=f"#{i}") for i in range(3)]}
        response = _post(connection, "/v1/emails/batch", batch)
        assert response.status == 202
        assert response.getheader("Connection") == "close"
        assert connection.sock is None  # http.client closed it, as the answer asked
        refused = _post(connection, "/v1/emails/batch", {"emails": [{"to": "x"}]})
        assert refused.status == 422
        assert refused.getheader("Connection") == "close"
    finally:
        connection.close()


def test_single_sends_keep_their_connection(served: Process):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    try:
        first = _post(connection, "/v1/emails", email_payload(subject="one"))
        socket = connection.sock
        second = _post(connection, "/v1/emails", email_payload(subject="two"))
        assert (first.status, second.status) == (202, 202)
        assert first.getheader("Connection") != "close"
        assert socket is not None
        assert connection.sock is socket
    finally:
        connection.close()
