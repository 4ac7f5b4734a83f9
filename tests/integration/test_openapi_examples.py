"""Every example of the OpenAPI document is true: each request example, sent as it is,
gets its operation's documented success status, with an answer that has the fields of the
documented example answer; the 422 example is what an invalid address really gets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from postbox.config import load_settings
from tests.conftest import ApiClient
from tests.support import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Operations whose examples need an object made by an earlier one: those go first.
FIRST = ("createWebhook",)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = [
        (path, method, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]
    return sorted(found, key=lambda item: item[2].get("operationId") not in FIRST)


def _json_body(operation: dict[str, Any]) -> dict[str, Any] | None:
    body: dict[str, Any] | None = (
        operation.get("requestBody", {}).get("content", {}).get("application/json")
    )
    return body


def _shape(value: Any) -> Any:
    """The field names of an answer, and of the first item of its lists."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def test_every_request_example_gets_its_documented_answer(
    api_factory: Callable[[Any], ApiClient], service_env: dict[str, str]
) -> None:
    # Example webhook URLs name hosts that do not resolve here.
    api = api_factory(load_settings({**service_env, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}))
    document = api.client.get("/openapi.json").json
    made: dict[str, str] = {}
    sent = 0
    for path, method, operation in _operations(document):
        body = _json_body(operation)
        if body is None:
            continue
        name = operation["operationId"]
        assert body.get("examples"), f"{name} has no request example"
        success = next(code for code in operation["responses"] if code.startswith("2"))
        documented = operation["responses"][success].get("content", {}).get("application/json")
        for label, example in body["examples"].items():
            url = path.format(**made)
            answer = api.client.open(
                url, method=method.upper(), json=example["value"], headers=AUTH
            )
            assert answer.status_code == int(success), (name, label, answer.json)
            sent += 1
            if documented and "example" in documented:
                assert _shape(answer.json) == _shape(documented["example"]), (name, label)
        if name == "createWebhook":
            made["endpoint_id"] = answer.json["id"]
    assert sent >= 8


def test_the_documented_validation_error_is_the_real_one(api: ApiClient) -> None:
    operation = api.client.get("/openapi.json").json["paths"]["/v1/emails"]["post"]
    minimal = operation["requestBody"]["content"]["application/json"]["examples"]["minimal"]
    documented = operation["responses"]["422"]["content"]["application/json"]["example"]
    answer = api.post("/v1/emails", json={**minimal["value"], "to": "not an address"})
    assert answer.status_code == 422
    assert answer.json == documented
