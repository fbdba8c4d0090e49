"""Problem details (RFC 9457) for every error the broker answers with.

Each problem has a stable ``reason`` code that clients can branch on; ``type`` is derived from it.
"""

from __future__ import annotations

import errno
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://once-only.example/problems/"
# A 422 lists at most this many field errors: enough to fix a request, and a hostile body with
# thousands of unknown keys cannot make the answer large.
MAX_LISTED_ERRORS = 20

# How long a client should wait before trying again: an outage of the database usually ends
# with a restart or a failover (seconds); a full disk needs an operator (minutes).
UNAVAILABLE_RETRY_SECONDS = 5
FULL_RETRY_SECONDS = 60


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


def storage_problem(error: BaseException) -> Problem | None:
    """The 503 problem for an error of the storage (database unreachable, disk full), else None.

    Such errors are the environment's, not the request's: the client may retry, and the broker
    recovers by itself once the cause goes (connections are checked out afresh; nothing is cached
    in a failed state). Every other error stays a 500.
    """
    kind = _storage_failure(error)
    if kind == "full":
        return Problem(
            503,
            "storage.full",
            "The broker's storage is full; the request was not carried out. Try again later.",
            retry_after=FULL_RETRY_SECONDS,
        )
    if kind == "unavailable":
        return Problem(
            503,
            "storage.unavailable",
            "The broker's database cannot be reached; the request was not carried out. Try again later.",
            retry_after=UNAVAILABLE_RETRY_SECONDS,
        )
    return None


class Unavailable(Exception):
    """A part of the broker itself could not serve the request (a signer process died or hung):
    the environment's failure, not the request's. Raised through the request's transaction, which
    rolls back, and answered 503 with ``reason`` and ``Retry-After`` (:func:`unexpected_problem`);
    the part recovers by itself for the next request."""

    reason = "service.unavailable"
    answer = "The broker could not carry out the request. Try again later."


def unexpected_problem(error: BaseException) -> Problem:
    """The answer to an exception no route handled: 503 for storage failures and the broker's own
    parts unavailable, 500 otherwise."""
    if isinstance(error, Unavailable):
        return Problem(503, error.reason, error.answer, retry_after=UNAVAILABLE_RETRY_SECONDS)
    return storage_problem(error) or Problem(
        500, "internal_error", "The broker could not process the request; it has been logged."
    )


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, the driver error SQLAlchemy wraps, and what each was raised from (bounded)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending and len(seen) < 20:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = current.orig if isinstance(current, DBAPIError) else None
        pending += [current.__context__, current.__cause__, orig if isinstance(orig, BaseException) else None]


# SQLSTATEs of PostgreSQL that mean "the server cannot serve now" (class 08: connection
# exceptions; 57P01-03: shut down, crashed, starting; 53300: too many connections).
_PG_UNAVAILABLE = ("08", "57P01", "57P02", "57P03", "53300")
_PG_FULL = "53100"  # disk_full
# The SQLite result codes of a file that cannot be opened or read/written; SQLITE_FULL is apart.
_SQLITE_UNAVAILABLE = ("SQLITE_CANTOPEN", "SQLITE_IOERR")
_SQLITE_UNAVAILABLE_MESSAGES = ("unable to open database file", "disk i/o error")


def _storage_failure(error: BaseException) -> str | None:
    """``"full"``, ``"unavailable"`` or None, judged by the error and the errors behind it."""
    for cause in _causes(error):
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return "full"
        if isinstance(cause, sqlite3.Error):
            name = getattr(cause, "sqlite_errorname", "") or ""
            message = str(cause).lower()
            if name == "SQLITE_FULL" or "database or disk is full" in message:
                return "full"
            if name.startswith(_SQLITE_UNAVAILABLE) or message.startswith(_SQLITE_UNAVAILABLE_MESSAGES):
                return "unavailable"
        elif isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return "unavailable"
        elif hasattr(cause, "sqlstate") and type(cause).__module__.startswith("psycopg"):
            # psycopg (imported only where PostgreSQL is used): a failure to connect has no
            # SQLSTATE at all (refused, reset, timed out); the server's own refusals have one.
            state = cause.sqlstate
            if state == _PG_FULL:
                return "full"
            if state is None and type(cause).__name__ in ("OperationalError", "InterfaceError"):
                return "unavailable"
            if isinstance(state, str) and state.startswith(_PG_UNAVAILABLE):
                return "unavailable"
    return None


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # Unknown keys are named as sent: a key of many kilobytes is not echoed whole.
    return ".".join(parts)[:200] or "body"


def _allowed_methods(request: Request) -> str | None:
    """The methods the OpenAPI document lists for the request's path, for a 405's ``Allow``.

    Starlette's own ``Allow`` names the methods of the first route whose path matched only, and
    FastAPI has one route per operation; the document knows the resource's every method.
    """
    for template, item in request.app.openapi().get("paths", {}).items():
        pattern = "/".join("[^/]+" if part.startswith("{") else re.escape(part) for part in template.split("/"))
        if re.fullmatch(pattern, request.url.path):
            methods = {method.upper() for method in item}
            return ", ".join(sorted(methods | ({"HEAD"} if "GET" in methods else set())))
    return None


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
        if exc.status_code == 405 and (allowed := _allowed_methods(request)) is not None:
            response.headers["Allow"] = allowed
        return response

    # No handler for Exception here on purpose: Starlette runs it in ServerErrorMiddleware,
    # outside every other middleware, and re-raises afterwards, so its answer had no request id
    # and uvicorn closed the keep-alive connection. broker.middleware.RequestContextMiddleware
    # answers unexpected errors instead (with unexpected_problem).
