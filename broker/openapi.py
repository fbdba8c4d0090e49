"""The OpenAPI document as the contract: each operation with every answer the broker can give.

The routes list the problems of their own domain (``problem_responses``). What the middleware
and the problem handlers answer before or around any route is added here, once, to every
operation it applies to, so the document cannot forget one:

* 400 ``auth.duplicate_header`` and 422 ``request.invalid`` (control characters in the path or
  query) from :class:`broker.middleware.RequestGuardMiddleware`, on every operation;
* 401 (with ``WWW-Authenticate``) and 403 on every operation that asks for a bearer token (its
  ``security``, declared by :data:`broker.deps.BEARER`);
* 413 on every operation that takes a body (:class:`broker.middleware.BodyLimitMiddleware`);
* 503 ``storage.unavailable``/``storage.full`` with ``Retry-After`` on every operation that reads
  or writes the database (:func:`broker.problems.storage_problem`), and ``seal.unavailable`` where
  a signer process fails a seal (:func:`broker.problems.unexpected_problem`).

Every problem response gets the RFC 9457 schema, and every text parameter the pattern the guard
enforces (no control characters), so that a generated client, or a fuzzer, knows them too.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from broker.problems import PROBLEM_MEDIA_TYPE

# Operations that touch no storage: the liveness probe and the static key documents.
STORAGE_FREE: Final = frozenset({"/healthz"})

# The characters RequestGuardMiddleware refuses in a path or query (C0, DEL, C1); JSON Schema
# patterns are ECMA-262 regular expressions, where \u escapes name code points.
NO_CONTROL_CHARACTERS: Final = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"

PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "title": "Problem",
    "description": "Problem details (RFC 9457); `reason` is the stable code to branch on.",
    "type": "object",
    "required": ["type", "title", "status", "reason"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "reason": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}

_DESCRIPTIONS: Final = {
    400: "Malformed request (for example two Authorization headers)",
    401: "No valid bearer token",
    403: "The token's client may not do this",
    413: "The body is larger than the broker accepts",
    422: "Invalid request (fields named in `errors`)",
    503: (
        "Storage unavailable or full (`storage.unavailable`, `storage.full`), or evidence could not be sealed "
        "(`seal.unavailable`); retry after `Retry-After`"
    ),
}
_HEADERS: Final[dict[str, dict[str, Any]]] = {
    "401": {"WWW-Authenticate": {"description": "The scheme: Bearer", "required": True, "schema": {"type": "string"}}},
    "503": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 0}}},
}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = complete(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add the middleware's answers, problem schemas, the bearer scheme and parameter patterns."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # FastAPI's own 422 body is never sent: broker.problems answers validation errors as problems.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            answered_around = [400, 422]
            if "requestBody" in operation:
                answered_around.append(413)
            if path not in STORAGE_FREE:
                answered_around.append(503)
            for status in answered_around:
                _as_problem(responses.setdefault(str(status), {"description": _DESCRIPTIONS[status]}))
            secured = "security" in operation
            if secured:
                for status in (401, 403):
                    responses.setdefault(str(status), {"description": _DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400 and not _declared_content(response):
                    _as_problem(response)
                # A 401 of a citizen's page is the sign-in page (a cookie session, no HTTP scheme).
                if status in _HEADERS and (secured or status != "401"):
                    response["headers"] = {**_HEADERS[status], **response.get("headers", {})}
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in ("path", "query"):  # what the guard checks
                    _refuse_control_characters(parameter.get("schema", {}))
    return document


def _declared_content(response: dict[str, Any]) -> bool:
    """Whether the route declared a body other than a problem (FastAPI's default JSON one aside)."""
    content = response.get("content", {})
    return any(media_type not in ("application/json", PROBLEM_MEDIA_TYPE) for media_type in content)


def _as_problem(response: dict[str, Any]) -> None:
    content = response.setdefault("content", {})
    content.pop("application/json", None)  # FastAPI's default for a declared status
    content[PROBLEM_MEDIA_TYPE] = {"schema": _PROBLEM_REF}


def _refuse_control_characters(schema: dict[str, Any]) -> None:
    for variant in schema.get("anyOf", [schema]):
        if variant.get("type") == "string" and "pattern" not in variant and "format" not in variant:
            variant["pattern"] = NO_CONTROL_CHARACTERS
