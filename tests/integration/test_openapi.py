"""The rest of the API against its OpenAPI document: status, queue stats, dead letters and
the probes (the send operations have their own run in test_api_fuzz.py).

schemathesis generates requests for each operation (valid ones and ones that break the
document on purpose), sends them to the Flask app through WSGI with the real Redis behind
it, and checks that none gets a 5xx and that every answer is documented and matches its
schema. Bounded: 15 cases per operation and mode, about 250 in all.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import API_KEY, email_payload, wait_until

EXAMPLES = 15
# Fuzzed, with stricter checks, by test_api_fuzz.py.
SEND_PATHS = {"/v1/emails", "/v1/emails/batch"}
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BAD = "bad@example.org"


def _operations(api: Any) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api.app)
    return [
        result.ok() for result in schema.get_all_operations() if result.ok().path not in SEND_PATHS
    ]


@pytest.mark.smtp_replies(rcpt={BAD: "550 5.1.1 no such user"})
def test_other_operations_never_fail_and_answer_as_documented(
    api: Any, worker_factory: Any, redis_client: Any
) -> None:
    # Real data to describe: one sent email, one dead letter, a worker in the registry.
    for to in ("ok@example.org", BAD):
        assert api.post("/v1/emails", json=email_payload(to=to)).status_code == 202
    worker_factory()
    wait_until(lambda: redis_client.zcard("bull:email:failed") == 1)
    operations = _operations(api)
    assert len(operations) >= 8
    for operation in operations:
        breakable = operation.path_parameters or operation.query or operation.body
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if breakable else [])
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def run(case: Any) -> None:
                case.call_and_validate(headers=AUTH, checks=CHECKS)

            run()
