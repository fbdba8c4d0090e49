"""Problem details (RFC 9457) for every error the broker answers with.

Each problem has a stable ``reason`` code that clients can branch on; ``type`` is derived from it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker.logging import get_logger

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://once-only.example/problems/"
# A 422 lists at most this many field errors: enough to fix a request, and a hostile body with
# thousands of unknown keys cannot make the answer large.
MAX_LISTED_ERRORS = 20

log = get_logger(__name__)


class Problem(Exception):
    def __init__(self, status: int, reason: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.extensions = extensions

    @property
    def title(self) -> str:
        return self.reason.replace(".", " ").replace("_", " ").capitalize()

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.reason,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "reason": self.reason,
        }
        if instance:
            body["instance"] = instance
        body.update({k: v for k, v in self.extensions.items() if v is not None})
        return body


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of the problem answers an operation may give."""
    return {
        status: {"description": "Problem details (RFC 9457)", "content": {PROBLEM_MEDIA_TYPE: {}}}
        for status in statuses
    }


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    headers = {"Retry-After": str(problem.extensions["retry_after"])} if "retry_after" in problem.extensions else {}
    if problem.status == 401:
        # RFC 9110: a 401 names the scheme that would work.
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # Unknown keys are named as sent: a key of many kilobytes is not echoed whole.
    return ".".join(parts)[:200] or "body"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        found = exc.errors()
        # Never echo the submitted value back: it may be personal data.
        errors = [
            {"field": _field_path(tuple(err.get("loc", ()))), "message": err.get("msg", "")}
            for err in found[:MAX_LISTED_ERRORS]
        ]
        malformed = any(e.get("type") == "json_invalid" for e in found)
        if malformed:
            problem = Problem(400, "request.malformed_json", "The request body is not valid JSON.", errors=errors)
        else:
            fields = ", ".join(e["field"] for e in errors)
            more = f" and {len(found) - len(errors)} more" if len(found) > len(errors) else ""
            problem = Problem(422, "request.invalid", f"Invalid or missing fields: {fields}{more}.", errors=errors)
        return problem_response(problem, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reasons = {
            404: "not_found",
            405: "method_not_allowed",
            401: "auth.required",
            403: "auth.forbidden",
            413: "request.too_large",
        }
        reason = reasons.get(exc.status_code, f"http_{exc.status_code}")
        response = problem_response(Problem(exc.status_code, reason, str(exc.detail)), request.url.path)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error_type=type(exc).__name__, path=request.url.path)
        return problem_response(
            Problem(500, "internal_error", "The broker could not process the request; it has been logged."),
            request.url.path,
        )
