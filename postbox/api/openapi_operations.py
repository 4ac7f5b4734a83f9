"""The OpenAPI operations beyond sending: status, queue stats, dead letters, probes.

`add_operations` extends the document built in postbox/api/openapi.py, with the answers
described by the schemas of postbox/api/responses.py and the query string by the same
schema that validates it.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from postbox.api import responses
from postbox.api.dead_letters import ListQuerySchema, RetryFilterSchema

_EMAIL_ID = {
    "in": "path",
    "name": "email_id",
    "required": True,
    "schema": {"type": "string"},
    "description": "The email's id (`em_` and 64 hex digits).",
}
_ERRORS = {
    "400": "A header cannot be read.",
    "401": "No valid API key.",
    "404": "No such email or dead letter.",
    "415": "The body is not JSON.",
    "422": "A field or query parameter is invalid.",
    "429": "The key is over its rate limit; see Retry-After.",
    "503": "Redis is unreachable; retry.",
}


def add_operations(spec: APISpec) -> None:
    """Add every operation but the two send operations to `spec`."""
    for name in (
        "EmailStatus",
        "DeadLetterPage",
        "Requeued",
        "RequeuedMany",
        "QueueStats",
        "Health",
    ):
        spec.components.schema(name, schema=getattr(responses, f"{name}Schema"))
    spec.path("/v1/emails/{email_id}", operations={"get": _get_email()})
    spec.path("/v1/queue/stats", operations={"get": _stats()})
    spec.path("/v1/dead-letters", operations={"get": _list_dead_letters()})
    spec.path("/v1/dead-letters/retry", operations={"post": _retry_all()})
    spec.path("/v1/dead-letters/{email_id}/retry", operations={"post": _retry_one()})
    spec.path("/v1/dead-letters/{email_id}", operations={"delete": _discard()})
    spec.path("/healthz", operations={"get": _probe("The process is up.", ready=False)})
    spec.path("/readyz", operations={"get": _probe("Redis answers.", ready=True)})


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _answers(status: str, description: str, schema: str | None, errors: tuple[str, ...]) -> Any:
    answers: dict[str, Any] = {status: {"description": description}}
    if schema:
        answers[status]["content"] = _json(schema)
    for code in errors:
        answers[code] = {"description": _ERRORS[code], "content": _json("Error")}
    return answers


_READ_ERRORS = ("400", "401", "429", "503")


def _get_email() -> dict[str, Any]:
    return {
        "summary": "Status of one email: attempts, last error, the relay's replies",
        "operationId": "getEmail",
        "parameters": [_EMAIL_ID],
        "responses": _answers("200", "The email's status.", "EmailStatus", (*_READ_ERRORS, "404")),
    }


def _stats() -> dict[str, Any]:
    return {
        "summary": "Jobs per state, throughput, the cluster's processes, capacity advice",
        "operationId": "queueStats",
        "responses": _answers("200", "The queue's numbers.", "QueueStats", _READ_ERRORS),
    }


def _list_dead_letters() -> dict[str, Any]:
    return {
        "summary": "Failed emails, newest first, a page at a time",
        "operationId": "listDeadLetters",
        "parameters": [{"in": "query", "schema": ListQuerySchema}],
        "responses": _answers("200", "One page.", "DeadLetterPage", (*_READ_ERRORS, "422")),
    }


def _retry_all() -> dict[str, Any]:
    return {
        "summary": "Requeue every dead letter, or those of one error class",
        "operationId": "retryDeadLetters",
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": RetryFilterSchema}},
        },
        "responses": _answers(
            "202", "How many were requeued.", "RequeuedMany", (*_READ_ERRORS, "415", "422")
        ),
    }


def _retry_one() -> dict[str, Any]:
    return {
        "summary": "Requeue one dead letter with a full attempt budget",
        "operationId": "retryDeadLetter",
        "parameters": [_EMAIL_ID],
        "responses": _answers("202", "Requeued.", "Requeued", (*_READ_ERRORS, "404")),
    }


def _discard() -> dict[str, Any]:
    return {
        "summary": "Discard one dead letter for good",
        "operationId": "discardDeadLetter",
        "parameters": [_EMAIL_ID],
        "responses": _answers("204", "Discarded.", None, (*_READ_ERRORS, "404")),
    }


def _probe(description: str, ready: bool) -> dict[str, Any]:
    answers = _answers("200", description, "Health", ())
    if ready:
        answers["503"] = {"description": "Redis is unreachable.", "content": _json("Health")}
    return {"summary": description, "security": [], "responses": answers}
