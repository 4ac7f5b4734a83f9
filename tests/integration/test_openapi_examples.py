"""Every example of the OpenAPI document is true: each request example, sent as it is,
gets its operation's documented success status, with an answer that has the fields of the
documented example answer; the 422 example is what an invalid address really gets; every
schema an answer or a request uses has an example, and each example validates against its
schema (OpenAPI 3.0's `nullable` read as JSON Schema's null type)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jsonschema import Draft4Validator

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
        assert body.get("examples"), f"{name}: add a request example to openapi_examples.py"
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


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema: `nullable: true` allows null."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if not node.get("nullable"):
        return converted
    if "enum" in converted:
        converted["enum"] = [*converted["enum"], None]
    if "type" in converted:
        converted["type"] = [converted["type"], "null"]
        return converted
    return {"anyOf": [converted, {"type": "null"}]}


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft4Validator:
    root = {"components": _json_schema(document["components"]), **_json_schema(schema)}
    return Draft4Validator(root)


def _answer_schemas(document: dict[str, Any]) -> set[str]:
    """The component schemas that an answer names (request bodies have their examples on
    the operation)."""
    found = set()
    for operations in document["paths"].values():
        for operation in operations.values():
            for answer in operation["responses"].values():
                content = answer.get("content", {})
                ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                if ref:
                    found.add(ref.rsplit("/", 1)[1])
    return found


def test_every_schema_has_an_example_that_validates(api: ApiClient) -> None:
    document = api.client.get("/openapi.json").json
    schemas = document["components"]["schemas"]
    used = _answer_schemas(document)
    assert len(used) >= 15
    for name in sorted(used):
        assert "example" in schemas[name], f"{name}: add an example to openapi_schema_examples.py"
        ref = {"$ref": f"#/components/schemas/{name}"}
        errors = list(_validator(document, ref).iter_errors(schemas[name]["example"]))
        assert errors == [], (name, [error.message for error in errors])
    for operations in document["paths"].values():
        for operation in operations.values():
            body = _json_body(operation)
            for label, example in (body or {}).get("examples", {}).items():
                errors = list(_validator(document, body["schema"]).iter_errors(example["value"]))
                assert errors == [], (operation["operationId"], label, errors)
