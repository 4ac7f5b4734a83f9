"""A bounded schemathesis run against the send API, described by GET /openapi.json.

schemathesis generates requests from the document (valid ones, and ones that break it on
purpose) and sends them to the Flask app through WSGI, with the real Redis behind it. Every
answer must be a documented status with a body matching its schema, never a 5xx, and every
request that breaks the document must be refused with a 4xx.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import API_KEY

# Per operation (send, batch) and generation mode (valid, invalid): 4 x 75 requests.
EXAMPLES = 75
SEND_PATHS = ["/v1/emails", "/v1/emails/batch"]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def test_openapi_document_is_served_without_a_key(api):
    response = api.client.get("/openapi.json")

    assert response.status_code == 200
    assert {"/v1/emails", "/v1/emails/batch"} <= set(response.json["paths"])
    assert response.json["components"]["schemas"]["Email"]["additionalProperties"] is False


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize("path", SEND_PATHS)
def test_api_never_fails_and_answers_as_documented(api, path, mode):
    # schemathesis' own pytest plugin does not run under pytest 9 (Function._nodeid), so its
    # case strategy is driven by Hypothesis directly.
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api.app)
    operation = schema[path]["POST"]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    def run(case):
        case.call_and_validate(headers=AUTH, checks=CHECKS)

    run()
